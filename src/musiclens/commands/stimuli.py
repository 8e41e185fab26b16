"""``musiclens stimuli ...``: render note grids, read NSynth, or import a folder of audio into StimulusSet folders."""

from __future__ import annotations

from pathlib import Path

import typer

from musiclens.errors import ConfigError
from musiclens.fsutil import check_out

__all__ = ["register"]

stimuli_app = typer.Typer(help="Make stimulus sets: SoundFont/additive note grids, notes read from NSynth, or your own audio folder.",
                          no_args_is_help=True)


def _csv_ints(text: str | None, *, option: str = "--midi") -> list[int] | None:
    """'60-95' or '60,64,67' or '60-71,84' -> list of ints; anything else is a ConfigError naming ``option``."""
    if text is None:
        return None
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        head, sep, tail = part[1:].partition("-")   # part[0] may be a minus sign
        try:
            bounds = (int(part[:1] + head), int(tail)) if sep else ((int(part),) * 2 if part else None)
        except ValueError:
            bounds = (1, 0)   # not an integer: refused below like a descending range
        if bounds is None:
            continue
        if bounds[1] < bounds[0]:
            raise ConfigError(f"{option} {text!r}: {part!r} is not an integer or an ascending range; write e.g. "
                              "60-95 or 60,64,67 or 60-71,84")
        out.extend(range(bounds[0], bounds[1] + 1))
    return out


