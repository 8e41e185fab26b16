"""``musiclens extract`` and ``musiclens models``: thin wrappers over :mod:`musiclens.extract`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

__all__ = ["register"]


def _parse_options(items: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--option expects KEY=VALUE (JSON value), got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def extract_command(
    model: str = typer.Option(..., "--model", "-m", help="Extractor name (see `musiclens models`), HF model directory, or musiclens checkpoint."),
    stimuli: Path = typer.Option(..., "--stimuli", "-s", help="Stimulus-set folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Output feature-store folder."),
    layers: str = typer.Option("all", "--layers", help="Layers: names, indices or ranges, comma-separated (e.g. '0,3:6,layer_12')."),
    pooling: str = typer.Option("mean", "--pooling", help="mean|max|cls|cls+mean|first|last, or none to keep every frame."),
    batch_size: int = typer.Option(8, "--batch-size", help="Clips per forward pass."),
    chunk_size: int = typer.Option(64, "--chunk-size", help="Stimuli per committed chunk (bounds memory)."),
    window: float = typer.Option(None, "--window", help="Window length in s for long audio."),
    hop: float = typer.Option(None, "--hop", help="Hop between windows in s (default window/2)."),
    start: int = typer.Option(None, "--start", help="First stimulus row of a shard."),
    stop: int = typer.Option(None, "--stop", help="End row (exclusive) of a shard."),
    randomize: bool = typer.Option(False, "--randomize", help="Same architecture, random weights (control)."),
    seed: int = typer.Option(0, "--seed", help="Seed of --randomize."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow code from the checkpoint directory to run (off by default)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing store made by another request."),
    allow_missing_weights: bool = typer.Option(False, "--allow-missing-weights", help="A Hugging Face directory whose weight files lack tensors: run those layers with random weights instead of refusing (recorded)."),
    option: list[str] = typer.Option([], "--option", help="Extra builder option KEY=VALUE (JSON value), repeatable."),
    devices: str = typer.Option("auto", "--devices", help="Processes that split the stimuli: a count N (started here, one device each with --device cuda), 'env' (this process is one rank of torchrun/srun/RANK+WORLD_SIZE), or auto (env under a launcher, else 1). The merged store equals a one-process one byte for byte."),
) -> None:
    """Extract layer-wise activations of a stimulus set into a resumable feature store."""
    from musiclens.extract import extract_to_store

    options = _parse_options(option)
    if allow_missing_weights and not (Path(model).expanduser() / "config.json").is_file():
        from musiclens.errors import ConfigError

        raise ConfigError(f"--allow-missing-weights applies to a Hugging Face model directory (with config.json); "
                          f"{model!r} is not one: drop the flag")
    if allow_missing_weights:
        options["allow_missing_weights"] = True   # part of the request: recorded in the store's manifest
    path = extract_to_store(
        model, stimuli, out, layers=layers, pooling=pooling, batch_size=batch_size, chunk_size=chunk_size,
        window_s=window, hop_s=hop, start=start, stop=stop, randomize=randomize, seed=seed,
        trust_remote_code=trust_remote_code, device=device, overwrite=overwrite, progress=True,
        options=options, devices=devices,
    )
    from musiclens.extract.distributed import launcher_env

    env = launcher_env()
    if env is None or env.rank == 0:   # one rank of several a launcher started: rank 0 reports
        typer.echo(str(path))


def models_command(
    model: str = typer.Option(None, "--model", "-m", help="Show one network in full: its card, rate and every layer (name or directory)."),
    option: list[str] = typer.Option([], "--option", help="Builder option KEY=VALUE (JSON value), repeatable."),
) -> None:
    """List the networks: what each was trained for and on, its rate, layers and weights; or one in full.

    Without --model: one block per built-in network (its model card) and one line per loader
    (Hugging Face folders, musiclens checkpoints, any torch module).  With --model: the card (if it
    is a built-in network), the rate and frame rate of the built extractor, where its weights come
    from, and every layer name.
    """
    from musiclens.extract import EXTRACTORS, build_extractor
    from musiclens.extract.cards import CARDS

    if model is None:
        loaders = []
        for name, help_text in EXTRACTORS.describe().items():
            if name not in CARDS:
                loaders.append(f"  {name:18s} {help_text}")
                continue
            c = CARDS.get(name)
            typer.echo(f"{name}  [{c.domain}: {c.task_group}]\n  trained for: {c.task}\n  data: {c.training_data}\n"
                       f"  {c.sample_rate} Hz, {c.frame_rate} frames/s; layers: {c.layers}\n  weights: {c.weights}")
        typer.echo("\nloaders (a folder or config names the network):\n" + "\n".join(loaders))
        return
    ext = build_extractor(model, **_parse_options(option))
    if str(model) in CARDS:
        c = CARDS.get(str(model))
        typer.echo(f"{ext.name}  [{c.domain}: {c.task_group}]\n  trained for: {c.task}\n  data: {c.training_data}\n"
                   f"  weights: {c.weights}")
    else:
        info = ext.info() if hasattr(ext, "info") else {}
        for key in ("task", "training_data", "weights_source"):
            if info.get(key):
                typer.echo(f"  {key.replace('_', ' ')}: {info[key]}")
    typer.echo(f"{ext.name}: {ext.sample_rate} Hz, {ext.frame_rate_hz:g} frames/s, {len(ext.layer_names)} layers")
    for layer in ext.layer_names:
        typer.echo(layer)


def register(app: typer.Typer) -> None:
    """Add ``extract`` and ``models`` to the musiclens CLI."""
    app.command("extract")(extract_command)
    app.command("models")(models_command)
