"""Real kills: SIGKILL a musiclens command at a random point, run it again, compare with a run
that was never interrupted.

Every command runs as its own process (``python -m musiclens ...``) and is killed with SIGKILL —
no exception handler, ``finally`` or atexit runs — at a time drawn from a seeded generator inside
the window in which it is working.  What must hold after the rerun: the same results as an
uninterrupted run (byte for byte where musiclens promises it), and at no moment a finished-looking
result in an unfinished folder.
"""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow   # about 60 s on 2 cores, all four; runs in the default suite

RNG = np.random.default_rng(20261205)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "musiclens", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return env


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:  # noqa: ANN003
    start = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=600, **kw)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc.seconds = time.monotonic() - start   # type: ignore[attr-defined]
    return proc


def _kill_when(args: list[str], ready, *, delay_s: float, timeout_s: float = 300) -> bool:  # noqa: ANN001
    """Start ``args``; once ``ready()`` is true, wait ``delay_s`` and SIGKILL it.

    Returns True if the process was killed, False if it finished first.
    """
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    start = time.monotonic()
    try:
        while not ready():
            if proc.poll() is not None:
                return False
            if time.monotonic() - start > timeout_s:
                raise AssertionError(f"{args} never reached the kill window")
            time.sleep(0.02)
        time.sleep(delay_s)
        if proc.poll() is not None:
            return False
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _logging_since(path: Path):  # noqa: ANN202
    """A ``ready`` that is true once ``path`` was written after now (the command is working)."""
    start = time.time()
    return lambda: path.is_file() and path.stat().st_mtime >= start


def _hidden_siblings(out: Path) -> list[Path]:
    """Temporary siblings of ``out`` (``.<name>...``): a folder being built, or left by a kill."""
    return [p for p in out.parent.iterdir() if p.name.startswith(".") and out.name in p.name] \
        if out.parent.is_dir() else []


def _building(out: Path):  # noqa: ANN202
    """A ``ready`` that is true once a temporary sibling of ``out`` appears that was not there before."""
    before = set(_hidden_siblings(out))
    return lambda: bool(set(_hidden_siblings(out)) - before)


def _tree_hashes(folder: Path, *, skip: tuple[str, ...] = ("manifest.json",)) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in skip}


@pytest.fixture(scope="module")
def notes(tmp_path_factory) -> Path:  # noqa: ANN001
    out = tmp_path_factory.mktemp("kills") / "notes"
    _run(_cli("stimuli", "notes", "--out", str(out), "--grid", "quick", "--instruments", "flute,0,40",
              "--midi", "60-84", "--duration", "0.5", "--hold", "0.3"))
    return out


