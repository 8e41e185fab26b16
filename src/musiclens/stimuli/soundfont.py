"""SoundFont rendering of single notes and MIDI files, with two interchangeable backends.

Backends (chosen by name, ``"auto"`` picks the first available):

- ``"tinysoundfont"`` — TinySoundFont compiled into a pip wheel: works from pip alone
  (install it with ``pip install --no-deps tinysoundfont``).
- ``"fluidsynth"`` — pyfluidsynth over the system library libfluidsynth (Debian:
  ``apt-get install libfluidsynth3``); reverb and chorus are switched off and output is read as float (no dither), so renders are
  dry and deterministic.

SoundFonts are named (:data:`SOUNDFONTS`) or given as a path:

- ``"timgm6mb"`` (default) — ``TimGM6mb.sf2`` bundled with pretty_midi (6 MB, pip only);
- ``"fluidr3_gm"`` — Debian's ``fluid-soundfont-gm`` (``/usr/share/sounds/sf2/FluidR3_GM.sf2``)
  when installed;
- any ``.sf2`` path.

The default is never switched silently to another file: results depend on the SoundFont, so it is
chosen explicitly and its content hash goes into every manifest.

Each note is rendered by a synthesizer in a fresh state (a new TinySoundFont or FluidSynth
instance per note), so a note's samples do not depend on which notes
were rendered before it — the basis of deterministic, order-independent rendering.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import logging
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from musiclens.errors import ConfigError, MissingDependencyError, SoundFontError
from musiclens.registry import Registry

__all__ = [
    "SOUNDFONTS",
    "BACKENDS",
    "NoteRenderer",
    "find_soundfont",
    "soundfont_hash",
    "open_renderer",
    "available_backends",
]

logger = logging.getLogger(__name__)


def _pretty_midi_sf2() -> Path:
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


#: Named SoundFonts: name -> function returning the file's path.
SOUNDFONTS: Registry[Callable[[], Path]] = Registry("SoundFont")
SOUNDFONTS.register("timgm6mb", _pretty_midi_sf2, help="TimGM6mb.sf2 bundled with pretty_midi (default)")
SOUNDFONTS.register(
    "fluidr3_gm", lambda: Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    help="Debian fluid-soundfont-gm (apt-get install fluid-soundfont-gm)",
)


def find_soundfont(spec: str | os.PathLike[str] | None = None) -> Path:
    """Path of a SoundFont given by name (:data:`SOUNDFONTS`), path, or ``None`` (default).

    Raises
    ------
    SoundFontError
        The file does not exist or is not a RIFF ``sfbk`` file.
    """
    spec = "timgm6mb" if spec is None else spec
    if isinstance(spec, str) and spec in SOUNDFONTS:
        path = SOUNDFONTS.get(spec)()
        hint = {
            "fluidr3_gm": "install it with `apt-get install fluid-soundfont-gm`",
            "timgm6mb": "reinstall pretty_midi (`pip install --force-reinstall pretty_midi`)",
        }.get(spec, "")
    else:
        path = Path(spec)
        hint = "check the path, or use a named SoundFont: " + ", ".join(SOUNDFONTS.names())
    if not path.is_file():
        raise SoundFontError(f"SoundFont {spec!s} not found at {path}; {hint}")
    with open(path, "rb") as fh:
        head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise SoundFontError(f"{path} is not a SoundFont 2 file (no RIFF/sfbk header); give a valid .sf2")
    return path


@lru_cache(maxsize=8)
def _sha256_file(path: str, mtime: float, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def soundfont_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a SoundFont file (cached per path, modification time and size)."""
    st = os.stat(path)
    return _sha256_file(str(path), st.st_mtime, st.st_size)


class NoteRenderer(Protocol):
    """Renders one held-then-released note of a GM program to mono float32 audio."""

    backend: str
    soundfont: Path
    sample_rate: int

    def render(self, *, program: int, midi: int, velocity: int, duration_s: float, hold_s: float,
               bank: int = 0) -> np.ndarray:
        """``[shape=(round(duration_s * sample_rate),)]`` float32, note-off at ``hold_s``."""
        ...

    def has_preset(self, program: int, bank: int = 0) -> bool:
        """Whether the SoundFont defines ``program`` in ``bank``."""
        ...


