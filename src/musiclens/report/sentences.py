"""Plain-language findings computed from result tables (never written by hand).

Every sentence is a function of the numbers: change the table and the sentence changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from musiclens.rsa.pipeline import partial_statistic, partial_statistics

__all__ = ["layer_ranges", "rsa_findings", "chroma_answer", "disagreement_sentence"]


def layer_ranges(layers: Sequence[str], order: Sequence[str]) -> str:
    """Compress layer names into runs of consecutive layers: ``"layer_04–layer_07, layer_09"``."""
    pos = {name: i for i, name in enumerate(order)}
    idx = sorted(pos[name] for name in layers if name in pos)
    if not idx:
        return ""
    runs: list[tuple[int, int]] = []
    start = prev = idx[0]
    for i in idx[1:]:
        if i == prev + 1:
            prev = i
            continue
        runs.append((start, prev))
        start = prev = i
    runs.append((start, prev))
    return ", ".join(order[a] if a == b else f"{order[a]}–{order[b]}" for a, b in runs)


def _label(stat: str, model: str) -> str:
    nice = {"pitch_height": "pitch height", "chroma": "chroma", "chroma_circular": "circular chroma",
            "log_frequency": "log-frequency height", "octave": "octave", "instrument": "instrument",
            "family": "family"}.get(model, model)
    if stat.startswith("partial-"):
        return f"partial {nice} {stat.removeprefix('partial-')}"
    return f"{nice} {stat}"


def rsa_findings(table: pd.DataFrame, *, method: str = "tau-a", layer_order: dict[str, list[str]] | None = None,
                 models: Sequence[str] = ("pitch_height", "chroma")) -> list[str]:
    """One sentence per (network, model RDM, statistic) for the plain and the partial statistic.

    Parameters
    ----------
    table
        The tidy RSA table (``network, layer, model_rdm, statistic, value, ..., significant``).
    method
        The comparison method whose rows are summarised (and its partial statistics,
        :func:`~musiclens.rsa.pipeline.partial_statistics`).
    layer_order
        ``{network: [layer names in network order]}``; default: order of appearance.
    models
        Model RDMs to describe, in this order.
    """
    out: list[str] = []
    for network, rows in table.groupby("network", sort=False):
        order = (layer_order or {}).get(str(network)) or list(dict.fromkeys(rows["layer"]))
        for model in models:
            for stat in (method, *partial_statistics(method)):
                sel = rows[(rows["model_rdm"] == model) & (rows["statistic"] == stat)]
                if sel.empty:
                    continue
                sig = sel[sel["significant"].astype(bool)]
                best = sel.loc[sel["value"].idxmax()]
                label = _label(stat, model)
                if sig.empty:
                    out.append(f"{network}: {label} is significant in no layer "
                               f"(largest {best['value']:.3f} at {best['layer']}).")
                else:
                    where = layer_ranges(list(sig["layer"]), order)
                    out.append(f"{network}: {label} is significant in {len(sig)} of {len(sel)} layers ({where}); "
                               f"peak {best['value']:.3f} at {best['layer']}.")
    return out


def chroma_answer(table: pd.DataFrame, *, method: str = "tau-a") -> str:
    """The first study's answer in one sentence: which networks show partial chroma, and where.

    Networks trained with several seeds (a ``condition`` column naming their group) are
    reported once per condition, with the number of seeds in which some layer is significant.
    """
    stat = partial_statistic(method)
    name = stat.removeprefix("partial-")
    rows = table[(table["model_rdm"] == "chroma") & (table["statistic"] == stat)]
    if rows.empty:
        return f"No partial chroma ({stat}) was computed, so the chroma question is not answered by this run."
    group_col = "condition" if "condition" in rows.columns else "network"
    with_chroma, without = [], []
    for group, grows in rows.groupby(group_col, sort=False):
        nets = list(dict.fromkeys(grows["network"]))
        sig_nets = [n for n in nets if grows[(grows["network"] == n)]["significant"].astype(bool).any()]
        if not sig_nets:
            without.append(str(group) if len(nets) == 1 else f"{group} (any of {len(nets)} seeds)")
            continue
        order = list(dict.fromkeys(grows["layer"]))
        where = layer_ranges(sorted(set(grows[grows["significant"].astype(bool)]["layer"])), order)
        if len(nets) == 1:
            with_chroma.append(str(group) if len(order) == 1 else f"{group} ({where})")
        else:
            with_chroma.append(f"{group} ({len(sig_nets)}/{len(nets)} seeds; {where})")
    parts = []
    if with_chroma:
        parts.append(f"partial chroma {name} (height partialled out) is significant in " + "; ".join(with_chroma))
    if without:
        parts.append(("and " if parts else f"partial chroma {name} is significant ") +
                     "in no layer of " + ", ".join(without))
    sentence = " ".join(parts)
    return sentence[0].upper() + sentence[1:] + "."


def disagreement_sentence(table: pd.DataFrame, *, method: str = "tau-a", model: str = "chroma") -> str:
    """Where the regression beta of ``model`` is significant in layers where the partial rank
    statistic is not: say so, and which one the answer uses."""
    part = table[(table["model_rdm"] == model) & (table["statistic"] == partial_statistic(method))]
    beta = table[(table["model_rdm"] == model) & (table["statistic"] == f"beta_{model}")]
    if part.empty or beta.empty:
        return ""
    key = ["network", "layer"]
    merged = part[key + ["significant"]].merge(beta[key + ["significant"]], on=key, suffixes=("_partial", "_beta"))
    only_beta = merged[merged["significant_beta"].astype(bool) & ~merged["significant_partial"].astype(bool)]
    if only_beta.empty:
        return ""
    nets = list(dict.fromkeys(only_beta["network"]))
    return (f"beta_{model} (standardised regression weight, with pitch height and their interaction) is significant "
            f"in {len(only_beta)} layer(s) of {len(nets)} network(s) where partial {model} {partial_statistic(method).removeprefix('partial-')} is not "
            f"(e.g. {', '.join(nets[:3])}); the answer uses the partial rank statistic, which does not assume linear "
            "dissimilarities (see the first figure's note).")
