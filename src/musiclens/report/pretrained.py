"""The report's pretrained-networks section: partial chroma by what each real network was trained for.

For every network of the study that is a built-in pretrained network (its ``model`` has a model
card, :mod:`musiclens.extract.cards`, and was trained on music or speech — not hand-crafted
features, not networks trained in the run), one table row: its training task and data, the
best layer of the partial chroma statistic (height partialled out; ``partial-tau-b`` for τ_a),
that value, and in how many layers it is significant (corrected as in the RSA table) — all
layers, and *learned* layers only: a network's input representation (the spectrogram it computes
before any trained weight, ``ModelCard.input_layers``) carries the chroma of the sound itself,
not of the training.  The answer sentence counts, per training domain, the networks with a
significant learned layer: "partial chroma is significant in a learned layer of k of n
music-trained and j of m speech-trained pretrained networks", naming the task groups and the
networks where it is significant only in the input representation.
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
        sig = sel["significant"].astype(bool)
        learned = ~sel["layer"].isin(card.input_layers)
        best_learned = sel[learned].loc[sel[learned]["value"].idxmax()] if learned.any() else None
        rows.append({"network": name, "domain": card.domain, "trained for": card.task_group, "task": card.task,
                     "training data": card.training_data, "statistic": stat, "best layer": best["layer"],
                     "value": float(best["value"]),
                     "best learned layer": "" if best_learned is None else best_learned["layer"],
                     "learned value": float("nan") if best_learned is None else float(best_learned["value"]),
                     "significant layers": int(sig.sum()), "significant learned layers": int((sig & learned).sum()),
                     "layers": int(len(sel)), "input layers": ", ".join(card.input_layers)})
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
        learned = sel["significant learned layers"] > 0
        groups = ", ".join(f"{g} {int((s['significant learned layers'] > 0).sum())}/{len(s)}"
                           for g, s in sel.groupby("trained for", sort=False))
        parts.append(f"{int(learned.sum())} of {len(sel)} {domain}-trained ({groups})")
    text = (f"Among the pretrained networks, partial chroma ({stat}, height partialled out) is significant in a "
            "learned layer of " + " and ".join(parts) + " pretrained networks")
    input_only = table[(table["significant layers"] > 0) & (table["significant learned layers"] == 0)]
    if len(input_only):
        text += ("; in " + ", ".join(f"{r['network']} ({r['domain']}-trained)" for _, r in input_only.iterrows())
                 + " only the input representation (" + ", ".join(sorted(set(input_only["input layers"])))
                 + ") shows it")
    return text + "."


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
    cols = ["network", "domain", "trained for", "best learned layer", "learned value", "significant learned layers",
            "significant layers", "layers"]
    sec.md += [f"- {sentence}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    sec.md += ["| " + " | ".join(f"{r[c]:.3f}" if c == "learned value" else str(r[c]) for c in cols) + " |"
               for _, r in table.iterrows()]
    sec.html.append(f"<p>{sentence}</p>")
    sec.html.append("<p class='meta'>Real networks whose weights ship in pip packages, grouped by what they were "
                    "trained for (model cards: <code>musiclens models</code>). Values: the partial chroma statistic "
                    "at the best layer and at the best learned layer (past the input spectrogram the network "
                    "computes before any trained weight); significant layers: corrected p below α, as in the RSA "
                    "table.</p>")
    sec.html.append(table_html(table))
    return sec


SECTIONS.register("pretrained", _pretrained_section,
                  help="partial chroma of the real pretrained networks, grouped by training task and domain")
