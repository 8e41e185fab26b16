"""Kill-safe training state: the checkpoint written only when its step is on disk, atomically,
and the metrics log a resumed run cuts back to exactly the checkpoint's rows.

Lightning's ``ModelCheckpoint`` saves in ``on_train_batch_end``, before the step's metrics row and
validation reach disk, and its CSV logger deletes ``metrics.csv`` when it is made; a run killed
between the two loses rows for good.  Here:

- :class:`_LastCheckpoint` captures the trainer state when Lightning would, but writes
  ``last.ckpt`` only at the next batch start (:class:`_WritePendingCheckpoint`) or at the end,
  recording how many ``metrics.csv`` rows exist then;
- :class:`_AtomicCheckpointIO` writes it through :func:`musiclens.fsutil.atomic_write_with`;
- :class:`MetricsCSV` appends and flushes each row (Lightning's column layout) and rewrites the
  file atomically when a new column appears; :func:`_resume_metrics` cuts it back on resume;
- :func:`_checkpoint_info` reads a checkpoint's step and row count safely (``weights_only``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only

from musiclens.errors import CheckpointError
from musiclens.fsutil import atomic_write_text, atomic_write_with

logger = logging.getLogger(__name__)


def _launched_rank() -> int:
    """Global rank of this process: its process group's, else the launcher's (0 outside distributed runs)."""
    from musiclens.train.distributed import global_rank

    return global_rank()



def _read_metrics(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a ``metrics.csv``, without a last line torn by a kill."""
    import csv
    import io

    text = path.read_text() if path.is_file() else ""
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def _metrics_text(keys: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(keys), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _resume_metrics(path: Path, *, rows: int | None, before_step: int) -> None:
    """Cut ``metrics.csv`` back to what a run resumed from a checkpoint does not log again: its
    first ``rows`` rows (the count the checkpoint recorded when it was written), or, for a
    checkpoint without that count, the rows logged at steps ``< before_step``."""
    if not path.is_file():
        return
    header, old = _read_metrics(path)
    if rows is not None:
        kept = old[:rows]
    else:
        kept = []
        for row in old:
            try:
                if int(float(row.get("step") or "nan")) < before_step:
                    kept.append(row)
            except ValueError:
                continue
    text = _metrics_text(header, kept)
    if text != path.read_text():
        atomic_write_text(path, text)


class MetricsCSV(Logger):
    """The CSV logger of a run: ``RUN_DIR/logs/metrics.csv``, in Lightning's CSV layout (a ``step``
    column and one column per logged key, sorted; one row per ``log_metrics`` call).

    Unlike Lightning's ``CSVLogger`` it keeps an existing file (a resumed run continues it), writes
    each row to disk as it is logged (appended and flushed), and widens the header for a new key by
    rewriting the file through a temporary file and a rename, never in place, so a killed run leaves
    every row it logged and no half-written file.  :attr:`rows` counts the rows in the file; the
    checkpoint records it (:class:`_LastCheckpoint`).
    """

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__()
        self._run_dir = Path(run_dir)
        self.path = self._run_dir / "logs" / "metrics.csv"
        self._keys: list[str] = []
        #: rows in ``metrics.csv`` (on the process that writes it, rank 0)
        self.rows = 0
        if _launched_rank() == 0 and self.path.is_file():
            self._keys, rows = _read_metrics(self.path)
            self.rows = len(rows)

    @property
    def name(self) -> str:
        return "logs"

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self._run_dir)

    @property
    def log_dir(self) -> str:
        return str(self.path.parent)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Nothing: the run's ``config.yaml`` holds its settings."""

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        import csv

        row = {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in metrics.items()}
        row["step"] = self.rows if step is None else int(step)
        if not self.path.is_file() or any(k not in self._keys for k in row):
            _, old = _read_metrics(self.path)
            self._keys = sorted({*self._keys, *row})
            atomic_write_text(self.path, _metrics_text(self._keys, [*old[: self.rows], row]))
        else:
            with open(self.path, "a", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self._keys, lineterminator="\n").writerow(row)
        self.rows += 1


