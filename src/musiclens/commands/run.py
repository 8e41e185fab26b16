"""``musiclens run``: run a study (the embedded default when none is given)."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def run_command(
    study: str = typer.Argument("default", help="Study YAML file, or the name of an embedded study."),
    out: Path = typer.Option(Path("runs/default"), "--out", "-o", help="Run directory (resumable)."),
) -> None:
    """Run a study end to end in a resumable run directory; prints where the results are."""
    from musiclens.study import run_study

    run_dir = run_study(study, out=out)
    typer.echo(f"run directory: {run_dir.resolve()}")
    for name in ("report.html", "summary.json", "summary.csv", "stimuli.png"):
        if (run_dir / name).exists():
            typer.echo(f"  {name}: {(run_dir / name).resolve()}")


def register(app: typer.Typer) -> None:
    """Add ``run`` to ``app``."""
    app.command("run")(run_command)
