"""The run report: one self-contained HTML page (figures embedded) plus Markdown and CSV.

:func:`build_report` reads only the saved results of a run directory, so ``musiclens report
RUN_DIR`` rebuilds the page at any time (e.g. after changing a figure style) without
recomputing anything.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import yaml

from musiclens.errors import ConfigError, StoreError
from musiclens.fsutil import atomic_write_text, output_kind
from musiclens.report import frames as _frames  # noqa: F401  (registers the attention and ssm sections)
from musiclens.report import headline as _headline  # noqa: F401  (registers the answer-figure section)
from musiclens.report import pretrained as _pretrained  # noqa: F401  (registers the pretrained-networks section)
from musiclens.report import probes as _probes  # noqa: F401  (registers the probe section)
from musiclens.report import targets as _targets  # noqa: F401  (registers the measured-RDM section)
from musiclens.report import training as _training  # noqa: F401  (registers the training section)
from musiclens.report.answers import answer_sentences
from musiclens.report.sections import SECTION_ORDER, SECTIONS, ReportContext

__all__ = ["build_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.answer{background:#f3f7ff;border-left:4px solid #3b6fd8;padding:.8em 1em;font-size:1.05em}
.wide{overflow-x:auto;max-width:100%}table{border-collapse:collapse;font-size:.82em;margin:.6em 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee;margin:.4em 0}
.meta{color:#666;font-size:.85em}code{background:#f4f4f4;padding:0 .2em}
"""


def build_report(run_dir: str | Path) -> Path:
    """Write ``report.html`` and ``report.md`` in ``run_dir`` from its saved results.

    Sections (:data:`musiclens.report.sections.SECTIONS`, in ``SECTION_ORDER``) each read their
    own results; their answer sentences open the page.  Returns the path of ``report.html``.

    Raises
    ------
    StoreError
        ``run_dir`` is not a musiclens run directory (no ``config.yaml``).
    """
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file() or output_kind(run_dir) != "run":   # never write into a folder of another kind
        raise StoreError(f"{run_dir} is not a musiclens run directory (a folder written by `musiclens run`, with "
                         "config.yaml); run `musiclens run` first or point at its run directory")
    try:
        cfg: dict[str, Any] = yaml.safe_load(cfg_path.read_text())
    except yaml.YAMLError as err:   # e.g. a !!python tag: never constructed
        raise ConfigError(f"{cfg_path} is not a plain YAML study config ({err}); it was changed after `musiclens run` "
                          "wrote it — restore it or run the study again") from err
    if not isinstance(cfg, dict):
        raise ConfigError(f"{cfg_path} does not hold a study config (a YAML mapping); run the study again")
    manifest = json.loads((run_dir / "manifest.json").read_text()) if (run_dir / "manifest.json").is_file() else {}
    study = cfg.get("study", {})
    ctx = ReportContext(run_dir=run_dir, cfg=cfg, manifest=manifest)
    sections = [s for s in (SECTIONS.get(name)(ctx) for name in SECTION_ORDER if name in SECTIONS) if s is not None]
    answers = answer_sentences(ctx) + [a for s in sections for a in s.answers if a]
    findings = [f for s in sections for f in s.findings if f]

    title = html.escape(str(study.get("name", "musiclens run")))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{_CSS}</style></head><body>"]
    parts.append(f"<h1>musiclens — {title}</h1>")
    if study.get("scale"):
        parts.append(f"<p class='meta'>scale: {html.escape(str(study['scale']))}</p>")
    if study.get("question"):
        parts.append(f"<p><b>Question.</b> {html.escape(str(study['question']))}</p>")
    if answers:
        parts.append("<div class='answer'><b>Answer (computed from the results).</b> "
                     + " ".join(html.escape(a) for a in answers) + "</div>")
    # the first section is the answer figure (when the run has one); the per-network findings follow it, folded
    lead = sections[:1] if sections and sections[0].title.startswith("The answer") else []
    for sec in lead:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        parts.extend(sec.html)
    if findings:
        parts.append(f"<h2>Findings</h2><details><summary>{len(findings)} "
                     "per-network findings, computed from the tables</summary><ul>"
                     + "".join(f"<li>{html.escape(s)}</li>" for s in findings) + "</ul></details>")
    for sec in sections[len(lead):]:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        parts.extend(sec.html)

    env = manifest.get("environment", {})
    timings = manifest.get("timings_s", {})
    parts.append("<h2>Provenance</h2>")
    parts.append(f"<p class='meta'>seed {study.get('seed')}; python {env.get('python')}; "
                 + ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v) + "</p>")
    if timings:
        parts.append("<p class='meta'>step times (s): " + ", ".join(f"{k} {v}" for k, v in timings.items()) + "</p>")
    parts.append("<details><summary>config.yaml</summary><pre>" + html.escape(cfg_path.read_text()) + "</pre></details>")
    parts.append("</body></html>")
    out = atomic_write_text(run_dir / "report.html", "\n".join(parts))

    md = [f"# musiclens — {study.get('name', 'run')}", ""]
    if study.get("question"):
        md += [f"**Question.** {study['question']}", ""]
    if answers:
        md += ["**Answer (computed from the results).** " + " ".join(answers), ""]
    if findings:
        md += ["## Findings", ""] + [f"- {s}" for s in findings] + [""]
    for sec in sections:
        if sec.md:
            md += [f"## {sec.title}", "", *sec.md, ""]
    atomic_write_text(run_dir / "report.md", "\n".join(md) + "\n")
    return out