class _LastCheckpoint(Checkpoint):
    """``checkpoints/last.ckpt`` every ``every`` optimizer steps, on disk only once its step is complete.

    Lightning's ``ModelCheckpoint`` saves in ``on_train_batch_end``, before the step's row reaches
    the logger and before the step's validation; a run resumed from that checkpoint does neither
    again, so a kill between the save and them lost those rows for good.  Here the trainer state is
    taken at that same point (the loop state Lightning knows how to resume from; Lightning runs
    checkpoint callbacks after all others) and written when the next batch starts (:attr:`writer`,
    the first callback) -- by then the step's rows, validation and other callbacks' outputs are on
    disk.  The checkpoint records how many ``metrics.csv`` rows there are then, so a resumed run keeps
    exactly those and logs every later one again.  The state holds the live tensors, which nothing
    changes before the next optimizer step; they are serialised when written (by
    :class:`_AtomicCheckpointIO`: a temporary file and a rename).  A state still pending when
    training fails is dropped: ``last.ckpt`` stays the previous, complete step.
    """

    def __init__(self, path: Path, every: int, metrics: MetricsCSV | None) -> None:
        self.path, self.every, self.metrics = Path(path), int(every), metrics
        self._pending: dict[str, Any] | None = None
        self._taken = -1
        self.writer = _WritePendingCheckpoint(self)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = int(trainer.global_step)
        if (not step or step % self.every or step == self._taken
                or step >= int(trainer.max_steps)):   # the final state is saved after fit (train)
            return
        self._taken = step
        self._pending = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)

    def write_pending(self, trainer: pl.Trainer) -> None:
        if self._pending is not None:
            checkpoint, self._pending = self._pending, None
            self._write(trainer, checkpoint)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.write_pending(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._pending = None

    def save(self, trainer: pl.Trainer) -> None:
        """Write the trainer's state now (after ``fit``)."""
        self._pending = None
        self._write(trainer, trainer._checkpoint_connector.dump_checkpoint(weights_only=False))

    def _write(self, trainer: pl.Trainer, checkpoint: dict[str, Any]) -> None:
        for lg in trainer.loggers:
            lg.save()
        if self.metrics is not None:
            checkpoint["musiclens"] = {"metrics_rows": int(self.metrics.rows)}
        trainer.strategy.save_checkpoint(checkpoint, str(self.path))
        trainer.strategy.barrier("musiclens.last_checkpoint")


class _WritePendingCheckpoint(pl.Callback):
    """Writes :class:`_LastCheckpoint`'s pending state as a batch starts, before any other callback."""

    def __init__(self, owner: _LastCheckpoint) -> None:
        self.owner = owner

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self.owner.write_pending(trainer)


class _AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to ``.<name>.<pid>.<random>.tmp`` next to the target, synced and renamed
    over it: a kill at any moment leaves the previous checkpoint or the new one, whole.  (Lightning's
    own writer goes through a temporary file in the system's temp folder and ``shutil.move``, which
    copies into place when that folder is on another file system, and leaves the temporary file
    behind when killed.)"""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise CheckpointError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}")
        atomic_write_with(Path(path), lambda fh: torch.save(checkpoint, fh))


def _checkpoint_info(path: Path) -> tuple[int, int | None]:
    """``(global step, metrics.csv rows when it was written)`` of a checkpoint (rows ``None`` when it
    does not say: not written by :class:`_LastCheckpoint`)."""
    import pickle

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} cannot be loaded safely with torch.load(weights_only=True) ({type(err).__name__}: {err}); "
            "musiclens never unpickles checkpoints; start over with --no-resume (or a new --out)"
        ) from err
    except Exception as err:   # truncated or otherwise damaged: musiclens writes checkpoints atomically
        raise CheckpointError(
            f"{path} is damaged and cannot be resumed ({type(err).__name__}: {err}); it was not written whole by "
            "this version of musiclens (which replaces last.ckpt atomically); start over with --no-resume "
            "(or a new --out)"
        ) from err
    if not isinstance(ckpt, dict) or "global_step" not in ckpt:
        raise CheckpointError(f"{path} is not a Lightning training checkpoint (no global_step); start over with "
                              "--no-resume (or a new --out)")
    rows = (ckpt.get("musiclens") or {}).get("metrics_rows")
    return int(ckpt["global_step"]), None if rows is None else int(rows)