def _csv(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _summary(stimuli_set, out: Path) -> None:  # noqa: ANN001
    meta = stimuli_set.metadata
    typer.echo(f"wrote {len(stimuli_set)} stimuli to {out}")
    typer.echo(f"  instruments: {meta['instrument'].nunique()}  families: {', '.join(sorted(meta['family'].astype(str).unique()))}")
    typer.echo(f"  MIDI {int(meta['midi'].min())}-{int(meta['midi'].max())}  sample rate {stimuli_set.sample_rate} Hz"
               f"  content hash {stimuli_set.content_hash()[:16]}")
    skipped = stimuli_set.info.get("skipped") or []
    if skipped:
        typer.echo(f"  skipped {len(skipped)} out-of-range notes (listed in manifest.json)")


@stimuli_app.command("notes")
def notes_command(
    out: Path = typer.Option(..., "--out", "-o", help="Output StimulusSet folder (created atomically)."),
    grid: str = typer.Option("paper", help="Named grid to start from: paper, quick, additive."),
    instruments: str = typer.Option(None, help="Comma-separated instrument names or GM program numbers (overrides the grid)."),
    midi: str = typer.Option(None, help="Pitches, e.g. '60-95' or '60,64,67' (overrides the grid)."),
    velocities: str = typer.Option(None, help="Velocities, e.g. '100' or '50,100'."),
    synth: str = typer.Option(None, help="soundfont, additive, pure or shepard (default: the grid's)."),
    backend: str = typer.Option("auto", help="SoundFont backend: auto, tinysoundfont or fluidsynth."),
    soundfont: str = typer.Option(None, help="SoundFont name (timgm6mb, fluidr3_gm) or .sf2 path; default timgm6mb."),
    sample_rate: int = typer.Option(None, help="Sample rate in Hz (default 16000)."),
    duration: float = typer.Option(None, help="Note length in seconds (default 4)."),
    hold: float = typer.Option(None, help="Note-off time in seconds (default 3)."),
    seed: int = typer.Option(0, help="Seed for random synthesis steps."),
    skip_out_of_range: bool = typer.Option(False, "--skip-out-of-range", help="Skip notes outside an instrument's range (recorded) instead of failing."),
    normalize: str = typer.Option("none", help="none or peak."),
    overwrite: bool = typer.Option(False, help="Replace an existing output folder."),
) -> None:
    """Render a grid of isolated notes (instrument x pitch x velocity) -> StimulusSet folder."""
    from musiclens.stimuli.notes import render_notes

    check_out(out, "stimuli", overwrite=overwrite)   # before rendering
    s = render_notes(
        grid=grid, instruments=_csv(instruments), midi=_csv_ints(midi), velocities=_csv_ints(velocities, option="--velocities"),
        synth=synth, backend=backend, soundfont=soundfont, sample_rate=sample_rate, duration_s=duration,
        hold_s=hold, seed=seed, on_out_of_range="skip" if skip_out_of_range else "error", normalize=normalize,
    )
    s.save(out, overwrite=overwrite)
    _summary(s, out)


@stimuli_app.command("nsynth")
def nsynth_command(
    root: Path = typer.Argument(..., help="NSynth split folder (with examples.json) or its parent."),
    out: Path = typer.Option(..., "--out", "-o", help="Output StimulusSet folder."),
    split: str = typer.Option(None, help="train, valid or test when ROOT is the parent folder."),
    families: str = typer.Option("flute,guitar,keyboard", help="Comma-separated families ('all' for every family)."),
    midi: str = typer.Option("60-95", help="Pitches ('all' for every pitch)."),
    velocities: str = typer.Option("100", help="Velocities ('all' for every velocity)."),
    sources: str = typer.Option(None, help="acoustic, electronic, synthetic (comma-separated)."),
    n_per_family: int = typer.Option(10, help="Instruments per family (0 = all that qualify)."),
    full_coverage: bool = typer.Option(True, "--full-coverage/--any-coverage", help="Keep only instruments with every requested pitch."),
    overwrite: bool = typer.Option(False, help="Replace an existing output folder."),
) -> None:
    """Select notes from a local NSynth copy (official layout) -> StimulusSet folder."""
    from musiclens.stimuli.nsynth import read_nsynth

    check_out(out, "stimuli", overwrite=overwrite)   # before reading NSynth
    s = read_nsynth(
        root, split=split, families=None if families == "all" else _csv(families),
        midi=None if midi == "all" else _csv_ints(midi),
        velocities=None if velocities == "all" else _csv_ints(velocities, option="--velocities"), sources=_csv(sources),
        n_per_family=n_per_family or None, require_full_coverage=full_coverage,
    )
    s.save(out, overwrite=overwrite)
    _summary(s, out)


@stimuli_app.command("import")
def import_command(
    audio_dir: Path = typer.Argument(..., help="Folder of audio files (wav, flac, ogg, mp3, aiff; searched recursively)."),
    metadata: Path = typer.Option(..., "--metadata", "-m", help="CSV, TSV or Parquet table, one row per file, keyed by file name."),
    out: Path = typer.Option(..., "--out", "-o", help="Output StimulusSet folder."),
    file_column: str = typer.Option("file", help="Column of the table holding each file's name or path relative to AUDIO_DIR."),
    sample_rate: int = typer.Option(None, help="Resample every file to this rate in Hz (default: the files' common rate)."),
    silence_db: float = typer.Option(-100.0, help="A file whose peak is below this many dBFS counts as silent (bad)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Leave out bad files/rows (listed in manifest.json) instead of failing."),
    overwrite: bool = typer.Option(False, help="Replace an existing output folder."),
) -> None:
    """Your own sounds: a folder of audio files + a metadata table -> StimulusSet folder.

    Optional label columns (midi, velocity, pitch_hz, instrument, family) are checked; any other
    column is kept.  Files without a row, rows without a file, duplicates, unreadable or silent
    files are named together in one error (or skipped with --skip-bad).
    """
    from musiclens.stimuli.folder import import_folder

    check_out(out, "stimuli", overwrite=overwrite)   # before reading any audio
    s = import_folder(audio_dir, metadata, sample_rate=sample_rate, file_column=file_column, skip_bad=skip_bad,
                      silence_db=silence_db)
    s.save(out, overwrite=overwrite)
    typer.echo(f"wrote {len(s)} stimuli to {out}  (sample rate {s.sample_rate} Hz, content hash {s.content_hash()[:16]})")
    n_conv = len(s.info.get("conversions") or {})
    if n_conv:
        typer.echo(f"  {n_conv} file(s) downmixed or resampled (recorded in manifest.json)")
    if s.info.get("skipped"):
        typer.echo(f"  skipped {len(s.info['skipped'])} bad file(s)/row(s) (listed in manifest.json)")


@stimuli_app.command("instruments")
def instruments_command(
    all_gm: bool = typer.Option(False, "--all", help="List all 128 General MIDI instruments, not only the paper grid."),
) -> None:
    """List instruments (the paper grid's 30, or every GM program) and the named grids."""
    from musiclens.stimuli.instruments import PAPER_INSTRUMENTS, gm_instruments
    from musiclens.stimuli.notes import GRIDS
    from musiclens.stimuli.synth import TIMBRES

    rows = gm_instruments().values() if all_gm else PAPER_INSTRUMENTS
    for inst in rows:
        typer.echo(f"{inst.program:4d}  {inst.family:12s} {inst.name:28s} MIDI {inst.low}-{inst.high}")
    typer.echo("\ngrids: " + "; ".join(f"{k}: {v}" for k, v in GRIDS.describe().items()))
    typer.echo("additive timbres: " + ", ".join(TIMBRES.names()))


def register(app: typer.Typer) -> None:
    """Add the ``stimuli`` command group to ``app``."""
    app.add_typer(stimuli_app, name="stimuli")
