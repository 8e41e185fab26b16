"""The report's first section: the headline statistic per network, grouped by training regime.

The study names its headline in ``contrasts.headline`` (``"STATISTIC:MODEL_RDM"``, e.g.
``"partial-tau-b:chroma"``; default: the first entry of ``contrasts.rsa``, else partial
``<rsa.method>`` for chroma).  This section reads ``rsa/rsa.csv`` (its ``-best-layer-cv`` rows:
the value at the best layer chosen on held-out instruments), ``train/conditions.csv`` (learning
bars) and ``contrasts/contrasts.csv`` and draws:

- **the answer figure**: one column per network group, grouped by regime (hand-crafted
  features, untrained, trained here by objective, pretrained); each seed a point, the mean over
  seeds a bar with the across-seed range, each seed's 95 % CI a thin line; next to it, the
  contrasts of the headline statistic (difference with its 95 % CI, ``*`` where the corrected
  p is below alpha);
- a compact findings table (one row per group; for a Kendall partial headline it also shows the
  other partial τ, ``partial_tau_a`` beside ``partial-tau-b`` or the reverse, at its own
  held-out best layer);
- the contrasts table.

The answer sentences (:func:`contrast_sentences`) state each best-layer contrast with its numbers.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musiclens.rsa.pipeline import partial_statistic
from musiclens.report.sections import SECTIONS, ReportContext, Section, img_html, table_html

__all__ = ["headline_statistic", "headline_rows", "regime_of", "group_summary", "contrast_sentences", "probe_contrast_sentences", "headline_section",
           "statistic_label"]

#: Baseline feature extractors (no training at all).
_FEATURES = {"cqt", "mfcc", "chroma", "logmel", "log-mel", "mel"}


def headline_statistic(cfg: Mapping[str, Any]) -> tuple[str, str]:
    """``(statistic, model_rdm)`` the report leads with."""
    c = cfg.get("contrasts") or {}
    spec = c.get("headline") or ((c.get("rsa") or [None])[0])
    if spec:
        stat, model = str(spec).split(":")
        return stat, model
    return partial_statistic((cfg.get("rsa") or {}).get("method", "tau-a")), "chroma"


def _partial_definition(stat: str) -> str:
    """The formula of a Kendall partial statistic, for the report's note on the headline."""
    if stat == "partial-tau-b":
        return (" Partial τ-b is Kendall's partial τ computed from τ_b coefficients: τ_{dc·h} = (τ_dc − τ_dh τ_ch) / "
                "√((1 − τ_dh²)(1 − τ_ch²)) with τ_b = τ_a / √(self_x self_y), self being an RDM's fraction of untied "
                "pairs (as R's ppcor computes it); the same formula on τ_a coefficients, the textbook partial τ_a, is "
                "the <code>partial-tau-a</code> row of <code>rsa/rsa.csv</code> (column <code>partial_tau_a</code> "
                "below) and is about a third as large because the chroma RDM has two values (most pairs tied)."
                + _PERMUTATION_NOTE)
    if stat == "partial-tau-a":
        return (" Partial τ-a is the textbook Kendall partial formula τ_{dc·h} = (τ_dc − τ_dh τ_ch) / "
                "√((1 − τ_dh²)(1 − τ_ch²)) on τ_a coefficients; the same formula on τ_b = τ_a / √(self_x self_y) "
                "coefficients is the <code>partial-tau-b</code> row (column <code>partial_tau_b</code> below)."
                + _PERMUTATION_NOTE)
    return ""


_PERMUTATION_NOTE = (
    " Each is tested against its own permutation null from the same permutations, so each p is exact for its own "
    "statistic (values and p-values labelled <code>partial-tau-a</code> before this name change are those of "
    "partial τ-b). The two p-values are equal when the network RDM and the partialled-out pitch-height RDM have no "
    "tied dissimilarities (partial τ-b is then a fixed multiple of partial τ-a under every permutation); pitch "
    "height on an equal-tempered note grid has ties, so no fixed monotone map relates them and they are close but "
    "not identical.")

#: The other Kendall partial statistic, shown beside the headline one.
_COMPANION = {"partial-tau-b": "partial-tau-a", "partial-tau-a": "partial-tau-b"}


def statistic_label(stat: str, model: str) -> str:
    """``partial-tau-b`` / ``chroma`` -> ``partial chroma τ-b (other model RDMs partialled out)``."""
    nice = {"pitch_height": "pitch height", "chroma": "chroma"}.get(model, model)
    method = stat.removeprefix("partial-").replace("tau-", "τ-").replace("rho-", "ρ-")
    if stat.startswith("partial-"):
        return f"partial {nice} {method} (other model RDMs partialled out)"
    return f"{nice} {method}"


