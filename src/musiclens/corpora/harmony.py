"""Tonal harmony: keys, chords in mir_eval syntax, functional progressions and voice leading.

Pitch classes are integers 0-11 (C = 0); pitches are MIDI numbers.  Chord labels follow
mir_eval's syntax (``C:maj``, ``A:min7``, ``B:hdim7``, ``N``), keys mir_eval's key syntax
(``"Eb major"``, ``"F# minor"``).

Progressions come from a small Markov chain over harmonic *functions* (tonic -> predominant
-> dominant -> tonic, with deceptive and plagal moves), each function realised by one of its
diatonic chords (the 24 major/minor triads and their diatonic sevenths: dominant, major,
minor, half-diminished and diminished sevenths).  Phrases open on the tonic and close with an
authentic cadence (V(7) -> I), so the key is established by the harmony itself.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from musiclens.errors import ConfigError

__all__ = [
    "PITCH_CLASS_NAMES",
    "QUALITY_INTERVALS",
    "MAJOR_SCALE",
    "MINOR_SCALE",
    "Key",
    "Chord",
    "parse_key",
    "chord_label_from_pitch_classes",
    "functional_progression",
    "voice_lead",
    "KRUMHANSL_MAJOR",
    "KRUMHANSL_MINOR",
    "estimate_key",
]

#: Spelling of the 12 pitch classes used in labels (accepted by mir_eval's chord and key parsers).
PITCH_CLASS_NAMES: tuple[str, ...] = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_NAME_TO_PC = {n.lower(): i for i, n in enumerate(PITCH_CLASS_NAMES)} | {
    "c#": 1, "d#": 3, "gb": 6, "g#": 8, "a#": 10, "cb": 11, "fb": 4, "e#": 5, "b#": 0,
}

#: Semitones above the root for each mir_eval chord quality musiclens writes.
QUALITY_INTERVALS: dict[str, tuple[int, ...]] = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8),
    "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10), "hdim7": (0, 3, 6, 10),
    "dim7": (0, 3, 6, 9), "minmaj7": (0, 3, 7, 11), "maj6": (0, 4, 7, 9), "min6": (0, 3, 7, 9),
    "sus4": (0, 5, 7), "sus2": (0, 2, 7),
}
_INTERVALS_TO_QUALITY = {frozenset(v): k for k, v in QUALITY_INTERVALS.items()}
_DEGREE_NAMES = ("1", "b2", "2", "b3", "3", "4", "b5", "5", "b6", "6", "b7", "7")

MAJOR_SCALE: tuple[int, ...] = (0, 2, 4, 5, 7, 9, 11)
#: Natural minor; the dominant chords use the raised seventh (harmonic minor).
MINOR_SCALE: tuple[int, ...] = (0, 2, 3, 5, 7, 8, 10)

#: Krumhansl-Kessler key profiles (probe-tone ratings), index 0 = tonic.
KRUMHANSL_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KRUMHANSL_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass(frozen=True)
class Key:
    """A major or minor key.

    Attributes
    ----------
    tonic
        Pitch class of the tonic, 0-11.
    mode
        ``"major"`` or ``"minor"``.
    """

    tonic: int
    mode: str

    def __post_init__(self) -> None:
        if self.mode not in ("major", "minor") or not 0 <= int(self.tonic) <= 11:
            raise ConfigError(f"invalid key tonic={self.tonic} mode={self.mode!r}; use tonic 0-11, mode major|minor")

    @property
    def label(self) -> str:
        """mir_eval key label, e.g. ``"Eb major"``."""
        return f"{PITCH_CLASS_NAMES[self.tonic]} {self.mode}"

    @property
    def scale(self) -> tuple[int, ...]:
        """Pitch classes of the (natural) scale, tonic first."""
        steps = MAJOR_SCALE if self.mode == "major" else MINOR_SCALE
        return tuple((self.tonic + s) % 12 for s in steps)


def parse_key(label: str) -> Key:
    """Parse a mir_eval key label (``"F# minor"``) into a :class:`Key`."""
    try:
        name, mode = label.split()
        return Key(_NAME_TO_PC[name.lower()], mode)
    except (ValueError, KeyError) as err:
        raise ConfigError(f"cannot parse key {label!r}; write e.g. 'C major' or 'F# minor'") from err


@dataclass(frozen=True)
class Chord:
    """A chord: root pitch class, mir_eval quality, and its Roman numeral in the key.

    Attributes
    ----------
    root
        Pitch class of the root, 0-11.
    quality
        A key of :data:`QUALITY_INTERVALS` (``"maj"``, ``"min7"``, ...).
    numeral
        Roman numeral in the key (``"V7"``, ``"ii"``), for information.
    function
        ``"T"``, ``"PD"`` or ``"D"``.
    """

    root: int
    quality: str
    numeral: str = ""
    function: str = ""

    @property
    def pitch_classes(self) -> tuple[int, ...]:
        """Chord tones as pitch classes, root first."""
        return tuple((self.root + i) % 12 for i in QUALITY_INTERVALS[self.quality])

    @property
    def label(self) -> str:
        """mir_eval chord label (``"G:7"``)."""
        return f"{PITCH_CLASS_NAMES[self.root]}:{self.quality}"


def chord_label_from_pitch_classes(*, root: int, pitch_classes: set[int] | frozenset[int] | tuple[int, ...],
                                   bass: int | None = None) -> str:
    """mir_eval label of a chord given its root and pitch classes.

    Known sets map to shorthand qualities (``maj``, ``min7``, ...); others are written as
    interval lists (``C:(1,3,b7)``).  A ``bass`` other than the root adds an inversion
    (``C:maj/3``).
    """
    rel = frozenset((int(p) - int(root)) % 12 for p in pitch_classes) | {0}
    name = PITCH_CLASS_NAMES[int(root) % 12]
    quality = _INTERVALS_TO_QUALITY.get(rel)
    body = f"{name}:{quality}" if quality else f"{name}:({','.join(_DEGREE_NAMES[i] for i in sorted(rel))})"
    if bass is not None and (int(bass) - int(root)) % 12 != 0:
        body += "/" + _DEGREE_NAMES[(int(bass) - int(root)) % 12]
    return body


# Diatonic chords per mode: numeral -> (scale-degree semitones of root, triad quality, seventh quality).
_MAJOR_CHORDS = {
    "I": (0, "maj", "maj7"), "ii": (2, "min", "min7"), "iii": (4, "min", "min7"), "IV": (5, "maj", "maj7"),
    "V": (7, "maj", "7"), "vi": (9, "min", "min7"), "viio": (11, "dim", "hdim7"),
}
_MINOR_CHORDS = {
    "i": (0, "min", "min7"), "iio": (2, "dim", "hdim7"), "III": (3, "maj", "maj7"), "iv": (5, "min", "min7"),
    "V": (7, "maj", "7"), "VI": (8, "maj", "maj7"), "viio": (11, "dim", "dim7"),
}
# Functions and their chords (weights), per mode.
_FUNCTIONS = {
    "major": {"T": {"I": 0.7, "vi": 0.25, "iii": 0.05}, "PD": {"IV": 0.5, "ii": 0.5}, "D": {"V": 0.85, "viio": 0.15}},
    "minor": {"T": {"i": 0.75, "VI": 0.2, "III": 0.05}, "PD": {"iv": 0.55, "iio": 0.45}, "D": {"V": 0.85, "viio": 0.15}},
}
# Function transitions (from -> {to: weight}).
_TRANSITIONS = {"T": {"T": 0.2, "PD": 0.5, "D": 0.3}, "PD": {"PD": 0.2, "D": 0.7, "T": 0.1}, "D": {"T": 0.85, "D": 0.15}}
_TONIC = {"major": "I", "minor": "i"}


def _choice(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _make_chord(key: Key, numeral: str, *, seventh: bool, function: str) -> Chord:
    table = _MAJOR_CHORDS if key.mode == "major" else _MINOR_CHORDS
    degree, triad, sev = table[numeral]
    return Chord(root=(key.tonic + degree) % 12, quality=sev if seventh else triad,
                 numeral=numeral + ("7" if seventh else ""), function=function)


def functional_progression(*, key: Key, n_chords: int, rng: np.random.Generator,
                           seventh_prob: float = 0.3) -> list[Chord]:
    """A progression of ``n_chords`` chords in ``key`` from functional harmony.

    Opens on the tonic, closes with an authentic cadence (V or V7 then I); in between, functions
    follow a Markov chain (T -> PD/D, PD -> D, D -> T) and each function picks one of its
    diatonic chords.  Sevenths (diatonic qualities: V7, ii7/iiø7, IVmaj7, vii°7...) appear with
    probability ``seventh_prob`` on non-tonic chords.

    Parameters
    ----------
    key
        The key.
    n_chords
        Number of chords (>= 2).
    rng
        Random generator (the only source of randomness).
    seventh_prob
        Probability that a non-tonic chord carries its diatonic seventh, in [0, 1].
    """
    if n_chords < 2:
        raise ConfigError(f"a progression needs at least 2 chords (tonic and cadence), got {n_chords}")
    if not 0.0 <= seventh_prob <= 1.0:
        raise ConfigError(f"seventh_prob must be in [0, 1], got {seventh_prob}")
    funcs = _FUNCTIONS[key.mode]
    tonic = _TONIC[key.mode]
    chords = [_make_chord(key, tonic, seventh=False, function="T")]
    func = "T"
    for i in range(1, n_chords):
        if i == n_chords - 1:
            chords.append(_make_chord(key, tonic, seventh=False, function="T"))
            break
        if i == n_chords - 2:
            func = "D"
            numeral = "V"
        else:
            func = _choice(rng, _TRANSITIONS[func])
            numeral = _choice(rng, funcs[func])
            if numeral == chords[-1].numeral.rstrip("7"):  # avoid repeating the same chord
                numeral = _choice(rng, funcs[func])
        seventh = numeral not in ("I", "i") and bool(rng.random() < seventh_prob)
        chords.append(_make_chord(key, numeral, seventh=seventh, function=func))
    return chords


def _closed_voicings(pcs: list[int], *, low: int, high: int) -> list[tuple[int, ...]]:
    out: set[tuple[int, ...]] = set()
    for perm in set(itertools.permutations(pcs)):
        for start in range(low, low + 12):
            if start % 12 != perm[0]:
                continue
            notes = [start]
            for pc in perm[1:]:
                nxt = notes[-1] + 1 + ((pc - notes[-1] - 1) % 12)
                notes.append(nxt)
            if notes[-1] <= high:
                out.add(tuple(notes))
    return sorted(out)


def voice_lead(chords: list[Chord], *, n_voices: int = 4, low: int = 52, high: int = 79,
               rng: np.random.Generator | None = None) -> list[tuple[int, ...]]:
    """Voicings (ascending MIDI pitches) for ``chords`` with minimal voice motion.

    Each voicing holds exactly the chord's pitch classes (triads double the root to fill
    ``n_voices``); consecutive voicings minimise the summed absolute motion of the sorted voices,
    ties broken by closeness to the middle of the range.

    Parameters
    ----------
    chords
        The progression.
    n_voices
        Voices per chord (3 or 4).
    low, high
        Range of the voices, MIDI, inclusive.
    rng
        If given, picks the first voicing at random among the central ones.

    Returns
    -------
    list of tuple of int
        One ascending tuple of ``n_voices`` pitches per chord.
    """
    if n_voices not in (3, 4):
        raise ConfigError(f"n_voices must be 3 or 4, got {n_voices}")
    if high - low < 14:
        raise ConfigError(f"voice range {low}-{high} is too narrow; allow at least 14 semitones")
    out: list[tuple[int, ...]] = []
    middle = (low + high) / 2
    for chord in chords:
        pcs = list(chord.pitch_classes)
        if len(pcs) < n_voices:
            pcs = pcs + [pcs[0]] * (n_voices - len(pcs))
        elif len(pcs) > n_voices:  # a seventh chord in 3 voices: drop the fifth
            pcs = [p for i, p in enumerate(pcs) if i != 2][:n_voices]
        cands = _closed_voicings(pcs, low=low, high=high)
        if not out:
            cands.sort(key=lambda v: abs(float(np.mean(v)) - middle))
            k = int(rng.integers(0, min(3, len(cands)))) if rng is not None else 0
            out.append(cands[k])
            continue
        prev = np.array(out[-1])
        best = min(cands, key=lambda v: (float(np.abs(np.array(v) - prev).sum()), abs(float(np.mean(v)) - middle)))
        out.append(best)
    return out


def estimate_key(pitch_class_weights: np.ndarray) -> tuple[Key, np.ndarray]:
    """Krumhansl-Schmuckler key estimate from a pitch-class distribution.

    Parameters
    ----------
    pitch_class_weights
        ``[shape=(12,)]`` weight of each pitch class (e.g. total note duration).

    Returns
    -------
    key
        The key whose rotated profile correlates best with the distribution.
    correlations
        ``[shape=(24,)]`` Pearson correlations, major keys C..B then minor keys C..B.
    """
    w = np.asarray(pitch_class_weights, dtype=float)
    if w.shape != (12,) or not np.isfinite(w).all() or w.std() == 0:
        raise ConfigError("need a non-constant, finite pitch-class distribution of shape (12,)")
    corr = np.empty(24)
    for mode_i, profile in enumerate((KRUMHANSL_MAJOR, KRUMHANSL_MINOR)):
        for tonic in range(12):
            corr[mode_i * 12 + tonic] = np.corrcoef(w, np.roll(profile, tonic))[0, 1]
    best = int(np.argmax(corr))
    return Key(best % 12, "major" if best < 12 else "minor"), corr
