"""`BenchmarkDataset`: a dataset on disk as an item table plus its tasks; checks and the registry.

An item is one audio excerpt: a file, or a segment of one (``offset_s``/``duration_s``).  The
item table (:attr:`BenchmarkDataset.items`) has one row per item with the columns

``item_id``, ``path``, ``offset_s`` (0), ``duration_s`` (NaN = to the end), ``group`` (what must
stay on one side of a split: a track, a recording), ``split`` (``train``/``valid``/``test`` or
empty when the item is in no split), ``split:<task>`` (a task's own split, where it differs),
and the label columns the tasks name (:attr:`~musiclens.benchmark.tasks.BenchmarkTask.targets`).

Audio is never loaded here: the features are extracted lazily, chunk by chunk
(:mod:`musiclens.benchmark.features`).  Every reader checks that each annotated item's audio
exists and opens (its header reads); missing or unreadable files are listed file by file in a
:class:`~musiclens.errors.DatasetError`, or, with ``skip_bad=True``, left out and recorded in
:attr:`BenchmarkDataset.skipped` (and in the run's manifest): a dataset is never silently shrunk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musiclens.benchmark.tasks import BenchmarkTask
from musiclens.errors import DatasetError
from musiclens.provenance import hash_bytes, hash_files
from musiclens.registry import Registry

__all__ = ["BenchmarkDataset", "DATASETS", "check_audio", "finish_dataset", "task_items", "task_split_column",
           "dataset_hash"]

logger = logging.getLogger(__name__)

#: Readers by dataset name: ``DATASETS.get(name)(root, *, skip_bad=False, **options) -> BenchmarkDataset``.
DATASETS: Registry[Callable[..., "BenchmarkDataset"]] = Registry("benchmark dataset")

_SHOW = 25


@dataclass
class BenchmarkDataset:
    """A dataset read from its official layout.

    Attributes
    ----------
    name
        Reader name (``gtzan``, ``nsynth``...).
    root
        The folder it was read from.
    items
        The item table (see the module docstring).
    tasks
        The tasks it serves, by task name.
    window_s
        Extraction window for long audio (MARBLE §4.3), ``None`` = whole items.
    skipped
        ``[{"path", "reason"}]`` items left out with ``skip_bad``.
    annotation_files
        Files whose content defines labels and splits (hashed into the manifest).
    info
        Layout, split provenance and counts, for the manifest.
    """

    name: str
    root: Path
    items: pd.DataFrame
    tasks: dict[str, BenchmarkTask]
    window_s: float | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)
    annotation_files: list[Path] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        """Items per split for every task."""
        out = {}
        for name, task in self.tasks.items():
            sub = task_items(self, task)
            col = task_split_column(self, task)
            out[name] = {s: int((sub[col] == s).sum()) for s in ("train", "valid", "test")}
        return out


def task_split_column(ds: BenchmarkDataset, task: BenchmarkTask) -> str:
    """The split column of ``task``: ``split:<task>`` where the dataset has one, else ``split``."""
    col = f"split:{task.name}"
    return col if col in ds.items.columns else "split"


def task_items(ds: BenchmarkDataset, task: BenchmarkTask) -> pd.DataFrame:
    """The rows of the item table that ``task`` uses (in a split, with a label), in table order."""
    col = task_split_column(ds, task)
    keep = ds.items[col].isin(["train", "valid", "test"]).to_numpy().copy()
    for t in task.targets:
        keep &= ds.items[t].notna().to_numpy()
    return ds.items[keep]


def _probe_file(path: Path) -> tuple[str | None, float | None]:
    """``(problem or None, duration in s or None)`` of one audio file (header only)."""
    if not path.is_file():
        return "missing", None
    if path.stat().st_size == 0:
        return "empty file (0 bytes)", None
    try:
        import soundfile as sf

        info = sf.info(str(path))
    except Exception as err:   # noqa: BLE001 - any decoder failure is a bad file, reported by name
        return f"unreadable ({str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__})", None
    if info.frames <= 0 or info.samplerate <= 0:
        return "no audio frames", None
    return None, info.frames / float(info.samplerate)


def check_audio(paths: Sequence[Path], *, dataset: str, layout: str, skip_bad: bool,
                min_duration_s: float = 0.0) -> tuple[np.ndarray, list[dict[str, str]], np.ndarray]:
    """Check that every file exists and its header reads.

    Returns
    -------
    ok, skipped, durations
        ``[shape=(n,)]`` bool, the ``{"path", "reason"}`` of the bad files, ``[shape=(n,)]`` seconds
        (NaN for bad files).

    Raises
    ------
    DatasetError
        Some files are bad and ``skip_bad`` is False; every bad file is named (the first
        :data:`_SHOW` in the message, all in the log).
    """
    ok = np.ones(len(paths), dtype=bool)
    durations = np.full(len(paths), np.nan)
    bad: list[dict[str, str]] = []
    cache: dict[Path, tuple[str | None, float | None]] = {}
    for i, p in enumerate(paths):
        p = Path(p)
        if p not in cache:
            cache[p] = _probe_file(p)
        problem, dur = cache[p]
        if problem is None and dur is not None and dur < min_duration_s:
            problem = f"shorter than {min_duration_s:g} s ({dur:.2f} s)"
        if problem is not None:
            ok[i] = False
            if not any(b["path"] == str(p) for b in bad[-1:]):
                bad.append({"path": str(p), "reason": problem})
        else:
            durations[i] = float(dur or 0.0)
    if bad:
        for b in bad:
            logger.warning("%s: %s: %s", dataset, b["path"], b["reason"])
        if not skip_bad:
            shown = "\n  ".join(f"{b['path']}: {b['reason']}" for b in bad[:_SHOW])
            more = f"\n  ... and {len(bad) - _SHOW} more (all listed in the log)" if len(bad) > _SHOW else ""
            raise DatasetError(
                f"{dataset}: {len(bad)} audio file(s) of {len(paths)} are missing or unreadable:\n  {shown}{more}\n"
                f"Expected layout: {layout}\nRestore them, or pass skip_bad=True (--skip-bad) to leave them out; "
                "the skipped files are then recorded in the run's manifest."
            )
    return ok, bad, durations


def finish_dataset(ds: BenchmarkDataset) -> BenchmarkDataset:
    """Fill defaults of the item table, check ids, and drop tasks' empty splits early with a clear error."""
    items = ds.items.reset_index(drop=True)
    for col, default in (("offset_s", 0.0), ("duration_s", np.nan)):
        if col not in items.columns:
            items[col] = default
    if "group" not in items.columns:
        items["group"] = items["item_id"]
    if items["item_id"].duplicated().any():
        dup = items.loc[items["item_id"].duplicated(), "item_id"].tolist()[:5]
        raise DatasetError(f"{ds.name}: duplicate item ids {dup}; the dataset folder holds the same file twice")
    ds.items = items
    for task in ds.tasks.values():
        sub = task_items(ds, task)
        col = task_split_column(ds, task)
        empty = [s for s in ("train", "valid", "test") if not (sub[col] == s).any()]
        if empty:
            raise DatasetError(
                f"{ds.name}: task {task.name!r} has no {', '.join(empty)} item(s) under {ds.root} "
                f"({len(sub)} labelled items in all); the dataset folder is incomplete or not in the expected layout"
            )
    return ds


def dataset_hash(ds: BenchmarkDataset, *, max_annotation_bytes: int = 1 << 28) -> dict[str, str]:
    """Content hashes: of the item table (ids, paths, sizes, labels, splits) and of the annotation files."""
    table = ds.items.copy()
    table["size"] = [os.path.getsize(p) if os.path.isfile(p) else -1 for p in table["path"]]
    table["path"] = [os.path.relpath(p, ds.root) for p in table["path"]]
    out = {"items_sha256": hash_bytes(table.to_csv(index=False, float_format="%.10g").encode())}
    files = [Path(f) for f in ds.annotation_files if Path(f).is_file()]
    if files:
        out["annotations_sha256"] = hash_files(files, max_bytes=max_annotation_bytes)
    return out
