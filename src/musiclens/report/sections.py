"""Report sections: each turns one kind of saved result into HTML, Markdown and answer sentences.

A section is a function ``fn(ctx) -> Section | None`` registered in :data:`SECTIONS`; it reads
only files of the run directory, so a report can be rebuilt at any time.  Sentences are
computed from the numbers (:mod:`musiclens.report.sentences`), never written by hand.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from musiclens.registry import Registry

__all__ = ["ReportContext", "Section", "SECTIONS", "SECTION_ORDER", "img_html", "table_html", "network_figures",
           "summary_section"]


@dataclass
class ReportContext:
    """What sections read: the run directory, its resolved study config and manifest."""

    run_dir: Path
    cfg: dict[str, Any]
    manifest: dict[str, Any]

    @property
    def figures_dir(self) -> Path:
        """Where sections write figures they draw at report time (``RUN_DIR/report_figures``)."""
        d = self.run_dir / "report_figures"
        d.mkdir(exist_ok=True)
        return d


@dataclass
class Section:
    """One part of the report."""

    title: str
    html: list[str] = field(default_factory=list)
    md: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)   # sentences for the answer box at the top
    findings: list[str] = field(default_factory=list)  # sentences for the findings list


SectionFn = Callable[[ReportContext], "Section | None"]
#: Report sections by name.
SECTIONS: Registry[SectionFn] = Registry("report section")
#: Order of sections in the report.
SECTION_ORDER: list[str] = ["headline", "stimuli", "training", "rsa", "pretrained", "targets", "probes", "attention",
                             "ssm", "omitted"]


def img_html(path: Path, alt: str) -> str:
    """A PNG embedded as a data URI (the report is one self-contained file)."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'
            f'<figcaption class="meta">{html.escape(alt)}</figcaption></figure>')


def table_html(df: pd.DataFrame, *, max_rows: int = 400) -> str:
    """A table as HTML (first ``max_rows`` rows; the rest is in the CSV)."""
    shown = df.head(max_rows)
    out = ("<div class='wide'>" + shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, na_rep="")
           + "</div>")
    if len(df) > max_rows:
        out += f'<p class="meta">{len(df) - max_rows} more rows in the CSV.</p>'
    return out


def network_figures(root: Path, *, pattern: str = "*.png") -> list[str]:
    """HTML for each network folder under ``root``: a heading and its figures (``pattern``)."""
    out: list[str] = []
    if not root.is_dir():
        return out
    for net_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        figs = sorted(net_dir.glob(pattern))
        if figs:
            out.append(f"<h3>{html.escape(net_dir.name)}</h3>")
            out.extend(img_html(f, f"{net_dir.name}: {_figure_label(f, net_dir)}") for f in figs)
    return out


def _figure_label(path: Path, root: Path) -> str:
    """``"probe profile pitch (notes-cls)"``: the file's stem, plus its sub-folders below the network's."""
    label = path.stem.replace("_", " ")
    parts = [p for p in path.relative_to(root).parent.parts if p != "figures"]
    return f"{label} ({'/'.join(parts)})" if parts else label


def summary_section(ctx: ReportContext, *, folder: str, table: str, title: str, note: str,
                    sentences: Callable[[pd.DataFrame], list[str]], pattern: str = "*.png") -> Section | None:
    """A section over ``RUN_DIR/folder/table`` (CSV): computed sentences, a note, per-network figures, the table."""
    path = ctx.run_dir / folder / table
    if not path.is_file():
        return None
    summary = pd.read_csv(path)
    if summary.empty:
        return None
    sec = Section(title)
    sents = sentences(summary)
    sec.findings += sents
    sec.md += [f"- {s}" for s in sents]
    sec.html.append(f"<p class='meta'>{html.escape(note)}</p>")
    sec.html += network_figures(ctx.run_dir / folder, pattern=pattern)
    sec.html.append(table_html(summary))
    return sec


