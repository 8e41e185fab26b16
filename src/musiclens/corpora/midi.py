"""Real music from MIDI: files and folders, and music21's bundled corpus with its Roman-numeral analyses.

- :func:`load_midi` reads a MIDI file with clear errors (corrupt file, no notes) naming the file.
- :func:`labels_from_midi` derives notes, beats and downbeats (from the MIDI tempo map and time
  signatures) and the key (from a key-signature event, or estimated when asked; the source of
  each label is recorded in ``labels.sources``).  Plain MIDI files carry no chord labels.
- :class:`MidiFileSource` renders a list or folder of MIDI files as a corpus source.
- :class:`Music21Source` renders scores of music21's corpus (Bach chorales, Monteverdi madrigals,
  ...) and, where music21 ships a RomanText analysis (``.rntxt``), turns it into real chord and
  key labels: each Roman numeral becomes a mir_eval chord segment (root, quality, inversion),
  each key area a key segment; the global key is the analysis's first key.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musiclens.corpora.base import Piece
from musiclens.corpora.harmony import PITCH_CLASS_NAMES, chord_label_from_pitch_classes, estimate_key
from musiclens.corpora.labels import MusicLabels, notes_from_pretty_midi
from musiclens.corpora.render import render_midi, resolve_backend
from musiclens.errors import ConfigError, DatasetError, MissingDependencyError
from musiclens.stimuli.soundfont import find_soundfont, soundfont_hash

__all__ = [
    "load_midi",
    "labels_from_midi",
    "find_midi_files",
    "MidiFileSource",
    "music21_analysis_entries",
    "music21_score_entries",
    "rntxt_labels",
    "Music21Source",
]

logger = logging.getLogger(__name__)


def load_midi(path: str | os.PathLike[str]) -> Any:
    """Read a MIDI file as :class:`pretty_midi.PrettyMIDI`.

    Raises
    ------
    DatasetError
        The file is missing, is not a readable MIDI file, or contains no notes.
    """
    import pretty_midi

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"MIDI file {path} does not exist")
    try:
        pm = pretty_midi.PrettyMIDI(str(path))
    except Exception as err:  # mido/pretty_midi raise OSError, EOFError, KeyError, ValueError...
        raise DatasetError(
            f"cannot read MIDI file {path} ({type(err).__name__}: {err}); the file is corrupt or not MIDI — "
            "fix or remove it, or pass skip_bad=True (--skip-bad) to record it and go on"
        ) from err
    if not any(inst.notes for inst in pm.instruments):
        raise DatasetError(
            f"MIDI file {path} contains no notes; remove it, or pass skip_bad=True (--skip-bad) to record it and go on"
        )
    return pm


def _key_label(key_number: int) -> str:
    return f"{PITCH_CLASS_NAMES[key_number % 12]} {'major' if key_number < 12 else 'minor'}"


def labels_from_midi(pm: Any, *, duration_s: float, estimate_key_if_missing: bool = False) -> MusicLabels:
    """Labels of a PrettyMIDI score (notes, beats, downbeats, key; no chords).

    Parameters
    ----------
    pm
        The score.
    duration_s
        Length of the rendered audio, seconds.
    estimate_key_if_missing
        Without a key-signature event, estimate the key (Krumhansl-Schmuckler on note durations,
        ``sources["key"] = "estimated"``); otherwise the key is ``None``.
    """
    notes = notes_from_pretty_midi(pm)
    end = float(notes["offset"].max()) if len(notes) else 0.0
    beats = np.asarray(pm.get_beats(), dtype=np.float64)
    beats = beats[beats < end]
    downbeats = np.asarray(pm.get_downbeats(), dtype=np.float64)
    downbeats = downbeats[downbeats < end]
    sources = {"notes": "midi", "beats": "midi tempo map"}
    key = None
    if pm.key_signature_changes:
        key = _key_label(int(pm.key_signature_changes[0].key_number))
        sources["key"] = "midi key signature"
    elif estimate_key_if_missing and len(notes):
        pitched = notes[~notes["is_drum"]]
        w = np.bincount(pitched["pitch"] % 12, weights=pitched["offset"] - pitched["onset"], minlength=12)
        if w.std() > 0:
            key = estimate_key(w)[0].label
            sources["key"] = "estimated (Krumhansl-Schmuckler)"
    tempi = pm.get_tempo_changes()[1]
    ts = pm.time_signature_changes[0] if pm.time_signature_changes else None
    return MusicLabels(notes=notes, duration_s=float(duration_s), beats=beats, downbeats=downbeats, key=key,
                       tempo_bpm=float(tempi[0]) if len(tempi) else None,
                       time_signature=f"{ts.numerator}/{ts.denominator}" if ts else None, sources=sources)


def find_midi_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Sorted ``*.mid`` / ``*.midi`` files under ``folder`` (recursive)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"MIDI folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".mid", ".midi") and p.is_file())
    if not files:
        raise DatasetError(f"no .mid/.midi files under {folder}")
    return files


@dataclass
class MidiFileSource:
    """MIDI files rendered through a SoundFont, with labels from the MIDI (a corpus source).

    Attributes
    ----------
    files
        MIDI files (see :func:`find_midi_files` for a folder).
    sample_rate, soundfont, backend
        Rendering settings (see :func:`~musiclens.corpora.render.render_midi`).
    tail_s
        Release time rendered after the last note-off.
    max_duration_s
        Files whose music lasts longer are an error (skippable), protecting against runaway files.
    estimate_key_if_missing
        See :func:`labels_from_midi`.
    """

    files: list[Path]
    sample_rate: int = 16000
    soundfont: str | None = None
    backend: str = "auto"
    tail_s: float = 1.0
    max_duration_s: float = 1800.0
    estimate_key_if_missing: bool = True
    kind: str = "music"

    def __post_init__(self) -> None:
        self.files = [Path(f) for f in self.files]
        self.backend = resolve_backend(self.backend)
        self._sf = find_soundfont(self.soundfont)

    def __len__(self) -> int:
        return len(self.files)

    def fingerprint(self) -> dict[str, Any]:
        return {"type": "midi_files", "files": [str(f) for f in self.files], "tail_s": self.tail_s,
                "backend": self.backend, "soundfont_sha256": soundfont_hash(self._sf),
                "max_duration_s": self.max_duration_s, "estimate_key": self.estimate_key_if_missing}

    def describe(self, index: int) -> str:
        return str(self.files[index])

    def make(self, index: int) -> Piece:
        path = self.files[index]
        pm = load_midi(path)
        end = pm.get_end_time()
        if end > self.max_duration_s:
            raise DatasetError(f"MIDI file {path} lasts {end:.0f} s > max_duration_s={self.max_duration_s:.0f} s")
        duration = end + self.tail_s
        labels = labels_from_midi(pm, duration_s=duration, estimate_key_if_missing=self.estimate_key_if_missing)
        audio = render_midi(pm, sample_rate=self.sample_rate, soundfont=str(self._sf), backend=self.backend,
                            duration_s=duration)
        return Piece(id=path.stem, audio=audio, sample_rate=self.sample_rate, labels=labels.to_dict(),
                     meta={"source": str(path), "programs": sorted({int(i.program) for i in pm.instruments})})


# ----------------------------------------------------------------------------- music21


def _music21() -> Any:
    try:
        import music21
    except ImportError as err:
        raise MissingDependencyError("the music21 corpus needs `pip install music21`") from err
    return music21


def _work(m21: Any, name: str) -> list[str]:
    try:
        found = m21.corpus.getWork(name)
    except Exception:  # music21 raises CorpusException when nothing matches
        return []
    return [str(f) for f in (found if isinstance(found, list) else [found])]


def music21_analysis_entries() -> list[dict[str, str]]:
    """music21 corpus scores that have a RomanText analysis: ``[{"id", "score", "analysis"}]``.

    Bach chorale analyses name their chorale by BWV number; Monteverdi madrigals share the
    analysis's file stem.
    """
    m21 = _music21()
    out = []
    for p in sorted(m21.corpus.getCorePaths(), key=str):
        p = Path(p)
        if p.suffix != ".rntxt":
            continue
        score: Path | None = None
        if p.parent.name == "choraleAnalyses":
            m = re.search(r"^BWV:\s*([\d.]+)", p.read_text(errors="replace"), flags=re.M)
            if m:
                hits = _work(m21, f"bach/bwv{m.group(1)}")
                score = Path(hits[0]) if hits else None
        else:
            for ext in (".mxl", ".xml", ".krn"):
                if p.with_suffix(ext).is_file():
                    score = p.with_suffix(ext)
                    break
        if score is not None:
            out.append({"id": f"{score.parent.name}-{score.stem}", "score": str(score), "analysis": str(p)})
    return out


def music21_score_entries(composer: str = "bach", *, pattern: str = "bwv") -> list[dict[str, str]]:
    """Scores of one music21 composer whose file names start with ``pattern`` (no analyses)."""
    m21 = _music21()
    paths = sorted({Path(p) for p in m21.corpus.getComposer(composer)
                    if Path(p).name.startswith(pattern) and Path(p).suffix in (".mxl", ".xml", ".krn", ".mid")}, key=str)
    if not paths:
        raise DatasetError(f"music21's corpus has no {composer!r} scores starting with {pattern!r}")
    return [{"id": f"{p.parent.name}-{p.stem}", "score": str(p)} for p in paths]


def score_to_pretty_midi(score: Any, *, tempo_bpm: float | None = None, programs: tuple[int, ...] = ()
                         ) -> tuple[Any, float]:
    """A music21 score as PrettyMIDI at one tempo, as written (repeats are *not* expanded).

    Ties are merged, grace notes (no duration) dropped; each part becomes one instrument
    (GM program from ``programs``, cycled, default piano).  Using the written form keeps note
    times on the same quarter-note grid as RomanText analyses, which follow the written measures.

    Returns
    -------
    pm
        The PrettyMIDI score.
    bpm
        The tempo used (quarter notes per minute).
    """
    import pretty_midi

    m21 = _music21()
    if tempo_bpm is None:
        marks = list(score.recurse().getElementsByClass(m21.tempo.MetronomeMark))
        tempo_bpm = float(marks[0].getQuarterBPM()) if marks and marks[0].number else 100.0
    if tempo_bpm <= 0:
        raise ConfigError(f"tempo_bpm must be positive, got {tempo_bpm}")
    sec = 60.0 / tempo_bpm
    score = score.stripTies(inPlace=False)
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo_bpm)
    ts = next(iter(score.recurse().getElementsByClass(m21.meter.TimeSignature)), None)
    if ts is not None:
        pm.time_signature_changes.append(pretty_midi.TimeSignature(ts.numerator, ts.denominator, 0.0))
    parts = list(score.parts) or [score]
    for i, part in enumerate(parts):
        inst = pretty_midi.Instrument(program=int(programs[i % len(programs)]) if programs else 0,
                                      name=part.partName or f"part{i}")
        for el in part.recurse().notes:
            q, d = float(el.getOffsetInHierarchy(part)), float(el.duration.quarterLength)
            if d <= 0:
                continue
            vel = int(el.volume.velocity) if el.volume.velocity else 90
            for p in el.pitches:
                inst.notes.append(pretty_midi.Note(velocity=vel, pitch=int(p.midi), start=q * sec, end=(q + d) * sec))
        pm.instruments.append(inst)
    return pm, tempo_bpm


def _m21_key_label(k: Any) -> str | None:
    if k is None:
        return None
    mode = k.mode if k.mode in ("major", "minor") else "other"
    return f"{k.tonic.name.replace('-', 'b')} {mode}"


def rntxt_labels(score: Any, analysis: Any, *, quarter_to_s: Any, end_s: float, duration_s: float
                 ) -> tuple[list[tuple[float, float, str]], list[tuple[float, float, str]], str | None]:
    """Chord segments, key segments and global key from a parsed RomanText analysis.

    Roman numerals are placed at their score time (matched by measure number, so pickups agree);
    ``quarter_to_s`` maps quarter-note offsets to seconds.  Segments before the first numeral and
    after ``end_s`` are ``N``.
    """
    m21 = _music21()
    score_meas: dict[int, float] = {}
    for m in score.parts[0].getElementsByClass("Measure"):
        score_meas.setdefault(m.number, float(m.offset))  # "7a" (a split measure) keeps measure 7's start
    ana_meas = {}
    for m in analysis.recurse().getElementsByClass("Measure"):
        ana_meas.setdefault(m.number, float(m.getOffsetInHierarchy(analysis)))
    events = []
    for rn in analysis.recurse().getElementsByClass(m21.roman.RomanNumeral):
        q = float(rn.getOffsetInHierarchy(analysis))
        mn = rn.measureNumber
        if mn in score_meas and mn in ana_meas:
            q = score_meas[mn] + (q - ana_meas[mn])
        pcs = {p.pitchClass for p in rn.pitches}
        label = chord_label_from_pitch_classes(root=rn.root().pitchClass, pitch_classes=pcs, bass=rn.bass().pitchClass)
        events.append((float(quarter_to_s(q)), label, _m21_key_label(rn.key)))
    if not events:
        raise DatasetError("the RomanText analysis contains no Roman numerals")
    events.sort(key=lambda e: e[0])
    chords: list[tuple[float, float, str]] = [(0.0, events[0][0], "N")] if events[0][0] > 0 else []
    keys: list[tuple[float, float, str]] = []
    for i, (t, lab, key) in enumerate(events):
        nxt = events[i + 1][0] if i + 1 < len(events) else end_s
        if nxt > t:
            chords.append((t, nxt, lab))
        if key is not None:
            if keys and keys[-1][2] == key:
                keys[-1] = (keys[-1][0], nxt, key)
            else:
                keys.append((t, nxt, key))
    if end_s < duration_s:
        chords.append((end_s, duration_s, "N"))
    if keys:
        keys[0] = (0.0, keys[0][1], keys[0][2])
        keys[-1] = (keys[-1][0], duration_s, keys[-1][2])
    return chords, keys, (keys[0][2] if keys else None)


@dataclass
class Music21Source:
    """Scores of music21's corpus rendered through a SoundFont (a corpus source).

    Attributes
    ----------
    entries
        ``[{"id", "score", "analysis"?}]`` (see :func:`music21_analysis_entries`,
        :func:`music21_score_entries`).
    programs
        GM program per part (cycled), or empty for piano.
    tempo_bpm
        Quarter notes per minute; default the score's first metronome mark, else 100.
    sample_rate, soundfont, backend, tail_s
        Rendering settings.
    """

    entries: list[dict[str, str]]
    programs: tuple[int, ...] = ()
    tempo_bpm: float | None = None
    sample_rate: int = 16000
    soundfont: str | None = None
    backend: str = "auto"
    tail_s: float = 1.0
    kind: str = "music"

    def __post_init__(self) -> None:
        if not self.entries:
            raise ConfigError("Music21Source needs at least one entry")
        self.backend = resolve_backend(self.backend)
        self._sf = find_soundfont(self.soundfont)

    def __len__(self) -> int:
        return len(self.entries)

    def fingerprint(self) -> dict[str, Any]:
        m21 = _music21()
        return {"type": "music21", "entries": self.entries, "programs": list(self.programs), "tempo_bpm": self.tempo_bpm, "tail_s": self.tail_s,
                "backend": self.backend, "soundfont_sha256": soundfont_hash(self._sf),
                "music21": m21.__version__}

    def describe(self, index: int) -> str:
        return self.entries[index]["score"]

    def make(self, index: int) -> Piece:
        m21 = _music21()
        entry = self.entries[index]
        try:
            score = m21.converter.parse(entry["score"])
        except Exception as err:
            raise DatasetError(f"music21 cannot parse {entry['score']} ({err})") from err
        pm, bpm = score_to_pretty_midi(score, tempo_bpm=self.tempo_bpm, programs=self.programs)
        if not any(inst.notes for inst in pm.instruments):
            raise DatasetError(f"score {entry['score']} contains no notes")
        end = pm.get_end_time()
        duration = end + self.tail_s
        labels = labels_from_midi(pm, duration_s=duration, estimate_key_if_missing=False)
        labels.sources["notes"] = "music21 score"
        if entry.get("analysis"):
            try:
                analysis = m21.converter.parse(entry["analysis"], format="romanText")
            except Exception as err:
                raise DatasetError(f"music21 cannot parse the analysis {entry['analysis']} ({err})") from err

            def q2s(q: float) -> float:
                return q * 60.0 / bpm

            chords, keys, key = rntxt_labels(score, analysis, quarter_to_s=q2s, end_s=end, duration_s=duration)
            labels.chords, labels.key_segments, labels.key = chords, keys, key
            labels.sources.update(chords="rntxt", key="rntxt")
            labels.mark_chord_tones()
        elif score.analyze("key") is not None:
            labels.key = _m21_key_label(score.analyze("key"))
            labels.sources["key"] = "music21 analyze('key') (estimated)"
        audio = render_midi(pm, sample_rate=self.sample_rate, soundfont=str(self._sf), backend=self.backend,
                            duration_s=duration)
        meta = {"source": entry["score"], "analysis": entry.get("analysis"), "n_parts": len(pm.instruments)}
        return Piece(id=entry["id"], audio=audio, sample_rate=self.sample_rate, labels=labels.to_dict(), meta=meta)
