"""``musiclens probe``: train probes per layer on extracted activations (wraps :func:`musiclens.probe.probe_to_folder`)."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def _task_help() -> str:
    from musiclens.probe.tasks import describe_tasks

    return describe_tasks()


def _floats(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"--lr expects comma-separated numbers, got {text!r}") from None


def probe_command(
    activations: Path = typer.Option(..., "--activations", "-a",
                                     help="Feature-store folder (extract with --pooling none for frame tasks and any "
                                          "pooling) or .npz (one key per layer; optional stimulus_id, frame_times)."),
    stimuli: Path = typer.Option(..., "--stimuli", "-s",
                                 help="StimulusSet folder the activations were extracted from, or a corpus folder."),
    task: str = typer.Option(..., "--task", "-t", help="Comma-separated task names (see the list below)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for probe.csv/.parquet, figures and manifest.json."),
    probe: str = typer.Option("linear", "--probe", help="Probe head: linear or mlp (512 units, dropout 0.2)."),
    pooling: str = typer.Option("mean", "--pooling", help="Global tasks: mean, cls, cls+mean, max, first, last."),
    layers: str = typer.Option("all", "--layers", help="Layers: names, indices or ranges, comma-separated."),
    weighted_sum: bool = typer.Option(True, "--weighted-sum/--no-weighted-sum",
                                      help="Also train the softmax-weighted layer sum probe."),
    lr: str = typer.Option(None, "--lr", help="Learning-rate grid, comma-separated (default linear 1e-3,5e-3; mlp 5e-4,1e-3)."),
    max_epochs: int = typer.Option(100, "--max-epochs", help="Epochs at most (early stopping, patience --patience)."),
    patience: int = typer.Option(10, "--patience", help="Epochs without a better validation score before stopping."),
    batch_size: int = typer.Option(64, "--batch-size", help="Minibatch size."),
    group: str = typer.Option(None, "--group", help="Split groups: a metadata column, piece or stimulus (default per task)."),
    split_column: str = typer.Option(None, "--split-column", help="Metadata column with a given train/valid/test split."),
    network: str = typer.Option("network", "--network", help="Network name for the table's 'network' column."),
    seed: int = typer.Option(0, "--seed", help="Seed of splits, probe training, bootstraps and permutations."),
    bootstraps: int = typer.Option(200, "--bootstraps", help="Bootstrap resamples for CIs (0 to skip)."),
    frame_rate: float = typer.Option(None, "--frame-rate", help="Frames per second of .npz frames without frame_times."),
    drop_rare: bool = typer.Option(False, "--drop-rare", help="Leave out classes with fewer than 2 examples."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write PNG figures."),
) -> None:
    """Probe every layer (and a weighted layer sum) for tasks; write a tidy table, figures and a manifest."""
    from musiclens.probe.io import probe_to_folder

    tasks = [t.strip() for t in task.split(",") if t.strip()]
    result = probe_to_folder(
        activations=activations, stimuli=stimuli, out=out, figures=figures, tasks=tasks, probe=probe, pooling=pooling,
        layers=layers, weighted_sum=weighted_sum, lrs=_floats(lr), max_epochs=max_epochs, patience=patience,
        batch_size=batch_size, group=group, split_column=split_column, network=network, seed=seed,
        n_bootstraps=bootstraps, frame_rate_hz=frame_rate, drop_rare=drop_rare, progress=True,
    )
    t = result.table
    best = t[(t["split"] == "test") & t["primary"].astype(bool)]
    typer.echo(f"wrote {len(t)} rows to {out / 'probe.csv'}")
    for name, g in best.groupby("task", sort=False):
        row = g.loc[g["value"].idxmax()]
        typer.echo(f"  {name:<12} {row['metric']:<34} best {row['value']:.3f} "
                   f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}] at {row['layer']} (chance {row['chance']:.3f})")


def register(app: typer.Typer) -> None:
    """Add ``musiclens probe`` to ``app``."""
    probe_command.__doc__ = (probe_command.__doc__ or "") + "\n\nTasks:\n\n" + "\n\n".join(
        f"  {line}" for line in _task_help().splitlines())
    app.command("probe")(probe_command)
