"""``musiclens corpus ...``: build training corpora (generated music, MIDI/music21, speech, MAESTRO)."""

from __future__ import annotations

from pathlib import Path

import typer

from musiclens.fsutil import check_out

__all__ = ["register"]

corpus_app = typer.Typer(help="Build sharded training corpora with aligned labels (resumable).", no_args_is_help=True)


def _report(manifest: dict, out: Path) -> None:
    typer.echo(f"wrote {manifest['n_pieces']} pieces ({manifest['audio_hours']:.3f} h of audio) "
               f"in {manifest['n_shards']} shards to {out}")
    typer.echo(f"  content hash {manifest['content_hash'][:16]}  build time this run "
               f"{manifest['timings']['build_s_this_run']:.1f} s")
    if manifest["skipped"]:
        typer.echo(f"  skipped {len(manifest['skipped'])} bad inputs (listed in corpus.json):")
        for s in manifest["skipped"][:10]:
            typer.echo(f"    {s['source']}: {s['error']}")


_OUT = typer.Option(..., "--out", "-o", help="Corpus folder (re-running resumes an unfinished build).")
_SHARD = typer.Option(64, help="Pieces per shard (unit of resumption and parallel work).")
_WORKERS = typer.Option(1, help="Processes building shards in parallel.")
_SR = typer.Option(16000, help="Sample rate in Hz.")
_SKIP = typer.Option(False, "--skip-bad", help="Record bad inputs in corpus.json and go on instead of stopping.")


@corpus_app.command("music")
def music_command(
    out: Path = _OUT,
    n: int = typer.Option(1000, "--n", "-n", help="Number of generated pieces."),
    seed: int = typer.Option(0, help="Corpus seed (piece i uses rng([seed, i]))."),
    preset: str = typer.Option("default", help="Generation preset: default, sparse, chord_tones."),
    duration: float = typer.Option(None, help="Seconds of music per piece (default: the preset's, 8)."),
    sample_rate: int = _SR,
    soundfont: str = typer.Option(None, help="SoundFont name (timgm6mb, fluidr3_gm) or .sf2 path."),
    backend: str = typer.Option("auto", help="auto, tinysoundfont or fluidsynth."),
    pieces_per_shard: int = _SHARD,
    workers: int = _WORKERS,
) -> None:
    """Generated tonal pieces (functional harmony, melody, bass, drums) with every label."""
    check_out(out, "corpus")   # before reading any source: never into a folder musiclens did not make
    from musiclens.corpora.generator import music_preset
    from musiclens.corpora.shards import build_corpus
    from musiclens.corpora.synthetic import GeneratedMusicSource

    cfg = music_preset(preset, **({"duration_s": duration} if duration else {}))
    src = GeneratedMusicSource(n_pieces=n, seed=seed, config=cfg, sample_rate=sample_rate, soundfont=soundfont,
                               backend=backend)
    _report(build_corpus(out, source=src, pieces_per_shard=pieces_per_shard, workers=workers, progress=True), out)


