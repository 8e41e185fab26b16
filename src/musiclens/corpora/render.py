"""Deterministic multi-track MIDI rendering through a SoundFont.

The renderer drives a synthesizer note by note from a :class:`pretty_midi.PrettyMIDI` object:
every note-on and note-off is applied at the sample ``round(time * sample_rate)`` and audio is
generated in between, so label times and audio agree to half a sample.  A fresh synthesizer
is made for every piece (no state carries over between pieces), reverb and chorus are off for
FluidSynth and its output is read as float (no dither): the same piece always renders to the
same samples.

Backends (the SoundFont backends of :mod:`musiclens.stimuli.soundfont`):

- ``"tinysoundfont"`` — pip-only (default when installed);
- ``"fluidsynth"`` — pyfluidsynth over libfluidsynth.

Each pitched track gets its own MIDI channel (drums share channel 10, bank 128); pieces with
more than 15 pitched tracks share channels between tracks of the same program.
"""

from __future__ import annotations

import ctypes
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from musiclens.errors import ConfigError, MissingDependencyError, SoundFontError, StimulusError
from musiclens.registry import Registry
from musiclens.stimuli.soundfont import available_backends, find_soundfont

__all__ = ["MIDI_BACKENDS", "render_midi", "midi_events", "resolve_backend"]

logger = logging.getLogger(__name__)

_DRUM_CHANNEL = 9
_PITCHED_CHANNELS = tuple(c for c in range(16) if c != _DRUM_CHANNEL)


class _Synth(Protocol):
    def program(self, channel: int, program: int, *, drum: bool) -> None: ...
    def noteon(self, channel: int, pitch: int, velocity: int) -> None: ...
    def noteoff(self, channel: int, pitch: int) -> None: ...
    def generate(self, n: int) -> np.ndarray: ...
    def close(self) -> None: ...


@lru_cache(maxsize=4)
def _sf_bytes(path: str, mtime: float) -> bytes:
    return Path(path).read_bytes()


class _TinySynth:
    def __init__(self, soundfont: Path, sample_rate: int) -> None:
        try:
            import tinysoundfont
        except ImportError as err:
            raise MissingDependencyError(
                "MIDI rendering with backend 'tinysoundfont' needs `pip install --no-deps tinysoundfont==0.3.7`; "
                "or use backend='fluidsynth'"
            ) from err
        self._s = tinysoundfont.Synth(samplerate=int(sample_rate))
        self._sfid = self._s.sfload(_sf_bytes(str(soundfont), soundfont.stat().st_mtime))
        self._name = soundfont.name

    def program(self, channel: int, program: int, *, drum: bool) -> None:
        bank = 128 if drum else 0
        if self._s.sfpreset_name(self._sfid, bank, program) is None:
            fallback = 0
            if self._s.sfpreset_name(self._sfid, bank, fallback) is None:
                raise SoundFontError(f"SoundFont {self._name} has no preset {program} in bank {bank}; choose another SoundFont")
            logger.debug("SoundFont %s lacks bank %d preset %d; using preset %d", self._name, bank, program, fallback)
            program = fallback
        self._s.program_select(channel, self._sfid, bank, program, drum)

    def noteon(self, channel: int, pitch: int, velocity: int) -> None:
        self._s.noteon(channel, pitch, velocity)

    def noteoff(self, channel: int, pitch: int) -> None:
        self._s.noteoff(channel, pitch)

    def generate(self, n: int) -> np.ndarray:
        return np.frombuffer(bytes(self._s.generate(n)), dtype=np.float32).reshape(-1, 2)

    def close(self) -> None:
        self._s = None


