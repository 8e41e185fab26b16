"""``musiclens ssm``: layer self-similarity matrices vs reference SSMs and chord changes
(wraps :func:`musiclens.ssm.ssm_to_folder`)."""

from __future__ import annotations

import typer

from musiclens.commands.clip_options import ClipRun, clip_analysis_command

__all__ = ["register"]


@clip_analysis_command(
    model_help="Extractor name (see `musiclens models`), HF model directory, or musiclens checkpoint.",
    out_help="Output folder for ssm.csv/.parquet, ssm_novelty.csv, figures, manifest.json.",
    layers_help="Layers: names, indices or ranges, comma-separated.",
    keep_help="Clips whose matrices are saved and plotted.",
)
def ssm_command(
    run: ClipRun,
    references: str = typer.Option("chroma,mfcc,onset_strength,tempogram,same_chord,same_beat_position", "--references",
                                   help="Reference SSMs, comma-separated."),
    methods: str = typer.Option("pearson,spearman", "--methods", help="Correlations: pearson, spearman."),
    exclude_band: int = typer.Option(0, "--exclude-band", help="Also drop pairs with |i - j| <= this many frames."),
    resample: str = typer.Option("nearest", "--resample", help="Feature frames -> token times: nearest, mean or linear."),
    kernel: float = typer.Option(1.0, "--kernel", help="Foote kernel half-width, s."),
    tolerance: float = typer.Option(0.5, "--tolerance", help="Chord-change tolerance of mir_eval.onset.f_measure, s."),
) -> None:
    """Layer SSMs correlated with chroma/MFCC/rhythm/chord/beat SSMs; Foote novelty scored on chord changes."""
    from musiclens.ssm.novelty import NoveltyConfig
    from musiclens.ssm.pipeline import ssm_to_folder

    def split(s: str) -> list[str]:
        return [x.strip() for x in s.split(",") if x.strip()]

    refs = split(references)
    result = ssm_to_folder(
        **run.to_folder_kwargs(), references=refs, methods=split(methods), exclude_band=exclude_band,
        resample=resample, novelty=NoveltyConfig(half_width_s=kernel, window_s=tolerance),
        novelty_references=[r for r in ("chroma", "same_chord") if r in refs],
    )
    typer.echo(f"wrote {len(result.table)} rows to {run.out / 'ssm.csv'}")
    s = result.summary[result.summary["method"] == result.config["methods"][0]]
    for ref, g in s.groupby("reference", sort=False):
        best = g.loc[g["value"].idxmax()] if g["value"].notna().any() else None
        if best is not None:
            typer.echo(f"  {ref:>18}: peak {best['value']:+.3f} at {best['layer']}")


def register(app: typer.Typer) -> None:
    """Add ``musiclens ssm`` to ``app``."""
    app.command("ssm")(ssm_command)