def _stimuli_section(ctx: ReportContext) -> Section | None:
    summary = ctx.run_dir / "summary.json"
    if not summary.is_file():
        return None
    d = json.loads(summary.read_text())
    text = (f"{d['n_stimuli']} notes: {d['n_instruments']} instruments "
            f"({', '.join(f'{k}: {v}' for k, v in d['instruments_per_family'].items())}), MIDI "
            f"{d['midi_range'][0]}–{d['midi_range'][1]}, velocities {d['velocities']}, "
            f"{d['duration_s']} s at {d['sample_rate']} Hz. Content hash <code>{d['content_hash'][:16]}</code>.")
    sec = Section("Stimuli", html=[f"<p>{text}</p>"], md=[text.replace("<code>", "`").replace("</code>", "`")])
    if (ctx.run_dir / "stimuli.png").is_file():
        sec.html.append(img_html(ctx.run_dir / "stimuli.png", "Stimuli: spectra of one note per family; level of every note"))
    return sec


def _rsa_section(ctx: ReportContext) -> Section | None:
    from musiclens.report.sentences import rsa_findings

    path = ctx.run_dir / "rsa" / "rsa.csv"
    if not path.is_file():
        return None
    rsa = pd.read_csv(path)
    cfg = ctx.cfg.get("rsa") or {}
    method = cfg.get("method", "tau-a")
    main = rsa[~rsa["statistic"].str.endswith("-best-layer-cv")]
    sec = Section("Representational similarity analysis")
    sec.findings.extend(rsa_findings(main, method=method))
    sec.html.append(f"<p class='meta'>Significance: corrected p &lt; {cfg.get('alpha', 0.05)} "
                    f"({html.escape(str(cfg.get('correction', 'bonferroni')))} over layers × model RDMs within each "
                    "network and statistic). Partial statistics control each model RDM for the others (chroma with "
                    "pitch height partialled out)." + (
                        " With τ_a two partial statistics are reported: <code>partial-tau-b</code>, Kendall's partial "
                        "τ τ_{dc·h} = (τ_dc − τ_dh τ_ch) / √((1 − τ_dh²)(1 − τ_ch²)) computed from τ_b = "
                        "τ_a / √(self_x self_y) coefficients (self: an RDM's fraction of untied pairs), and "
                        "<code>partial-tau-a</code>, the same formula on τ_a coefficients (textbook partial τ_a); "
                        "each has its own permutation p from the same permutations: identical when the network RDM "
                        "and the partialled-out model RDMs have no ties, otherwise (tied pitch height) close but not "
                        "identical." if method == "tau-a" else "")
                    + " Shaded bands: noise ceilings (instruments as subjects).</p>")
    sec.html += network_figures(ctx.run_dir / "rsa")
    sec.html += ["<h3>Table</h3>", table_html(rsa),
                 "<p class='meta'>Full table: <code>rsa/rsa.csv</code> and <code>rsa/rsa.parquet</code>.</p>"]
    sec.md.append("Full table: `rsa/rsa.csv`.")
    return sec


SECTIONS.register("stimuli", _stimuli_section, help="the stimulus set: counts, ranges, figure")
SECTIONS.register("rsa", _rsa_section, help="RSA layer profiles, RDMs, table; the chroma answer")


def omissions(steps: dict[str, Any]) -> list[str]:
    """One sentence per thing a step left out (from ``steps.json`` records): RSA layers whose
    distances are undefined, SSM networks that could not be analysed."""
    out = []
    for network, layers in ((steps.get("rsa") or {}).get("skipped_layers") or {}).items():
        out.append(f"RSA left out {len(layers)} layer(s) of {network} ({', '.join(map(str, layers))}): some stimulus "
                   "patterns there are constant or zero, so their distances are undefined.")
    for network, reason in ((steps.get("ssm") or {}).get("skipped_networks") or {}).items():
        out.append(f"The SSM analysis left out {network}: {reason}")
    return out


def _omitted_section(ctx: ReportContext) -> Section | None:
    steps = ctx.manifest.get("steps") or {}
    if not steps and (ctx.run_dir / "steps.json").is_file():
        steps = json.loads((ctx.run_dir / "steps.json").read_text())
    lines = omissions(steps)
    if not lines:
        return None
    sec = Section("Left out of the analysis")
    sec.html.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>")
    sec.md += [f"- {line}" for line in lines]
    sec.findings += lines
    return sec


SECTIONS.register("omitted", _omitted_section, help="what the steps left out (RSA layers, SSM networks) and why")
