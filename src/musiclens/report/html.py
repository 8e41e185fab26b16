"""The run report: one self-contained HTML page (figures embedded) plus Markdown and CSV.

:func:`build_report` reads only the saved results of a run directory, so ``musiclens report
RUN_DIR`` rebuilds the page at any time (e.g. after changing a figure style) without
recomputing anything.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from musiclens.errors import StoreError
from musiclens.fsutil import atomic_write_text
from musiclens.report.sentences import chroma_answer, rsa_findings

__all__ = ["build_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.answer{background:#f3f7ff;border-left:4px solid #3b6fd8;padding:.8em 1em;font-size:1.05em}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee;margin:.4em 0}
.meta{color:#666;font-size:.85em}code{background:#f4f4f4;padding:0 .2em}
"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/><figcaption class="meta">{html.escape(alt)}</figcaption></figure>'


def _table_html(df: pd.DataFrame, *, max_rows: int = 400) -> str:
    shown = df.head(max_rows)
    out = shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, na_rep="")
    if len(df) > max_rows:
        out += f'<p class="meta">{len(df) - max_rows} more rows in the CSV.</p>'
    return out


def _load_rsa(run_dir: Path) -> pd.DataFrame | None:
    path = run_dir / "rsa" / "rsa.csv"
    return pd.read_csv(path) if path.is_file() else None


def build_report(run_dir: str | Path) -> Path:
    """Write ``report.html`` and ``report.md`` in ``run_dir`` from its saved results.

    Returns the path of ``report.html``.

    Raises
    ------
    StoreError
        ``run_dir`` is not a musiclens run directory (no ``config.yaml``).
    """
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise StoreError(f"{run_dir} is not a musiclens run directory (no config.yaml); run `musiclens run` first")
    cfg: dict[str, Any] = yaml.safe_load(cfg_path.read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text()) if (run_dir / "manifest.json").is_file() else {}
    study = cfg.get("study", {})
    method = (cfg.get("rsa") or {}).get("method", "tau-a")
    rsa = _load_rsa(run_dir)
    findings: list[str] = []
    answer = ""
    if rsa is not None:
        main = rsa[~rsa["statistic"].str.endswith("-best-layer-cv")]
        findings = rsa_findings(main, method=method)
        answer = chroma_answer(main, method=method)

    title = html.escape(str(study.get("name", "musiclens run")))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{_CSS}</style></head><body>"]
    parts.append(f"<h1>musiclens — {title}</h1>")
    if study.get("question"):
        parts.append(f"<p><b>Question.</b> {html.escape(str(study['question']))}</p>")
    if answer:
        parts.append(f"<div class='answer'><b>Answer (computed from the results).</b> {html.escape(answer)}</div>")
    if findings:
        parts.append("<h2>Findings</h2><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in findings) + "</ul>")
        parts.append(f"<p class='meta'>Significance: corrected p &lt; {(cfg.get('rsa') or {}).get('alpha', 0.05)} "
                     f"({html.escape(str((cfg.get('rsa') or {}).get('correction', 'bonferroni')))} over layers × model "
                     "RDMs within each network and statistic). Partial statistics control each model RDM for the others "
                     "(chroma with pitch height partialled out).</p>")

    summary = run_dir / "summary.json"
    if summary.is_file():
        digest = json.loads(summary.read_text())
        parts.append("<h2>Stimuli</h2>")
        parts.append(f"<p>{digest['n_stimuli']} notes: {digest['n_instruments']} instruments "
                     f"({', '.join(f'{k}: {v}' for k, v in digest['instruments_per_family'].items())}), MIDI "
                     f"{digest['midi_range'][0]}–{digest['midi_range'][1]}, velocities {digest['velocities']}, "
                     f"{digest['duration_s']} s at {digest['sample_rate']} Hz. Content hash "
                     f"<code>{digest['content_hash'][:16]}</code>.</p>")
        if (run_dir / "stimuli.png").is_file():
            parts.append(_img(run_dir / "stimuli.png", "Stimuli: spectra of one note per family; level of every note"))

    if rsa is not None:
        parts.append("<h2>Representational similarity analysis</h2>")
        for net_dir in sorted(p for p in (run_dir / "rsa").iterdir() if p.is_dir()):
            figs = sorted(net_dir.glob("*.png"))
            if figs:
                parts.append(f"<h3>{html.escape(net_dir.name)}</h3>")
                parts.extend(_img(f, f"{net_dir.name}: {f.stem.replace('_', ' ')}") for f in figs)
        parts.append("<h3>Table</h3>")
        parts.append(_table_html(rsa))
        parts.append("<p class='meta'>Full table: <code>rsa/rsa.csv</code> and <code>rsa/rsa.parquet</code>.</p>")

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
    if answer:
        md += [f"**Answer (computed from the results).** {answer}", ""]
    if findings:
        md += ["## Findings", ""] + [f"- {s}" for s in findings] + [""]
    if rsa is not None:
        md += ["Full table: `rsa/rsa.csv`.", ""]
    atomic_write_text(run_dir / "report.md", "\n".join(md) + "\n")
    return out
