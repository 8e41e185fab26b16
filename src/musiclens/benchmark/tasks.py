"""MARBLE's tasks as data: what is predicted, how it is scored, and the published reference numbers.

A :class:`BenchmarkTask` names its dataset, its label type (``multiclass``, ``multilabel``,
``regression``), its classes or target columns, the metrics MARBLE reports for it
(:data:`BENCH_METRICS`: the probe metrics of :mod:`musiclens.probe.metrics` plus R² for
regression) and the one that selects the probe configuration on the validation split.

The MARBLE average (:func:`marble_average`) is the mean over tasks of each task's mean metric
(x100): it reproduces the published 63.3 / 64.2 of MERT-v1-95M / -330M from the per-task numbers
of PAPERS.md §4.5 (MARBLE (Yuan et al. 2023), constrained track, :data:`PUBLISHED`).

This module imports without torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from musiclens.errors import ConfigError
from musiclens.probe.metrics import METRICS, Metric, Predictions

__all__ = ["BenchmarkTask", "BENCH_METRICS", "LABEL_TYPES", "PUBLISHED", "PUBLISHED_SOURCE", "get_metric",
           "marble_average", "metric_column"]

LABEL_TYPES = ("multiclass", "multilabel", "regression")


def _r2(column: int) -> Any:
    def fn(pred: Predictions) -> float:
        from sklearn.metrics import r2_score

        y = np.asarray(pred.targets, dtype=np.float64)
        if len(y) < 2:
            return float("nan")
        return float(r2_score(y[:, column], pred.scores[:, column]))
    return fn


def _r2_mean(pred: Predictions) -> float:
    from sklearn.metrics import r2_score

    y = np.asarray(pred.targets, dtype=np.float64)
    if len(y) < 2:
        return float("nan")
    return float(r2_score(y, pred.scores, multioutput="uniform_average"))


#: Metrics of the benchmark beyond :data:`~musiclens.probe.metrics.METRICS` (regression).
#: Emomusic targets are ``[arousal, valence]`` (MARBLE's column order).
BENCH_METRICS: dict[str, Metric] = {
    "r2_arousal": Metric("r2_arousal", "set", _r2(0), "sklearn.metrics.r2_score of column 0 (arousal)"),
    "r2_valence": Metric("r2_valence", "set", _r2(1), "sklearn.metrics.r2_score of column 1 (valence)"),
    "r2_mean": Metric("r2_mean", "set", _r2_mean, "sklearn.metrics.r2_score(multioutput='uniform_average')"),
}


def get_metric(name: str) -> Metric:
    """A metric by name: :data:`BENCH_METRICS` first, then the probe metrics."""
    if name in BENCH_METRICS:
        return BENCH_METRICS[name]
    return METRICS.get(name)


@dataclass(frozen=True)
class BenchmarkTask:
    """One MARBLE task.

    Attributes
    ----------
    name
        Task name on the command line (``gtzan``, ``nsynth-pitch``...).
    dataset
        Name of the dataset reader (:data:`~musiclens.benchmark.datasets.DATASETS`).
    label_type
        ``"multiclass"``, ``"multilabel"`` or ``"regression"``.
    targets
        Item-table columns holding the label: one column (multiclass: the class value),
        or one 0/1 column per tag (multilabel), or one float column per output (regression).
    classes
        Multiclass: the class values in output order.  Multilabel: the tag names (= outputs).
        Regression: the output names.
    metrics
        Metric names (:func:`get_metric`), reported in this order.
    select
        The metric that chooses the configuration on the validation split (higher is better).
    published
        The metrics MARBLE reports (and averages) for this task; empty = all of ``metrics``.
    window_s
        Extraction window (s) of long audio; ``None`` = whole clips.
    """

    name: str
    dataset: str
    label_type: str
    targets: tuple[str, ...]
    classes: tuple[Any, ...]
    metrics: tuple[str, ...]
    select: str
    published: tuple[str, ...] = ()
    window_s: float | None = None
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.label_type not in LABEL_TYPES:
            raise ConfigError(f"label_type must be one of {LABEL_TYPES}, got {self.label_type!r}")

    @property
    def reported(self) -> tuple[str, ...]:
        """The metrics that enter MARBLE's average."""
        return self.published or self.metrics

    @property
    def n_outputs(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dataset": self.dataset, "label_type": self.label_type,
                "n_outputs": self.n_outputs, "classes": [str(c) for c in self.classes],
                "metrics": list(self.metrics), "select": self.select, "window_s": self.window_s,
                "description": self.description}


