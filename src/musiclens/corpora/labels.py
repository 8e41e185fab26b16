"""Aligned music labels: note list, piano roll, onsets, beats, chords (mir_eval syntax), key.

:class:`MusicLabels` is the one container every music source fills (generated pieces, MIDI
files, music21 scores, MAESTRO).  Times are seconds from the start of the audio, pitches MIDI
numbers.  Labels serialise to plain JSON (floats round-trip exactly) and crop consistently
with the audio (:meth:`MusicLabels.crop`).

Conventions
-----------
- Note table columns: ``onset``, ``offset`` (s), ``pitch`` (MIDI), ``velocity`` (1-127),
  ``program`` (GM, 0-127), ``is_drum``, ``track`` (instrument index), ``instrument`` (track
  name), ``chord_tone`` (pitch class in the chord sounding at the onset; False for drums or
  without chord labels), ``continued`` (the note began before a crop, so it is no onset).
- Piano roll: 88 keys (MIDI 21-108), frame ``f`` covers ``[f / frame_rate, (f + 1) / frame_rate)``;
  a note is active on frames ``floor(onset * fr)`` to ``floor(offset * fr) - 1`` (pretty_midi's
  convention), at least one frame; drums are excluded.
- Chords: contiguous segments covering ``[0, duration_s]`` with mir_eval labels (``N`` = none).
- Key: mir_eval key label (``"Eb major"``), or ``None`` when unknown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from musiclens.errors import StimulusError

__all__ = [
    "NOTE_COLUMNS",
    "PIANO_LOW",
    "N_KEYS",
    "MusicLabels",
    "empty_notes",
    "notes_from_pretty_midi",
    "piano_roll",
    "sounding_pitch_classes",
    "validate_labels",
]

NOTE_COLUMNS: tuple[str, ...] = (
    "onset", "offset", "pitch", "velocity", "program", "is_drum", "track", "instrument", "chord_tone", "continued",
)
PIANO_LOW = 21
N_KEYS = 88
_DTYPES = {"onset": "float64", "offset": "float64", "pitch": "int64", "velocity": "int64", "program": "int64",
           "is_drum": "bool", "track": "int64", "instrument": "object", "chord_tone": "bool", "continued": "bool"}


def empty_notes() -> pd.DataFrame:
    """An empty note table with the standard columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=_DTYPES[c]) for c in NOTE_COLUMNS})


