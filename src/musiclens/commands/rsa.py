"""``musiclens rsa``: RSA of pooled activations against model RDMs (wraps :func:`musiclens.rsa.io.rsa_to_folder`)."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def rsa_command(
    activations: Path = typer.Option(..., "--activations", "-a",
                                     help="Pooled activations: .npz (one key per layer, optional 'stimulus_id') or a feature-store folder."),
    stimuli: Path = typer.Option(..., "--stimuli", "-s", help="StimulusSet folder whose metadata matches the activations."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for rsa.csv/.parquet, figures and manifest.json."),
    models: str = typer.Option("pitch_height,chroma", help="Comma-separated model RDM names ('none' with --targets: measured RDMs only)."),
    targets: list[str] = typer.Option(None, "--targets", "-t",
                                      help="Measured RDM file(s) (rsatoolbox .hdf5, .npz with stimulus_id, .npy with --assume-order, "
                                           "or long CSV subject,stim_i,stim_j,dissimilarity); NAME=PATH names one. Repeat for several."),
    target_method: str = typer.Option("corr", help="Comparison with measured RDMs: corr, cosine, spearman, rho-a, tau-a (slow)."),
    target_bootstrap: str = typer.Option("dual", help="Resampling for measured RDMs: dual, both, subjects, stimuli, none."),
    target_bootstraps: int = typer.Option(1000, help="Resamples for the measured-RDM evaluation."),
    target_correction: str = typer.Option("fdr_bh", help="Correction over candidate pairs: fdr_bh or bonferroni."),
    noise_ceiling: bool = typer.Option(True, "--noise-ceiling/--no-noise-ceiling", help="Noise ceiling of measured RDMs (needs >= 3 subjects)."),
    flexible: bool = typer.Option(False, "--flexible", help="Also cross-validate the fitted weighted sum of the network's layers against the measured RDMs (corr/cosine; targets_flexible.csv)."),
    network: str = typer.Option("network", help="Network name for the table's 'network' column."),
    method: str = typer.Option("tau-a", help="Comparison: tau-a, spearman, rho-a, corr, cosine."),
    distance: str = typer.Option("correlation", help="RDM distance: correlation, cosine, euclidean, sqeuclidean."),
    subject: str = typer.Option("instrument", help="Metadata column acting as subjects ('none' for one subject)."),
    test: str = typer.Option("t-test", help="Test for p: t-test (across subjects) or permutation (stimulus labels)."),
    permutations: int = typer.Option(1000, "--permutations", help="Stimulus-label permutations (0 to skip)."),
    bootstraps: int = typer.Option(1000, "--bootstraps", help="Bootstrap resamples for CIs (0: t intervals)."),
    bootstrap_over: str = typer.Option("both", help="instruments, pitches or both."),
    correction: str = typer.Option("bonferroni", help="bonferroni or fdr_bh, over layers x model RDMs."),
    alpha: float = typer.Option(0.05, help="Significance level."),
    seed: int = typer.Option(0, help="Seed for permutations and bootstraps."),
    backend: str = typer.Option("numpy", help="numpy, torch (GPU if present) or auto."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write PNG figures."),
    assume_order: bool = typer.Option(False, "--assume-order", help="An .npz without 'stimulus_id': take its rows to be in the stimulus set's order (recorded)."),
) -> None:
    """Compare every layer's RDMs with model RDMs and/or measured RDMs; write tidy tables, figures and a manifest.

    With --targets, every layer (and every --models RDM) is evaluated against each measured RDM
    file as rsatoolbox's inference does: noise ceiling over subjects, bootstrap over subjects and
    stimuli, pairwise tests between candidates; targets.csv names the best layer.
    """
    from musiclens.rsa.io import rsa_to_folder

    model_list = [] if models.strip().lower() == "none" else [m.strip() for m in models.split(",") if m.strip()]
    result = rsa_to_folder(
        activations=activations, stimuli=stimuli, out=out, figures=figures, assume_order=assume_order, network=network,
        targets=targets or [], target_options={"method": target_method, "bootstrap": target_bootstrap,
                                               "n_bootstraps": target_bootstraps, "correction": target_correction,
                                               "noise_ceiling": noise_ceiling, "flexible": flexible},
        models=model_list, method=method, distance=distance,
        subject=None if subject.lower() == "none" else subject, test=test, n_permutations=permutations,
        n_bootstraps=bootstraps, bootstrap_over=bootstrap_over, correction=correction, alpha=alpha,
        seed=seed, backend=backend, progress=True,
    )
    if targets:
        import pandas as pd

        table = pd.read_csv(out / "targets.csv")
        typer.echo(f"wrote {len(table)} rows to {out / 'targets.csv'}")
        for name, g in table.groupby("target", sort=False):
            best = g.loc[g["value"].idxmax()]
            reach = "reaches" if bool(best["reaches_lower_bound"]) else "below"
            typer.echo(f"  {name}: best {best['candidate']} {best['value']:+.3f} ± {best['se']:.3f}; noise ceiling "
                       f"[{best['noise_lower']:.3f}, {best['noise_upper']:.3f}] ({reach} the lower bound)")
    if result is None:
        return
    t = result.table
    from musiclens.rsa.pipeline import partial_statistics

    main = t[t["statistic"].isin([method, *partial_statistics(method)])]
    typer.echo(f"wrote {len(t)} rows to {out / 'rsa.csv'}")
    for (stat, model), g in main.groupby(["statistic", "model_rdm"], sort=False):
        best = g.loc[g["value"].idxmax()]
        typer.echo(f"  {stat:>16} {model:<14} peak {best['value']:+.3f} at {best['layer']}; "
                   f"{int(g['significant'].sum())}/{len(g)} layers significant")


def register(app: typer.Typer) -> None:
    """Add ``musiclens rsa`` to ``app``."""
    app.command("rsa")(rsa_command)