def _check_note(midi: int, velocity: int, duration_s: float, hold_s: float) -> None:
    if not 0 <= int(midi) <= 127:
        raise ConfigError(f"MIDI pitch must be 0-127, got {midi}")
    if not 1 <= int(velocity) <= 127:
        raise ConfigError(f"velocity must be 1-127, got {velocity}")
    if duration_s <= 0 or not 0 < hold_s <= duration_s:
        raise ConfigError(f"need 0 < hold_s <= duration_s, got hold_s={hold_s}, duration_s={duration_s}")


class TinySoundFontRenderer:
    """Backend over the ``tinysoundfont`` wheel (pip only)."""

    backend = "tinysoundfont"

    def __init__(self, soundfont: str | os.PathLike[str] | None = None, *, sample_rate: int = 16000) -> None:
        try:
            import tinysoundfont
        except ImportError as err:
            raise MissingDependencyError(
                "the tinysoundfont backend needs the tinysoundfont wheel: "
                "`pip install --no-deps tinysoundfont==0.3.7` (or use backend='fluidsynth')"
            ) from err
        self._tsf = tinysoundfont
        self.soundfont = find_soundfont(soundfont)
        self.sample_rate = int(sample_rate)
        self._bytes = self.soundfont.read_bytes()
        synth = self._new()
        self._probe = synth

    def _new(self):  # noqa: ANN202 - tinysoundfont.Synth
        synth = self._tsf.Synth(samplerate=self.sample_rate)
        self._sfid = synth.sfload(self._bytes)
        return synth

    def has_preset(self, program: int, bank: int = 0) -> bool:
        return self._probe.sfpreset_name(self._sfid, bank, program) is not None

    def render(self, *, program: int, midi: int, velocity: int, duration_s: float, hold_s: float,
               bank: int = 0) -> np.ndarray:
        _check_note(midi, velocity, duration_s, hold_s)
        if not self.has_preset(program, bank):
            raise SoundFontError(
                f"SoundFont {self.soundfont.name} has no preset for program {program} (bank {bank}); "
                "choose another instrument or SoundFont"
            )
        synth = self._new()
        synth.program_select(0, self._sfid, bank, program)
        n_total = int(round(duration_s * self.sample_rate))
        n_hold = min(int(round(hold_s * self.sample_rate)), n_total)
        synth.noteon(0, int(midi), int(velocity))
        parts = [np.frombuffer(bytes(synth.generate(n_hold)), dtype=np.float32)]
        synth.noteoff(0, int(midi))
        if n_total > n_hold:
            parts.append(np.frombuffer(bytes(synth.generate(n_total - n_hold)), dtype=np.float32))
        stereo = np.concatenate(parts).reshape(-1, 2)
        return stereo.mean(axis=1).astype(np.float32)


