"""Plain-language findings computed from result tables (never written by hand).

Every sentence is a function of the numbers: change the table and the sentence changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

__all__ = ["layer_ranges", "rsa_findings", "chroma_answer"]


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
        The comparison method whose rows are summarised (and ``partial-<method>``).
    layer_order
        ``{network: [layer names in network order]}``; default: order of appearance.
    models
        Model RDMs to describe, in this order.
    """
    out: list[str] = []
    for network, rows in table.groupby("network", sort=False):
        order = (layer_order or {}).get(str(network)) or list(dict.fromkeys(rows["layer"]))
        for model in models:
            for stat in (method, f"partial-{method}"):
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
    """The first study's answer in one sentence: which networks show partial chroma, and where."""
    stat = f"partial-{method}"
    rows = table[(table["model_rdm"] == "chroma") & (table["statistic"] == stat)]
    if rows.empty:
        return f"No partial chroma ({stat}) was computed, so the chroma question is not answered by this run."
    with_chroma, without = [], []
    for network, sel in rows.groupby("network", sort=False):
        sig = sel[sel["significant"].astype(bool)]
        if sig.empty:
            without.append(str(network))
        else:
            order = list(dict.fromkeys(sel["layer"]))
            where = layer_ranges(list(sig["layer"]), order)
            with_chroma.append(str(network) if len(order) == 1 else f"{network} ({where})")
    parts = []
    if with_chroma:
        parts.append(f"partial chroma {method} (height partialled out) is significant in " + "; ".join(with_chroma))
    if without:
        parts.append(("and " if parts else f"partial chroma {method} is significant ") +
                     "in no layer of " + ", ".join(without))
    sentence = " ".join(parts)
    return sentence[0].upper() + sentence[1:] + "."
