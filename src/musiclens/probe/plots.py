"""Figures from a :class:`~musiclens.probe.runner.ProbeResult` (matplotlib, Agg backend).

* :func:`plot_layer_profile`: a task's test score per layer with bootstrap intervals, the
  permutation chance as a dashed line and the weighted-sum probe as a horizontal band.
* :func:`plot_layer_weights`: the softmax layer weights of a task's weighted-sum probe.

Both work on a loaded result (``ProbeResult.load(folder)``), so figures can be rebuilt and
restyled from the saved tables.  :func:`save_figures` writes one PNG per task and figure.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from musiclens.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from musiclens.probe.runner import ProbeResult

__all__ = ["plot_layer_profile", "plot_layer_weights", "save_figures"]

logger = logging.getLogger(__name__)


def _pyplot():  # noqa: ANN202 - matplotlib module
    from musiclens.plotting import pyplot

    return pyplot()


def plot_layer_profile(result: ProbeResult, *, task: str, metric: str | None = None) -> Figure:
    """Test ``metric`` (default: the task's primary) of ``task`` per layer, with CIs and chance."""
    from musiclens.probe.runner import WEIGHTED_SUM

    plt = _pyplot()
    t = result.table[(result.table["task"] == task) & (result.table["split"] == "test")]
    if t.empty:
        raise ConfigError(f"no test rows for task {task!r}; tasks: {sorted(result.table['task'].unique())}")
    if metric is None:
        prim = t[t["primary"].astype(bool)]
        metric = str(prim["metric"].iloc[0]) if not prim.empty else str(t["metric"].iloc[0])
    t = t[t["metric"] == metric]
    if t.empty:
        raise ConfigError(f"task {task!r} has no metric {metric!r}")
    layers = t[t["layer"] != WEIGHTED_SUM]
    x = np.arange(len(layers))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(layers) + 2), 3.6))
    ax.plot(x, layers["value"], "o-", color="C0", label=f"{metric} per layer")
    ax.vlines(x, layers["ci_low"], layers["ci_high"], color="C0", lw=1)   # bounds: the interval need not contain the value
    ax.plot(x, layers["chance"], "k--", lw=1, label="chance (permutation)")
    ws = t[t["layer"] == WEIGHTED_SUM]
    if not ws.empty:
        row = ws.iloc[0]
        ax.axhspan(row["ci_low"], row["ci_high"], color="C1", alpha=0.2)
        ax.axhline(row["value"], color="C1", lw=1.5, label="weighted layer sum")
    ax.set_xticks(x)
    ax.set_xticklabels(layers["layer"], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    first = t.iloc[0]
    ax.set_title(f"{first['network']}: {task} ({first['probe']} probe, {first['pooling']})", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def plot_layer_weights(result: ProbeResult, *, task: str) -> Figure:
    """Softmax weights of ``task``'s weighted-sum probe per layer (uniform weights dashed)."""
    plt = _pyplot()
    w = result.layer_weights[result.layer_weights["task"] == task] if not result.layer_weights.empty else None
    if w is None or w.empty:
        raise ConfigError(f"task {task!r} has no weighted-sum probe (run with weighted_sum=True and >1 layer)")
    x = np.arange(len(w))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(w) + 2), 3.2))
    ax.bar(x, w["weight"], color="C1")
    ax.axhline(1.0 / len(w), color="k", ls="--", lw=1, label="uniform")
    ax.set_xticks(x)
    ax.set_xticklabels(w["layer"], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("softmax layer weight")
    ax.set_title(f"{w['network'].iloc[0]}: {task} weighted-sum layer weights", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save_figures(result: ProbeResult, folder: str | Path) -> list[Path]:
    """Write ``figures/probe_profile_<task>.png`` and ``figures/probe_weights_<task>.png``."""
    from musiclens.plotting import save_pngs

    figures = {}
    for task in result.table["task"].unique():
        figures[f"probe_profile_{task}.png"] = plot_layer_profile(result, task=str(task))
        if not result.layer_weights.empty and (result.layer_weights["task"] == task).any():
            figures[f"probe_weights_{task}.png"] = plot_layer_weights(result, task=str(task))
    return save_pngs(figures, Path(folder) / "figures", dpi=120)
