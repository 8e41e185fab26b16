"""``musiclens attention``: onset evidence in attention maps (wraps :func:`musiclens.attention.attention_to_folder`)."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def attention_command(
    model: str = typer.Option(..., "--model", "-m", help="Extractor name (see `musiclens models`), HF model directory, or musiclens checkpoint; must expose attention."),
    corpus: Path = typer.Option(..., "--corpus", "-c", help="Music corpus folder (built with `musiclens corpus`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for attention_onsets.csv/.parquet, figures, manifest.json."),
    clips: int = typer.Option(4, "--clips", help="Number of corpus pieces to analyse (in corpus order)."),
    crop: float = typer.Option(None, "--crop", help="Clip length in s (default: whole pieces)."),
    start: float = typer.Option(0.0, "--start", help="Clip start within each piece, s."),
    layers: str = typer.Option("all", "--layers", help="Block layers: names, indices or ranges, comma-separated."),
    recipes: str = typer.Option("received,cls,row_change", "--recipes", help="Onset recipes, comma-separated (cls needs a class token)."),
    per_head: bool = typer.Option(False, "--per-head", help="Also score every head's curve."),
    window: float = typer.Option(0.05, "--window", help="Onset tolerance of mir_eval.onset.f_measure, s."),
    band: float = typer.Option(None, "--band", help="Diagonal band half-width for row_change, s (default: whole rows)."),
    network: str = typer.Option(None, "--network", help="Network name in the table (default: the extractor's)."),
    keep: int = typer.Option(1, "--keep", help="Clips whose maps and curves are saved and plotted."),
    randomize: bool = typer.Option(False, "--randomize", help="Same architecture, random weights (control)."),
    seed: int = typer.Option(0, "--seed", help="Seed of --randomize."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow code from the checkpoint directory to run (off by default)."),
    option: list[str] = typer.Option([], "--option", help="Extra builder option KEY=VALUE (JSON value), repeatable."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write PNG figures."),
) -> None:
    """Onset evidence in a transformer's attention maps, scored against true onsets and a spectral-flux baseline."""
    from musiclens.attention.onset import attention_to_folder
    from musiclens.commands.extract import _parse_options

    build = {"randomize": randomize, "seed": seed, "device": device, "trust_remote_code": trust_remote_code,
             **_parse_options(option)}
    result = attention_to_folder(
        model=model, corpus=corpus, out=out, n_clips=clips, crop_s=crop, start_s=start, figures=figures,
        layers=None if layers == "all" else layers, recipes=[r.strip() for r in recipes.split(",") if r.strip()],
        per_head=per_head, window_s=window, band_s=band, network=network, keep=keep, build_options=build,
    )
    s = result.summary[result.summary["head"].isin(["mean", "-"])]
    typer.echo(f"wrote {len(result.table)} rows to {out / 'attention_onsets.csv'}")
    for recipe, g in s.groupby("recipe", sort=False):
        best = g.loc[g["f_measure"].idxmax()]
        typer.echo(f"  {recipe:>14}: best F {best['f_measure']:.3f} at {best['layer']} (corr flux {best['corr_flux']:+.3f})")


def register(app: typer.Typer) -> None:
    """Add ``musiclens attention`` to ``app``."""
    app.command("attention")(attention_command)