def regime_of(name: str, net: Mapping[str, Any], training: Mapping[str, Mapping[str, Any]]) -> str:
    """The training regime of a network entry of the study."""
    if net.get("trained"):
        if net.get("randomize"):
            return "untrained (random weights)"
        cond = training.get(str(net["trained"])) or {}
        return f"trained here: {cond.get('objective', '?')}"
    if str(net.get("model")) in _FEATURES:
        return "hand-crafted features"
    return "pretrained (pip package)"


def _regime_order(regime: str) -> int:
    order = ["hand-crafted features", "untrained (random weights)"]
    if regime in order:
        return order.index(regime)
    return 2 if regime.startswith("trained here") else 3


def headline_rows(rsa: pd.DataFrame, stat: str, model: str) -> pd.DataFrame:
    """Each network's headline value: its ``-best-layer-cv`` row, or, for a network with a single
    layer (features, one-output networks), that layer's row."""
    best = rsa[(rsa["statistic"] == f"{stat}-best-layer-cv") & (rsa["model_rdm"] == model)]
    plain = rsa[(rsa["statistic"] == stat) & (rsa["model_rdm"] == model)]
    single = plain.groupby("network").filter(lambda g: len(g) == 1)
    single = single[~single["network"].isin(best["network"])]
    order = list(dict.fromkeys(rsa["network"]))
    out = pd.concat([best, single], ignore_index=True)
    return out.iloc[np.argsort([order.index(n) for n in out["network"]], kind="stable")].reset_index(drop=True)


