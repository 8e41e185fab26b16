"""``musiclens benchmark``: MARBLE's constrained track on local datasets (wraps :func:`musiclens.benchmark.run_benchmark`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

__all__ = ["register"]

_TASKS = "gtzan, nsynth-pitch, nsynth-instrument, giantsteps-key, mtt, emomusic, vocalset-singer, vocalset-technique"


def _list(text: str | None, kind: type, name: str) -> list:
    if not text:
        return []
    try:
        return [kind(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{name} expects comma-separated values, got {text!r}") from None


def _pairs(items: list[str], name: str, *, json_values: bool = False) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{name} expects KEY=VALUE, got {item!r}")
        if json_values:
            try:
                out[key] = json.loads(value)
                continue
            except json.JSONDecodeError:
                pass
        out[key] = value
    return out


def benchmark_command(
    model: list[str] = typer.Option(..., "--model", "-m",
                                    help="Backbone, repeatable: registered name (mert, mfcc, cqt...), Hugging Face "
                                         "folder, musiclens checkpoint; 'label=spec' names its row."),
    data_root: Path = typer.Option(None, "--data-root", "-d",
                                   help="Folder holding gtzan/, nsynth/, giantsteps/, mtt/, emomusic/, vocalset/ in "
                                        "their official layouts (nothing is downloaded)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (resumed when it holds an earlier benchmark run)."),
    tasks: str = typer.Option(None, "--tasks", "-t", help=f"Comma-separated tasks (default: every dataset found): {_TASKS}."),
    seeds: str = typer.Option("0", "--seeds", help="Probe seeds, comma-separated; the spread over seeds is reported."),
    layers: str = typer.Option("all", "--layers", help="Layers: names, indices or ranges, comma-separated."),
    lrs: str = typer.Option(None, "--lrs", help="Learning-rate grid (default MARBLE's 5e-5,1e-4,5e-4,1e-3,5e-3,1e-2)."),
    quick: bool = typer.Option(False, "--quick", help="Two learning rates (5e-4,1e-3), at most 30 epochs, 100 bootstraps."),
    weighted_sum: bool = typer.Option(True, "--weighted-sum/--no-weighted-sum", help="Also probe the weighted layer sum."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Leave out missing/unreadable audio files (recorded) instead of stopping."),
    dataset: list[str] = typer.Option([], "--dataset", help="NAME=PATH: a dataset folder outside --data-root, repeatable."),
    gtzan_splits: Path = typer.Option(None, "--gtzan-splits", help="Folder with train/valid/test_filtered.txt (GTZAN fail-filtered split)."),
    max_epochs: int = typer.Option(100, "--max-epochs", help="Epochs at most per probe (early stopping)."),
    patience: int = typer.Option(10, "--patience", help="Early-stopping patience in epochs."),
    bootstraps: int = typer.Option(200, "--bootstraps", help="Bootstrap resamples of the test items (0 to skip)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
    batch_size: int = typer.Option(8, "--batch-size", help="Items per forward pass."),
    chunk_size: int = typer.Option(32, "--chunk-size", help="Items per committed feature chunk."),
    option: list[str] = typer.Option([], "--option", help="Extractor builder option KEY=VALUE (JSON value), every model."),
    randomize: bool = typer.Option(False, "--randomize", help="Same architectures with random weights (control)."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow code shipped in a model folder."),
) -> None:
    """MARBLE's constrained track (frozen backbone, MLP probe per layer and weighted sum, lr grid, best validation
    configuration) on datasets you own; writes table.csv, report.md/.html and a manifest."""
    from musiclens.benchmark import ModelSpec, ProbeSettings, parse_model, run_benchmark
    from musiclens.benchmark.protocol import MARBLE_LRS
    from musiclens.fsutil import check_out

    check_out(out, "benchmark", overwrite=None)   # before any work
    grid = tuple(_list(lrs, float, "--lrs")) or ((5e-4, 1e-3) if quick else MARBLE_LRS)
    settings = ProbeSettings(lrs=grid, weighted_sum=weighted_sum, max_epochs=min(max_epochs, 30) if quick else max_epochs,
                             patience=patience)
    options = _pairs(option, "--option", json_values=True)
    specs: list[ModelSpec] = [parse_model(m, options=options, randomize=randomize) for m in model]
    dataset_options = {"gtzan": {"split_dir": gtzan_splits}} if gtzan_splits else {}
    result = run_benchmark(
        specs, out=out, data_root=data_root, tasks=_list(tasks, str, "--tasks") or None,
        dataset_paths=_pairs(dataset, "--dataset"), dataset_options=dataset_options,
        seeds=_list(seeds, int, "--seeds") or [0], layers=None if layers in ("", "all") else layers,
        settings=settings, skip_bad=skip_bad, device=device, batch_size=batch_size, chunk_size=chunk_size,
        n_bootstraps=min(bootstraps, 100) if quick else bootstraps, trust_remote_code=trust_remote_code, progress=True,
    )
    typer.echo(f"wrote {out / 'table.csv'} and {out / 'report.md'}")
    for _, row in result.table.iterrows():
        cols = ", ".join(f"{c} {row[c]:.1f}" for c in result.table.columns if c not in ("model", "average"))
        typer.echo(f"  {row['model']}: {cols}; average {row['average']:.1f}")


def register(app: typer.Typer) -> None:
    """Add ``musiclens benchmark`` to ``app``."""
    app.command("benchmark")(benchmark_command)
