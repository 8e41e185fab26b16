"""Figures from an :class:`~musiclens.rsa.pipeline.RSAResult` (matplotlib, Agg backend).

* :func:`plot_layer_profiles`: statistic per layer and model RDM with bootstrap CIs, the noise
  ceiling as a grey band, and a star above every layer significant after correction.
* :func:`plot_rdm_heatmaps`: subject-mean RDMs of chosen layers, conditions ordered by pitch.
* :func:`plot_mds`: 2-D metric MDS of a layer's subject-mean RDM, coloured by pitch class
  (cyclic colour map) with one marker per octave.

Each function returns the :class:`matplotlib.figure.Figure`; :func:`save_figures` writes PNGs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from musiclens.errors import ConfigError
from musiclens.plotting import pyplot, save_pngs

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from musiclens.rsa.pipeline import RSAResult

__all__ = ["plot_layer_profiles", "plot_rdm_heatmaps", "plot_mds", "save_figures"]

logger = logging.getLogger(__name__)
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def plot_layer_profiles(result: RSAResult, *, statistic: str | None = None) -> Figure:
    """Layer profile of ``statistic`` (default: the comparison method) for every model RDM."""
    plt = pyplot()
    stat = statistic or str(result.config["method"])
    t = result.table[result.table["statistic"] == stat]
    if t.empty:
        raise ConfigError(f"no rows with statistic {stat!r}; available: {sorted(result.table['statistic'].unique())}")
    layers = list(result.config["layers"])
    x = np.arange(len(layers))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(layers) + 2), 3.6))
    nc = t.drop_duplicates("layer").set_index("layer").reindex(layers)
    if nc["noise_ceiling_low"].notna().all():
        ax.fill_between(x, nc["noise_ceiling_low"], nc["noise_ceiling_high"], color="0.85", label="noise ceiling")
    top = float(np.nanmax(t["ci_high"]))
    span = top - float(np.nanmin(t["ci_low"])) or 1.0
    for k, (model, g) in enumerate(t.groupby("model_rdm", sort=False)):
        g = g.set_index("layer").reindex(layers)
        # the interval is drawn from its bounds: a percentile bootstrap interval need not contain the value
        line = ax.plot(x, g["value"], marker=_MARKERS[k % len(_MARKERS)], label=model)
        ax.vlines(x, g["ci_low"], g["ci_high"], color=line[0].get_color(), lw=1)
        sig = g["significant"].to_numpy(bool)
        ax.plot(x[sig], np.full(sig.sum(), top + span * (0.05 + 0.06 * k)), "*", color=line[0].get_color(),
                linestyle="none")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(x, layers, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(stat)
    ax.set_title(f"{result.config['network']}: {stat} per layer (* significant, {result.config['correction']})",
                 fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def _layer_choice(result: RSAResult, layers: Sequence[str] | None) -> list[str]:
    all_layers = list(result.config["layers"])
    if layers is None:
        idx = sorted({0, len(all_layers) // 2, len(all_layers) - 1})
        return [all_layers[i] for i in idx]
    unknown = [lay for lay in layers if lay not in all_layers]
    if unknown:
        raise ConfigError(f"unknown layer(s) {unknown}; layers are {all_layers}")
    return list(layers)


def _labels(conditions: pd.DataFrame) -> list[str]:
    if "note_name" in conditions.columns and conditions["note_name"].notna().all():
        return conditions["note_name"].astype(str).tolist()
    return conditions.iloc[:, 0].astype(str).tolist()


def plot_rdm_heatmaps(result: RSAResult, *, layers: Sequence[str] | None = None) -> Figure:
    """Subject-mean RDMs of ``layers`` (default: first, middle, last), ordered by pitch."""
    plt = pyplot()
    chosen = _layer_choice(result, layers)
    conditions = result.conditions
    sort_col = "midi" if "midi" in conditions.columns else conditions.columns[0]
    order = np.argsort(conditions[sort_col].to_numpy(), kind="mergesort")
    labels = np.array(_labels(conditions))[order]
    fig, axes = plt.subplots(1, len(chosen), figsize=(3.6 * len(chosen), 3.4), squeeze=False)
    step = max(1, len(labels) // 12)
    for ax, layer in zip(axes[0], chosen):
        mat = result.rdms[layer].mean_matrix()[np.ix_(order, order)]
        im = ax.imshow(mat, cmap="viridis", interpolation="nearest")
        ax.set_title(layer, fontsize=9)
        ax.set_xticks(np.arange(0, len(labels), step), labels[::step], rotation=90, fontsize=6)
        ax.set_yticks(np.arange(0, len(labels), step), labels[::step], fontsize=6)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(f"{result.config['network']}: mean RDM over subjects ({result.config['distance']})", fontsize=9)
    fig.tight_layout()
    return fig


def plot_mds(result: RSAResult, *, layer: str | None = None, seed: int = 0) -> Figure:
    """2-D metric MDS of ``layer``'s subject-mean RDM (default: best ``chroma`` layer or last)."""
    plt = pyplot()
    from sklearn.manifold import MDS

    layers = list(result.config["layers"])
    if layer is None:
        t = result.table
        sel = t[(t["statistic"] == result.config["method"]) & (t["model_rdm"] == "chroma")]
        layer = str(sel.loc[sel["value"].idxmax(), "layer"]) if not sel.empty else layers[-1]
    if layer not in result.rdms:
        raise ConfigError(f"unknown layer {layer!r}; layers are {layers}")
    mat = result.rdms[layer].mean_matrix()
    mat = np.maximum(mat, 0.0)  # cross-validated distances can be slightly negative
    import inspect

    # scikit-learn 1.8 renamed `dissimilarity` to `metric` and is changing `init`; ask for the
    # same thing under either API so results and warnings do not depend on the version.
    params = inspect.signature(MDS).parameters
    kwargs: dict = {"n_components": 2, "random_state": seed, "n_init": 4, "normalized_stress": "auto"}
    if "metric_mds" in params:
        kwargs.update(metric="precomputed", init="random")
    else:
        kwargs.update(dissimilarity="precomputed")
    coords = MDS(**kwargs).fit_transform(mat)
    conditions = result.conditions
    midi = conditions["midi"].to_numpy(float) if "midi" in conditions.columns else np.arange(len(conditions))
    pc = (np.round(midi).astype(int)) % 12
    octave = np.round(midi).astype(int) // 12 - 1
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    cmap = plt.get_cmap("hsv")
    for k, o in enumerate(np.unique(octave)):
        sel = octave == o
        ax.scatter(coords[sel, 0], coords[sel, 1], c=[cmap(p / 12) for p in pc[sel]],
                   marker=_MARKERS[k % len(_MARKERS)], edgecolors="k", linewidths=0.4, s=42, label=f"octave {o}")
    for (xx, yy), lab in zip(coords, _labels(conditions)):
        ax.annotate(lab, (xx, yy), fontsize=5, xytext=(2, 2), textcoords="offset points")
    ax.legend(fontsize=7, frameon=False)
    ax.set_title(f"{result.config['network']} {layer}: MDS (colour = pitch class)", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def save_figures(result: RSAResult, folder: str | Path, *, seed: int = 0) -> list[Path]:
    """Write ``profile_<statistic>.png``, ``rdms.png`` and ``mds.png`` into ``folder``."""
    figures: dict[str, Figure] = {}
    for stat in result.table["statistic"].unique():
        if stat.endswith("-best-layer-cv"):
            continue
        figures[f"profile_{stat}.png"] = plot_layer_profiles(result, statistic=stat)
    figures["rdms.png"] = plot_rdm_heatmaps(result)
    figures["mds.png"] = plot_mds(result, seed=seed)
    return save_pngs(figures, folder, dpi=130)