def group_summary(rsa: pd.DataFrame, cfg: Mapping[str, Any], conditions: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per network group: regime, seeds, headline value at the best layer (mean over seeds,
    min/max over seeds), how many seeds are significant, the best layer(s), and the learning bars."""
    stat, model = headline_statistic(cfg)
    rows = headline_rows(rsa, stat, model).copy()
    networks = cfg.get("networks") or {}
    training = cfg.get("training") or {}
    if "condition" not in rows:
        rows["condition"], rows["seed"] = rows["network"], np.nan
    out = []
    for group, sel in rows.groupby("condition", sort=False):
        first = str(sel["network"].iloc[0])
        regime = regime_of(first, networks.get(first, {}), training)
        bars = ""
        if conditions is not None and networks.get(first, {}).get("trained") and not networks[first].get("randomize"):
            conds = {str(networks[n]["trained"]) for n in sel["network"] if n in networks}
            mine = conditions[conditions["run"].isin(conds)]
            if len(mine):
                ok = mine["passed"].astype(str).str.lower().eq("true")
                vals = ", ".join(f"{v:.2f}" for v in mine["value"].astype(float))
                bars = f"{int(ok.sum())}/{len(mine)} ({mine['bar_metric'].iloc[0].removeprefix('val/')} {vals})"
        out.append({
            "group": group, "regime": regime, "n_seeds": int(len(sel)),
            "value": float(sel["value"].mean()), "min_over_seeds": float(sel["value"].min()),
            "max_over_seeds": float(sel["value"].max()),
            "significant_seeds": f"{int(sel['significant'].astype(bool).sum())}/{len(sel)}",
            "best_layer": ", ".join(sorted(set(map(str, sel["layer"])))),
            "learned_bar": bars,
        })
    df = pd.DataFrame(out)
    if df.empty:
        return df
    other = _COMPANION.get(stat)
    if other is not None:                  # the other partial τ at its own held-out best layer
        comp = headline_rows(rsa, other, model)
        if len(comp):
            by = "condition" if "condition" in comp else "network"
            means = comp.groupby(by, sort=False)["value"].mean()
            df.insert(int(df.columns.get_loc("max_over_seeds")) + 1, other.replace("-", "_"),
                      df["group"].map(means).astype(float))
    df["_o"] = df["regime"].map(_regime_order)
    return df.sort_values(["_o"], kind="stable").drop(columns="_o").reset_index(drop=True)


def _per_seed(value: Any) -> str:
    return ", ".join(f"{float(v):+.3f}" for v in str(value).split(";") if v) or "n/a"


def contrast_sentences(contrasts: pd.DataFrame, stat: str, model: str, *, alpha: float = 0.05,
                       unlearned: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """One sentence per best-layer contrast of the headline statistic, with its numbers; a contrast
    involving a group in ``unlearned`` (a trained run missed its learning bar) is marked as not
    testing its training regime."""
    rows = contrasts[(contrasts["analysis"] == "rsa") & (contrasts["statistic"] == stat)
                     & (contrasts["model_rdm"] == model) & (contrasts["layer"] == "best-layer-cv")]
    if rows.empty:
        return []
    parts = []
    for _, r in rows.iterrows():
        verdict = "higher" if r["difference"] > 0 else "lower"
        sig = (f"{r['a']} is {verdict}" if r["p_corrected"] < alpha else "no reliable difference")
        flag = [g for g in (r["a"], r["b"]) if g in unlearned]
        note = (f"; NOT a test of the training: {' and '.join(flag)} missed "
                f"{'its learning bar' if len(flag) == 1 else 'their learning bars'}" if flag else "")
        parts.append(f"{r['a']} − {r['b']} = {r['difference']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}], "
                     f"p = {r['p']:.3g} (Holm {r['p_corrected']:.3g}; {sig}; d_z {r['effect_size_dz']:.2f}; "
                     f"{int(r['n_seeds'])} seed{'s' if int(r['n_seeds']) != 1 else ''} × {int(r['n_units'])} "
                     f"instruments; per seed {_per_seed(r['per_seed'])}{note})")
    return [f"Contrasts of {statistic_label(stat, model)} at each network's best layer (chosen on held-out "
            "instruments): " + "; ".join(parts) + "."]


def probe_contrast_sentences(contrasts: pd.DataFrame, *, alpha: float = 0.05,
                             unlearned: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """One sentence per probe task: its best-layer contrasts (test units: pieces or stimulus groups)."""
    rows = contrasts[(contrasts["analysis"] == "probe") & (contrasts["layer"] == "best-layer-cv")]
    out = []
    for (task, stat), sel in rows.groupby(["task", "statistic"], sort=False):
        parts = []
        for _, r in sel.iterrows():
            verdict = (f"{r['a']} higher" if r["difference"] > 0 else f"{r['a']} lower") \
                if r["p_corrected"] < alpha else "no reliable difference"
            flag = [g for g in (r["a"], r["b"]) if g in unlearned]
            parts.append(f"{r['a']} − {r['b']} = {r['difference']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}], "
                         f"p = {r['p']:.3g} (Holm {r['p_corrected']:.3g}; {verdict}; {int(r['n_seeds'])} seed(s) × "
                         f"{int(r['n_units'])} test units" + (f"; {' and '.join(flag)} missed a learning bar" if flag
                                                              else "") + ")")
        out.append(f"Probe {task}, {stat} at the best layer: " + "; ".join(parts) + ".")
    return out


def _figure(rsa: pd.DataFrame, summary: pd.DataFrame, contrasts: pd.DataFrame | None, stat: str, model: str,
            path: Path, *, alpha: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = headline_rows(rsa, stat, model)
    group_col = "condition" if "condition" in rows else "network"
    cons = None
    if contrasts is not None:
        cons = contrasts[(contrasts["analysis"] == "rsa") & (contrasts["statistic"] == stat)
                         & (contrasts["model_rdm"] == model)
                         & (contrasts["layer"] == "best-layer-cv")]
        cons = cons if len(cons) else None
    ncols = 2 if cons is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(max(6.5, 0.55 * len(summary) + 3) + (4.2 if cons is not None else 0), 4.2),
                             squeeze=False, gridspec_kw={"width_ratios": [max(3, len(summary)), 4][:ncols]})
    ax = axes[0, 0]
    colours = {}
    palette = plt.get_cmap("tab10")
    for i, row in summary.iterrows():
        colour = colours.setdefault(row["regime"], palette(len(colours) % 10))
        sel = rows[rows[group_col] == row["group"]]
        ax.bar(i, row["value"], color=colour, alpha=0.35, width=0.7,
               label=row["regime"] if row["regime"] not in ax.get_legend_handles_labels()[1] else None)
        ax.vlines(i, row["min_over_seeds"], row["max_over_seeds"], color=colour, lw=3)
        xs = i + np.linspace(-0.18, 0.18, len(sel)) if len(sel) > 1 else np.array([i])
        for x, (_, r) in zip(xs, sel.iterrows()):
            ax.vlines(x, r["ci_low"], r["ci_high"], color="0.35", lw=0.8)
            ax.plot(x, r["value"], "o", ms=4.5, color=colour, mec="k", mew=0.5,
                    fillstyle="full" if bool(r["significant"]) else "none")
    ax.axhline(0, color="0.5", lw=0.7)
    ax.set_xticks(range(len(summary)), summary["group"], rotation=40, ha="right", fontsize=8)
    ax.set_ylabel(f"{statistic_label(stat, model)}\nbest layer (held-out CV)", fontsize=8)
    ax.set_title("Per network: points = seeds (filled: significant), thin lines = 95% CI", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    if cons is not None:
        cx = axes[0, 1]
        y = np.arange(len(cons))[::-1]
        for yi, (_, r) in zip(y, cons.iterrows()):
            sig = r["p_corrected"] < alpha
            cx.hlines(yi, r["ci_low"], r["ci_high"], color="C3" if sig else "0.4", lw=2)
            cx.plot(r["difference"], yi, "D", color="C3" if sig else "0.4")
            cx.text(r["ci_high"], yi + 0.15, f" p={r['p_corrected']:.2g}{' *' if sig else ''}", fontsize=7)
        cx.axvline(0, color="0.5", lw=0.7)
        cx.set_yticks(y, list(cons["contrast"]), fontsize=8)
        cx.set_xlabel("difference (A − B), 95% CI; * Holm p < alpha", fontsize=8)
        cx.set_title("Paired contrasts (instruments × seeds)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _read(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    t = pd.read_csv(path)
    return None if t.empty else t


def headline_section(ctx: ReportContext) -> Section | None:
    """The answer figure, the findings table and the contrasts (module docstring)."""
    rsa = _read(ctx.run_dir / "rsa" / "rsa.csv")
    if rsa is None:
        return None
    stat, model = headline_statistic(ctx.cfg)
    conditions = _read(ctx.run_dir / "train" / "conditions.csv")
    contrasts = _read(ctx.run_dir / "contrasts" / "contrasts.csv")
    summary = group_summary(rsa, ctx.cfg, conditions)
    if summary.empty:
        return None
    alpha = float((ctx.cfg.get("rsa") or {}).get("alpha", 0.05))
    sec = Section(f"The answer: {statistic_label(stat, model)} by training regime")
    fig = _figure(rsa, summary, contrasts, stat, model, ctx.figures_dir / "headline.png", alpha=alpha)
    sec.html.append(img_html(fig, f"{statistic_label(stat, model)} at each network's best layer, chosen on held-out "
                                  "instruments; grouped by training regime; right: paired contrasts"))
    sec.html.append(
        "<p class='meta'>Headline statistic: "
        f"<b>{html.escape(statistic_label(stat, model))}</b>, the rank correlation of each network's note "
        "dissimilarities with the chroma model RDM after the pitch-height model RDM is partialled out. It asks whether "
        "notes an octave apart are closer than pitch distance alone predicts, without assuming the dissimilarities are "
        "linear in the models; the regression betas (<code>beta_*</code> rows of <code>rsa/rsa.csv</code>) assume "
        "linearity, include the height × chroma interaction and can be significant where the partial rank statistic "
        "is not, so they are reported but not used for the answer. Value at the best layer is chosen on the other "
        "instruments (leave one out), so it is not inflated by the choice." + _partial_definition(stat) + "</p>")
    sec.html.append(table_html(summary))
    sec.md += ["| " + " | ".join(summary.columns) + " |", "|" + "---|" * len(summary.columns)]
    sec.md += ["| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |"
               for r in summary.itertuples(index=False)]
    if contrasts is not None:
        best = contrasts[contrasts["layer"] == "best-layer-cv"]
        cols = ["contrast", "analysis", "task", "statistic", "model_rdm", "layer_a", "layer_b", "mean_a", "mean_b", "difference", "ci_low",
                "ci_high", "p", "df", "p_corrected", "p_sign_flip", "effect_size_dz", "n_seeds", "n_units", "per_seed"]
        sec.html += ["<h3>Contrasts at the best layer</h3>", table_html(best[cols]),
                     "<p class='meta'>p and CI: two-sided t-test of the mean difference with instruments and seeds "
                     "as crossed random effects (Satterthwaite df; generalises over training runs, so few seeds "
                     "mean few df); Holm over the pairs of one statistic. p_sign_flip: exact sign-flip test over "
                     "instruments with these seeds held fixed. per_seed: mean difference per seed. Per-layer "
                     "contrasts: <code>contrasts/contrasts.csv</code>.</p>"]
    return sec


SECTIONS.register("headline", headline_section, help="the answer figure: headline statistic by training regime")