# ------------------------------------------------------------------ extraction
def test_killed_extraction_resumes_byte_identical(notes, tmp_path) -> None:
    """``musiclens extract`` killed mid-extraction (after a seeded random number of chunks), then at a
    random moment of the resumed run, then run to the end: the store is byte-identical to an
    uninterrupted run's, and after every kill it is whole or absent (never a half store)."""
    args = ["extract", "-m", "mfcc", "-s", str(notes), "--chunk-size", "8", "--batch-size", "4"]
    ref = tmp_path / "ref"
    ref_seconds = _run(_cli(*args, "--out", str(ref))).seconds
    out = tmp_path / "out"
    partial = out.with_name(out.name + ".partial")
    n_chunks = -(-75 // 8)   # 75 notes in chunks of 8
    # killed once a (seeded) random number of chunks is on disk, in the middle of extracting
    k = int(RNG.integers(1, n_chunks // 2 + 1))
    assert _kill_when(_cli(*args, "--out", str(out)),
                      lambda: (partial / "chunks").is_dir() and len(list((partial / "chunks").glob("c*"))) >= k,
                      delay_s=0.0)
    assert not out.exists() and partial.is_dir()   # unfinished: no store, only its working folder
    # killed again at a random moment of the resumed run: the store is whole or absent
    _kill_when(_cli(*args, "--out", str(out)), lambda: True, delay_s=float(RNG.uniform(0.0, 1.0)) * ref_seconds)
    assert not out.exists() or (out / "manifest.json").is_file()
    _run(_cli(*args, "--out", str(out)))
    assert _tree_hashes(out) == _tree_hashes(ref)
    assert not partial.exists()


# ------------------------------------------------------------------ RSA
def test_killed_rsa_leaves_no_table_and_reruns_identically(notes, tmp_path) -> None:
    """A killed ``musiclens rsa`` leaves no ``--out`` folder (at most a hidden temporary sibling) or a
    complete one with its manifest, never ``rsa.csv`` in an unfinished folder; the rerun's tables are
    byte-identical to an uninterrupted run's and no temporary is left."""
    store = tmp_path / "feats"
    _run(_cli("extract", "-m", "cqt", "-s", str(notes), "--out", str(store)))
    args = ["rsa", "-a", str(store), "-s", str(notes), "--permutations", "3000", "--bootstraps", "300",
            "--bootstrap-over", "instruments", "--seed", "1"]
    ref = tmp_path / "ref"
    seconds = _run(_cli(*args, "--out", str(ref))).seconds
    out = tmp_path / "out"
    # at a random moment (seeded), then as soon as the output folder is being built (mid-write)
    for when, delay in (("random", float(RNG.uniform(0.3, 1.0)) * seconds), ("building", 0.0)):
        ready = _building(out) if when == "building" else (lambda: True)
        _kill_when(_cli(*args, "--out", str(out)), ready, delay_s=delay)
        # the table only ever appears inside a finished folder
        assert not out.exists() or ((out / "manifest.json").is_file() and (out / "rsa.csv").is_file()), \
            sorted(p.name for p in out.iterdir())
    _run(_cli(*args, "--out", str(out)))
    for name in ("rsa.csv", "per_subject.csv", "rsa_tests.csv", "conditions.csv"):
        if (ref / name).exists():
            assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    assert (out / "manifest.json").is_file()
    assert not _hidden_siblings(out), _hidden_siblings(out)


# ------------------------------------------------------------------ training
def _train_config(tmp_path: Path) -> Path:
    from musiclens.corpora.generator import MusicConfig
    from musiclens.corpora.shards import build_corpus
    from musiclens.corpora.synthetic import GeneratedMusicSource

    corpus = tmp_path / "music"
    build_corpus(corpus, source=GeneratedMusicSource(n_pieces=8, seed=1, config=MusicConfig(duration_s=2.0, tail_s=0.3)),
                 pieces_per_shard=8)
    cfg = {
        "model": {"family": "vit1d", "config": "test"},
        "options": {"crop_s": 1.0, "max_view_gap_s": 0.5},
        "data": {"train": [str(corpus)], "val": 0.25, "batch_size": 2, "num_workers": 0},
        "optim": {"lr": 1e-3, "max_steps": 40, "warmup_steps": 2},
        "trainer": {"accelerator": "cpu", "devices": 1, "deterministic": True, "log_every_n_steps": 1,
                    "val_every_n_steps": 10, "checkpoint_every_n_steps": 5, "progress_bar": False},
        "seed": 3,
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _metrics_rows(run: Path) -> pd.DataFrame:
    with open(run / "logs" / "metrics.csv", newline="") as fh:
        return pd.DataFrame(list(csv.DictReader(fh)))


def test_killed_training_resumes_with_every_metrics_row_once(tmp_path) -> None:
    """``musiclens train`` killed as a checkpoint file appears (mid-write of ``last.ckpt`` or just
    after), then at a random moment while the resumed run trains, then run to the end: the same
    ``metrics.csv`` (every row exactly once) and the same weights as an uninterrupted run, byte for
    byte (CPU, deterministic); after every kill ``last.ckpt`` is absent or whole, counting no more
    rows than the file holds; the manifest records each run and the finished flag."""
    import json

    import torch

    config = _train_config(tmp_path)
    args = ["train", "ntxent", "--config", str(config)]
    ref = tmp_path / "ref"
    _run(_cli(*args, "--out", str(ref)))
    out = tmp_path / "out"
    ckpt_dir, metrics = out / "checkpoints", out / "logs" / "metrics.csv"
    kills = [(lambda: lambda: ckpt_dir.is_dir() and any(ckpt_dir.iterdir()), 0.0),   # a checkpoint file appears
             (lambda: _logging_since(metrics), float(RNG.uniform(0.0, 0.6)))]         # while training (~1 s)
    for make_ready, delay in kills:
        _kill_when(_cli(*args, "--out", str(out)), make_ready(), delay_s=delay)
        if (ckpt_dir / "last.ckpt").exists():   # whole: it loads, and its rows are in the file
            ckpt = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=True)
            assert ckpt["musiclens"]["metrics_rows"] <= len(_metrics_rows(out))
    proc = _run(_cli(*args, "--out", str(out)))
    assert "finished at step 40" in proc.stdout
    got, want = _metrics_rows(out), _metrics_rows(ref)
    assert not got.duplicated().any()
    assert sorted(got["step"].astype(int)) == sorted(want["step"].astype(int))
    assert metrics.read_bytes() == (ref / "logs" / "metrics.csv").read_bytes()
    # and the trained weights are the uninterrupted run's
    from safetensors.numpy import load_file

    a, b = (load_file(next((d / "backbone").glob("*.safetensors"))) for d in (out, ref))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["finished"] and manifest["global_step"] == 40
    assert manifest["runs"][-1]["ended_at_step"] == 40
    assert not [p.name for p in ckpt_dir.iterdir() if p.name != "last.ckpt"]   # no temporary left


# ------------------------------------------------------------------ a study
def test_killed_study_resumes_to_the_same_tables(tmp_path) -> None:
    """``musiclens run`` (stimuli, extraction, RSA, report of a small study) killed twice at random
    moments, then run to the end: the same tables and feature arrays as an uninterrupted run; after
    each kill every step the study records as done has its outputs."""
    import json

    study = {
        "study": {"name": "kill", "seed": 0},
        "stimuli": {"grid": "quick", "instruments": ["flute", 0, 40], "midi": list(range(60, 85)),
                    "duration_s": 0.5, "hold_s": 0.3},
        "networks": {"mfcc": {"model": "mfcc"}, "cqt": {"model": "cqt"}},
        "rsa": {"n_permutations": 2000, "n_bootstraps": 200, "bootstrap_over": "instruments"},
        "steps": {"run": ["stimuli", "extract", "rsa", "report"]},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    ref = tmp_path / "ref"
    seconds = _run(_cli("run", str(path), "--out", str(ref))).seconds
    out = tmp_path / "out"
    for fraction in sorted(RNG.uniform(0.2, 0.95, size=2)):
        _kill_when(_cli("run", str(path), "--out", str(out)), lambda: True, delay_s=fraction * seconds)
        steps = out / "steps.json"
        for name, step in (json.loads(steps.read_text()) if steps.is_file() else {}).items():
            for output in step.get("outputs", []):
                assert (out / output).exists(), (name, output)
    _run(_cli("run", str(path), "--out", str(out)))
    tables = sorted(str(p.relative_to(ref)) for p in ref.rglob("*.csv"))
    assert "rsa/rsa.csv" in tables
    for name in tables:
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    for net in ("mfcc", "cqt"):
        assert _tree_hashes(out / "features" / net) == _tree_hashes(ref / "features" / net), net
    pd.testing.assert_frame_equal(pd.read_parquet(out / "stimuli" / "metadata.parquet"),
                                  pd.read_parquet(ref / "stimuli" / "metadata.parquet"))
    assert (out / "report.html").is_file()
    assert json.loads((out / "steps.json").read_text()).keys() == json.loads((ref / "steps.json").read_text()).keys()
