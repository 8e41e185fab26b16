"""Generated tonal pieces: key, meter, tempo, functional harmony, melody, bass, drums -> PrettyMIDI + labels.

Each piece is a pure function of ``(seed, index, config)``: its random generator is
``numpy.random.default_rng([seed, index])``, so pieces (and the shards holding them) do not depend
on build order or on which other pieces were made.

A piece has
- a key (24 major/minor keys), a meter (beats per bar, quarter-note beat) and a tempo;
- a chord progression from :func:`~musiclens.corpora.harmony.functional_progression`
  (one or two chords per bar, tonic opening, authentic cadence);
- a voice-led accompaniment (block chords, repeated chords or arpeggios) that sounds exactly the
  chord's pitch classes in each chord segment, a bass on chord tones, a melody of chord tones with
  optional stepwise non-chord tones (flagged ``chord_tone=False`` in the labels), optional drums;
- a General MIDI instrument for each part, and a short silent lead-in and release tail, labelled
  ``N`` in the chord track.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from musiclens.corpora.harmony import Chord, Key, functional_progression, voice_lead
from musiclens.corpora.labels import MusicLabels, notes_from_pretty_midi
from musiclens.errors import ConfigError
from musiclens.registry import Registry

__all__ = ["MusicConfig", "GeneratedPiece", "MUSIC_PRESETS", "music_preset", "generate_piece", "piece_rng"]

_MELODY_PROGRAMS = (0, 40, 56, 71, 68, 73, 65, 11, 24, 80, 74, 66)
_ACCOMP_PROGRAMS = (0, 4, 48, 16, 24, 46, 6, 89, 5, 49)
_BASS_PROGRAMS = (32, 33, 34, 42, 43, 38)
# Fast-attack programs (TimGM6mb: audible within 1 ms of note-on; its acoustic grand piano
# sample starts ~7 ms late, its harp ~6 ms): used where audio onsets must match label onsets.
_PERCUSSIVE_PROGRAMS = (2, 4, 8, 12, 13, 25, 105, 108)


@dataclass(frozen=True)
class MusicConfig:
    """How generated pieces are drawn.

    Attributes
    ----------
    duration_s
        Target length of the music in seconds (whole bars, rounded up); the audio adds
        ``lead_in_s`` before and ``tail_s`` after.
    tempo_range
        Tempo drawn uniformly in this range, quarter-note beats per minute.
    meters
        Beats per bar to choose from (quarter-note beats: 2/4, 3/4, 4/4).
    modes
        ``"major"`` and/or ``"minor"``.
    seventh_prob
        Probability that a non-tonic chord carries its diatonic seventh.
    melody, accompaniment, bass
        Which parts to write.
    drums_prob
        Probability that a piece has a drum part (GM channel 10).
    nonchord_prob
        Probability that an off-beat melody note is a stepwise non-chord tone.
    melody_durations
        Melody note lengths to draw from, in beats.
    melody_programs, accompaniment_programs, bass_programs
        General MIDI programs (0-127) to draw each part's instrument from.
    accompaniment_styles
        Any of ``"block"``, ``"pulse"``, ``"arpeggio"``.
    lead_in_s, tail_s
        Silence before the first note; release time after the last note-off, seconds.
    """

    duration_s: float = 8.0
    tempo_range: tuple[float, float] = (72.0, 152.0)
    meters: tuple[int, ...] = (4, 3, 2)
    modes: tuple[str, ...] = ("major", "minor")
    seventh_prob: float = 0.3
    melody: bool = True
    accompaniment: bool = True
    bass: bool = True
    drums_prob: float = 0.3
    nonchord_prob: float = 0.25
    melody_durations: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
    melody_programs: tuple[int, ...] = _MELODY_PROGRAMS
    accompaniment_programs: tuple[int, ...] = _ACCOMP_PROGRAMS
    bass_programs: tuple[int, ...] = _BASS_PROGRAMS
    accompaniment_styles: tuple[str, ...] = ("block", "pulse", "arpeggio")
    lead_in_s: float = 0.25
    tail_s: float = 1.0

    def __post_init__(self) -> None:
        if self.duration_s <= 0 or self.lead_in_s < 0 or self.tail_s < 0:
            raise ConfigError("duration_s must be positive and lead_in_s, tail_s non-negative")
        lo, hi = self.tempo_range
        if not 20 <= lo <= hi <= 400:
            raise ConfigError(f"tempo_range must satisfy 20 <= low <= high <= 400 BPM, got {self.tempo_range}")
        if not self.meters or any(m not in (2, 3, 4) for m in self.meters):
            raise ConfigError(f"meters must be a non-empty subset of (2, 3, 4), got {self.meters}")
        if not self.modes or any(m not in ("major", "minor") for m in self.modes):
            raise ConfigError(f"modes must be a non-empty subset of ('major', 'minor'), got {self.modes}")
        if not (self.melody or self.accompaniment or self.bass):
            raise ConfigError("enable at least one of melody, accompaniment, bass")
        bad = set(self.accompaniment_styles) - {"block", "pulse", "arpeggio"}
        if bad or not self.accompaniment_styles:
            raise ConfigError(f"unknown accompaniment styles {sorted(bad)}; use block, pulse, arpeggio")
        for name in ("melody_programs", "accompaniment_programs", "bass_programs"):
            progs = getattr(self, name)
            if not progs or any(not 0 <= p <= 127 for p in progs):
                raise ConfigError(f"{name} must be non-empty GM programs 0-127, got {progs}")
        if not self.melody_durations or min(self.melody_durations) <= 0:
            raise ConfigError("melody_durations must be positive beat lengths")
        for name in ("seventh_prob", "drums_prob", "nonchord_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


#: Named configurations: ``default`` (full texture), ``sparse`` (one percussive melody, for
#: onset checks), ``chord_tones`` (no non-chord tones: every note belongs to its chord).
MUSIC_PRESETS: Registry[MusicConfig] = Registry("music preset")
MUSIC_PRESETS.register("default", MusicConfig(), help="melody, voice-led accompaniment, bass, optional drums")
MUSIC_PRESETS.register(
    "sparse",
    MusicConfig(tempo_range=(60.0, 90.0), accompaniment=False, bass=False, drums_prob=0.0,
                melody_durations=(1.0, 2.0), melody_programs=_PERCUSSIVE_PROGRAMS),
    help="a single percussive melody with notes >= 0.66 s apart (onset alignment checks)",
)
MUSIC_PRESETS.register("chord_tones", MusicConfig(nonchord_prob=0.0),
                       help="like default, but every pitched note is a chord tone")


def music_preset(name: str, **overrides: Any) -> MusicConfig:
    """A named :class:`MusicConfig` with fields replaced by ``overrides``."""
    return replace(MUSIC_PRESETS.get(name), **overrides)


@dataclass
class GeneratedPiece:
    """One generated piece.

    Attributes
    ----------
    id
        ``"music-<seed>-<index>"``.
    midi
        The score as :class:`pretty_midi.PrettyMIDI` (times in seconds, float).
    labels
        Aligned labels; ``labels.duration_s`` is the length the audio must have.
    info
        Key, meter, tempo, numerals, programs, accompaniment style.
    """

    id: str
    midi: Any
    labels: MusicLabels
    info: dict[str, Any] = field(default_factory=dict)


def piece_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of piece ``index`` of a corpus with ``seed`` (order independent)."""
    return np.random.default_rng([int(seed), int(index)])


