"""``musiclens train``: train an objective from a YAML config in a resumable run directory."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def _objective_help() -> str:
    from musiclens.train.objectives import OBJECTIVE_MODULES

    return "Objective: " + ", ".join(OBJECTIVE_MODULES) + " (or any name registered in musiclens.train.base.OBJECTIVES)."


def train_command(
    objective: str = typer.Argument(..., help=_objective_help()),
    config: Path = typer.Option(..., "--config", "-c", help="Training config (YAML): data, model, optim, trainer..."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (resumes from its checkpoints/last.ckpt)."),
    max_steps: int = typer.Option(None, "--max-steps", help="Override optim.max_steps."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run of a different config in --out."),
    no_resume: bool = typer.Option(False, "--no-resume", help="Start over even if --out holds a checkpoint."),
    set_: list[str] = typer.Option(None, "--set", help="Override a config value: section.key=value (YAML value); repeatable."),
) -> None:
    """Train OBJECTIVE as CONFIG says; prints the exported backbone (a musiclens checkpoint for `musiclens extract`)."""
    from musiclens.train.distributed import global_rank
    from musiclens.train.engine import train

    result = train(config, out=out, resume=not no_resume, overwrite=overwrite, overrides=list(set_ or []),
                   max_steps=max_steps, objective=objective)
    if global_rank() != 0:   # one rank of several a launcher started (torchrun, srun): rank 0 reports
        return
    state = "already finished" if result.already_finished else ("finished" if result.finished else "stopped")
    typer.echo(f"run directory: {result.run_dir.resolve()} ({state} at step {result.global_step})")
    if result.backbone is not None:
        typer.echo(f"backbone: {result.backbone.resolve()}")


def register(app: typer.Typer) -> None:
    """Add ``train`` to ``app``."""
    app.command("train", help="Train an objective (" + ", ".join(_names()) + ") in a resumable run directory; "
                "prints the trained backbone's path.")(train_command)


def _names() -> list[str]:
    from musiclens.train.objectives import OBJECTIVE_MODULES

    return list(OBJECTIVE_MODULES)
