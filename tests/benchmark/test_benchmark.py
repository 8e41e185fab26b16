"""The benchmark end to end on a baseline extractor: metrics against direct library calls, chance
controls, resumption without refitting, determinism, the weighted layer sum, the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from musiclens.benchmark import DATASETS, PUBLISHED, ProbeSettings, marble_average, run_benchmark
from musiclens.benchmark import protocol as protocol_mod
from musiclens.benchmark.protocol import WEIGHTED_SUM, cell_path, run_cells, task_arrays
from musiclens.benchmark.results import select_and_score
from musiclens.extract.store import FeatureStore

FAST = ProbeSettings(lrs=(1e-3,), max_epochs=40, patience=5)


@pytest.fixture(scope="module")
def full_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("bench") / "run"
    return run_benchmark(["mfcc"], out=out, data_root=data_root, seeds=[0], settings=FAST, n_bootstraps=50)


def _chosen_test(run, model: str, task: str) -> tuple[np.ndarray, pd.DataFrame]:
    """Test predictions of the chosen cell and the task's test rows (in store order)."""
    row = run.scores[(run.scores["model"] == model) & (run.scores["task"] == task)].iloc[0]
    layer, lr = row["layers"].split(";")[0], float(row["lrs"].split(";")[0])
    with np.load(cell_path(run.out / "cells" / model, task, 0, layer, lr).with_suffix(".npz")) as z:
        test = z["test"].astype(np.float64)
    items = pd.read_csv(run.out / "datasets" / f"{DATASETS_OF[task]}.csv", keep_default_na=False)
    col = f"split:{task}" if f"split:{task}" in items.columns else "split"
    return test, items[items[col] == "test"]


DATASETS_OF = {"gtzan": "gtzan", "nsynth-pitch": "nsynth", "giantsteps-key": "giantsteps", "mtt": "mtt",
               "emomusic": "emomusic", "vocalset-technique": "vocalset"}


def test_every_metric_matches_a_direct_library_call(full_run) -> None:
    import mir_eval
    from sklearn.metrics import accuracy_score, average_precision_score, r2_score, roc_auc_score

    s = full_run.scores.set_index(["task", "metric"])["value"]
    assert len(full_run.table) == 1 and np.isfinite(full_run.table["average"].iloc[0])
    from musiclens.probe.datasets import GTZAN_GENRES

    test, items = _chosen_test(full_run, "mfcc", "gtzan")
    y = [GTZAN_GENRES.index(g) for g in items["genre"]]
    assert s["gtzan", "accuracy"] == pytest.approx(accuracy_score(y, test.argmax(1)), abs=1e-12)

    from musiclens.probe.tasks import KEY_CLASSES

    test, items = _chosen_test(full_run, "mfcc", "giantsteps-key")
    est = [KEY_CLASSES[i] for i in test.argmax(1)]
    ref = np.mean([mir_eval.key.weighted_score(r, e) for r, e in zip(items["key"], est)])
    assert s["giantsteps-key", "key.weighted_score"] == pytest.approx(ref, abs=1e-12)

    test, items = _chosen_test(full_run, "mfcc", "mtt")
    tags = [c for c in items.columns if c.startswith("tag:")]
    y = items[tags].to_numpy(dtype=int)
    ok = (y.sum(0) > 0) & (y.sum(0) < len(y))
    assert s["mtt", "roc_auc"] == pytest.approx(roc_auc_score(y[:, ok], test[:, ok], average="macro"), abs=1e-12)
    assert s["mtt", "mAP"] == pytest.approx(average_precision_score(y[:, ok], test[:, ok], average="macro"), abs=1e-12)

    test, items = _chosen_test(full_run, "mfcc", "emomusic")
    assert s["emomusic", "r2_arousal"] == pytest.approx(r2_score(items["arousal"], test[:, 0]), abs=1e-12)
    assert s["emomusic", "r2_valence"] == pytest.approx(r2_score(items["valence"], test[:, 1]), abs=1e-12)

    test, items = _chosen_test(full_run, "mfcc", "vocalset-technique")
    from musiclens.benchmark.readers import VOCALSET_TECHNIQUES

    y = [VOCALSET_TECHNIQUES.index(t) for t in items["technique"]]
    assert s["vocalset-technique", "accuracy"] == pytest.approx(accuracy_score(y, test.argmax(1)), abs=1e-12)