class _FluidSynth:
    def __init__(self, soundfont: Path, sample_rate: int) -> None:
        import ctypes.util

        if ctypes.util.find_library("fluidsynth") is None:
            raise MissingDependencyError(
                "backend 'fluidsynth' needs libfluidsynth (`apt-get install libfluidsynth3`) and "
                "`pip install pyfluidsynth`; or use backend='tinysoundfont'"
            )
        try:
            import fluidsynth
        except (ImportError, OSError) as err:
            raise MissingDependencyError(f"pyfluidsynth could not load ({err}); `pip install pyfluidsynth`") from err
        self._write = fluidsynth.cfunc(
            "fluid_synth_write_float", ctypes.c_int,
            ("synth", ctypes.c_void_p, 1), ("len", ctypes.c_int, 1),
            ("lout", ctypes.c_void_p, 1), ("loff", ctypes.c_int, 1), ("lincr", ctypes.c_int, 1),
            ("rout", ctypes.c_void_p, 1), ("roff", ctypes.c_int, 1), ("rincr", ctypes.c_int, 1),
        )
        self._s = fluidsynth.Synth(samplerate=float(sample_rate), gain=0.2)
        for key in ("synth.reverb.active", "synth.chorus.active"):
            self._s.setting(key, 0)
        self._sfid = self._s.sfload(str(soundfont))
        if self._sfid < 0:
            raise SoundFontError(f"FluidSynth could not load {soundfont}; is it a valid .sf2?")

    def program(self, channel: int, program: int, *, drum: bool) -> None:
        if self._s.program_select(channel, self._sfid, 128 if drum else 0, program) != 0:
            self._s.program_select(channel, self._sfid, 128 if drum else 0, 0)

    def noteon(self, channel: int, pitch: int, velocity: int) -> None:
        self._s.noteon(channel, pitch, velocity)

    def noteoff(self, channel: int, pitch: int) -> None:
        self._s.noteoff(channel, pitch)

    def generate(self, n: int) -> np.ndarray:
        buf = np.zeros((n, 2), dtype=np.float32)
        ptr = buf.ctypes.data
        self._write(self._s.synth, n, ptr, 0, 2, ptr + 4, 0, 2)
        return buf

    def close(self) -> None:
        self._s.delete()


#: Synthesizer factories for MIDI rendering, by backend name.
MIDI_BACKENDS: Registry[Any] = Registry("MIDI render backend")
MIDI_BACKENDS.register("tinysoundfont", _TinySynth, help="TinySoundFont (pip only)")
MIDI_BACKENDS.register("fluidsynth", _FluidSynth, help="FluidSynth via pyfluidsynth, reverb/chorus off, float output")


def resolve_backend(backend: str) -> str:
    """``"auto"`` -> the first installed backend; other names are checked against the registry."""
    if backend == "auto":
        found = available_backends()
        if not found:
            raise MissingDependencyError(
                "no SoundFont backend is installed: `pip install --no-deps tinysoundfont==0.3.7`, "
                "or `apt-get install libfluidsynth3 && pip install pyfluidsynth`"
            )
        return found[0]
    MIDI_BACKENDS.get(backend)
    return backend


