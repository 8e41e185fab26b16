"""The report's probe section: layer profiles per task and sentences computed from ``probe/probe.csv``.

Sentences (all from the numbers):

- per task, networks ranked by their best layer's primary test score, with the layer, the
  bootstrap CI and chance; whether the leader's CI excludes the runner-up's score;
- per network with a class token, which pooling of global tasks wins (class token, mean of
  sequence tokens, or their average: the ViT-1D comparison).
"""

from __future__ import annotations

import pandas as pd

from musiclens.report.sections import SECTIONS, ReportContext, Section, network_figures, table_html

__all__ = ["best_scores", "ranking_sentences", "pooling_sentences"]


def best_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Best single layer per (network, task, pooling) on the primary test metric, plus the weighted sum."""
    t = table[(table["split"] == "test") & table["primary"].astype(bool)]
    single = t[t["layer"] != "weighted_sum"]
    idx = single.groupby(["network", "task", "pooling"], sort=False)["value"].idxmax()
    best = single.loc[idx].copy()
    ws = t[t["layer"] == "weighted_sum"][["network", "task", "pooling", "value"]].rename(
        columns={"value": "weighted_sum"})
    return best.merge(ws, on=["network", "task", "pooling"], how="left")


def ranking_sentences(table: pd.DataFrame) -> list[str]:
    """Per task: networks ranked by best-layer score (best pooling each)."""
    best = best_scores(table)
    out = []
    for task, rows in best.groupby("task", sort=False):
        per_net = rows.loc[rows.groupby("network", sort=False)["value"].idxmax()].sort_values("value", ascending=False)
        lead = per_net.iloc[0]
        items = [f"{r['network']} {r['value']:.3f} ({r['layer']})" for _, r in per_net.iterrows()]
        s = (f"{task} ({lead['metric']}, test; chance {lead['chance']:.3f}): " + ", ".join(items) + ".")
        if len(per_net) > 1:
            second = per_net.iloc[1]
            clear = lead["ci_low"] > second["value"]
            s += (f" {lead['network']} leads; its 95% CI [{lead['ci_low']:.3f}, {lead['ci_high']:.3f}] "
                  + ("excludes" if clear else "includes") + f" {second['network']}'s score.")
        elif lead["ci_low"] > lead["chance"]:
            s += f" Above chance (CI [{lead['ci_low']:.3f}, {lead['ci_high']:.3f}])."
        out.append(s)
    return out


def pooling_sentences(table: pd.DataFrame) -> list[str]:
    """Per network with several global poolings: on how many tasks each pooling wins."""
    best = best_scores(table)
    out = []
    for network, rows in best.groupby("network", sort=False):
        pools = [p for p in rows["pooling"].unique() if p != "frames"]
        if len(pools) < 2:
            continue
        glob = rows[rows["pooling"].isin(pools)]
        winners = glob.loc[glob.groupby("task", sort=False)["value"].idxmax()]
        counts = winners["pooling"].value_counts()
        n = len(winners)
        parts = [f"'{p}' on {int(counts.get(p, 0))}" for p in pools]
        out.append(f"{network}, global tasks: the best pooling is " + ", ".join(parts) + f" of {n} tasks.")
    return out


def _probe_section(ctx: ReportContext) -> Section | None:
    path = ctx.run_dir / "probe" / "probe.csv"
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    if table.empty:
        return None
    sec = Section("Probes")
    sents = ranking_sentences(table) + pooling_sentences(table)
    sec.findings += sents
    sec.md += [f"- {s}" for s in sents]
    sec.html.append("<p class='meta'>Frozen features, a probe per layer plus a softmax-weighted layer sum; splits "
                    "grouped so no instrument (notes) or piece (corpus) is on both sides; learning rate and epoch "
                    "chosen on validation; test scores with bootstrap 95% CIs; chance by permutation.</p>")
    sec.html.append(table_html(best_scores(table)))
    sec.html += network_figures(ctx.run_dir / "probe", pattern="**/*.png")
    sec.md.append("Full table: `probe/probe.csv`.")
    return sec


SECTIONS.register("probes", _probe_section, help="probe layer profiles and task rankings")