def metric_column(task: str, metric: str) -> str:
    """Name of a table column: ``<task>/<metric>``."""
    return f"{task}/{metric}"


#: Where :data:`PUBLISHED` comes from.
PUBLISHED_SOURCE = "MARBLE (Yuan et al. 2023), constrained track (PAPERS.md §4.5)"

#: Published constrained-track scores (x100) by model and ``<task>/<metric>`` column.
PUBLISHED: dict[str, dict[str, float]] = {
    "MERT-v1-95M": {
        "mtt/roc_auc": 91.0, "mtt/mAP": 39.3, "giantsteps-key/key.weighted_score": 63.5, "gtzan/accuracy": 74.8,
        "gtzan-beat/beat.f_measure": 88.3, "emomusic/r2_valence": 55.5, "emomusic/r2_arousal": 76.3,
        "nsynth-instrument/accuracy": 70.7, "nsynth-pitch/accuracy": 92.6, "vocalset-technique/accuracy": 74.2,
        "vocalset-singer/accuracy": 83.7, "mtg-instrument/roc_auc": 77.5, "mtg-instrument/mAP": 19.4,
        "mtg-moodtheme/roc_auc": 76.4, "mtg-moodtheme/mAP": 13.4, "mtg-genre/roc_auc": 87.1, "mtg-genre/mAP": 18.8,
        "mtg-top50/roc_auc": 83.0, "mtg-top50/mAP": 29.0, "musdb/sdr_vocals": 5.5, "musdb/sdr_drums": 5.5,
        "musdb/sdr_bass": 3.8, "musdb/sdr_other": 3.1, "average": 63.3,
    },
    "MERT-v1-330M": {
        "mtt/roc_auc": 91.1, "mtt/mAP": 39.5, "giantsteps-key/key.weighted_score": 61.7, "gtzan/accuracy": 77.6,
        "gtzan-beat/beat.f_measure": 87.9, "emomusic/r2_valence": 59.0, "emomusic/r2_arousal": 75.8,
        "nsynth-instrument/accuracy": 72.6, "nsynth-pitch/accuracy": 94.4, "vocalset-technique/accuracy": 76.9,
        "vocalset-singer/accuracy": 87.1, "mtg-instrument/roc_auc": 78.1, "mtg-instrument/mAP": 19.8,
        "mtg-moodtheme/roc_auc": 76.5, "mtg-moodtheme/mAP": 14.0, "mtg-genre/roc_auc": 86.7, "mtg-genre/mAP": 18.6,
        "mtg-top50/roc_auc": 83.4, "mtg-top50/mAP": 29.9, "musdb/sdr_vocals": 5.3, "musdb/sdr_drums": 5.6,
        "musdb/sdr_bass": 3.6, "musdb/sdr_other": 3.0, "average": 64.2,
    },
}


def marble_average(scores: Mapping[str, float], tasks: Sequence[str] | None = None) -> float:
    """MARBLE's average: the mean over tasks of each task's mean metric (``<task>/<metric>`` keys).

    Parameters
    ----------
    scores
        ``{"<task>/<metric>": value}`` on one scale (x100 for comparison with :data:`PUBLISHED`).
    tasks
        Restrict to these tasks (default every task found in ``scores``).

    Notes
    -----
    On the published per-task numbers this gives 63.26 and 64.20 (published: 63.3 and 64.2).
    An average over a subset of tasks is not comparable with the published one.
    """
    per_task: dict[str, list[float]] = {}
    for key, value in scores.items():
        if "/" not in key:
            continue
        task = key.split("/", 1)[0]
        if tasks is not None and task not in tasks:
            continue
        if value is not None and np.isfinite(value):
            per_task.setdefault(task, []).append(float(value))
    if not per_task:
        return float("nan")
    return float(np.mean([np.mean(v) for v in per_task.values()]))
