"""Run folders of the analyses (attention, SSM, probes): tables, arrays, figures and a manifest.

Every ``*_to_folder`` function does the same five steps: load its inputs, run the analysis, write
the result's tables (``result.save(out)``), optionally its figures, and a ``manifest.json``
(command, config, inputs with hashes, output file names, timings, environment).  This module
holds those shared steps:

- :func:`write_table`: a table as ``<stem>.csv`` (``%.10g`` floats) and ``<stem>.parquet``;
- :func:`npz_bytes`: named arrays as the bytes of a compressed ``.npz``;
- :func:`corpus_hash`: the content hash a built corpus records in ``corpus.json``;
- :func:`write_run_folder`: tables + figures + ``manifest.json`` of a finished result;
- :func:`clips_to_folder`: corpus clips -> analysis -> :func:`write_run_folder` (the attention
  and SSM commands).

All writes are atomic (:mod:`musiclens.fsutil`).
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from musiclens.fsutil import atomic_dir, atomic_write_bytes, atomic_write_json, atomic_write_text, check_out
from musiclens.provenance import Timer, environment

__all__ = ["write_table", "npz_bytes", "corpus_hash", "write_run_folder", "clips_to_folder"]

logger = logging.getLogger(__name__)


class SavableResult(Protocol):
    """What :func:`write_run_folder` needs of a result: ``config``, ``timings`` and ``save``."""

    config: dict[str, Any]
    timings: dict[str, float]

    def save(self, folder: str | os.PathLike[str]) -> list[Path]: ...


def write_table(folder: str | os.PathLike[str], stem: str, df: pd.DataFrame, *, parquet: bool = True) -> list[Path]:
    """Write ``df`` as ``folder/<stem>.csv`` and (``parquet``) ``folder/<stem>.parquet``.

    Floats are written with ``%.10g``; the index is dropped.  Without pyarrow the parquet file is
    skipped with a warning.  Returns the written paths (csv first).
    """
    folder = Path(folder)
    paths = [atomic_write_text(folder / f"{stem}.csv", df.to_csv(index=False, float_format="%.10g"))]
    if parquet:
        buf = io.BytesIO()
        try:
            df.to_parquet(buf, index=False)
            paths.append(atomic_write_bytes(folder / f"{stem}.parquet", buf.getvalue()))
        except ImportError:
            logger.warning("pyarrow is not installed: %s.parquet not written (pip install pyarrow)", stem)
    return paths


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The bytes of ``np.savez_compressed`` of ``arrays`` (keys may contain ``/``)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def corpus_hash(corpus: str | os.PathLike[str]) -> str | None:
    """``content_hash`` of ``corpus/corpus.json`` (:func:`~musiclens.corpora.build_corpus`), None if absent."""
    try:
        return str(json.loads((Path(corpus) / "corpus.json").read_text())["content_hash"])
    except (OSError, KeyError, ValueError):
        return None


def write_run_folder(
    result: SavableResult,
    out: str | os.PathLike[str],
    *,
    command: str,
    timer: Timer,
    inputs: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    figures_module: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write a finished analysis ``result`` to ``out``: tables, figures, ``manifest.json``.

    The folder is built as a temporary sibling and renamed into place when complete
    (:func:`~musiclens.fsutil.atomic_dir`), so a killed run leaves no finished-looking table;
    an earlier output of the same command in ``out`` is replaced whole, and any other
    non-empty folder is refused (:func:`~musiclens.fsutil.check_out`).

    Parameters
    ----------
    result
        Has ``save(folder) -> list[Path]`` (tables and arrays), ``config`` and ``timings``.
    out
        Run folder.
    command
        ``manifest["command"]``, and the kind of output (the folder's marker).
    timer
        The caller's timer (e.g. its ``load`` stage); ``write_tables`` and ``figures`` are added,
        and ``manifest["timings_s"]`` is ``{**result.timings, **timer.seconds}``.
    inputs
        ``manifest["inputs"]`` (paths and hashes).
    config
        ``manifest["config"]`` (default ``result.config``).
    figures_module
        Module whose ``save_figures(result, out) -> list[Path]`` writes the PNGs; imported only
        here, so matplotlib loads only when figures are asked for.  None: no figures.
    extra
        More top-level manifest entries (e.g. ``seed``).

    Returns
    -------
    list of Path
        Every file written except the manifest.
    """
    out = Path(out)
    with atomic_dir(out, overwrite=True, kind=command) as tmp:
        with timer("write_tables"):
            written = list(result.save(tmp))
        if figures_module is not None:
            save_figures: Callable[[Any, Path], list[Path]] = importlib.import_module(figures_module).save_figures
            with timer("figures"):
                written += save_figures(result, tmp)
        manifest = {
            "command": command,
            "config": dict(result.config if config is None else config),
            **dict(extra or {}),
            "inputs": dict(inputs),
            "outputs": sorted(str(p.relative_to(tmp)) for p in written),
            "timings_s": {**result.timings, **timer.seconds},
            "environment": environment(),
        }
        atomic_write_json(tmp / "manifest.json", manifest)
    return [out / p.relative_to(tmp) for p in written]


def clips_to_folder(
    analysis: Callable[..., SavableResult],
    *,
    command: str,
    figures_module: str,
    model: Any,
    corpus: str | os.PathLike[str],
    out: str | os.PathLike[str],
    n_clips: int | None,
    crop_s: float | None,
    start_s: float,
    figures: bool,
    **kwargs: Any,
) -> Any:
    """Run ``analysis(clips=..., model=model, **kwargs)`` on the first ``n_clips`` of a corpus and
    write the run folder ``out`` (:func:`write_run_folder`).

    Clips come from :func:`~musiclens.attention.clips.corpus_clips` (``n_clips``, ``crop_s``,
    ``start_s``); the manifest's config is the result's plus those three, its inputs the model
    (its string, or its type name), the corpus folder and :func:`corpus_hash`.  Returns the result.
    """
    from musiclens.attention.clips import corpus_clips

    timer = Timer()
    check_out(out, command)   # before any work: never into a folder musiclens did not make
    with timer("load"):
        clips = corpus_clips(corpus, n_clips=n_clips, crop_s=crop_s, start_s=start_s)
    result = analysis(clips=clips, model=model, **kwargs)
    write_run_folder(
        result, out, command=command, timer=timer, figures_module=figures_module if figures else None,
        config={**result.config, "n_clips": n_clips, "crop_s": crop_s, "start_s": start_s},
        inputs={"model": str(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__,
                "corpus": str(corpus), "corpus_hash": corpus_hash(corpus)},
    )
    return result
