"""MARBLE's constrained protocol on stored features: one probe per (task, seed, layer, learning rate).

For every task, seed, layer (each single layer, and the softmax-weighted sum of all chosen layers)
and learning rate of the grid (MARBLE: ``{5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2}``), a *cell* trains
MARBLE's head (one hidden layer of 512 ReLU units, dropout 0.2, Adam, batch 64) with early stopping
on the task's selection metric on the validation split
(:func:`musiclens.probe.models.fit_probe`, or :func:`~musiclens.benchmark.regression.fit_regression`
for Emomusic), and stores its validation score and its validation and test predictions.

Cells are resumable: each one is written atomically as ``<cells>/<task>/seed<k>/<layer>/lr<lr>.npz``
and then ``.json`` (the JSON is the completion mark) with a key hashing everything it depends on
(the feature store's request, the task, its split and targets, the layer, learning rate, seed and
training settings); a cell whose JSON carries the same key is never recomputed, so a killed run
redoes at most the cells in flight.  Same features and seed: the same numbers (one torch thread,
seeded initialisation and minibatch order).

Selection (:func:`select`) follows MARBLE: the configuration (layer or weighted sum, learning
rate) with the best validation score is chosen per seed, and its test predictions are scored.
Departure, stated: MARBLE also lowers the learning rate on plateaus (ReduceLROnPlateau, patience 3);
here the learning rate is constant within a cell.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musiclens.benchmark.dataset import BenchmarkDataset, task_items, task_split_column
from musiclens.benchmark.tasks import BenchmarkTask, get_metric
from musiclens.errors import ConfigError, InsufficientDataError, TrainingError
from musiclens.fsutil import atomic_write_bytes, atomic_write_json
from musiclens.probe.metrics import Predictions, score
from musiclens.provenance import hash_array, hash_bytes

__all__ = ["MARBLE_LRS", "WEIGHTED_SUM", "ProbeSettings", "TaskArrays", "task_arrays", "run_cells", "cell_path",
           "load_cell", "predictions_for"]

logger = logging.getLogger(__name__)

#: MARBLE's learning-rate grid (PAPERS.md §4.2).
MARBLE_LRS: tuple[float, ...] = (5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2)
#: Layer name of the softmax-weighted layer-sum probe.
WEIGHTED_SUM = "weighted_sum"


@dataclass(frozen=True)
class ProbeSettings:
    """Training settings of every cell (MARBLE's constrained track by default)."""

    lrs: tuple[float, ...] = MARBLE_LRS
    weighted_sum: bool = True
    probe: str = "mlp"
    max_epochs: int = 100
    patience: int = 10
    batch_size: int = 64
    hidden: int = 512
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if not self.lrs or any(not (lr > 0) for lr in self.lrs):
            raise ConfigError(f"learning rates must be positive; got {list(self.lrs)}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lrs"] = [float(v) for v in self.lrs]
        return d


@dataclass
class TaskArrays:
    """A task's targets and splits aligned with the rows of a feature store."""

    task: BenchmarkTask
    rows: np.ndarray          # [n] store row of each example
    targets: np.ndarray       # [n] class index, [n, k] 0/1, or [n, k] float
    split: np.ndarray         # [n] train/valid/test
    item_ids: np.ndarray      # [n]
    digest: str

    def mask(self, name: str) -> np.ndarray:
        return self.split == name


def task_arrays(ds: BenchmarkDataset, task: BenchmarkTask, store_ids: Sequence[str], *,
                shuffle_train_labels: int | None = None) -> TaskArrays:
    """Targets and splits of ``task`` in the order of the store rows.

    ``shuffle_train_labels`` (a seed) permutes the training targets: the control under which a
    probe must score at chance.
    """
    sub = task_items(ds, task)
    index = {s: i for i, s in enumerate(store_ids)}
    missing = [s for s in sub["item_id"] if s not in index]
    if missing:
        raise ConfigError(f"task {task.name}: {len(missing)} items have no features (e.g. {missing[:3]})")
    rows = np.asarray([index[s] for s in sub["item_id"]], dtype=np.int64)
    split = sub[task_split_column(ds, task)].astype(str).to_numpy()
    if task.label_type == "multiclass":
        lookup = {c: i for i, c in enumerate(task.classes)}
        values = sub[task.targets[0]].tolist()
        bad = sorted({str(v) for v in values if v not in lookup})
        if bad:
            raise ConfigError(f"task {task.name}: labels {bad[:5]} are not among its classes")
        targets = np.asarray([lookup[v] for v in values], dtype=np.int64)
        if np.unique(targets[split == "train"]).size < 2:
            raise InsufficientDataError(f"task {task.name}: the training split holds a single class")
    elif task.label_type == "multilabel":
        targets = sub[list(task.targets)].to_numpy(dtype=np.int64)
    else:
        targets = sub[list(task.targets)].to_numpy(dtype=np.float64)
    if shuffle_train_labels is not None:
        tr = np.flatnonzero(split == "train")
        targets = targets.copy()
        targets[tr] = targets[tr[np.random.default_rng(shuffle_train_labels).permutation(tr.size)]]
    digest = hash_bytes(hash_array(targets).encode(), "\n".join(split).encode(),
                        "\n".join(sub["item_id"].astype(str)).encode())
    return TaskArrays(task, rows, targets, split, sub["item_id"].astype(str).to_numpy(), digest)


def predictions_for(data: TaskArrays, mask: np.ndarray, scores: np.ndarray) -> Predictions:
    """:class:`~musiclens.probe.metrics.Predictions` of the examples in ``mask`` (one group each)."""
    return Predictions(targets=data.targets[mask], scores=scores, classes=list(data.task.classes),
                       groups=data.item_ids[mask])


def cell_path(cells: Path, task: str, seed: int, layer: str, lr: float) -> Path:
    """``<cells>/<task>/seed<k>/<layer>/lr<lr>`` (add ``.json`` / ``.npz``)."""
    return Path(cells) / task / f"seed{seed}" / layer / f"lr{lr:.0e}"


def load_cell(path: Path, key: str | None = None) -> dict[str, Any] | None:
    """A finished cell's record (``None`` if absent, unfinished, or made with another key)."""
    jpath = path.with_suffix(".json")
    try:
        rec = json.loads(jpath.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if key is not None and rec.get("key") != key:
        return None
    if rec.get("has_predictions") and not path.with_suffix(".npz").is_file():
        return None
    return rec


def _fit_cell(data: TaskArrays, x: np.ndarray, *, lr: float, seed: int, settings: ProbeSettings) -> dict[str, Any]:
    """Train one probe; returns its record and its validation/test predictions."""
    task = data.task
    tr, va, te = data.mask("train"), data.mask("valid"), data.mask("test")
    sel = get_metric(task.select)

    def val_score(probs: np.ndarray) -> float:
        return score(sel, predictions_for(data, va, probs))

    common = dict(max_epochs=settings.max_epochs, patience=settings.patience, batch_size=settings.batch_size,
                  hidden=settings.hidden, dropout=settings.dropout, seed=seed)
    if task.label_type == "regression":
        from musiclens.benchmark.regression import fit_regression

        fitted = fit_regression(x[tr], data.targets[tr], x[va], data.targets[va], lr=lr, val_score=val_score,
                                probe=settings.probe, **common)
        epochs = fitted.epochs
    else:
        from musiclens.probe.models import fit_probe

        fitted = fit_probe(x[tr], data.targets[tr], x[va], data.targets[va], kind=task.label_type,
                           n_outputs=task.n_outputs, probe=settings.probe, lrs=[lr], val_score=val_score, **common)
        epochs = int(fitted.grid[0]["epochs"]) if fitted.grid else 0
    weights = fitted.layer_weights()
    return {"val_score": float(fitted.val_score), "best_epoch": int(fitted.best_epoch), "epochs": int(epochs),
            "layer_weights": None if weights is None else [float(w) for w in weights],
            "val": fitted.predict(x[va]).astype(np.float32), "test": fitted.predict(x[te]).astype(np.float32)}


def run_cells(data: TaskArrays, features: dict[str, np.ndarray], cells: Path, *, seeds: Sequence[int],
              settings: ProbeSettings, store_key: str, model: str = "", progress: bool = False) -> pd.DataFrame:
    """Train (or reuse) every cell of one task; one row per cell.

    Parameters
    ----------
    data
        The task's targets and splits (:func:`task_arrays`).
    features
        ``{layer: [shape=(n_store_rows, dim)]}`` pooled features, in network order.
    cells
        Folder of this model's cells.
    seeds
        Probe seeds.
    settings
        Training settings.
    store_key
        The feature store's request key (part of every cell key).

    Returns
    -------
    pandas.DataFrame
        ``model, task, seed, layer, lr, val_score, best_epoch, epochs, seconds, reused, diverged``.
    """
    from tqdm.auto import tqdm

    layers = list(features)
    configs = [(name, name) for name in layers]
    if settings.weighted_sum and len(layers) > 1:
        configs.append((WEIGHTED_SUM, None))
    rows_out: list[dict[str, Any]] = []
    total = len(seeds) * len(configs) * len(settings.lrs)
    bar = tqdm(total=total, desc=f"probe {data.task.name}", unit="cell", disable=not progress, dynamic_ncols=True)
    cache: dict[str, np.ndarray] = {}

    def matrix(layer: str) -> np.ndarray:
        if layer not in cache:
            if layer == WEIGHTED_SUM:
                parts = [np.asarray(features[n], dtype=np.float32)[data.rows] for n in layers]
                width = max(p.shape[1] for p in parts)   # narrower layers are zero-padded
                cache[layer] = np.stack([np.pad(p, ((0, 0), (0, width - p.shape[1]))) for p in parts], axis=1)
            else:
                cache[layer] = np.asarray(features[layer], dtype=np.float32)[data.rows]
            bad = ~np.isfinite(cache[layer].reshape(len(data.rows), -1)).all(axis=1)
            if bad.any():
                raise ConfigError(f"task {data.task.name}: layer {layer} has NaN/inf features for items "
                                  f"{data.item_ids[bad][:5].tolist()}; re-extract them")
        return cache[layer]

    for seed in seeds:
        for layer, _ in configs:
            for lr in settings.lrs:
                path = cell_path(cells, data.task.name, seed, layer, lr)
                key = hash_bytes(json.dumps({"store": store_key, "task": data.task.to_dict(), "data": data.digest,
                                             "layer": layer, "layers": layers if layer == WEIGHTED_SUM else None,
                                             "lr": float(lr), "seed": int(seed), "settings": settings.to_dict()},
                                            sort_keys=True, default=str).encode())
                rec = load_cell(path, key)
                reused = rec is not None
                if rec is None:
                    t0 = time.perf_counter()
                    try:
                        out = _fit_cell(data, matrix(layer), lr=lr, seed=seed, settings=settings)
                    except TrainingError as err:
                        logger.warning("%s %s seed %d %s lr %g: %s", model, data.task.name, seed, layer, lr, err)
                        out = {"val_score": float("nan"), "best_epoch": 0, "epochs": 0, "layer_weights": None}
                    has_pred = "val" in out
                    if has_pred:
                        buf = io.BytesIO()
                        np.savez(buf, val=out.pop("val"), test=out.pop("test"))
                        atomic_write_bytes(path.with_suffix(".npz"), buf.getvalue())
                    rec = {"key": key, "model": model, "task": data.task.name, "seed": int(seed), "layer": layer,
                           "lr": float(lr), "seconds": time.perf_counter() - t0, "has_predictions": has_pred,
                           "diverged": not has_pred, **out}
                    atomic_write_json(path.with_suffix(".json"), rec)
                rows_out.append({k: rec.get(k) for k in ("task", "seed", "layer", "lr", "val_score", "best_epoch",
                                                         "epochs", "seconds", "diverged")}
                                | {"model": model, "reused": reused, "path": str(path)})
                bar.update(1)
    bar.close()
    return pd.DataFrame(rows_out)
