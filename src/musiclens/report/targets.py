"""The report's measured-RDM section: which network/layer best explains the measured RDMs.

Reads ``RUN_DIR/targets/targets.csv`` and ``targets_pairwise.csv`` (written by the study step
``targets``); per target one sentence computed from the numbers
(:func:`musiclens.rsa.target_analysis.best_sentence`), the layer profiles against the
noise-ceiling band and the model-comparison figure, and each network's best layer in a table.
"""

from __future__ import annotations

import pandas as pd

from musiclens.plotting import file_safe
from musiclens.report.sections import SECTIONS, ReportContext, Section, img_html, table_html

__all__: list[str] = []


def _targets_section(ctx: ReportContext) -> Section | None:
    from musiclens.rsa.target_analysis import best_sentence, flexible_sentence

    folder = ctx.run_dir / "targets"
    path = folder / "targets.csv"
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    pairwise = pd.read_csv(folder / "targets_pairwise.csv")
    flex_path = folder / "targets_flexible.csv"
    flex = pd.read_csv(flex_path) if flex_path.is_file() else None
    sec = Section("Measured RDMs")
    sec.html.append("<p class='meta'>Every layer (and the listed model RDMs) as a fixed candidate RDM, compared with "
                    "each subject's measured RDM as rsatoolbox does (eval_fixed; noise ceiling over subjects; "
                    "bootstrap over subjects and stimuli; t-tests from the bootstrap variances, pairwise p-values "
                    "corrected over all pairs). Grey band: the noise ceiling.</p>")
    for name, rows in table.groupby("target", sort=False):
        sentence = best_sentence(rows, pairwise[pairwise["target"] == name])
        sec.answers.append(sentence)
        sec.findings.append(sentence)
        sec.md.append(f"- {sentence}")
        sec.html.append(f"<h3>{name}</h3><p>{sentence}</p>")
        if flex is not None and (flex["target"] == name).any():
            fs = flexible_sentence(flex[flex["target"] == name])
            if fs:
                sec.findings.append(fs)
                sec.md.append(f"- {fs}")
                sec.html.append(f"<p>{fs}</p>")
        for kind, alt in (("layers", "every layer against the noise-ceiling band"),
                          ("comparison", "best layer per network and model RDMs; lines: significant pairs")):
            fig = folder / f"targets_{file_safe(str(name))}_{kind}.png"
            if fig.is_file():
                sec.html.append(img_html(fig, f"{name}: {alt}"))
        nets = rows[rows["group"] != "model"]
        best = nets.loc[nets.groupby("group", sort=False)["value"].idxmax()] if len(nets) else nets
        shown = pd.concat([best, rows[rows["group"] == "model"]])[
            ["candidate", "value", "se", "ci_low", "ci_high", "p_zero", "p_noise_lower", "reaches_lower_bound",
             "noise_lower", "noise_upper"]].sort_values("value", ascending=False)
        sec.html.append(table_html(shown))
    sec.md.append("Full tables: `targets/targets.csv`, `targets/targets_pairwise.csv`"
                  + (", `targets/targets_flexible.csv`." if flex is not None else "."))
    return sec


SECTIONS.register("targets", _targets_section, help="networks and model RDMs against measured RDMs (noise ceiling, "
                                                    "best layer, pairwise tests)")
