"""``musiclens run``: run a study (the embedded default when none is given)."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def run_command(
    study: str = typer.Argument("chroma-emergence", help="Study YAML file, or the name of an embedded study: "
                                "chroma-emergence (the default), vit1d-emergence, mert-teachers, chroma-baselines."),
    out: Path = typer.Option(Path("runs/default"), "--out", "-o", help="Run directory (resumable)."),
    scale: str = typer.Option(None, "--scale", help="A scale overlay of the study: quick (the default, CPU "
                              "minutes), standard (CPU, <= 1 h; chroma-emergence adds the data2vec arm), full "
                              "(GPU-sized) or tiny (the tests'); see the study file's 'scales' section."),
    list_steps: bool = typer.Option(False, "--list-steps", help="List the available study steps and exit."),
) -> None:
    """Run a study end to end in a resumable run directory; prints where the report is.

    Finished steps are skipped when the same command runs again, so an interrupted run
    continues where it stopped and gives the same numbers.
    """
    from musiclens.study import STEPS, run_study

    if list_steps:
        for name, text in STEPS.describe().items():
            typer.echo(f"{name:<12} {text}")
        raise typer.Exit()
    run_dir = run_study(study, out=out, scale=scale)
    typer.echo(f"run directory: {run_dir.resolve()}")
    for name in ("report.html", "report.md", "summary.csv"):
        if (run_dir / name).exists():
            typer.echo(f"  {name}: {(run_dir / name).resolve()}")
    md = run_dir / "report.md"
    if md.is_file():  # the answer computed from the results, as the report states it
        answer = next((line for line in md.read_text().splitlines() if line.startswith("**Answer")), "")
        if answer:
            typer.echo("\n" + answer.replace("**", ""))


def register(app: typer.Typer) -> None:
    """Add ``run`` to ``app``."""
    app.command("run")(run_command)
