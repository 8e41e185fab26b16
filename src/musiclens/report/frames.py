"""Report sections for the frame-level analyses: attention-onset evidence and layer SSMs.

Sentences are computed from ``RUN_DIR/attention/attention_summary.csv`` and
``RUN_DIR/ssm/ssm_summary.csv`` (means over clips), so they change when the numbers do.
"""

from __future__ import annotations

import pandas as pd

from musiclens.report.sections import SECTIONS, ReportContext, Section, summary_section, table_html

__all__ = ["attention_sentences", "ssm_sentences"]

_REF_NAMES = {"chroma": "chroma (harmony)", "mfcc": "MFCC (timbre)", "onset_strength": "onset strength (rhythm)",
              "tempogram": "tempogram (rhythm)", "same_chord": "the chord labels", "same_beat_position":
              "beat positions"}


def attention_sentences(summary: pd.DataFrame) -> list[str]:
    """Per network: the layer and recipe whose attention curve best marks onsets, against spectral flux."""
    out = []
    for network, rows in summary.groupby("network", sort=False):
        flux = rows[rows["recipe"] == "spectral_flux"]
        att = rows[(rows["recipe"] != "spectral_flux") & (rows["head"].astype(str) == "mean")]
        if att.empty:
            continue
        best = att.loc[att["f_measure"].idxmax()]
        per_layer = att.groupby("layer", sort=False)["f_measure"].max()
        s = (f"{network}: onsets are most visible in the attention of {best['layer']} (recipe '{best['recipe']}', "
             f"onset F = {best['f_measure']:.2f}, mean over {int(best['n_clips'])} clips)")
        if not flux.empty:
            f = float(flux["f_measure"].iloc[0])
            s += f"; the spectral-flux baseline reaches F = {f:.2f}"
            s += " (attention beats it)" if best["f_measure"] > f else ""
        s += f"; best F per layer ranges from {per_layer.min():.2f} ({per_layer.idxmin()}) to {per_layer.max():.2f}."
        out.append(s)
    return out


def ssm_sentences(summary: pd.DataFrame, *, method: str = "pearson") -> list[str]:
    """Per network: which layer's SSM best matches each reference, and whether the layers differ."""
    out = []
    rows_all = summary[summary["method"] == method]
    for network, rows in rows_all.groupby("network", sort=False):
        bests = []
        for ref, r in rows.groupby("reference", sort=False):
            if r["value"].notna().any():
                b = r.loc[r["value"].idxmax()]
                bests.append((str(ref), str(b["layer"]), float(b["value"])))
        if not bests:
            continue
        parts = [f"{_REF_NAMES.get(ref, ref)} at {layer} (r = {v:.2f})" for ref, layer, v in bests]
        distinct = len({layer for _, layer, _ in bests})
        verdict = (f"the best-matching layers differ ({distinct} distinct layers for {len(bests)} references)"
                   if distinct > 1 else "one layer matches every reference best")
        out.append(f"{network}: layer SSMs match " + "; ".join(parts) + f" — {verdict}.")
    return out


def _attention_section(ctx: ReportContext) -> Section | None:
    return summary_section(
        ctx, folder="attention", table="attention_summary.csv", title="Attention maps and onsets",
        sentences=attention_sentences,
        note="Onset-evidence curves from head-averaged attention maps (recipes: attention received per token, the "
             "class token's row, change between consecutive rows), peak-picked and scored with mir_eval's onset "
             "F-measure (±50 ms) against the true note onsets; the spectral-flux onset envelope is the baseline.")


def _ssm_section(ctx: ReportContext) -> Section | None:
    sec = summary_section(
        ctx, folder="ssm", table="ssm_summary.csv", title="Self-similarity matrices", sentences=ssm_sentences,
        note="Cosine SSMs of each layer's frame tokens, correlated (upper triangle, Pearson) with reference SSMs from "
             "hand-crafted features and from the labels; mean over clips. Foote novelty of the layer SSMs is scored "
             "against chord changes.")
    nov = ctx.run_dir / "ssm" / "ssm_novelty_summary.csv"
    if sec is not None and nov.is_file():
        sec.html += ["<h3>Chord-change novelty</h3>", table_html(pd.read_csv(nov))]
    return sec


SECTIONS.register("attention", _attention_section, help="attention maps: onset evidence per layer")
SECTIONS.register("ssm", _ssm_section, help="layer SSMs vs reference SSMs; chord-change novelty")
