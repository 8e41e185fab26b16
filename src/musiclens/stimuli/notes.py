"""Render grids of isolated notes (instrument x MIDI pitch x velocity) as a `StimulusSet`.

Four synthesizers, registered in :data:`NOTE_SYNTHS` by name:

- ``"soundfont"`` — General MIDI programs from a SoundFont (:mod:`musiclens.stimuli.soundfont`);
  instruments are GM names or program numbers (see :mod:`musiclens.stimuli.instruments`).
- ``"additive"`` — the pure-NumPy harmonic synthesizer; instruments are names in
  :data:`musiclens.stimuli.synth.TIMBRES`.
- ``"pure"`` — sinusoids (instrument ``"sine"``).
- ``"shepard"`` — Shepard tones (instrument ``"shepard"``).

Notes are NSynth-like by default: 4 s at 16 kHz, held 3 s then released, mono.  Named grids
(:data:`GRIDS`) give ready-made designs; ``"paper"`` is the 30-instrument x MIDI 60-95 grid.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from musiclens.errors import ConfigError, SoundFontError, StimulusError
from musiclens.provenance import Timer
from musiclens.registry import Registry
from musiclens.stimuli.instruments import (
    PAPER_INSTRUMENTS,
    PAPER_MIDI,
    PAPER_VELOCITY,
    Instrument,
    resolve_instrument,
)
from musiclens.stimuli.stimulus_set import StimulusSet, note_name
from musiclens.stimuli.synth import TIMBRES, additive_note, pure_tone, shepard_tone

__all__ = ["NoteGrid", "NoteSynth", "GRIDS", "NOTE_SYNTHS", "render_notes", "render_grid", "note_grid", "plan_grid"]

logger = logging.getLogger(__name__)

#: Relative RMS below which a rendered note counts as silent (preset or range missing).
SILENCE_RMS = 1e-5


@dataclass
class NoteGrid:
    """A design of isolated notes: every instrument plays every pitch at every velocity.

    Attributes
    ----------
    instruments
        Instrument names (or GM program numbers, for the SoundFont synth).
    midi
        MIDI pitches.
    velocities
        MIDI velocities 1-127.
    synth
        Name in :data:`NOTE_SYNTHS`.
    duration_s, hold_s, sample_rate
        Note length, note-off time and sample rate.
    """

    instruments: list[str | int]
    midi: list[int]
    velocities: list[int] = field(default_factory=lambda: [PAPER_VELOCITY])
    synth: str = "soundfont"
    duration_s: float = 4.0
    hold_s: float = 3.0
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        if not self.instruments or not self.midi or not self.velocities:
            raise ConfigError("a note grid needs at least one instrument, one pitch and one velocity")
        if any(not 0 <= int(m) <= 127 for m in self.midi):
            raise ConfigError(f"MIDI pitches must lie in 0-127, got {sorted(self.midi)}")
        if any(not 1 <= int(v) <= 127 for v in self.velocities):
            raise ConfigError(f"velocities must lie in 1-127, got {sorted(self.velocities)}")

    def __len__(self) -> int:
        return len(self.instruments) * len(self.midi) * len(self.velocities)


def _paper_grid() -> NoteGrid:
    return NoteGrid(instruments=[i.name for i in PAPER_INSTRUMENTS], midi=list(PAPER_MIDI))


def _quick_grid() -> NoteGrid:
    names = [i.name for i in PAPER_INSTRUMENTS]
    return NoteGrid(instruments=names[0:10:3] + names[10:20:3] + names[20:30:3], midi=list(PAPER_MIDI))


def _additive_grid() -> NoteGrid:
    return NoteGrid(instruments=["additive_keyboard", "additive_guitar", "additive_flute"],
                    midi=list(PAPER_MIDI), synth="additive")


#: Named grids; ``GRIDS.get(name)()`` returns a fresh :class:`NoteGrid`.
GRIDS: Registry[Callable[[], NoteGrid]] = Registry("note grid")
GRIDS.register("paper", _paper_grid, help="30 GM instruments (10 keyboard, 10 guitar, 10 flute) x MIDI 60-95, velocity 100")
GRIDS.register("quick", _quick_grid, help="12 of the paper instruments (4 per family) x MIDI 60-95, velocity 100")
GRIDS.register("additive", _additive_grid, help="3 additive timbres (keyboard, guitar, flute) x MIDI 60-95; no SoundFont needed")


# ---------------------------------------------------------------------------------- synthesizers
class NoteSynth(Protocol):
    """A note synthesizer: resolves instrument names and renders single notes."""

    name: str

    def instrument(self, spec: str | int) -> Instrument:
        """The :class:`Instrument` called ``spec`` (raises for unknown names)."""
        ...

    def render(self, inst: Instrument, *, midi: int, velocity: int, grid: NoteGrid, seed: int) -> np.ndarray:
        """One note ``[shape=(round(grid.duration_s * grid.sample_rate),)]`` float32."""
        ...

    def info(self) -> dict[str, Any]:
        """Provenance for the manifest."""
        ...


class _NoteSynth:
    name = ""

    def info(self) -> dict[str, Any]:
        return {"synth": self.name}


class _SoundFontSynth(_NoteSynth):
    name = "soundfont"

    def __init__(self, *, backend: str = "auto", soundfont: str | os.PathLike[str] | None = None,
                 sample_rate: int = 16000, **_: Any) -> None:
        from musiclens.stimuli.soundfont import open_renderer, soundfont_hash

        self.renderer = open_renderer(backend, soundfont=soundfont, sample_rate=sample_rate)
        self._hash = soundfont_hash(self.renderer.soundfont)

    def instrument(self, spec: str | int) -> Instrument:
        inst = resolve_instrument(spec)
        if not self.renderer.has_preset(inst.program or 0):
            raise SoundFontError(
                f"SoundFont {self.renderer.soundfont.name} has no preset for {inst.name!r} "
                f"(program {inst.program}); choose another instrument or SoundFont"
            )
        return inst

    def render(self, inst: Instrument, *, midi: int, velocity: int, grid: NoteGrid, seed: int) -> np.ndarray:
        return self.renderer.render(program=int(inst.program or 0), midi=midi, velocity=velocity,
                                    duration_s=grid.duration_s, hold_s=grid.hold_s)

    def info(self) -> dict[str, Any]:
        return {"synth": self.name, "backend": self.renderer.backend,
                "soundfont": str(self.renderer.soundfont), "soundfont_sha256": self._hash}


class _AdditiveSynth(_NoteSynth):
    name = "additive"

    def __init__(self, **_: Any) -> None:
        pass

    def instrument(self, spec: str | int) -> Instrument:
        timbre = TIMBRES.get(str(spec))
        return Instrument(name=str(spec), family=timbre.family, program=None, low=0, high=127,
                          label=str(spec))

    def render(self, inst: Instrument, *, midi: int, velocity: int, grid: NoteGrid, seed: int) -> np.ndarray:
        # Per-note seed derived from the grid seed and the note, so any subset renders identically.
        note_seed = int(np.random.SeedSequence([seed, midi, velocity, *inst.name.encode()]).generate_state(1)[0])
        return additive_note(TIMBRES.get(inst.name), midi=midi, velocity=velocity, duration_s=grid.duration_s,
                             hold_s=grid.hold_s, sample_rate=grid.sample_rate, seed=note_seed)

    def info(self) -> dict[str, Any]:
        return {"synth": self.name, "timbres": {n: asdict(TIMBRES.get(n)) for n in TIMBRES}}


class _AnalyticSynth(_NoteSynth):
    """A synthesizer with a single analytic instrument (a pure tone or a Shepard tone)."""

    def __init__(self, *, name: str, instrument: Instrument, fn: Callable[..., np.ndarray]) -> None:
        self.name, self._instrument, self._fn = name, instrument, fn

    def instrument(self, spec: str | int) -> Instrument:
        if spec != self._instrument.name:
            raise StimulusError(
                f"the {self.name!r} synth has one instrument, {self._instrument.name!r}; got {spec!r}"
            )
        return self._instrument

    def render(self, inst: Instrument, *, midi: int, velocity: int, grid: NoteGrid, seed: int) -> np.ndarray:
        return self._fn(midi=midi, duration_s=grid.duration_s, hold_s=grid.hold_s,
                        sample_rate=grid.sample_rate, amplitude=0.5 * velocity / 127)


def _pure_synth(**_: Any) -> _AnalyticSynth:
    return _AnalyticSynth(name="pure", fn=pure_tone,
                          instrument=Instrument(name="sine", family="pure", program=None, label="sine"))


def _shepard_synth(**_: Any) -> _AnalyticSynth:
    return _AnalyticSynth(name="shepard", fn=shepard_tone,
                          instrument=Instrument(name="shepard", family="shepard", program=None, label="Shepard tone"))


#: Note synthesizers by name: ``NOTE_SYNTHS.get(name)(**options)``.
NOTE_SYNTHS: Registry[Callable[..., NoteSynth]] = Registry("note synthesizer")
NOTE_SYNTHS.register("soundfont", _SoundFontSynth, help="General MIDI programs from a SoundFont")
NOTE_SYNTHS.register("additive", _AdditiveSynth, help="pure-NumPy additive harmonic synthesizer")
NOTE_SYNTHS.register("pure", _pure_synth, help="sinusoids")
NOTE_SYNTHS.register("shepard", _shepard_synth, help="Shepard tones (octave-ambiguous)")


# ---------------------------------------------------------------------------------- rendering
def plan_grid(
    grid: NoteGrid,
    *,
    backend: str = "auto",
    soundfont: str | os.PathLike[str] | None = None,
    on_out_of_range: str = "error",
    normalize: str = "none",
) -> tuple[Any, list[tuple[Instrument, int, int]], list[dict[str, Any]]]:
    """Check a grid without rendering it: ``(synth, notes to render, skipped notes)``.

    Raises what :func:`render_grid` raises before its first note (unknown synth, instrument or
    option, missing SoundFont, out-of-range pitch, every note skipped), so a study can validate
    its stimuli before any step runs.
    """
    if on_out_of_range not in ("error", "skip"):
        raise ConfigError(f"on_out_of_range must be 'error' or 'skip', got {on_out_of_range!r}")
    if normalize not in ("none", "peak"):
        raise ConfigError(f"normalize must be 'none' or 'peak', got {normalize!r}")
    if not grid.midi or not grid.velocities or not grid.instruments:
        raise StimulusError("a note grid needs at least one instrument, one pitch and one velocity")
    if not grid.sample_rate > 0 or not grid.duration_s > 0 or not 0 <= grid.hold_s <= grid.duration_s:
        raise ConfigError(f"a note grid needs sample_rate > 0 and 0 <= hold_s <= duration_s with duration_s > 0; got "
                          f"sample_rate={grid.sample_rate}, duration_s={grid.duration_s}, hold_s={grid.hold_s} "
                          "(--sample-rate, --duration, --hold on the command line)")
    synth = NOTE_SYNTHS.get(grid.synth)(backend=backend, soundfont=soundfont, sample_rate=grid.sample_rate)
    instruments = [synth.instrument(spec) for spec in grid.instruments]
    names = [i.name for i in instruments]
    if len(set(names)) != len(names):
        raise StimulusError(f"instruments are listed twice: {sorted({n for n in names if names.count(n) > 1})}")
    skipped: list[dict[str, Any]] = []
    jobs: list[tuple[Instrument, int, int]] = []
    for inst in instruments:
        for midi in grid.midi:
            if not inst.in_range(int(midi)):
                if on_out_of_range == "error":
                    inst.check_range(int(midi))
                skipped.append({"instrument": inst.name, "midi": int(midi), "reason": f"outside range {inst.low}-{inst.high}"})
                continue
            for vel in grid.velocities:
                jobs.append((inst, int(midi), int(vel)))
    if not jobs:
        raise StimulusError("every note of the grid was skipped as out of range; check the pitches")
    return synth, jobs, skipped


def render_grid(
    grid: NoteGrid,
    *,
    seed: int = 0,
    backend: str = "auto",
    soundfont: str | os.PathLike[str] | None = None,
    on_out_of_range: str = "error",
    normalize: str = "none",
    progress: bool = True,
) -> StimulusSet:
    """Render every note of ``grid``.

    Parameters
    ----------
    grid
        The design.
    seed
        Seed of every random step (additive synthesis phases); SoundFont rendering is
        deterministic anyway.  Recorded in the set's info.
    backend, soundfont
        SoundFont backend and file (``synth="soundfont"`` only).
    on_out_of_range
        ``"error"`` (default): a pitch outside an instrument's range raises
        :class:`InstrumentRangeError`; ``"skip"``: leave such notes out and record them in
        ``info["skipped"]`` (and so in the manifest).
    normalize
        ``"none"`` (default: levels as the synthesizer renders them) or ``"peak"`` (each note
        scaled to a peak of 0.9).
    progress
        Show a progress bar.

    Raises
    ------
    InstrumentRangeError, SoundFontError, StimulusError
        Out-of-range pitch, missing preset or SoundFont, silent render, unknown instrument.
    """
    synth, jobs, skipped = plan_grid(grid, backend=backend, soundfont=soundfont, on_out_of_range=on_out_of_range,
                                     normalize=normalize)
    timer = Timer()
    clips: list[np.ndarray] = []
    rows: list[dict[str, Any]] = []
    with timer("render"):
        for inst, midi, vel in tqdm(jobs, desc=f"render {grid.synth} notes", unit="note", disable=not progress):
            audio = synth.render(inst, midi=midi, velocity=vel, grid=grid, seed=seed)
            rms = float(np.sqrt(np.mean(np.square(audio[: max(1, int(grid.hold_s * grid.sample_rate))], dtype=np.float64))))
            if rms < SILENCE_RMS:
                raise SoundFontError(
                    f"{inst.name} at MIDI {midi} rendered silence (RMS {rms:.1e}): the SoundFont has no sample "
                    "there; narrow the pitch range or choose another instrument"
                )
            peak = float(np.abs(audio).max())
            if normalize == "peak":
                audio = (audio * (0.9 / peak)).astype(np.float32)
            clips.append(audio)
            rows.append({
                "stimulus_id": f"{inst.name}-{midi:03d}-{vel:03d}",
                "midi": midi, "pitch_class": midi % 12, "octave": midi // 12 - 1,
                "note_name": note_name(midi), "instrument": inst.name, "family": inst.family,
                "velocity": vel, "program": -1 if inst.program is None else inst.program,
                "source": grid.synth, "hold_s": grid.hold_s, "peak": peak, "rms": rms,
            })
    meta = pd.DataFrame(rows)
    info = {
        "generator": "notes",
        "grid": asdict(grid),
        "seed": seed,
        "normalize": normalize,
        "on_out_of_range": on_out_of_range,
        "skipped": skipped,
        "synth": synth.info(),
        "timings_s": timer.seconds,
    }
    if skipped:
        logger.warning("skipped %d out-of-range notes (recorded in the manifest)", len(skipped))
    logger.info("rendered %d notes in %.1f s", len(clips), timer.seconds["render"])
    return StimulusSet(clips, meta, sample_rate=grid.sample_rate, info=info)


def render_notes(
    *,
    instruments: Sequence[str | int] | None = None,
    midi: Sequence[int] | None = None,
    velocities: Sequence[int] | None = None,
    grid: str | None = None,
    synth: str | None = None,
    sample_rate: int | None = None,
    duration_s: float | None = None,
    hold_s: float | None = None,
    seed: int = 0,
    backend: str = "auto",
    soundfont: str | os.PathLike[str] | None = None,
    on_out_of_range: str = "error",
    normalize: str = "none",
    progress: bool = True,
) -> StimulusSet:
    """Render a note grid: a named grid (default ``"paper"``) with any field overridden.

    Examples
    --------
    >>> s = render_notes(grid="paper")                                       # doctest: +SKIP
    >>> s = render_notes(instruments=["flute", 0], midi=range(60, 72))       # doctest: +SKIP
    >>> s = render_notes(synth="additive", instruments=["additive_flute"], midi=[60, 72])  # doctest: +SKIP
    """
    g = note_grid(instruments=instruments, midi=midi, velocities=velocities, grid=grid, synth=synth,
                  sample_rate=sample_rate, duration_s=duration_s, hold_s=hold_s)
    return render_grid(g, seed=seed, backend=backend, soundfont=soundfont, on_out_of_range=on_out_of_range,
                       normalize=normalize, progress=progress)


def note_grid(
    *,
    instruments: Sequence[str | int] | None = None,
    midi: Sequence[int] | None = None,
    velocities: Sequence[int] | None = None,
    grid: str | None = None,
    synth: str | None = None,
    sample_rate: int | None = None,
    duration_s: float | None = None,
    hold_s: float | None = None,
) -> NoteGrid:
    """The :class:`NoteGrid` :func:`render_notes` renders: a named grid with fields overridden."""
    base = GRIDS.get(grid or "paper")()
    if synth is not None and synth != base.synth and instruments is None:
        raise ConfigError(f"synth {synth!r} needs its own instruments; pass instruments=[...]")
    try:
        midi_list = [int(m) for m in midi] if midi is not None else base.midi
        velocity_list = [int(v) for v in velocities] if velocities is not None else base.velocities
    except (TypeError, ValueError) as err:
        raise ConfigError(f"midi and velocities must be lists of integers ({err})") from None
    return NoteGrid(
        instruments=list(instruments) if instruments is not None else base.instruments,
        midi=midi_list,
        velocities=velocity_list,
        synth=synth or base.synth,
        duration_s=duration_s if duration_s is not None else base.duration_s,
        hold_s=hold_s if hold_s is not None else base.hold_s,
        sample_rate=sample_rate if sample_rate is not None else base.sample_rate,
    )