class FluidSynthRenderer:
    """Backend over pyfluidsynth + the system libfluidsynth (reverb and chorus off)."""

    backend = "fluidsynth"

    def __init__(self, soundfont: str | os.PathLike[str] | None = None, *, sample_rate: int = 16000) -> None:
        if ctypes.util.find_library("fluidsynth") is None:
            raise MissingDependencyError(
                "the fluidsynth backend needs the FluidSynth library: `apt-get install libfluidsynth3` "
                "(Debian) and `pip install pyfluidsynth`; or use backend='tinysoundfont'"
            )
        try:
            import fluidsynth
        except (ImportError, OSError) as err:
            raise MissingDependencyError(
                f"pyfluidsynth could not load ({err}); `pip install pyfluidsynth` and "
                "`apt-get install libfluidsynth3`, or use backend='tinysoundfont'"
            ) from err
        self._fluidsynth = fluidsynth
        self.soundfont = find_soundfont(soundfont)
        self.sample_rate = int(sample_rate)
        self._write_float = fluidsynth.cfunc(
            "fluid_synth_write_float", ctypes.c_int,
            ("synth", ctypes.c_void_p, 1), ("len", ctypes.c_int, 1),
            ("lout", ctypes.c_void_p, 1), ("loff", ctypes.c_int, 1), ("lincr", ctypes.c_int, 1),
            ("rout", ctypes.c_void_p, 1), ("roff", ctypes.c_int, 1), ("rincr", ctypes.c_int, 1),
        )
        self._synth = self._new()

    def _new(self):  # noqa: ANN202 - fluidsynth.Synth
        synth = self._fluidsynth.Synth(samplerate=float(self.sample_rate), gain=0.2)
        for key, value in (("synth.reverb.active", 0), ("synth.chorus.active", 0)):
            synth.setting(key, value)
        self._sfid = synth.sfload(str(self.soundfont))
        if self._sfid < 0:
            raise SoundFontError(f"FluidSynth could not load {self.soundfont}; is it a valid .sf2?")
        return synth

    def has_preset(self, program: int, bank: int = 0) -> bool:
        try:
            return self._synth.sfpreset_name(self._sfid, bank, program) is not None
        except Exception:  # older pyfluidsynth: no sfpreset_name
            return self._synth.program_select(0, self._sfid, bank, program) == 0

    def _samples(self, n: int) -> np.ndarray:
        """``n`` stereo frames as float32 ``[shape=(n, 2)]`` (float output: no dithering)."""
        buf = np.zeros((n, 2), dtype=np.float32)
        ptr = buf.ctypes.data
        self._write_float(self._synth.synth, n, ptr, 0, 2, ptr + 4, 0, 2)
        return buf

    def render(self, *, program: int, midi: int, velocity: int, duration_s: float, hold_s: float,
               bank: int = 0) -> np.ndarray:
        _check_note(midi, velocity, duration_s, hold_s)
        if not self.has_preset(program, bank):
            raise SoundFontError(
                f"SoundFont {self.soundfont.name} has no preset for program {program} (bank {bank})"
            )
        # A fresh synthesizer per note: FluidSynth's voices and modulators keep state that makes
        # a reused instance render the same note differently.
        self._synth.delete()
        self._synth = self._new()
        self._synth.program_select(0, self._sfid, bank, program)
        n_total = int(round(duration_s * self.sample_rate))
        n_hold = min(int(round(hold_s * self.sample_rate)), n_total)
        self._synth.noteon(0, int(midi), int(velocity))
        parts = [self._samples(n_hold)]
        self._synth.noteoff(0, int(midi))
        if n_total > n_hold:
            parts.append(self._samples(n_total - n_hold))
        return np.concatenate(parts).mean(axis=1).astype(np.float32)


#: SoundFont backends by name.
BACKENDS: Registry[Callable[..., NoteRenderer]] = Registry("SoundFont backend")
BACKENDS.register("tinysoundfont", TinySoundFontRenderer)
BACKENDS.register("fluidsynth", FluidSynthRenderer)


def available_backends() -> list[str]:
    """Backends that can be constructed on this machine, in preference order."""
    out = []
    try:
        import tinysoundfont  # noqa: F401

        out.append("tinysoundfont")
    except ImportError:
        pass
    if ctypes.util.find_library("fluidsynth") is not None:
        try:
            import fluidsynth  # noqa: F401

            out.append("fluidsynth")
        except (ImportError, OSError):
            pass
    return out


def open_renderer(
    backend: str = "auto", *, soundfont: str | os.PathLike[str] | None = None, sample_rate: int = 16000
) -> NoteRenderer:
    """A note renderer for ``backend`` (``"auto"``: tinysoundfont, else fluidsynth)."""
    if backend == "auto":
        found = available_backends()
        if not found:
            raise MissingDependencyError(
                "no SoundFont backend is installed: `pip install --no-deps tinysoundfont==0.3.7` "
                "(pip only), or `apt-get install libfluidsynth3 && pip install pyfluidsynth`; "
                "or render with synth='additive', which needs neither"
            )
        backend = found[0]
    return BACKENDS.get(backend)(soundfont, sample_rate=sample_rate)
