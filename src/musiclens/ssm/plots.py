"""Figures of an :class:`~musiclens.ssm.pipeline.SSMResult` (matplotlib, Agg backend).

* :func:`plot_ssm_grid`: every layer SSM of one kept clip beside the reference SSMs, chord
  changes as ticks;
* :func:`plot_novelty`: Foote novelty per layer (and reference baselines) with chord changes;
* :func:`plot_ssm_profiles`: mean correlation with every reference per layer, and the mean
  boundary F-measure per layer with the reference baselines as horizontal lines.

Each returns a :class:`matplotlib.figure.Figure`; :func:`save_figures` writes PNGs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from musiclens.plotting import kept_clip, label_layer_axes, per_clip_figures, pyplot, save_pngs, time_extent

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from musiclens.ssm.pipeline import SSMResult

__all__ = ["plot_ssm_grid", "plot_novelty", "plot_ssm_profiles", "save_figures"]


def _clip(result: SSMResult, clip: str | None) -> str:
    return kept_clip(result.ssms, clip or None, what="SSMs")


def plot_ssm_grid(result: SSMResult, *, clip: str | None = None, cmap: str = "viridis") -> Figure:
    """Layer SSMs (first) and reference SSMs of one kept clip."""
    plt = pyplot()
    clip = _clip(result, clip)
    mats = result.ssms[clip]
    times = result.frame_times[clip]
    changes = result.chord_changes.get(clip, np.zeros(0))
    names = [k for k in mats if k.startswith("layer/")] + [k for k in mats if k.startswith("reference/")]
    cols = min(5, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False)
    extent = time_extent(times)
    for k, ax in enumerate(axes.ravel()):
        if k >= len(names):
            ax.axis("off")
            continue
        m = np.asarray(mats[names[k]], dtype=np.float64)
        finite = m[np.isfinite(m)]
        lo, hi = (np.quantile(finite, [0.01, 0.99]) if finite.size else (0.0, 1.0))
        ax.imshow(np.ma.masked_invalid(m), cmap=cmap, extent=extent, aspect="auto", interpolation="nearest",
                  vmin=lo, vmax=hi if hi > lo else lo + 1)
        for t in changes:
            ax.plot([t, t], [extent[3], extent[3] + 0.05 * (extent[2] - extent[3])], color="r", lw=1)
        kind, name = names[k].split("/", 1)
        ax.set_title(name if kind == "layer" else f"ref: {name}", fontsize=8, color="k" if kind == "layer" else "tab:blue")
        ax.tick_params(labelsize=6)
    fig.suptitle(f"{result.config['network']} — {clip}: cosine SSMs; chord changes in red", fontsize=10)
    fig.tight_layout()
    return fig


def plot_novelty(result: SSMResult, *, clip: str | None = None) -> Figure:
    """Foote novelty curves of one kept clip (normalised per curve), chord changes dashed."""
    plt = pyplot()
    clip = _clip(result, clip)
    curves = result.novelty_curves.get(clip, {})
    times = result.frame_times[clip]
    hop = float(np.median(np.diff(times))) if times.size > 1 else 0.0
    bt = times - hop / 2                                  # novelty index n: boundary before frame n
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(curves) + 2))
    for k, (name, c) in enumerate(curves.items()):
        span = c.max() - c.min()
        ax.plot(bt, k + 0.9 * ((c - c.min()) / span if span > 0 else c * 0), lw=1)
    for t in result.chord_changes.get(clip, []):
        ax.axvline(t, color="r", ls="--", lw=0.7)
    ax.set_yticks(np.arange(len(curves)) + 0.45)
    ax.set_yticklabels(list(curves), fontsize=7)
    ax.set_xlabel("time (s)")
    ax.set_title(f"{result.config['network']} — {clip}: Foote novelty, chord changes dashed", fontsize=10)
    fig.tight_layout()
    return fig


def plot_ssm_profiles(result: SSMResult, *, method: str | None = None) -> Figure:
    """Mean correlation per layer and reference (``method``), and boundary F per layer."""
    plt = pyplot()
    method = method or result.config["methods"][0]
    s = result.summary[result.summary["method"] == method]
    layers = list(result.config["layers"])
    x = np.arange(len(layers))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(9.0, 0.5 * len(layers) + 6), 3.4))
    for ref, g in s.groupby("reference", sort=False):
        g = g.set_index("layer").reindex(layers)
        ax1.errorbar(x, g["value"], yerr=g["value_std"].fillna(0), marker="o", capsize=2, label=ref)
    ax1.set_ylabel(f"SSM correlation ({method})")
    n = result.novelty_summary
    if not n.empty:
        lay = n[n["kind"] == "layer"].set_index("source").reindex(layers)
        ax2.plot(x, lay["f_measure"], marker="o", color="k", label="layer SSM")
        for k, (_, r) in enumerate(n[n["kind"] == "reference"].iterrows()):
            ax2.axhline(float(r["f_measure"]), ls=("--", ":", "-.")[k % 3], lw=1.2, label=r["source"], color=f"C{k + 1}")
    ax2.set_ylabel(f"chord-change F (±{result.config['novelty']['window_s']:g} s)")
    label_layer_axes((ax1, ax2), layers)
    fig.suptitle(f"{result.config['network']}: what the layer SSMs resemble (mean over clips)", fontsize=10)
    fig.tight_layout()
    return fig


def save_figures(result: SSMResult, folder: str | Path) -> list[Path]:
    """Write ``ssm_profiles.png`` and, per kept clip, ``ssm_grid_<clip>.png`` and ``ssm_novelty_<clip>.png``."""
    return save_pngs({"ssm_profiles.png": plot_ssm_profiles(result),
                      **per_clip_figures(result.ssms, {
                          "ssm_grid": lambda clip: plot_ssm_grid(result, clip=clip),
                          "ssm_novelty": lambda clip: plot_novelty(result, clip=clip)})},
                     folder, dpi=110)
