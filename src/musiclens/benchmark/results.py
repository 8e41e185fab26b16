"""From cells to scores: MARBLE's selection, bootstrap intervals, variance over seeds, the table.

- :func:`select_and_score`: per seed, the cell (layer or weighted sum, learning rate) with the best
  validation score; its test predictions scored with each of the task's metrics.  Reported: the
  mean over seeds, their standard deviation (``std_seeds``, ddof 1), and a percentile bootstrap
  interval of the seed mean over test items (the same resampled items for every seed).
- :func:`layer_profile`: per layer (and the weighted sum), the best learning rate by validation
  and its test scores (the layer profile behind the selection).
- :func:`wide_table`: one row per model, one column per ``<task>/<metric>`` (x100, as MARBLE),
  plus MARBLE's average (:func:`~musiclens.benchmark.tasks.marble_average`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musiclens.benchmark.protocol import TaskArrays, predictions_for
from musiclens.benchmark.tasks import get_metric, marble_average, metric_column
from musiclens.probe.metrics import Metric, Predictions, score

__all__ = ["select_and_score", "layer_profile", "wide_table", "bootstrap_seed_mean", "SCORE_COLUMNS"]

SCORE_COLUMNS = ("model", "task", "metric", "value", "std_seeds", "ci_low", "ci_high", "n_seeds", "layers", "lrs",
                 "val_score", "n_train", "n_val", "n_test")


def _test_preds(data: TaskArrays, path: str) -> Predictions:
    with np.load(Path(path).with_suffix(".npz")) as z:
        test = np.asarray(z["test"], dtype=np.float64)
    return predictions_for(data, data.mask("test"), test)


def bootstrap_seed_mean(metric: Metric, preds: Sequence[Predictions], *, n_bootstraps: int = 200,
                        ci_level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean over seeds of ``metric``, resampling test items.

    Every resample draws the same items for all seeds' predictions; resamples on which the
    metric is undefined are left out.
    """
    if n_bootstraps <= 0 or not preds:
        return float("nan"), float("nan")
    n = len(preds[0].targets)
    rng = np.random.default_rng(seed)
    alpha = (1.0 - ci_level) / 2.0
    if metric.kind == "example":
        vals = np.mean([np.asarray(metric.fn(p), dtype=np.float64) for p in preds], axis=0)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_bootstraps).astype(float)
        stats = counts @ vals / n
    else:
        stats = np.empty(n_bootstraps)
        for b in range(n_bootstraps):
            idx = rng.integers(0, n, n)
            stats[b] = np.mean([score(metric, p.take(idx)) for p in preds])
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return float("nan"), float("nan")
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1.0 - alpha))


def _best(cells: pd.DataFrame) -> pd.DataFrame:
    ok = cells[np.isfinite(cells["val_score"].astype(float))]
    # the first of equal validation scores (layer order, then learning rate order) wins
    return ok.loc[ok.groupby("seed", sort=True)["val_score"].idxmax()] if len(ok) else ok


def select_and_score(cells: pd.DataFrame, data: TaskArrays, *, model: str, n_bootstraps: int = 200,
                     seed: int = 0) -> pd.DataFrame:
    """One row per metric of the task (:data:`SCORE_COLUMNS`) for the cells of one model and task."""
    task = data.task
    best = _best(cells.reset_index(drop=True))
    rows: list[dict[str, Any]] = []
    if best.empty:
        for m in task.metrics:
            rows.append({"model": model, "task": task.name, "metric": m, "value": float("nan"), "n_seeds": 0})
        return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))
    preds = [_test_preds(data, p) for p in best["path"]]
    for m in task.metrics:
        metric = get_metric(m)
        per_seed = np.asarray([score(metric, p) for p in preds])
        lo, hi = bootstrap_seed_mean(metric, preds, n_bootstraps=n_bootstraps, seed=seed)
        rows.append({"model": model, "task": task.name, "metric": m, "value": float(np.mean(per_seed)),
                     "std_seeds": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else float("nan"),
                     "ci_low": lo, "ci_high": hi, "n_seeds": int(len(per_seed)),
                     "layers": ";".join(best["layer"].astype(str)), "lrs": ";".join(f"{v:g}" for v in best["lr"]),
                     "val_score": float(best["val_score"].mean()), "n_train": int(data.mask("train").sum()),
                     "n_val": int(data.mask("valid").sum()), "n_test": int(data.mask("test").sum())})
    return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))


def layer_profile(cells: pd.DataFrame, data: TaskArrays, *, model: str) -> pd.DataFrame:
    """Per seed and layer: the best learning rate by validation and its test score for every metric."""
    rows = []
    for (seed, layer), g in cells.groupby(["seed", "layer"], sort=False):
        ok = g[np.isfinite(g["val_score"].astype(float))]
        if ok.empty:
            continue
        b = ok.loc[ok["val_score"].idxmax()]
        pred = _test_preds(data, b["path"])
        for m in data.task.metrics:
            rows.append({"model": model, "task": data.task.name, "seed": int(seed), "layer": layer, "lr": b["lr"],
                         "val_score": float(b["val_score"]), "metric": m, "test": score(get_metric(m), pred)})
    return pd.DataFrame(rows, columns=["model", "task", "seed", "layer", "lr", "val_score", "metric", "test"])


def wide_table(scores: pd.DataFrame, *, average_metrics: dict[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """One row per model: ``<task>/<metric>`` columns (x100) and ``average``.

    ``average`` is MARBLE's average over the tasks present, of the metrics MARBLE reports per task
    (``average_metrics``: ``{task: metrics}``; default every metric in ``scores``).
    """
    out = []
    for model, g in scores.groupby("model", sort=False):
        row: dict[str, Any] = {"model": model}
        used: dict[str, float] = {}
        for _, r in g.iterrows():
            col = metric_column(r["task"], r["metric"])
            row[col] = 100.0 * float(r["value"])
            if average_metrics is None or r["metric"] in average_metrics.get(r["task"], (r["metric"],)):
                used[col] = row[col]
        row["average"] = marble_average(used)
        out.append(row)
    return pd.DataFrame(out)