def test_run_folder_manifest_and_report(full_run) -> None:
    out = full_run.out
    for name in ("table.csv", "scores.csv", "cells.csv", "layers.csv", "report.md", "report.html", "config.json"):
        assert (out / name).is_file(), name
    m = json.loads((out / "manifest.json").read_text())
    assert m["command"] == "benchmark" and m["seeds"] == [0]
    assert m["datasets"]["gtzan"]["counts"] == {"gtzan": {"train": 30, "valid": 10, "test": 20}}
    assert m["datasets"]["gtzan"]["skipped"] == [] and "items_sha256" in m["datasets"]["gtzan"]["hashes"]
    assert m["datasets"]["emomusic"]["window_s"] == 5.0
    assert m["models"]["mfcc"]["stores"]["gtzan"]["key"]
    assert "torch" in m["environment"]["packages"] and m["timings_s"]
    report = (out / "report.md").read_text()
    assert "MERT-v1-95M (published)" in report and "MARBLE (Yuan et al. 2023), constrained track" in report
    store = FeatureStore(out / "features" / "mfcc" / "emomusic")   # 6.5 s clips in 5 s windows
    assert store.manifest["windowing"]["window_s"] == 5.0


def test_marble_average_reproduces_the_published_averages() -> None:
    for name, pub in PUBLISHED.items():
        assert marble_average({k: v for k, v in pub.items() if k != "average"}) == pytest.approx(pub["average"], abs=0.05)


def test_probe_beats_chance_and_shuffled_labels_do_not(data_root: Path, full_run, tmp_path: Path) -> None:
    ds = DATASETS.get("gtzan")(data_root / "gtzan")
    store = FeatureStore(full_run.out / "features" / "mfcc" / "gtzan")
    feats = {n: store.layer(n) for n in store.layer_names}
    settings = ProbeSettings(lrs=(1e-3,), max_epochs=60, patience=10)
    values = {}
    for name, shuffle in (("real", None), ("shuffled", 7)):
        data = task_arrays(ds, ds.tasks["gtzan"], store.stimulus_ids, shuffle_train_labels=shuffle)
        cells = run_cells(data, feats, tmp_path / name, seeds=[0, 1, 2], settings=settings, store_key="k")
        values[name] = select_and_score(cells, data, model="mfcc", n_bootstraps=0)["value"].iloc[0]
    assert values["real"] >= 0.9          # chance is 0.1 (10 genres)
    assert values["shuffled"] <= 0.3


def test_a_resumed_run_refits_only_missing_cells_and_gives_the_same_table(data_root: Path, tmp_path: Path,
                                                                          monkeypatch) -> None:
    fits = []
    real_fit = protocol_mod._fit_cell
    monkeypatch.setattr(protocol_mod, "_fit_cell", lambda *a, **k: fits.append(1) or real_fit(*a, **k))
    kw = dict(out=tmp_path / "run", data_root=data_root, tasks=["gtzan", "nsynth-pitch"], seeds=[0, 1],
              settings=ProbeSettings(lrs=(1e-3, 5e-3), max_epochs=30, patience=5), n_bootstraps=20)
    first = run_benchmark(["mfcc"], **kw)
    assert len(fits) == 2 * 2 * 2       # tasks x seeds x lrs (one layer: no weighted sum)
    jsons = sorted((tmp_path / "run" / "cells").rglob("*.json"))
    mtimes = {p: p.stat().st_mtime_ns for p in jsons}
    killed = jsons[:3]                  # as if the run died before these cells finished
    for p in killed:
        p.unlink()
    fits.clear()
    again = run_benchmark(["mfcc"], **kw)
    assert len(fits) == 3
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items() if p not in killed)
    pd.testing.assert_frame_equal(first.table, again.table)
    pd.testing.assert_frame_equal(first.scores, again.scores)
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["cells"] == {"total": 8, "fitted_this_run": 3, "reused": 5, "diverged": 0}
    fits.clear()
    run_benchmark(["mfcc"], **{**kw, "seeds": [0, 1, 2]})   # one more seed: only its cells are new
    assert len(fits) == 2 * 2