@corpus_app.command("midi")
def midi_command(
    inputs: list[Path] = typer.Argument(None, help="MIDI files or folders (searched recursively)."),
    out: Path = _OUT,
    music21: str = typer.Option(None, help="Use music21's corpus instead: 'analyses' (scores with .rntxt "
                                            "chord/key labels) or 'bach' (all Bach chorale scores)."),
    limit: int = typer.Option(None, help="Keep the first N inputs."),
    sample_rate: int = _SR,
    soundfont: str = typer.Option(None, help="SoundFont name or .sf2 path."),
    backend: str = typer.Option("auto", help="auto, tinysoundfont or fluidsynth."),
    pieces_per_shard: int = _SHARD,
    workers: int = _WORKERS,
    skip_bad: bool = _SKIP,
) -> None:
    """MIDI files/folders, or music21's bundled scores, rendered through a SoundFont with labels."""
    check_out(out, "corpus")   # before reading any source: never into a folder musiclens did not make
    from musiclens.corpora.midi import (MidiFileSource, Music21Source, find_midi_files, music21_analysis_entries,
                                        music21_score_entries)
    from musiclens.corpora.shards import build_corpus
    from musiclens.errors import ConfigError

    if music21:
        entries = {"analyses": music21_analysis_entries, "bach": music21_score_entries}.get(music21)
        if entries is None:
            raise ConfigError(f"--music21 must be 'analyses' or 'bach', got {music21!r}")
        src = Music21Source(entries()[:limit], sample_rate=sample_rate, soundfont=soundfont, backend=backend)
    else:
        if not inputs:
            raise ConfigError("give MIDI files or folders, or --music21 analyses|bach")
        files: list[Path] = []
        for p in inputs:
            files += find_midi_files(p) if p.is_dir() else [p]
        src = MidiFileSource(files[:limit], sample_rate=sample_rate, soundfont=soundfont, backend=backend)
    _report(build_corpus(out, source=src, pieces_per_shard=pieces_per_shard, workers=workers, skip_bad=skip_bad,
                         progress=True), out)


@corpus_app.command("speech")
def speech_command(
    out: Path = _OUT,
    n: int = typer.Option(1000, "--n", "-n", help="Number of utterances."),
    seed: int = typer.Option(0, help="Corpus seed."),
    text: str = typer.Option("mixed", help="bundled, generated or mixed sentences."),
    voices: str = typer.Option(None, help="Comma-separated espeak-ng voices (default: 42 English voices)."),
    ipa: bool = typer.Option(False, help="Phonemes in IPA instead of espeak-ng ASCII."),
    sample_rate: int = _SR,
    pieces_per_shard: int = _SHARD,
    workers: int = _WORKERS,
) -> None:
    """Synthetic speech (espeak-ng) with phoneme sequences for CTC."""
    check_out(out, "corpus")   # before reading any source: never into a folder musiclens did not make
    from musiclens.corpora.shards import build_corpus
    from musiclens.corpora.speech import DEFAULT_VOICES, SpeechSource

    vs = tuple(v.strip() for v in voices.split(",") if v.strip()) if voices else DEFAULT_VOICES
    src = SpeechSource(n_utterances=n, seed=seed, voices=vs, text=text, sample_rate=sample_rate, ipa=ipa)
    _report(build_corpus(out, source=src, pieces_per_shard=pieces_per_shard, workers=workers, progress=True), out)


@corpus_app.command("maestro")
def maestro_command(
    root: Path = typer.Argument(..., help="MAESTRO folder (with maestro-v*.csv/json, year folders)."),
    out: Path = _OUT,
    splits: str = typer.Option(None, help="Comma-separated splits: train, validation, test (default all)."),
    limit: int = typer.Option(None, help="Keep the first N performances."),
    sustain: bool = typer.Option(True, help="Extend note offsets under the sustain pedal."),
    sample_rate: int = _SR,
    pieces_per_shard: int = typer.Option(8, help="Performances per shard."),
    workers: int = _WORKERS,
    skip_bad: bool = _SKIP,
) -> None:
    """MAESTRO recordings with labels from their MIDI (official layout; never downloads)."""
    check_out(out, "corpus")   # before reading any source: never into a folder musiclens did not make
    from musiclens.corpora.maestro import maestro_source
    from musiclens.corpora.shards import build_corpus

    sp = tuple(s.strip() for s in splits.split(",")) if splits else None
    src = maestro_source(root, splits=sp, sample_rate=sample_rate, sustain=sustain, skip_bad=skip_bad, limit=limit)
    _report(build_corpus(out, source=src, pieces_per_shard=pieces_per_shard, workers=workers, skip_bad=skip_bad,
                         progress=True), out)


def register(app: typer.Typer) -> None:
    app.add_typer(corpus_app, name="corpus")