def _partition(rng: np.random.Generator, total: float, choices: tuple[float, ...]) -> list[float]:
    out: list[float] = []
    left = total
    while left > 1e-9:
        ok = [c for c in choices if c <= left + 1e-9]
        d = float(rng.choice(ok)) if ok else left
        out.append(d)
        left -= d
    return out


def _melody(rng: np.random.Generator, *, key: Key, chords: list[Chord], seg_beats: list[tuple[float, float]],
            cfg: MusicConfig) -> list[tuple[float, float, int]]:
    """Melody notes ``(start_beat, length_beats, pitch)``."""
    notes: list[tuple[float, float, int]] = []
    prev = 67 + int(rng.integers(-3, 4))
    for chord, (b0, b1) in zip(chords, seg_beats):
        pcs = set(chord.pitch_classes)
        scale = list(key.scale)
        if (key.tonic + 11) % 12 in pcs:  # harmonic minor over the dominant
            scale = [(key.tonic + 11) % 12 if p == (key.tonic + 10) % 12 else p for p in scale]
        t = b0
        for d in _partition(rng, b1 - b0, cfg.melody_durations):
            on_beat = abs(t - round(t)) < 1e-9
            if not on_beat and rng.random() < cfg.nonchord_prob:
                step = int(rng.choice([-2, -1, 1, 2]))
                cands = [p for p in range(prev + min(step, 0), prev + max(step, 0) + 1)
                         if p != prev and p % 12 in scale and p % 12 not in pcs and 60 <= p <= 84]
                if cands:
                    prev = cands[0] if step < 0 else cands[-1]
                    notes.append((t, d, prev))
                    t += d
                    continue
            target = prev + int(rng.integers(-4, 5))
            cands = [p for p in range(60, 85) if p % 12 in pcs]
            prev = min(cands, key=lambda p: (abs(p - target), p))
            notes.append((t, d, prev))
            t += d
    return notes


