"""Networks and model RDMs against measured RDMs: candidates, tables, figures, one sentence.

:func:`run_targets` turns every layer of every network (pooled activations, rows named by
stimulus id) and, optionally, model RDMs computed from metadata into fixed candidate RDMs over
each target's stimuli, and evaluates them with :func:`~musiclens.rsa.evaluate.evaluate_targets`.
Candidates are named ``NETWORK/LAYER`` (group: the network) and ``model/NAME`` (group
``model``), so measured RDMs and metadata models meet in one comparison.

:class:`TargetResults` holds the tidy tables — ``targets.csv`` (one row per target × candidate),
``targets_pairwise.csv`` (every candidate pair) — and writes the figures rsatoolbox users know:
the layer profile of every network against the noise-ceiling band, and the model comparison
(each network's best layer and each model RDM as bars with their standard errors, the noise
ceiling as a band, and a line over every pair whose difference is significant after correction).

The best layer of a network is the one with the largest evaluation on these same data; the
comparison of best layers is therefore optimistic for every network alike (the selection is said
in the sentence and the figure title).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from musiclens.errors import AnalysisError, ConfigError
from musiclens.fsutil import atomic_write_text
from musiclens.rsa.evaluate import TargetEvaluation, evaluate_targets
from musiclens.rsa.models import model_rdm
from musiclens.rsa.rdm import compute_rdm
from musiclens.rsa.targets import TargetRDMs, align_to, describe

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["run_targets", "check_target_options", "TargetResults", "best_sentence", "flexible_sentence"]

logger = logging.getLogger(__name__)


@dataclass
class TargetResults:
    """Evaluations of every candidate against every target."""

    evaluations: dict[str, TargetEvaluation]
    layer_order: dict[str, list[str]]
    omitted: list[dict[str, str]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    #: Cross-validated fixed and flexible candidates per target (``flexible=True``), else empty.
    flexible: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def table(self) -> pd.DataFrame:
        return pd.concat([e.table for e in self.evaluations.values()], ignore_index=True)

    @property
    def pairwise(self) -> pd.DataFrame:
        return pd.concat([e.pairwise for e in self.evaluations.values()], ignore_index=True)

    def best_layers(self, target: str) -> pd.DataFrame:
        """Each network's best layer and every model RDM, for ``target``."""
        t = self.evaluations[target].table
        nets = t[t["group"] != "model"]
        best = nets.loc[nets.groupby("group", sort=False)["value"].idxmax()]
        return pd.concat([best, t[t["group"] == "model"]]).sort_values("value", ascending=False)

    def save(self, folder: str | Path, *, figures: bool = True) -> list[Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [atomic_write_text(folder / "targets.csv", self.table.to_csv(index=False, float_format="%.10g")),
                 atomic_write_text(folder / "targets_pairwise.csv",
                                   self.pairwise.to_csv(index=False, float_format="%.10g"))]
        if self.flexible:
            flex = pd.concat(list(self.flexible.values()), ignore_index=True)
            paths.append(atomic_write_text(folder / "targets_flexible.csv", flex.to_csv(index=False, float_format="%.10g")))
        if figures:
            from musiclens.plotting import file_safe, save_pngs

            figs: dict[str, Figure] = {}
            for name in self.evaluations:
                figs[f"targets_{file_safe(name)}_layers.png"] = plot_target_profiles(self, name)
                figs[f"targets_{file_safe(name)}_comparison.png"] = plot_model_comparison(self, name)
            paths += save_pngs(figs, folder, dpi=120)
        return paths


def _candidates_for(target: TargetRDMs, networks: Mapping[str, tuple[Mapping[str, np.ndarray], Sequence[str]]],
                    metadata: pd.DataFrame | None, models: Sequence[str], distance: str,
                    omitted: list[dict[str, str]]) -> tuple[TargetRDMs, list[np.ndarray], list[str], list[str]]:
    vecs: list[np.ndarray] = []
    names: list[str] = []
    groups: list[str] = []
    aligned: TargetRDMs | None = None
    for net, (layers, ids) in networks.items():
        tgt, pos = align_to(target, ids)
        if aligned is None:
            aligned = tgt
        for layer, x in layers.items():
            try:
                vecs.append(compute_rdm(np.asarray(x, dtype=float)[pos], distance=distance, what=f"{net}/{layer}"))
            except AnalysisError as err:
                omitted.append({"target": target.name, "candidate": f"{net}/{layer}", "reason": str(err)})
                logger.warning("target %s: left out %s/%s (%s)", target.name, net, layer, err)
                continue
            names.append(f"{net}/{layer}")
            groups.append(net)
    if models:
        if metadata is None:
            raise ConfigError("model RDMs as candidates need the stimulus metadata")
        if aligned is None:
            aligned, _ = align_to(target, metadata["stimulus_id"].astype(str).tolist())
        meta = metadata.set_index(metadata["stimulus_id"].astype(str)).loc[aligned.stimulus_ids].reset_index(drop=True)
        for m in models:
            try:
                vecs.append(model_rdm(m, meta))
            except AnalysisError as err:
                omitted.append({"target": target.name, "candidate": f"model/{m}", "reason": str(err)})
                continue
            names.append(f"model/{m}")
            groups.append("model")
    if aligned is None or not vecs:
        raise AnalysisError(f"target {target.name!r}: no candidate RDM to evaluate (no network layer or model RDM "
                            "could be built; see the log)")
    return aligned, vecs, names, groups


def check_target_options(*, method: str = "corr", bootstrap: str = "dual", n_bootstraps: int = 1000,
                         correction: str = "fdr_bh", alpha: float = 0.05, noise_ceiling: bool = True,
                         flexible: bool = False) -> None:
    """Validate the evaluation options before any work (each a musiclens error naming the fix)."""
    from musiclens.rsa.compare import COMPARISONS
    from musiclens.rsa.evaluate import BOOTSTRAPS
    from musiclens.rsa.inference import CORRECTIONS

    COMPARISONS.get(method)
    CORRECTIONS.get(correction)
    if bootstrap not in BOOTSTRAPS:
        raise ConfigError(f"bootstrap={bootstrap!r}; use one of {', '.join(BOOTSTRAPS)}")
    if isinstance(n_bootstraps, bool) or not isinstance(n_bootstraps, int) or n_bootstraps < 0:
        raise ConfigError(f"n_bootstraps={n_bootstraps!r}; give a whole number >= 0 (0: no bootstrap)")
    if bootstrap != "none" and 0 < n_bootstraps < 10:
        raise ConfigError(f"n_bootstraps={n_bootstraps}: too few resamples for a variance; use >= 10 (1000 is usual)")
    if not 0 < float(alpha) < 1:
        raise ConfigError(f"alpha={alpha!r}; give a level between 0 and 1, e.g. 0.05")
    if flexible and method not in ("corr", "cosine"):
        raise ConfigError(f"flexible (fitted, cross-validated) candidates need method corr or cosine, not {method!r}")


def run_targets(
    targets: Sequence[TargetRDMs],
    networks: Mapping[str, tuple[Mapping[str, np.ndarray], Sequence[str]]],
    *,
    metadata: pd.DataFrame | None = None,
    models: Sequence[str] = (),
    distance: str = "correlation",
    method: str = "corr",
    bootstrap: str = "dual",
    n_bootstraps: int = 1000,
    seed: int = 0,
    correction: str = "fdr_bh",
    alpha: float = 0.05,
    noise_ceiling: bool = True,
    flexible: bool = False,
) -> TargetResults:
    """Evaluate every network layer (and model RDM) against every target.

    Parameters
    ----------
    networks
        ``{network: (layers, stimulus_ids)}``: pooled activations ``{layer: [shape=(n_stimuli, dim)]}``
        whose rows are the stimuli ``stimulus_ids``.
    metadata
        The stimulus set's metadata (for ``models``).
    models
        Model RDM names (:data:`musiclens.rsa.models.MODEL_RDMS`) to evaluate beside the layers.
    flexible
        Also cross-validate, for each network with several layers, the weighted sum of its layers
        (a flexible candidate fitted per fold, :mod:`musiclens.rsa.flexible`) beside every fixed
        candidate on the same subject × stimulus folds (rsatoolbox's default group counts; ``corr``
        or ``cosine``; targets with missing pairs are left out of it, recorded in ``omitted``).
    """
    if not targets:
        raise ConfigError("give at least one target RDM file")
    check_target_options(method=method, bootstrap=bootstrap, n_bootstraps=n_bootstraps, correction=correction,
                         alpha=alpha, noise_ceiling=noise_ceiling, flexible=flexible)
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ConfigError(f"target names repeat ({names}); name them NAME=PATH")
    if flexible and method not in ("corr", "cosine"):
        raise ConfigError(f"flexible candidates are fitted for corr and cosine comparisons, not {method!r}")
    omitted: list[dict[str, str]] = []
    out: dict[str, TargetEvaluation] = {}
    flex_tables: dict[str, pd.DataFrame] = {}
    described: list[dict[str, Any]] = []
    for k, target in enumerate(targets):
        aligned, vecs, cand_names, groups = _candidates_for(target, networks, metadata, models, distance, omitted)
        out[target.name] = evaluate_targets(
            np.stack(vecs), cand_names, aligned, method=method, bootstrap=bootstrap, n_bootstraps=n_bootstraps,
            seed=seed + k, correction=correction, alpha=alpha, noise_ceiling=noise_ceiling, groups=groups)
        described.append(describe(aligned))
        if flexible:
            flex_table = _flexible_for(aligned, np.stack(vecs), cand_names, groups, method=method, seed=seed + k,
                                       omitted=omitted)
            if flex_table is not None:
                flex_tables[target.name] = flex_table
    layer_order = {net: [str(layer) for layer in layers] for net, (layers, _) in networks.items()}
    config = {"distance": distance, "method": method, "bootstrap": bootstrap, "n_bootstraps": n_bootstraps,
              "seed": seed, "correction": correction, "alpha": alpha, "noise_ceiling": noise_ceiling,
              "models": list(models), "flexible": flexible}
    return TargetResults(out, layer_order, omitted, described, config, flex_tables)


def _flexible_for(target: TargetRDMs, vecs: np.ndarray, names: Sequence[str], groups: Sequence[str], *, method: str,
                  seed: int, omitted: list[dict[str, str]]) -> pd.DataFrame | None:
    """Cross-validated fixed candidates and one weighted-layer-sum candidate per network with several layers."""
    from musiclens.rsa.flexible import crossvalidate, default_k, kfold_sets

    if np.isnan(target.vectors).any():
        omitted.append({"target": target.name, "candidate": "flexible candidates",
                        "reason": "missing pairs: cross-validation over stimuli needs complete RDMs"})
        return None
    flex = {}
    for net in dict.fromkeys(g for g in groups if g != "model"):
        rows = [i for i, g in enumerate(groups) if g == net]
        if len(rows) >= 2:
            flex[f"{net}/weighted"] = vecs[rows]
    k_subjects, k_stimuli = default_k(target.n_subjects, target.n_stimuli)
    if target.n_subjects < 2 or target.n_stimuli < 6:
        omitted.append({"target": target.name, "candidate": "flexible candidates",
                        "reason": f"cross-validation needs >= 2 subjects and >= 6 stimuli ({target.n_subjects}, "
                                  f"{target.n_stimuli})"})
        return None
    folds = kfold_sets(target.n_subjects, target.n_stimuli, k_subjects=min(k_subjects, target.n_subjects),
                       k_stimuli=k_stimuli, seed=seed)
    return crossvalidate(dict(zip(names, vecs)), flex, target, folds=folds, method=method)


def best_sentence(table: pd.DataFrame, pairwise: pd.DataFrame) -> str:
    """One sentence naming the best candidate for one target (its rows of ``targets.csv`` and
    ``targets_pairwise.csv``) and whether it reaches the lower noise-ceiling bound."""
    best = table.loc[table["value"].idxmax()]
    target = best["target"]
    lo, hi = float(best["noise_lower"]), float(best["noise_upper"])
    text = (f"For {target} ({int(best['n_subjects'])} subjects, {int(best['n_stimuli'])} stimuli, {best['method']}), "
            f"the best of {len(table)} candidates is {best['candidate']} ({best['value']:.3f} ± {best['se']:.3f} SE)")
    if np.isfinite(lo):
        reach = "reaches" if bool(best["reaches_lower_bound"]) else "does not reach"
        text += (f"; it {reach} the lower noise-ceiling bound {lo:.3f} (upper {hi:.3f}; "
                 f"p = {float(best['p_noise_lower']):.3g} against the lower bound)")
    mine = pairwise[(pairwise["candidate_a"] == best["candidate"]) | (pairwise["candidate_b"] == best["candidate"])]
    if len(mine) and mine["p_corrected"].notna().any():
        n_sig = int(mine["significant"].astype(bool).sum())
        text += (f"; it is significantly better than {n_sig} of the {len(mine)} other candidates "
                 f"({mine['correction'].iloc[0]}-corrected)")
    return text + ". The best layer is chosen on these data."


def flexible_sentence(flex: pd.DataFrame) -> str | None:
    """One sentence per target on the cross-validated weighted layer sums (``targets_flexible.csv`` rows)."""
    weighted = flex[flex["kind"] == "flexible"]
    if weighted.empty:
        return None
    fixed = flex[flex["kind"] == "fixed"]
    best_fixed = fixed.loc[fixed["value"].idxmax()] if len(fixed) else None
    parts = [f"{r['candidate']} ({int(r['n_components'])} layers) {r['value']:.3f}" for _, r in weighted.iterrows()]
    first = flex.iloc[0]
    text = (f"Cross-validated over subjects and stimuli ({int(first['n_folds'])} folds, {first['method']}) for "
            f"{first['target']}: the fitted weighted layer sums score " + ", ".join(parts))
    if best_fixed is not None:
        text += f", the best fixed candidate {best_fixed['candidate']} {best_fixed['value']:.3f}"
    return text + f" (cross-validated noise ceiling [{first['noise_lower']:.3f}, {first['noise_upper']:.3f}])."


def plot_target_profiles(results: TargetResults, target: str) -> Figure:
    """Each network's evaluation per layer (± SE) against the noise-ceiling band; model RDMs as dashed lines."""
    from musiclens.plotting import pyplot

    plt = pyplot()
    ev = results.evaluations[target]
    t = ev.table
    nets = [g for g in dict.fromkeys(t["group"]) if g != "model"]
    width = max(6.0, 0.35 * max((len(results.layer_order.get(n, [])) for n in nets), default=8) + 2)
    fig, ax = plt.subplots(figsize=(width, 3.6), layout="constrained")
    lo, hi = ev.noise_ceiling_fixed
    n_x = max((len(results.layer_order.get(n, [])) for n in nets), default=1)
    if np.isfinite(lo):
        ax.axhspan(lo, hi, color="0.85", label="noise ceiling")
    for net in nets:
        g = t[t["group"] == net].copy()
        g["layer"] = g["candidate"].str.slice(len(net) + 1)
        order = [la for la in results.layer_order.get(net, []) if la in set(g["layer"])]
        g = g.set_index("layer").loc[order]
        x = np.arange(len(order))
        ax.errorbar(x, g["value"], yerr=g["se"], marker="o", ms=3, capsize=2, label=net)
    for _, row in t[t["group"] == "model"].iterrows():
        ax.axhline(row["value"], ls="--", lw=1, color="0.3")
        ax.text(0.99, row["value"], row["candidate"], fontsize=7, va="bottom", ha="right",
                transform=ax.get_yaxis_transform())   # x in axes fraction, y in data
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlim(-0.5, n_x - 0.5)
    ax.set_xlabel("layer index (input → output)")
    ax.set_ylabel(f"{ev.info['method']} with {target}")
    ax.set_title(f"{target}: every layer against the measured RDMs\n(± SE from the {ev.info['bootstrap']} bootstrap; "
                 "grey: noise ceiling)", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    return fig


def plot_model_comparison(results: TargetResults, target: str) -> Figure:
    """rsatoolbox-style bars: best layer per network and model RDMs, noise ceiling, significance lines."""
    from musiclens.plotting import pyplot

    plt = pyplot()
    ev = results.evaluations[target]
    bars = results.best_layers(target)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(bars) + 2), 4.2), layout="constrained")
    x = np.arange(len(bars))
    lo, hi = ev.noise_ceiling_fixed
    if np.isfinite(lo):
        ax.axhspan(lo, hi, color="0.85", zorder=0, label="noise ceiling")
    colors = ["C1" if g == "model" else "C0" for g in bars["group"]]
    ax.bar(x, bars["value"], yerr=bars["se"], color=colors, capsize=3, zorder=2)
    ax.set_xticks(x, bars["candidate"], rotation=45, ha="right", fontsize=7)
    pw = ev.pairwise.set_index(["candidate_a", "candidate_b"])
    names = bars["candidate"].tolist()
    top = float(np.nanmax(bars["value"] + bars["se"].fillna(0)))
    top = max(top, hi if np.isfinite(hi) else top)
    step = 0.04 * (abs(top) or 1.0)
    level = 0
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            key = (names[i], names[j]) if (names[i], names[j]) in pw.index else (names[j], names[i])
            if key in pw.index and bool(pw.loc[key, "significant"]):
                y = top + step * (1 + level)
                ax.plot([i, j], [y, y], color="k", lw=0.8)
                level += 1
    ax.set_ylabel(f"{ev.info['method']} with {target}")
    ax.set_title(f"{target}: best layer per network (chosen on these data) and model RDMs;\nlines: pairs different "
                 f"after {ev.info['correction']} (α = {ev.info['alpha']})", fontsize=8)
    return fig
