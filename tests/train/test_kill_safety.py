"""What a kill at any moment leaves behind: ``last.ckpt`` is written whole (temporary file + rename)
and only once its step's rows, validation and callbacks' outputs are on disk; a resumed run cuts
``logs/metrics.csv`` back to the rows the checkpoint counted, so every row ends up there exactly once.
(The subprocess SIGKILL tests are in tests/test_kills.py.)"""

from __future__ import annotations

import os
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

from musiclens.errors import CheckpointError
from musiclens.fsutil import remove_dead_temporaries
from musiclens.train.checkpointing import MetricsCSV, _AtomicCheckpointIO, _resume_metrics
from musiclens.train.engine import train
from tests.train._engine_helpers import KillAt, Killed, corpora, one_thread, toy_config  # noqa: F401

N = 6   # toy_config: 6 steps, validation and checkpoint every 3


class KillInValidation(pl.Callback):
    """Raise as validation starts at step ``k``: after checkpoint ``k`` was taken, before its validation rows."""

    def __init__(self, k: int) -> None:
        self.k = k

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step >= self.k:
            raise Killed(f"killed in the validation of step {trainer.global_step}")


@pytest.fixture(scope="module")
def straight(corpora, tmp_path_factory):  # noqa: F811
    return train(toy_config(corpora), out=tmp_path_factory.mktemp("straight") / "run")


def _csv(run) -> bytes:  # noqa: ANN001
    return (run / "logs" / "metrics.csv").read_bytes()


def _ckpt(run) -> dict[str, Any]:  # noqa: ANN001
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def test_a_checkpoint_is_written_only_after_its_steps_rows(corpora, straight, tmp_path) -> None:  # noqa: F811
    cfg = toy_config(corpora, optim={"max_steps": 9})
    ref = train(cfg, out=tmp_path / "ref")
    # killed in step 6's validation: checkpoint 6 was taken but must not be on disk (its validation
    # rows are not), so last.ckpt is step 3's, counting the rows up to and including step 3's validation
    with pytest.raises(Killed):
        train(cfg, out=tmp_path / "run", callbacks=[KillInValidation(6)])
    ckpt = _ckpt(tmp_path / "run")
    assert ckpt["global_step"] == 3
    lines = _csv(tmp_path / "run").decode().splitlines()
    assert ckpt["musiclens"]["metrics_rows"] == 4   # train rows of steps 1-3, validation at 3
    assert len(lines) - 1 > 4                      # and the killed run went on logging
    res = train(cfg, out=tmp_path / "run")
    assert res.resumed_from == 3 and res.finished
    assert _csv(tmp_path / "run") == _csv(ref.run_dir)


def test_killed_after_a_complete_step_resumes_with_every_row_once(corpora, straight, tmp_path) -> None:  # noqa: F811
    with pytest.raises(Killed):
        train(toy_config(corpora), out=tmp_path / "run", callbacks=[KillAt(4)])
    ckpt = _ckpt(tmp_path / "run")
    # checkpoint 3 went to disk when step 4 started: train rows 1-3 and the validation at 3
    assert ckpt["global_step"] == 3 and ckpt["musiclens"]["metrics_rows"] == 4
    assert len(_csv(tmp_path / "run").decode().splitlines()) - 1 == 5   # step 4's row too, logged again
    res = train(toy_config(corpora), out=tmp_path / "run")
    assert res.resumed_from == 3 and res.finished
    assert _csv(tmp_path / "run") == _csv(straight.run_dir)
    assert _ckpt(tmp_path / "run")["musiclens"]["metrics_rows"] == len(_csv(straight.run_dir).splitlines()) - 1


def test_a_run_killed_before_its_first_checkpoint_starts_its_log_afresh(corpora, straight, tmp_path) -> None:  # noqa: F811
    with pytest.raises(Killed):
        train(toy_config(corpora), out=tmp_path / "run", callbacks=[KillInValidation(3)])
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
    assert (tmp_path / "run" / "logs" / "metrics.csv").is_file()
    res = train(toy_config(corpora), out=tmp_path / "run")
    assert res.resumed_from is None and res.finished
    assert _csv(tmp_path / "run") == _csv(straight.run_dir)


def test_a_damaged_checkpoint_is_a_clear_error(corpora, tmp_path) -> None:  # noqa: F811
    cfg = toy_config(corpora)
    with pytest.raises(Killed):
        train(cfg, out=tmp_path / "run", callbacks=[KillAt(4)])
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])   # what a copy into place killed half-way leaves
    with pytest.raises(CheckpointError, match="damaged"):
        train(cfg, out=tmp_path / "run")


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch) -> None:
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = _AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1, "w": torch.ones(3)}, path)
    before = path.read_bytes()

    def torn(obj, fh, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        fh.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt   # killed mid-write

    monkeypatch.setattr(torch, "save", torn)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(3)}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]
    # a temporary left by a process that no longer runs is removed; a live process's is kept
    dead = path.parent / ".last.ckpt.999999999.abcd.tmp"
    live = path.parent / f".last.ckpt.{os.getpid()}.efgh.tmp"
    dead.write_bytes(b"x")
    live.write_bytes(b"x")
    remove_dead_temporaries(path.parent)
    assert not dead.exists() and live.exists()


def test_metrics_csv_widens_its_header_and_resumes_at_a_row_count(tmp_path) -> None:
    log = MetricsCSV(tmp_path)
    log.log_metrics({"train/loss": torch.tensor(0.5), "epoch": 0}, step=0)
    log.log_metrics({"train/loss": 0.25, "epoch": 0}, step=1)
    log.log_metrics({"val/loss": 0.75, "epoch": 0}, step=1)   # a new key: the file is rewritten whole
    log.log_metrics({"train/loss": 0.125, "epoch": 0}, step=2)
    path = tmp_path / "logs" / "metrics.csv"
    assert path.read_text() == ("epoch,step,train/loss,val/loss\n0,0,0.5,\n0,1,0.25,\n0,1,,0.75\n0,2,0.125,\n")
    assert log.rows == 4
    with open(path, "a") as fh:
        fh.write("0,3,0.06")   # a row torn by a kill
    _resume_metrics(path, rows=3, before_step=99)
    assert path.read_text() == "epoch,step,train/loss,val/loss\n0,0,0.5,\n0,1,0.25,\n0,1,,0.75\n"
    again = MetricsCSV(tmp_path)   # continues the file
    assert again.rows == 3
    again.log_metrics({"train/loss": 0.5, "epoch": 0}, step=2)
    assert path.read_text().endswith("0,1,,0.75\n0,2,0.5,\n")
    # a checkpoint that does not count rows (an older musiclens): the rows logged before its step
    _resume_metrics(path, rows=None, before_step=1)
    assert path.read_text() == "epoch,step,train/loss,val/loss\n0,0,0.5,\n"
