"""``musiclens ssm``: layer self-similarity matrices vs reference SSMs and chord changes
(wraps :func:`musiclens.ssm.ssm_to_folder`)."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def ssm_command(
    model: str = typer.Option(..., "--model", "-m", help="Extractor name (see `musiclens models`), HF model directory, or musiclens checkpoint."),
    corpus: Path = typer.Option(..., "--corpus", "-c", help="Music corpus folder (built with `musiclens corpus`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for ssm.csv/.parquet, ssm_novelty.csv, figures, manifest.json."),
    clips: int = typer.Option(4, "--clips", help="Number of corpus pieces to analyse (in corpus order)."),
    crop: float = typer.Option(None, "--crop", help="Clip length in s (default: whole pieces)."),
    start: float = typer.Option(0.0, "--start", help="Clip start within each piece, s."),
    layers: str = typer.Option("all", "--layers", help="Layers: names, indices or ranges, comma-separated."),
    references: str = typer.Option("chroma,mfcc,onset_strength,tempogram,same_chord,same_beat_position", "--references",
                                   help="Reference SSMs, comma-separated."),
    methods: str = typer.Option("pearson,spearman", "--methods", help="Correlations: pearson, spearman."),
    exclude_band: int = typer.Option(0, "--exclude-band", help="Also drop pairs with |i - j| <= this many frames."),
    resample: str = typer.Option("nearest", "--resample", help="Feature frames -> token times: nearest, mean or linear."),
    kernel: float = typer.Option(1.0, "--kernel", help="Foote kernel half-width, s."),
    tolerance: float = typer.Option(0.5, "--tolerance", help="Chord-change tolerance of mir_eval.onset.f_measure, s."),
    network: str = typer.Option(None, "--network", help="Network name in the table (default: the extractor's)."),
    keep: int = typer.Option(1, "--keep", help="Clips whose matrices are saved and plotted."),
    randomize: bool = typer.Option(False, "--randomize", help="Same architecture, random weights (control)."),
    seed: int = typer.Option(0, "--seed", help="Seed of --randomize."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow code from the checkpoint directory to run (off by default)."),
    option: list[str] = typer.Option([], "--option", help="Extra builder option KEY=VALUE (JSON value), repeatable."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write PNG figures."),
) -> None:
    """Layer SSMs correlated with chroma/MFCC/rhythm/chord/beat SSMs; Foote novelty scored on chord changes."""
    from musiclens.commands.extract import _parse_options
    from musiclens.ssm.novelty import NoveltyConfig
    from musiclens.ssm.pipeline import ssm_to_folder

    def split(s: str) -> list[str]:
        return [x.strip() for x in s.split(",") if x.strip()]

    refs = split(references)
    build = {"randomize": randomize, "seed": seed, "device": device, "trust_remote_code": trust_remote_code,
             **_parse_options(option)}
    result = ssm_to_folder(
        model=model, corpus=corpus, out=out, n_clips=clips, crop_s=crop, start_s=start, figures=figures,
        layers=None if layers == "all" else layers, references=refs, methods=split(methods),
        exclude_band=exclude_band, resample=resample, novelty=NoveltyConfig(half_width_s=kernel, window_s=tolerance),
        novelty_references=[r for r in ("chroma", "same_chord") if r in refs], network=network, keep=keep,
        build_options=build,
    )
    typer.echo(f"wrote {len(result.table)} rows to {out / 'ssm.csv'}")
    s = result.summary[result.summary["method"] == result.config["methods"][0]]
    for ref, g in s.groupby("reference", sort=False):
        best = g.loc[g["value"].idxmax()] if g["value"].notna().any() else None
        if best is not None:
            typer.echo(f"  {ref:>18}: peak {best['value']:+.3f} at {best['layer']}")


def register(app: typer.Typer) -> None:
    """Add ``musiclens ssm`` to ``app``."""
    app.command("ssm")(ssm_command)
