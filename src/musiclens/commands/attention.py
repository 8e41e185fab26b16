"""``musiclens attention``: onset evidence in attention maps (wraps :func:`musiclens.attention.attention_to_folder`)."""

from __future__ import annotations

import typer

from musiclens.commands.clip_options import ClipRun, clip_analysis_command

__all__ = ["register"]


@clip_analysis_command(
    model_help="Extractor name (see `musiclens models`), HF model directory, or musiclens checkpoint; must expose attention.",
    out_help="Output folder for attention_onsets.csv/.parquet, figures, manifest.json.",
    layers_help="Block layers: names, indices or ranges, comma-separated.",
    keep_help="Clips whose maps and curves are saved and plotted.",
)
def attention_command(
    run: ClipRun,
    recipes: str = typer.Option("received,cls,row_change", "--recipes", help="Onset recipes, comma-separated (cls needs a class token)."),
    per_head: bool = typer.Option(False, "--per-head", help="Also score every head's curve."),
    window: float = typer.Option(0.05, "--window", help="Onset tolerance of mir_eval.onset.f_measure, s."),
    band: float = typer.Option(None, "--band", help="Diagonal band half-width for row_change, s (default: whole rows)."),
) -> None:
    """Onset evidence in a transformer's attention maps, scored against true onsets and a spectral-flux baseline."""
    from musiclens.attention.onset import attention_to_folder

    result = attention_to_folder(
        **run.to_folder_kwargs(), recipes=[r.strip() for r in recipes.split(",") if r.strip()], per_head=per_head,
        window_s=window, band_s=band,
    )
    s = result.summary[result.summary["head"].isin(["mean", "-"])]
    typer.echo(f"wrote {len(result.table)} rows to {run.out / 'attention_onsets.csv'}")
    for recipe, g in s.groupby("recipe", sort=False):
        best = g.loc[g["f_measure"].idxmax()]
        typer.echo(f"  {recipe:>14}: best F {best['f_measure']:.3f} at {best['layer']} (corr flux {best['corr_flux']:+.3f})")


def register(app: typer.Typer) -> None:
    """Add ``musiclens attention`` to ``app``."""
    app.command("attention")(attention_command)
