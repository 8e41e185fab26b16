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
    args = ["extract", "-m", "mfcc", "-s", str(notes), "--chunk-size", "8", "--batch-size", "4"]
    ref = tmp_path / "ref"
    _run(_cli(*args, "--out", str(ref)))
    out = tmp_path / "out"
    partial = out.with_name(out.name + ".partial")
    killed = _kill_when(_cli(*args, "--out", str(out)), lambda: (partial / "chunks").is_dir(),
                        delay_s=float(RNG.uniform(0.0, 1.5)))
    if killed:   # killed while working, or after the rename: the store is whole or absent
        assert not out.exists() or (out / "manifest.json").is_file()
    _run(_cli(*args, "--out", str(out)))
    assert _tree_hashes(out) == _tree_hashes(ref)
    assert not partial.exists()


# ------------------------------------------------------------------ RSA
def test_killed_rsa_leaves_no_table_and_reruns_identically(notes, tmp_path) -> None:
    store = tmp_path / "feats"
    _run(_cli("extract", "-m", "cqt", "-s", str(notes), "--out", str(store)))
    args = ["rsa", "-a", str(store), "-s", str(notes), "--permutations", "3000", "--bootstraps", "300",
            "--bootstrap-over", "instruments", "--seed", "1"]
    ref = tmp_path / "ref"
    seconds = _run(_cli(*args, "--out", str(ref))).seconds
    out = tmp_path / "out"
    for fraction in sorted(RNG.uniform(0.3, 1.0, size=2)):     # while computing, and late: while writing
        killed = _kill_when(_cli(*args, "--out", str(out)), lambda: True, delay_s=fraction * seconds)
        if killed:   # the table only ever appears inside a finished folder
            assert not out.exists() or (out / "manifest.json").is_file()
    _run(_cli(*args, "--out", str(out)))
    assert (out / "rsa.csv").read_bytes() == (ref / "rsa.csv").read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


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
    config = _train_config(tmp_path)
    ref = tmp_path / "ref"
    _run(_cli("train", "ntxent", "--config", str(config), "--out", str(ref)))
    out = tmp_path / "out"
    ckpt = out / "checkpoints" / "last.ckpt"
    ckpt_dir = out / "checkpoints"
    # first kill: as soon as a checkpoint file appears (mid-write or just after); second: at random
    for ready, delay in ((lambda: ckpt_dir.is_dir() and any(ckpt_dir.iterdir()), 0.0),
                         (lambda: ckpt.exists(), float(RNG.uniform(0.0, 2.0)))):
        _kill_when(_cli("train", "ntxent", "--config", str(config), "--out", str(out)), ready, delay_s=delay)
    proc = _run(_cli("train", "ntxent", "--config", str(config), "--out", str(out)))
    assert "finished at step 40" in proc.stdout
    got, want = _metrics_rows(out), _metrics_rows(ref)
    assert sorted(got.columns) == sorted(want.columns)
    key = ["step", *sorted(c for c in want.columns if c != "step")]
    got, want = got[key], want[key]
    # every logged row exactly once: the same (step, metric) cells as the uninterrupted run
    assert not got.duplicated().any()
    assert sorted(got["step"].astype(int)) == sorted(want["step"].astype(int))
    g = got.apply(pd.to_numeric, errors="coerce").sort_values(key, na_position="first").reset_index(drop=True)
    w = want.apply(pd.to_numeric, errors="coerce").sort_values(key, na_position="first").reset_index(drop=True)
    assert (g.isna() == w.isna()).all().all()
    np.testing.assert_allclose(g.fillna(0).to_numpy(), w.fillna(0).to_numpy(), rtol=1e-5, atol=1e-6)
    # and the trained weights equal the uninterrupted run's
    from safetensors.numpy import load_file

    a, b = (load_file(next((d / "backbone").glob("*.safetensors"))) for d in (out, ref))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ a study
def test_killed_study_resumes_to_the_same_tables(tmp_path) -> None:
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
    _run(_cli("run", str(path), "--out", str(out)))
    for name in ("rsa/rsa.csv", "summary.csv"):
        if (ref / name).exists():
            assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    assert (out / "report.html").is_file()
