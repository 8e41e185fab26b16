"""The report's pretrained-networks section: partial chroma by what each real network was trained for.

For every network of the study that is a built-in pretrained network (its ``model`` has a model
card, :mod:`musiclens.extract.cards`, and was trained on music or speech — not hand-crafted
features, not networks trained in the run), one table row: its training task and data, the
best layer of the partial chroma statistic (height partialled out; ``partial-tau-b`` for τ_a),
that value, and in how many layers it is significant (corrected as in the RSA table).  The
answer sentence counts networks with at least one significant layer per training domain:
"partial chroma is significant in k of n music-trained and j of m speech-trained pretrained
networks", naming the task groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from musiclens.report.sections import SECTIONS, ReportContext, Section, table_html

__all__ = ["pretrained_table", "pretrained_sentence"]


def pretrained_table(rsa: pd.DataFrame, cfg: Mapping[str, Any]) -> pd.DataFrame:
    """One row per pretrained network of the study (see the module docstring)."""
    from musiclens.extract.cards import CARDS
    from musiclens.rsa.pipeline import partial_statistic

    stat = partial_statistic(str((cfg.get("rsa") or {}).get("method", "tau-a")))
    rows = []
    for name, net in (cfg.get("networks") or {}).items():
        model = str((net or {}).get("model"))
        if net.get("trained") or net.get("randomize") or model not in CARDS:
            continue
        card = CARDS.get(model)
        if card.domain not in ("music", "speech"):
            continue
        sel = rsa[(rsa["network"] == name) & (rsa["model_rdm"] == "chroma") & (rsa["statistic"] == stat)]
        if sel.empty:
            continue
        best = sel.loc[sel["value"].idxmax()]
        rows.append({"network": name, "domain": card.domain, "trained for": card.task_group, "task": card.task,
                     "training data": card.training_data, "statistic": stat, "best layer": best["layer"],
                     "value": float(best["value"]), "significant layers": int(sel["significant"].astype(bool).sum()),
                     "layers": int(len(sel))})
    return pd.DataFrame(rows)


def pretrained_sentence(table: pd.DataFrame) -> str | None:
    """The answer sentence comparing music- and speech-trained pretrained networks, or None."""
    if table.empty:
        return None
    stat = str(table["statistic"].iloc[0])
    parts = []
    for domain in ("music", "speech"):
        sel = table[table["domain"] == domain]
        if sel.empty:
            continue
        sig = sel[sel["significant layers"] > 0]
        groups = ", ".join(f"{g} {int((s['significant layers'] > 0).sum())}/{len(s)}"
                           for g, s in sel.groupby("trained for", sort=False))
        parts.append(f"{len(sig)} of {len(sel)} {domain}-trained ({groups})")
    return (f"Among the pretrained networks, partial chroma ({stat}, height partialled out) is significant in "
            + " and ".join(parts) + " pretrained networks (a network counts when any layer is significant).")


def _pretrained_section(ctx: ReportContext) -> Section | None:
    path = ctx.run_dir / "rsa" / "rsa.csv"
    if not path.is_file():
        return None
    table = pretrained_table(pd.read_csv(path), ctx.cfg)
    sentence = pretrained_sentence(table)
    if sentence is None:
        return None
    sec = Section("Pretrained networks by training task")
    sec.answers.append(sentence)
    sec.findings.append(sentence)
    cols = ["network", "domain", "trained for", "best layer", "value", "significant layers", "layers"]
    sec.md += [f"- {sentence}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    sec.md += ["| " + " | ".join(f"{r[c]:.3f}" if c == "value" else str(r[c]) for c in cols) + " |"
               for _, r in table.iterrows()]
    sec.html.append(f"<p>{sentence}</p>")
    sec.html.append("<p class='meta'>Real networks whose weights ship in pip packages, grouped by what they were "
                    "trained for (model cards: <code>musiclens models</code>). Value: the partial chroma statistic "
                    "at its best layer; significant layers: corrected p below α, as in the RSA table.</p>")
    sec.html.append(table_html(table))
    return sec


SECTIONS.register("pretrained", _pretrained_section,
                  help="partial chroma of the real pretrained networks, grouped by training task and domain")