def _normalise_notes(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for c in NOTE_COLUMNS:
        if c not in df:
            df[c] = False if _DTYPES[c] == "bool" else ("" if c == "instrument" else 0)
    df = df[list(NOTE_COLUMNS)].astype(_DTYPES)
    return df.sort_values(["onset", "pitch", "track", "offset"], kind="mergesort").reset_index(drop=True)


def notes_from_pretty_midi(pm: Any) -> pd.DataFrame:
    """Note table of a :class:`pretty_midi.PrettyMIDI` (all instruments, drums included).

    Notes with ``offset <= onset`` are dropped (they make no sound and break mir_eval).
    """
    rows = []
    for track, inst in enumerate(pm.instruments):
        for n in inst.notes:
            if n.end <= n.start:
                continue
            rows.append((float(n.start), float(n.end), int(n.pitch), int(n.velocity), int(inst.program),
                         bool(inst.is_drum), track, inst.name or f"track{track}", False, False))
    if not rows:
        return empty_notes()
    return _normalise_notes(pd.DataFrame(rows, columns=list(NOTE_COLUMNS)))


def piano_roll(notes: pd.DataFrame, *, frame_rate: float, duration_s: float,
               include_drums: bool = False) -> np.ndarray:
    """Binary 88-key piano roll.

    Parameters
    ----------
    notes
        Note table (see module docstring).
    frame_rate
        Frames per second (Hz).
    duration_s
        Length covered; ``ceil(duration_s * frame_rate)`` frames.
    include_drums
        Also mark drum notes at their key numbers.

    Returns
    -------
    np.ndarray
        ``[shape=(n_frames, 88)]`` bool; column ``k`` is MIDI ``21 + k``.
    """
    if frame_rate <= 0:
        raise StimulusError(f"frame_rate must be positive, got {frame_rate}")
    n_frames = int(math.ceil(duration_s * frame_rate - 1e-9))
    roll = np.zeros((max(n_frames, 0), N_KEYS), dtype=bool)
    for on, off, pitch, drum in zip(notes["onset"].to_numpy(), notes["offset"].to_numpy(),
                                    notes["pitch"].to_numpy(), notes["is_drum"].to_numpy()):
        if (drum and not include_drums) or not PIANO_LOW <= pitch < PIANO_LOW + N_KEYS:
            continue
        start = int(on * frame_rate)
        stop = max(int(off * frame_rate), start + 1)
        roll[start:min(stop, n_frames), pitch - PIANO_LOW] = True
    return roll


def sounding_pitch_classes(notes: pd.DataFrame, *, start_s: float, end_s: float,
                           include_drums: bool = False) -> set[int]:
    """Pitch classes of the notes sounding anywhere in ``[start_s, end_s)``."""
    m = (notes["onset"] < end_s) & (notes["offset"] > start_s)
    if not include_drums:
        m &= ~notes["is_drum"]
    return {int(p) % 12 for p in notes.loc[m, "pitch"]}


@dataclass
class MusicLabels:
    """Every label of one music piece, aligned to its audio.

    Attributes
    ----------
    notes
        Note table, one row per note (columns :data:`NOTE_COLUMNS`).
    duration_s
        Length of the audio, seconds.
    beats, downbeats
        ``[shape=(n,)]`` beat and downbeat times, seconds, increasing.
    chords
        ``[(start_s, end_s, label), ...]`` covering ``[0, duration_s]``, or ``None`` if unknown.
    key
        mir_eval key label or ``None``.
    key_segments
        Local keys ``[(start_s, end_s, key), ...]`` (modulations), or ``None``.
    tempo_bpm, time_signature
        Nominal tempo and meter (``"3/4"``), when known.
    sources
        Where each label type came from (``{"chords": "generated", "key": "rntxt", ...}``).
    """

    notes: pd.DataFrame
    duration_s: float
    beats: np.ndarray = field(default_factory=lambda: np.zeros(0))
    downbeats: np.ndarray = field(default_factory=lambda: np.zeros(0))
    chords: list[tuple[float, float, str]] | None = None
    key: str | None = None
    key_segments: list[tuple[float, float, str]] | None = None
    tempo_bpm: float | None = None
    time_signature: str | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.notes = _normalise_notes(self.notes)
        self.beats = np.asarray(self.beats, dtype=np.float64)
        self.downbeats = np.asarray(self.downbeats, dtype=np.float64)

    # ----------------------------------------------------------------- derived views
    def onsets(self, *, include_drums: bool = True) -> np.ndarray:
        """``[shape=(n,)]`` sorted unique note-onset times, seconds (continued notes excluded)."""
        m = ~self.notes["continued"]
        if not include_drums:
            m &= ~self.notes["is_drum"]
        return np.unique(self.notes.loc[m, "onset"].to_numpy(dtype=np.float64))

    def piano_roll(self, *, frame_rate: float, include_drums: bool = False) -> np.ndarray:
        """``[shape=(ceil(duration_s * frame_rate), 88)]`` bool piano roll (see :func:`piano_roll`)."""
        return piano_roll(self.notes, frame_rate=frame_rate, duration_s=self.duration_s, include_drums=include_drums)

    def mir_eval_notes(self, *, include_drums: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Notes for ``mir_eval.transcription``: intervals ``[shape=(n, 2)]`` s and pitches ``[shape=(n,)]`` Hz."""
        from musiclens.stimuli.stimulus_set import midi_to_hz

        n = self.notes if include_drums else self.notes[~self.notes["is_drum"]]
        intervals = n[["onset", "offset"]].to_numpy(dtype=np.float64).reshape(-1, 2)
        return intervals, np.asarray(midi_to_hz(n["pitch"].to_numpy(dtype=np.float64)), dtype=np.float64)

    def chord_intervals(self) -> tuple[np.ndarray, list[str]]:
        """Chords for ``mir_eval.chord``: intervals ``[shape=(n, 2)]`` s and labels."""
        if self.chords is None:
            raise StimulusError("this piece has no chord labels (their source is unknown)")
        iv = np.array([[s, e] for s, e, _ in self.chords], dtype=np.float64).reshape(-1, 2)
        return iv, [lab for _, _, lab in self.chords]

    def chord_at(self, time_s: float) -> str | None:
        """Chord label sounding at ``time_s`` (None without chord labels or outside them)."""
        for s, e, lab in self.chords or []:
            if s <= time_s < e:
                return lab
        return None

    # ----------------------------------------------------------------- crop
    def crop(self, *, start_s: float, end_s: float) -> MusicLabels:
        """Labels of the excerpt ``[start_s, end_s)``, with times relative to ``start_s``.

        Notes overlapping the window are clipped to it; notes that began before it are flagged
        ``continued`` (active in the piano roll, not an onset).  Chord and key segments are
        intersected with the window; beats keep those inside it.
        """
        if not 0 <= start_s < end_s:
            raise StimulusError(f"need 0 <= start_s < end_s, got {start_s}, {end_s}")
        n = self.notes
        m = (n["onset"] < end_s) & (n["offset"] > start_s)
        notes = n.loc[m].copy()
        notes["continued"] = notes["continued"] | (notes["onset"] < start_s)
        notes["onset"] = np.maximum(notes["onset"].to_numpy() - start_s, 0.0)
        notes["offset"] = np.minimum(notes["offset"].to_numpy(), end_s) - start_s

        def segs(items: list[tuple[float, float, str]] | None) -> list[tuple[float, float, str]] | None:
            if items is None:
                return None
            out = [(max(s, start_s) - start_s, min(e, end_s) - start_s, lab)
                   for s, e, lab in items if s < end_s and e > start_s]
            return out or [(0.0, end_s - start_s, "N")]

        def inside(t: np.ndarray) -> np.ndarray:
            return t[(t >= start_s) & (t < end_s)] - start_s

        return replace(self, notes=notes, duration_s=float(end_s - start_s), beats=inside(self.beats),
                       downbeats=inside(self.downbeats), chords=segs(self.chords),
                       key_segments=segs(self.key_segments))

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (column lists for the notes; floats round-trip exactly)."""
        return {
            "kind": "music",
            "duration_s": float(self.duration_s),
            "notes": {c: self.notes[c].tolist() for c in NOTE_COLUMNS},
            "beats": self.beats.tolist(),
            "downbeats": self.downbeats.tolist(),
            "chords": None if self.chords is None else [[float(s), float(e), lab] for s, e, lab in self.chords],
            "key": self.key,
            "key_segments": None if self.key_segments is None else [[float(s), float(e), k] for s, e, k in self.key_segments],
            "tempo_bpm": self.tempo_bpm,
            "time_signature": self.time_signature,
            "sources": dict(self.sources),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MusicLabels:
        """Inverse of :meth:`to_dict`."""
        notes = pd.DataFrame(d["notes"]) if d["notes"]["onset"] else empty_notes()
        return cls(
            notes=notes, duration_s=float(d["duration_s"]), beats=np.asarray(d["beats"], dtype=np.float64),
            downbeats=np.asarray(d["downbeats"], dtype=np.float64),
            chords=None if d.get("chords") is None else [(float(s), float(e), str(lab)) for s, e, lab in d["chords"]],
            key=d.get("key"),
            key_segments=None if d.get("key_segments") is None else [(float(s), float(e), str(k)) for s, e, k in d["key_segments"]],
            tempo_bpm=d.get("tempo_bpm"), time_signature=d.get("time_signature"), sources=dict(d.get("sources") or {}),
        )

    def mark_chord_tones(self) -> None:
        """Set ``chord_tone``: a pitched note's pitch class belongs to the chord at its onset."""
        if self.chords is None:
            return
        import mir_eval

        starts = np.array([s for s, _, _ in self.chords])
        pcs = []
        for _, _, lab in self.chords:
            root, bitmap, _ = mir_eval.chord.encode(lab)
            pcs.append(set() if root < 0 else {(root + i) % 12 for i in np.flatnonzero(bitmap)})
        idx = np.clip(np.searchsorted(starts, self.notes["onset"].to_numpy(), side="right") - 1, 0, len(starts) - 1)
        flags = [(not d) and (int(p) % 12 in pcs[i]) for p, d, i in
                 zip(self.notes["pitch"], self.notes["is_drum"], idx)]
        self.notes["chord_tone"] = np.asarray(flags, dtype=bool)


def validate_labels(labels: MusicLabels) -> None:
    """Check every label type with mir_eval's validators; raise :class:`StimulusError` on failure.

    Covers ``mir_eval.transcription.validate`` (notes), ``mir_eval.onset.validate``,
    ``mir_eval.beat.validate`` (beats and downbeats), ``mir_eval.chord.validate`` plus interval
    checks, and ``mir_eval.key.validate_key``.
    """
    import warnings

    import mir_eval

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # mir_eval warns about empty arrays, which are valid here
            iv, hz = labels.mir_eval_notes()
            if len(iv):
                mir_eval.transcription.validate(iv, hz, iv, hz)
            on = labels.onsets()
            mir_eval.onset.validate(on, on)
            mir_eval.beat.validate(labels.beats, labels.beats)
            mir_eval.beat.validate(labels.downbeats, labels.downbeats)
            if labels.chords is not None:
                civ, clab = labels.chord_intervals()
                mir_eval.chord.validate(clab, clab)
                mir_eval.util.validate_intervals(civ)
                if abs(civ[0, 0]) > 1e-9 or np.any(np.abs(civ[1:, 0] - civ[:-1, 1]) > 1e-9):
                    raise StimulusError("chord segments must start at 0 and be contiguous")
            if labels.key is not None:
                mir_eval.key.validate_key(labels.key)
    except ValueError as err:
        raise StimulusError(f"labels fail mir_eval validation: {err}") from err
