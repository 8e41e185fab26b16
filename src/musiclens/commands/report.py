"""``musiclens report RUN_DIR``: rebuild the report from a run directory's saved results."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def report_command(run_dir: Path = typer.Argument(..., help="A run directory written by `musiclens run`.")) -> None:
    """Rebuild report.html and report.md from the saved results (nothing is recomputed)."""
    from musiclens.report.html import build_report

    typer.echo(f"report: {build_report(run_dir).resolve()}")


def register(app: typer.Typer) -> None:
    """Add ``report`` to ``app``."""
    app.command("report")(report_command)