def generate_piece(*, seed: int, index: int, config: MusicConfig | None = None) -> GeneratedPiece:
    """Generate piece ``index`` of the corpus with ``seed``.

    Parameters
    ----------
    seed
        Corpus seed.
    index
        Piece index (>= 0); with ``seed`` it fixes every random choice.
    config
        Generation settings (default :class:`MusicConfig`).

    Returns
    -------
    GeneratedPiece
        PrettyMIDI score and labels; labels pass :func:`~musiclens.corpora.labels.validate_labels`.
    """
    import pretty_midi

    cfg = config or MusicConfig()
    if index < 0:
        raise ConfigError(f"piece index must be >= 0, got {index}")
    rng = piece_rng(seed, index)
    key = Key(int(rng.integers(0, 12)), str(rng.choice(list(cfg.modes))))
    meter = int(rng.choice(list(cfg.meters)))
    tempo = float(np.round(rng.uniform(*cfg.tempo_range), 2))
    beat_s = 60.0 / tempo
    bar_s = meter * beat_s
    n_bars = max(2, int(np.ceil(cfg.duration_s / bar_s - 1e-9)))
    per_bar = int(rng.choice([1, 2])) if meter == 4 else 1
    n_chords = n_bars * per_bar
    chords = functional_progression(key=key, n_chords=n_chords, rng=rng, seventh_prob=cfg.seventh_prob)
    seg = meter / per_bar
    seg_beats = [(i * seg, (i + 1) * seg) for i in range(n_chords)]
    lead = cfg.lead_in_s

    def at(beat: float) -> float:
        return lead + beat * beat_s

    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(meter, 4, 0.0))
    programs: dict[str, int] = {}

    def add(role: str, program: int, notes: list[tuple[float, float, int, int]], *, drum: bool = False) -> None:
        inst = pretty_midi.Instrument(program=program, is_drum=drum, name=role)
        for start, end, pitch, vel in notes:
            inst.notes.append(pretty_midi.Note(velocity=int(vel), pitch=int(pitch), start=float(start), end=float(end)))
        pm.instruments.append(inst)
        programs[role] = program

    style = str(rng.choice(list(cfg.accompaniment_styles)))
    if cfg.melody:
        prog = int(rng.choice(list(cfg.melody_programs)))
        mel = _melody(rng, key=key, chords=chords, seg_beats=seg_beats, cfg=cfg)
        add("melody", prog, [(at(b), at(b + d * 0.9), p, int(rng.integers(80, 111))) for b, d, p in mel])
    if cfg.accompaniment:
        prog = int(rng.choice(list(cfg.accompaniment_programs)))
        voicings = voice_lead(chords, n_voices=4, low=50, high=76, rng=rng)
        acc: list[tuple[float, float, int, int]] = []
        for (b0, b1), voicing in zip(seg_beats, voicings):
            vel = int(rng.integers(55, 81))
            if style == "block":
                acc += [(at(b0), at(b1 - 0.05), p, vel) for p in voicing]
            elif style == "pulse":
                for b in np.arange(b0, b1 - 1e-9, 1.0):
                    acc += [(at(b), at(b + 0.85), p, vel) for p in voicing]
            else:
                order = list(voicing) + list(voicing[1:-1][::-1])
                for k, b in enumerate(np.arange(b0, b1 - 1e-9, 0.5)):
                    acc.append((at(b), at(min(b + 0.5, b1) - 0.02), order[k % len(order)], vel))
        add("accompaniment", prog, acc)
    if cfg.bass:
        prog = int(rng.choice(list(cfg.bass_programs)))
        bass: list[tuple[float, float, int, int]] = []
        for chord, (b0, b1) in zip(chords, seg_beats):
            root = 36 + (chord.root - 36) % 12
            fifth = 36 + (chord.pitch_classes[2] - 36) % 12
            vel = int(rng.integers(70, 96))
            if b1 - b0 >= 2 and rng.random() < 0.5:
                mid = b0 + np.floor((b1 - b0) / 2)
                bass += [(at(b0), at(mid - 0.05), root, vel), (at(mid), at(b1 - 0.05), fifth, vel)]
            else:
                bass.append((at(b0), at(b1 - 0.05), root, vel))
        add("bass", prog, bass)
    has_drums = bool(rng.random() < cfg.drums_prob)
    if has_drums:
        drums: list[tuple[float, float, int, int]] = []
        for bar in range(n_bars):
            for k in range(meter * 2):
                b = bar * meter + k / 2
                drums.append((at(b), at(b) + 0.08, 42, 60))
                if k == 0 or (meter == 4 and k == 4):
                    drums.append((at(b), at(b) + 0.1, 36, 100))
                elif k % 2 == 0 and (meter != 3 or k == 2):
                    drums.append((at(b), at(b) + 0.1, 38, 90))
        add("drums", 0, drums, drum=True)

    music_end = at(n_bars * meter)
    duration = music_end + cfg.tail_s
    chord_segs = [(0.0, lead, "N")] if lead > 0 else []
    chord_segs += [(at(b0), at(b1), c.label) for c, (b0, b1) in zip(chords, seg_beats)]
    chord_segs.append((music_end, duration, "N"))
    beats = np.array([at(b) for b in range(n_bars * meter)])
    labels = MusicLabels(
        notes=notes_from_pretty_midi(pm), duration_s=duration, beats=beats, downbeats=beats[::meter],
        chords=chord_segs, key=key.label, tempo_bpm=tempo, time_signature=f"{meter}/4",
        sources={"notes": "generated", "chords": "generated", "key": "generated", "beats": "generated"},
    )
    labels.mark_chord_tones()
    info = {"key": key.label, "meter": meter, "tempo_bpm": tempo, "n_bars": n_bars,
            "numerals": [c.numeral for c in chords], "programs": programs,
            "accompaniment_style": style if cfg.accompaniment else None, "drums": has_drums}
    return GeneratedPiece(id=f"music-{seed}-{index:07d}", midi=pm, labels=labels, info=info)