def midi_events(pm: Any, *, sample_rate: int) -> tuple[list[tuple[int, int, int, int, int]], dict[int, tuple[int, bool]]]:
    """Sample-indexed note events and the channel plan of a PrettyMIDI object.

    Returns
    -------
    events
        ``(sample, kind, channel, pitch, velocity)`` sorted by sample, note-offs (kind 0)
        before note-ons (kind 1) at the same sample.
    channels
        ``{channel: (program, is_drum)}``.
    """
    pitched = [i for i, inst in enumerate(pm.instruments) if not inst.is_drum and inst.notes]
    channel_of: dict[int, int] = {}
    channels: dict[int, tuple[int, bool]] = {}
    if len(pitched) <= len(_PITCHED_CHANNELS):
        for ch, i in zip(_PITCHED_CHANNELS, pitched):
            channel_of[i] = ch
            channels[ch] = (int(pm.instruments[i].program), False)
    else:
        by_program: dict[int, int] = {}
        for i in pitched:
            prog = int(pm.instruments[i].program)
            if prog not in by_program:
                if len(by_program) == len(_PITCHED_CHANNELS):
                    raise StimulusError(
                        f"the MIDI has more than {len(_PITCHED_CHANNELS)} distinct pitched programs; "
                        "merge tracks or drop instruments before rendering"
                    )
                by_program[prog] = _PITCHED_CHANNELS[len(by_program)]
                channels[by_program[prog]] = (prog, False)
            channel_of[i] = by_program[prog]
    for i, inst in enumerate(pm.instruments):
        if inst.is_drum and inst.notes:
            channel_of[i] = _DRUM_CHANNEL
            channels.setdefault(_DRUM_CHANNEL, (int(inst.program), True))
    events: list[tuple[int, int, int, int, int]] = []
    for i, ch in channel_of.items():
        for n in pm.instruments[i].notes:
            if n.end <= n.start or not 0 <= n.pitch <= 127:
                continue
            on = int(round(n.start * sample_rate))
            off = max(int(round(n.end * sample_rate)), on + 1)
            events.append((on, 1, ch, int(n.pitch), int(min(max(n.velocity, 1), 127))))
            events.append((off, 0, ch, int(n.pitch), 0))
    events.sort()
    return events, channels


def render_midi(
    pm: Any,
    *,
    sample_rate: int = 16000,
    soundfont: str | os.PathLike[str] | None = None,
    backend: str = "auto",
    duration_s: float | None = None,
    tail_s: float = 1.0,
    peak: float = 0.99,
) -> np.ndarray:
    """Render a PrettyMIDI score to mono float32 audio, deterministically.

    Parameters
    ----------
    pm
        The score (:class:`pretty_midi.PrettyMIDI`); note times in seconds.
    sample_rate
        Output rate, Hz.
    soundfont
        Named SoundFont or ``.sf2`` path (default ``timgm6mb``).
    backend
        ``"auto"``, ``"tinysoundfont"`` or ``"fluidsynth"``.
    duration_s
        Output length; default: last note-off plus ``tail_s``.
    tail_s
        Release time after the last note-off when ``duration_s`` is not given.
    peak
        If the mixed audio exceeds this absolute value it is scaled down to it (no clipping).

    Returns
    -------
    np.ndarray
        ``[shape=(round(duration_s * sample_rate),)]`` float32.
    """
    if sample_rate <= 0:
        raise ConfigError(f"sample_rate must be positive, got {sample_rate}")
    events, channels = midi_events(pm, sample_rate=sample_rate)
    if duration_s is None:
        last = max((e[0] for e in events), default=0) / sample_rate
        duration_s = last + tail_s
    n_total = int(round(duration_s * sample_rate))
    if n_total <= 0:
        raise StimulusError("nothing to render: the score is empty and no duration_s was given")
    synth = MIDI_BACKENDS.get(resolve_backend(backend))(find_soundfont(soundfont), int(sample_rate))
    try:
        for ch, (prog, drum) in sorted(channels.items()):
            synth.program(ch, prog, drum=drum)
        out = np.zeros((n_total, 2), dtype=np.float32)
        pos = 0
        for sample, kind, ch, pitch, vel in events:
            sample = min(sample, n_total)
            if sample > pos:
                out[pos:sample] = synth.generate(sample - pos)
                pos = sample
            if sample >= n_total:
                break
            if kind:
                synth.noteon(ch, pitch, vel)
            else:
                synth.noteoff(ch, pitch)
        if pos < n_total:
            out[pos:] = synth.generate(n_total - pos)
    finally:
        synth.close()
    mono = out.mean(axis=1, dtype=np.float32)
    top = float(np.abs(mono).max(initial=0.0))
    if top > peak:
        mono *= np.float32(peak / top)
    if not np.isfinite(mono).all():
        raise StimulusError("the synthesizer produced non-finite samples; try another backend or SoundFont")
    return mono.astype(np.float32, copy=False)
