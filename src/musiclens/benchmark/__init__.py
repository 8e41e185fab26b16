"""``musiclens benchmark``: MARBLE's constrained track on datasets a user owns.

Readers for the official layouts (:mod:`musiclens.benchmark.readers`; never downloading), lazy
windowed feature extraction into a resumable store per model and dataset
(:mod:`musiclens.benchmark.features`), one resumable probe per (task, seed, layer, learning rate)
(:mod:`musiclens.benchmark.protocol`), MARBLE's selection and metrics with bootstrap intervals and
the spread over seeds (:mod:`musiclens.benchmark.results`), and a report beside MARBLE's
published MERT numbers (:mod:`musiclens.benchmark.report`).  Entry point: :func:`run_benchmark`.
"""

from __future__ import annotations

import musiclens.benchmark.readers  # noqa: F401  (registers the dataset readers)
from musiclens.benchmark.dataset import DATASETS, BenchmarkDataset, task_items
from musiclens.benchmark.protocol import MARBLE_LRS, WEIGHTED_SUM, ProbeSettings
from musiclens.benchmark.runner import TASK_DATASETS, BenchmarkResult, ModelSpec, parse_model, run_benchmark
from musiclens.benchmark.tasks import BENCH_METRICS, PUBLISHED, BenchmarkTask, marble_average

__all__ = ["BENCH_METRICS", "DATASETS", "MARBLE_LRS", "PUBLISHED", "TASK_DATASETS", "WEIGHTED_SUM",
           "BenchmarkDataset", "BenchmarkResult", "BenchmarkTask", "ModelSpec", "ProbeSettings", "marble_average",
           "parse_model", "run_benchmark", "task_items"]
