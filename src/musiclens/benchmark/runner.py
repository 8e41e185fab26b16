"""`run_benchmark`: MARBLE's constrained track for one or more models on the datasets a user owns.

Run folder (``out``, kind ``benchmark``)::

    config.json                the settings of the run
    datasets/<dataset>.csv     the items used (ids, paths, labels, splits)
    features/<model>/<dataset>/  one FeatureStore per model and dataset (shared by its tasks)
    cells/<model>/<task>/seed<k>/<layer>/lr<lr>.{npz,json}   one trained probe each (resumable)
    cells.csv                  every cell: validation score, epochs, seconds, reused or fitted
    layers.csv                 layer profiles: best learning rate per layer and its test scores
    scores.csv                 per model, task and metric: value, std over seeds, bootstrap CI, choices
    table.csv                  one row per model, one column per <task>/<metric> (x100), MARBLE average
    report.md, report.html     the table beside MARBLE's published MERT-v1-95M / -330M numbers
    manifest.json              versions, seeds, dataset counts and skipped files, content hashes, timings

Re-running the same command on the same folder reuses finished feature stores and cells: a killed
run resumes, and a run with more seeds, models or tasks adds only what is missing.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from musiclens.benchmark.dataset import DATASETS, BenchmarkDataset, dataset_hash
from musiclens.benchmark.protocol import ProbeSettings, run_cells, task_arrays
from musiclens.benchmark.report import render_html, render_markdown
from musiclens.benchmark.results import layer_profile, select_and_score, wide_table
from musiclens.errors import ConfigError, DatasetError
from musiclens.fsutil import MARKER_FILE, atomic_write_json, atomic_write_text, check_out, mark_output
from musiclens.provenance import Timer, environment, hash_path

__all__ = ["TASK_DATASETS", "ModelSpec", "parse_model", "run_benchmark", "BenchmarkResult"]

logger = logging.getLogger(__name__)

#: Task name -> dataset reader (the folder ``<data-root>/<dataset>``).
TASK_DATASETS: dict[str, str] = {
    "gtzan": "gtzan", "nsynth-pitch": "nsynth", "nsynth-instrument": "nsynth", "giantsteps-key": "giantsteps",
    "mtt": "mtt", "emomusic": "emomusic", "vocalset-singer": "vocalset", "vocalset-technique": "vocalset",
}


@dataclass(frozen=True)
class ModelSpec:
    """A backbone: its label in the table, the extractor spec, builder options."""

    label: str
    spec: str
    options: Mapping[str, Any] = field(default_factory=dict)
    randomize: bool = False


def parse_model(text: str | ModelSpec, *, options: Mapping[str, Any] | None = None,
                randomize: bool = False) -> ModelSpec:
    """``"mfcc"``, ``"/models/MERT-v1-95M"`` or ``"label=spec"`` -> :class:`ModelSpec`.

    The label names the model in the table and its folders; by default the registered name, or
    the folder/file name of a path.
    """
    if isinstance(text, ModelSpec):
        return text
    text = str(text).strip()
    label, spec = None, text
    m = re.fullmatch(r"([A-Za-z0-9_.+-]+)=(.+)", text)
    if m and not Path(text).exists():
        label, spec = m.group(1), m.group(2)
    if label is None:
        label = Path(spec.rstrip("/")).name or spec
        if randomize:
            label += "-random"
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", label):
        label = re.sub(r"[^A-Za-z0-9_.+-]", "_", label)
    return ModelSpec(label, spec, dict(options or {}), randomize)


@dataclass
class BenchmarkResult:
    """What :func:`run_benchmark` wrote (also on disk in ``out``)."""

    out: Path
    table: pd.DataFrame
    scores: pd.DataFrame
    cells: pd.DataFrame
    layers: pd.DataFrame
    timings: dict[str, float]


def _read_datasets(tasks: Sequence[str], *, data_root: Path | None, dataset_paths: Mapping[str, Any],
                   dataset_options: Mapping[str, Mapping[str, Any]], skip_bad: bool) -> dict[str, BenchmarkDataset]:
    out: dict[str, BenchmarkDataset] = {}
    for name in dict.fromkeys(TASK_DATASETS[t] for t in tasks):
        root = Path(dataset_paths[name]) if name in dataset_paths else (data_root / name if data_root else None)
        if root is None:
            raise ConfigError(f"no folder for dataset {name!r}: pass --data-root (holding {name}/) or its own path")
        out[name] = DATASETS.get(name)(root, skip_bad=skip_bad, **dict(dataset_options.get(name, {})))
    return out


def _resolve_tasks(tasks: Sequence[str] | None, data_root: Path | None, dataset_paths: Mapping[str, Any]) -> list[str]:
    if tasks:
        bad = [t for t in tasks if t not in TASK_DATASETS]
        if bad:
            raise ConfigError(f"unknown benchmark task(s) {bad}; choose from {', '.join(TASK_DATASETS)}")
        return list(dict.fromkeys(tasks))
    found = [t for t, d in TASK_DATASETS.items()
             if d in dataset_paths or (data_root is not None and (data_root / d).is_dir())]
    if not found:
        raise DatasetError(f"no benchmark dataset folder under {data_root}; expected one or more of "
                           f"{', '.join(sorted(set(TASK_DATASETS.values())))} (see `musiclens benchmark --help`)")
    return found


def run_benchmark(
    models: Sequence[str | ModelSpec],
    *,
    out: str | os.PathLike[str],
    data_root: str | os.PathLike[str] | None = None,
    tasks: Sequence[str] | None = None,
    dataset_paths: Mapping[str, str | os.PathLike[str]] | None = None,
    dataset_options: Mapping[str, Mapping[str, Any]] | None = None,
    seeds: Sequence[int] = (0,),
    layers: str | int | Sequence[str | int] | None = None,
    settings: ProbeSettings | None = None,
    skip_bad: bool = False,
    device: str = "cpu",
    batch_size: int = 8,
    chunk_size: int = 32,
    n_bootstraps: int = 200,
    trust_remote_code: bool = False,
    progress: bool = False,
) -> BenchmarkResult:
    """Extract features once per model and dataset, train every probe cell, select, score, report.

    Parameters
    ----------
    models
        Extractor specs (registered name, Hugging Face folder, musiclens checkpoint, baseline such
        as ``mfcc``), ``"label=spec"``, or :class:`ModelSpec`.
    out
        Run folder (created; an earlier benchmark run there is resumed).
    data_root
        Folder holding ``gtzan/``, ``nsynth/``, ``giantsteps/``, ``mtt/``, ``emomusic/``, ``vocalset/``
        in their official layouts (:mod:`musiclens.benchmark.readers`).
    tasks
        Task names (:data:`TASK_DATASETS`); default every task whose folder exists.
    dataset_paths
        ``{dataset: folder}`` overriding ``data_root/<dataset>``.
    dataset_options
        ``{dataset: {option: value}}`` for the readers (e.g. ``{"gtzan": {"split_dir": ...}}``).
    seeds
        Probe seeds; the spread over seeds is reported.
    layers
        Layer selection (names, indices, ranges); default all.
    settings
        Probe training (default MARBLE's constrained track: :class:`ProbeSettings`).
    skip_bad
        Leave out missing or unreadable audio files (recorded) instead of stopping.
    device, batch_size, chunk_size, trust_remote_code
        Extraction.
    n_bootstraps
        Bootstrap resamples of the test items for the intervals.
    """
    from musiclens.benchmark.features import extract_dataset
    from musiclens.extract.store import FeatureStore

    out = check_out(out, "benchmark")   # before any work: never into a folder musiclens did not make
    settings = settings or ProbeSettings()
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("give at least one probe seed")
    specs = [parse_model(m) for m in models]
    if not specs:
        raise ConfigError("give at least one model (--model)")
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"model labels must differ, got {labels}; name them with label=spec")
    timer = Timer()
    data_root = Path(data_root) if data_root is not None else None
    dataset_paths = dict(dataset_paths or {})
    task_names = _resolve_tasks(tasks, data_root, dataset_paths)
    with timer("read_datasets"):
        datasets = _read_datasets(task_names, data_root=data_root, dataset_paths=dataset_paths,
                                  dataset_options=dataset_options or {}, skip_bad=skip_bad)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / MARKER_FILE).is_file():
        mark_output(out, "benchmark")
    config = {"models": [{"label": s.label, "spec": s.spec, "options": dict(s.options), "randomize": s.randomize}
                         for s in specs], "tasks": task_names, "seeds": seeds, "layers": layers,
              "settings": settings.to_dict(), "skip_bad": skip_bad, "n_bootstraps": n_bootstraps,
              "data_root": None if data_root is None else str(data_root),
              "dataset_paths": {k: str(v) for k, v in dataset_paths.items()},
              "dataset_options": {k: {kk: str(vv) for kk, vv in v.items()} for k, v in (dataset_options or {}).items()},
              "extraction": {"device": device, "batch_size": batch_size, "chunk_size": chunk_size}}
    atomic_write_json(out / "config.json", config)
    ds_info: dict[str, Any] = {}
    for name, ds in datasets.items():
        atomic_write_text(out / "datasets" / f"{name}.csv", ds.items.to_csv(index=False, float_format="%.10g"))
        ds_info[name] = {"root": str(ds.root), "n_items": len(ds.items), "counts": ds.counts(), "skipped": ds.skipped,
                         "window_s": ds.window_s, "hashes": dataset_hash(ds), "info": ds.info}
    all_cells, all_scores, all_layers, model_info = [], [], [], {}
    for spec in specs:
        model_info[spec.label] = {"spec": spec.spec, "stores": {}}
        for name, ds in datasets.items():
            store_dir = out / "features" / spec.label / name
            with timer(f"extract:{spec.label}:{name}"):
                extract_dataset(spec.spec, ds, store_dir, layers=layers, batch_size=batch_size, chunk_size=chunk_size,
                                device=device, randomize=spec.randomize, trust_remote_code=trust_remote_code,
                                options=spec.options, progress=progress)
            store = FeatureStore(store_dir)
            model_info[spec.label]["stores"][name] = {
                "path": str(store_dir.relative_to(out)), "key": store.manifest["key"],
                "extractor": store.manifest.get("extractor"), "layers": store.layer_names,
                "timings": store.manifest.get("timings")}
            features = {n: store.layer(n) for n in store.layer_names}
            for tname in (t for t in task_names if TASK_DATASETS[t] == name):
                task = ds.tasks[tname]
                data = task_arrays(ds, task, store.stimulus_ids)
                with timer(f"probe:{spec.label}:{tname}"):
                    cells = run_cells(data, features, out / "cells" / spec.label, seeds=seeds, settings=settings,
                                      store_key=store.manifest["key"], model=spec.label, progress=progress)
                with timer(f"score:{spec.label}:{tname}"):
                    all_scores.append(select_and_score(cells, data, model=spec.label, n_bootstraps=n_bootstraps))
                    all_layers.append(layer_profile(cells, data, model=spec.label))
                all_cells.append(cells)
    cells_df = pd.concat(all_cells, ignore_index=True)
    scores = pd.concat(all_scores, ignore_index=True)
    layers_df = pd.concat(all_layers, ignore_index=True)
    reported = {t: datasets[TASK_DATASETS[t]].tasks[t].reported for t in task_names}
    table = wide_table(scores, average_metrics=reported)
    written = []
    for fname, df in (("cells.csv", cells_df.drop(columns=["path"])), ("scores.csv", scores),
                      ("layers.csv", layers_df), ("table.csv", table)):
        written.append(atomic_write_text(out / fname, df.to_csv(index=False, float_format="%.10g")))
    written.append(atomic_write_text(out / "report.md", render_markdown(scores, table, config=config,
                                                                       average_metrics=reported)))
    written.append(atomic_write_text(out / "report.html", render_html(scores, table, config=config,
                                                                     average_metrics=reported)))
    manifest = {
        "command": "benchmark", "config": config, "seeds": seeds,
        "protocol": "MARBLE (Yuan et al. 2023) constrained track: frozen backbone, mean over time per window, "
                    "MLP 512 / dropout 0.2 / Adam, lr grid x (each layer, weighted sum), best validation config",
        "tasks": {t: datasets[TASK_DATASETS[t]].tasks[t].to_dict() for t in task_names},
        "datasets": ds_info, "models": model_info,
        "cells": {"total": int(len(cells_df)), "fitted_this_run": int((~cells_df["reused"].astype(bool)).sum()),
                  "reused": int(cells_df["reused"].astype(bool).sum()),
                  "diverged": int(cells_df["diverged"].fillna(False).astype(bool).sum())},
        "outputs": sorted(p.name for p in written), "outputs_sha256": {p.name: hash_path(p) for p in written},
        "timings_s": timer.seconds, "environment": environment(),
    }
    atomic_write_json(out / "manifest.json", manifest)
    return BenchmarkResult(out, table, scores, cells_df, layers_df, timer.seconds)
