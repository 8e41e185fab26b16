"""The benchmark's report: the table beside MARBLE's published MERT numbers, as Markdown and HTML.

Cells read ``value ± std over seeds [bootstrap CI]`` (x100).  The published rows are MARBLE
(Yuan et al. 2023), constrained track (PAPERS.md §4.5), restricted to the columns of this run;
their average is recomputed over the same tasks so that both averages cover the same tasks.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from musiclens.benchmark.tasks import PUBLISHED, PUBLISHED_SOURCE, marble_average

__all__ = ["report_rows", "render_markdown", "render_html"]


def _fmt(v: Any, digits: int = 1) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "" if v is None else str(v)
    return "–" if not np.isfinite(f) else f"{f:.{digits}f}"


def report_rows(scores: pd.DataFrame, table: pd.DataFrame, *, average_metrics: Mapping[str, Sequence[str]]
                ) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of the report table: this run's models, then the published MERT rows."""
    columns = [c for c in table.columns if c not in ("model", "average")]
    header = ["model", *columns, "average"]
    rows = []
    for _, t in table.iterrows():
        cells = [str(t["model"])]
        for c in columns:
            task, metric = c.split("/", 1)
            r = scores[(scores["model"] == t["model"]) & (scores["task"] == task) & (scores["metric"] == metric)]
            if r.empty:
                cells.append("")
                continue
            r = r.iloc[0]
            txt = _fmt(100 * r["value"])
            if np.isfinite(float(r["std_seeds"])):
                txt += f" ± {_fmt(100 * r['std_seeds'])}"
            if np.isfinite(float(r["ci_low"])):
                txt += f" [{_fmt(100 * r['ci_low'])}, {_fmt(100 * r['ci_high'])}]"
            cells.append(txt)
        cells.append(_fmt(t["average"]))
        rows.append(cells)
    for name, pub in PUBLISHED.items():
        used = {c: pub[c] for c in columns if c in pub and c.split("/", 1)[1] in average_metrics.get(c.split("/")[0], ())}
        rows.append([f"{name} (published)", *[_fmt(pub.get(c, float("nan"))) for c in columns],
                     _fmt(marble_average(used))])
    return header, rows


def _details(scores: pd.DataFrame) -> list[str]:
    lines = []
    for _, r in scores.iterrows():
        lines.append(f"- {r['model']} · {r['task']} · {r['metric']}: chosen layer(s) {r['layers']}, lr {r['lrs']}; "
                     f"validation {_fmt(100 * float(r['val_score']), 2)}; n = {r['n_train']}/{r['n_val']}/{r['n_test']} "
                     "(train/valid/test)")
    return lines


def render_markdown(scores: pd.DataFrame, table: pd.DataFrame, *, config: Mapping[str, Any],
                    average_metrics: Mapping[str, Sequence[str]]) -> str:
    """The report as Markdown."""
    header, rows = report_rows(scores, table, average_metrics=average_metrics)
    out = ["# musiclens benchmark: MARBLE constrained track", "",
           f"Seeds {config.get('seeds')}; learning rates {config.get('settings', {}).get('lrs')}; layers "
           f"{config.get('layers') or 'all'} plus the weighted sum; head: one hidden layer of 512 units, dropout 0.2.",
           "", "Scores x100: mean over probe seeds ± standard deviation over seeds [95% bootstrap interval over test "
           "items].", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    out += ["", f"Published rows: {PUBLISHED_SOURCE}. The averages in this table are MARBLE's average (mean over "
            "tasks of each task's reported metrics) over the tasks of this run only; they match the published "
            "averages (63.3 / 64.2) only when all 14 tasks run.", "",
            "MARBLE's own numbers cannot be reproduced exactly (framework, GPU and split differences; "
            "a43992899/MARBLE#23): compare models run here, under the same protocol, first.", "", "## Choices", ""]
    out += _details(scores)
    return "\n".join(out) + "\n"


def render_html(scores: pd.DataFrame, table: pd.DataFrame, *, config: Mapping[str, Any],
                average_metrics: Mapping[str, Sequence[str]]) -> str:
    """The report as a small self-contained HTML page."""
    header, rows = report_rows(scores, table, average_metrics=average_metrics)
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    details = "".join(f"<li>{html.escape(line[2:])}</li>" for line in _details(scores))
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>musiclens benchmark</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #bbb;"
        "padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}</style></head><body>"
        "<h1>musiclens benchmark: MARBLE constrained track</h1>"
        f"<p>Seeds {html.escape(str(config.get('seeds')))}; learning rates "
        f"{html.escape(str(config.get('settings', {}).get('lrs')))}. Scores x100: mean over probe seeds ± standard "
        "deviation over seeds [95% bootstrap interval over test items].</p>"
        f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"
        f"<p>Published rows: {html.escape(PUBLISHED_SOURCE)}. Averages are MARBLE's average over the tasks of this "
        "run only.</p><h2>Choices</h2><ul>" + details + "</ul></body></html>\n"
    )
