"""Figures of an :class:`~musiclens.attention.onset.AttentionOnsetResult` (matplotlib, Agg backend).

* :func:`plot_attention_maps`: a grid with one head-averaged sequence map per layer (axes in
  seconds), true onsets drawn as ticks along both axes;
* :func:`plot_onset_curves`: per layer, the normalised curves of every recipe with the
  spectral-flux envelope (grey) and the true onsets (dashed);
* :func:`plot_onset_profiles`: mean F-measure and ``corr_flux`` per layer and recipe, the
  spectral-flux baseline as a horizontal line.

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

    from musiclens.attention.onset import AttentionOnsetResult

__all__ = ["plot_attention_maps", "plot_onset_curves", "plot_onset_profiles", "save_figures"]


def _clip(result: AttentionOnsetResult, clip: str | None) -> str:
    return kept_clip(result.maps, clip, what="maps and curves")


def plot_attention_maps(result: AttentionOnsetResult, *, clip: str | None = None, cmap: str = "magma") -> Figure:
    """Head-averaged sequence attention per layer of one kept clip, true onsets as ticks."""
    plt = pyplot()
    clip = _clip(result, clip)
    maps = result.maps[clip][:, result.n_special:, result.n_special:]
    times, onsets = result.frame_times[clip], result.onsets[clip]
    layers = list(result.config["layers"])
    n = len(layers)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.1 * rows), squeeze=False)
    extent = time_extent(times)
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            ax.axis("off")
            continue
        m = maps[k]
        ax.imshow(m, cmap=cmap, extent=extent, aspect="auto", interpolation="nearest",
                  vmax=float(np.quantile(m, 0.995)) or None)
        for t in onsets:
            ax.plot([t, t], [extent[3], extent[3] + 0.04 * (extent[2] - extent[3])], color="cyan", lw=1)
            ax.plot([extent[0], extent[0] + 0.04 * (extent[1] - extent[0])], [t, t], color="cyan", lw=1)
        ax.set_title(layers[k], fontsize=9)
        ax.set_xlabel("key time (s)", fontsize=8)
        ax.set_ylabel("query time (s)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{result.config['network']} — {clip}: attention (heads averaged), onsets in cyan", fontsize=10)
    fig.tight_layout()
    return fig


def plot_onset_curves(result: AttentionOnsetResult, *, clip: str | None = None, head: str = "mean") -> Figure:
    """Normalised onset-evidence curves per layer with the flux envelope and the true onsets."""
    plt = pyplot()
    clip = _clip(result, clip)
    curves, times, onsets = result.curves[clip], result.frame_times[clip], result.onsets[clip]
    layers = list(result.config["layers"])
    fig, axes = plt.subplots(len(layers), 1, figsize=(9, 1.3 * len(layers) + 0.6), sharex=True, squeeze=False)
    for ax, layer in zip(axes[:, 0], layers):
        ax.fill_between(times, 0, curves["flux"], color="0.85", label="spectral flux")
        for recipe in result.config["recipes"]:
            key = f"{layer}/{head}/{recipe}"
            if key in curves:
                ax.plot(times, curves[key], lw=1, label=recipe)
        for t in onsets:
            ax.axvline(t, color="k", ls="--", lw=0.6)
        ax.set_ylabel(layer, fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, ncol=4, loc="upper right")
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(f"{result.config['network']} — {clip}: onset evidence (head {head}), true onsets dashed", fontsize=10)
    fig.tight_layout()
    return fig


def plot_onset_profiles(result: AttentionOnsetResult, *, head: str = "mean") -> Figure:
    """Mean F-measure and flux correlation per layer and recipe (error bars: SD over clips)."""
    plt = pyplot()
    s = result.summary
    layers = list(result.config["layers"])
    x = np.arange(len(layers))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(8.0, 0.5 * len(layers) + 5), 3.4))
    base = s[s["recipe"] == "spectral_flux"]
    for recipe, g in s[(s["head"] == head) & (s["recipe"] != "spectral_flux")].groupby("recipe", sort=False):
        g = g.set_index("layer").reindex(layers)
        ax1.errorbar(x, g["f_measure"], yerr=g["f_measure_std"].fillna(0), marker="o", capsize=2, label=recipe)
        ax2.plot(x, g["corr_flux"], marker="o", label=recipe)
    if not base.empty:
        ax1.axhline(float(base["f_measure"].iloc[0]), color="0.4", ls="--", label="spectral flux")
    ax1.set_ylabel(f"onset F ({result.config['window_s'] * 1000:g} ms)")
    ax2.set_ylabel("corr. with spectral flux (Pearson)")
    label_layer_axes((ax1, ax2), layers)
    fig.suptitle(f"{result.config['network']}: onsets from attention, mean over clips", fontsize=10)
    fig.tight_layout()
    return fig


def save_figures(result: AttentionOnsetResult, folder: str | Path) -> list[Path]:
    """Write ``attention_profiles.png`` and, for every kept clip, ``attention_maps_<clip>.png``
    and ``attention_curves_<clip>.png``."""
    return save_pngs({"attention_profiles.png": plot_onset_profiles(result),
                      **per_clip_figures(result.maps, {
                          "attention_maps": lambda clip: plot_attention_maps(result, clip=clip),
                          "attention_curves": lambda clip: plot_onset_curves(result, clip=clip)})},
                     folder, dpi=110)