def test_weighted_layer_sum_of_a_multi_layer_network(data_root: Path, tmp_path: Path) -> None:
    from musiclens.benchmark import ModelSpec
    from tests.extract._helpers import tiny_w2v_config

    spec = ModelSpec("tiny", "wav2vec2", {"config": tiny_w2v_config()})
    run = run_benchmark([spec], out=tmp_path / "run", data_root=data_root, tasks=["gtzan"], seeds=[0],
                        settings=ProbeSettings(lrs=(1e-3,), max_epochs=15, patience=3), n_bootstraps=0)
    layers = set(run.cells["layer"])
    assert layers == {"layer_00", "layer_01", "layer_02", WEIGHTED_SUM}
    rec = json.loads(cell_path(tmp_path / "run" / "cells" / "tiny", "gtzan", 0, WEIGHTED_SUM, 1e-3)
                     .with_suffix(".json").read_text())
    assert len(rec["layer_weights"]) == 3 and sum(rec["layer_weights"]) == pytest.approx(1.0)
    assert set(run.layers["layer"]) == layers


def test_cli_end_to_end(data_root: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from musiclens.cli import main

    out = tmp_path / "cli-run"
    argv = ["musiclens", "benchmark", "--model", "base=mfcc", "--data-root", str(data_root), "--tasks", "gtzan",
            "--out", str(out), "--seeds", "0,1", "--lrs", "1e-3", "--max-epochs", "20", "--bootstraps", "20"]
    monkeypatch.setattr(sys, "argv", argv)
    try:
        main()
    except SystemExit as exc:
        assert not exc.code
    printed = capsys.readouterr().out
    assert "base: gtzan/accuracy" in printed
    table = pd.read_csv(out / "table.csv")
    assert list(table["model"]) == ["base"] and "gtzan/accuracy" in table.columns
    scores = pd.read_csv(out / "scores.csv")
    assert scores["n_seeds"].iloc[0] == 2 and np.isfinite(scores["std_seeds"].iloc[0])
    assert scores["ci_low"].iloc[0] <= scores["value"].iloc[0] <= scores["ci_high"].iloc[0]
    monkeypatch.setattr(sys, "argv", [*argv[:argv.index("--data-root")], "--data-root", str(tmp_path / "none"),
                                      "--tasks", "gtzan", "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2 and "Expected layout" in capsys.readouterr().err


def test_a_killed_process_resumes_without_redoing_finished_cells(data_root: Path, tmp_path: Path, monkeypatch) -> None:
    import os
    import signal
    import subprocess
    import time

    out = tmp_path / "killed"
    lrs = "5e-5,1e-4,5e-4,1e-3,5e-3,1e-2"
    cmd = [sys.executable, "-m", "musiclens", "benchmark", "--model", "mfcc", "--data-root", str(data_root),
           "--tasks", "gtzan", "--out", str(out), "--seeds", "0,1", "--lrs", lrs, "--max-epochs", "60",
           "--bootstraps", "0"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(out.rglob("lr*.json"))) < 3 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {p: p.stat().st_mtime_ns for p in out.rglob("lr*.json")}
    assert 3 <= len(done) < 12 and not (out / "table.csv").exists()
    fits = []
    real_fit = protocol_mod._fit_cell
    monkeypatch.setattr(protocol_mod, "_fit_cell", lambda *a, **k: fits.append(1) or real_fit(*a, **k))
    run = run_benchmark(["mfcc"], out=out, data_root=data_root, tasks=["gtzan"], seeds=[0, 1],
                        settings=ProbeSettings(lrs=tuple(float(v) for v in lrs.split(",")), max_epochs=60),
                        n_bootstraps=0)
    assert len(fits) == 12 - len(done)
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())
    assert len(run.cells) == 12 and run.cells["reused"].sum() == len(done)
