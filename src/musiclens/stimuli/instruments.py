"""Instruments: General MIDI programs, their families and playable ranges, and the paper grid.

The default "paper grid" follows the stimulus design of Grasse & Tata (2026) as far as it is
known (``../shared/reference/PAPERS.md`` §1.2, §1.4): 30 instruments, 10 per family — keyboards,
guitars / plucked strings, flutes / pipes — each playing MIDI 60–95 (octaves 4–6, C4 = 60) at one
velocity.  NSynth's own instruments are not available offline, so the grid uses General MIDI
programs rendered from a SoundFont; the choice of programs is ours [default, not from the paper].
"""

from __future__ import annotations

from dataclasses import dataclass

import pretty_midi

from musiclens.errors import StimulusError

__all__ = [
    "Instrument",
    "GM_FAMILIES",
    "gm_instrument",
    "gm_instruments",
    "PAPER_INSTRUMENTS",
    "PAPER_MIDI",
    "PAPER_VELOCITY",
    "resolve_instrument",
]

#: NSynth-style family of each General MIDI group of 8 programs (program // 8).
GM_FAMILIES: tuple[str, ...] = (
    "keyboard", "mallet", "organ", "guitar", "bass", "string", "string", "brass",
    "reed", "flute", "synth_lead", "synth_pad", "synth_effect", "ethnic", "percussive", "sound_effect",
)

#: Default playable range (MIDI, inclusive) per GM group, generous: where a GM SoundFont has
#: samples that sound at the written pitch.  Instruments in the paper grid override it.
_GROUP_RANGES: tuple[tuple[int, int], ...] = (
    (21, 108), (48, 108), (24, 103), (40, 100), (23, 67), (28, 103), (28, 103), (34, 89),
    (34, 96), (48, 108), (24, 108), (24, 108), (24, 108), (36, 96), (36, 96), (36, 96),
)


@dataclass(frozen=True)
class Instrument:
    """A playable instrument.

    Attributes
    ----------
    name
        Identifier used in metadata (``"acoustic_grand_piano"``).
    family
        Study family (``"keyboard"``, ``"guitar"``, ``"flute"``, ...).
    program
        General MIDI program number, 0–127 (``None`` for non-SoundFont synthesizers).
    low, high
        Playable MIDI range, inclusive.
    label
        Human-readable name (``"Acoustic Grand Piano"``).
    """

    name: str
    family: str
    program: int | None
    low: int = 0
    high: int = 127
    label: str = ""

    def check_range(self, midi: int) -> None:
        """Raise :class:`StimulusError` if ``midi`` is outside the playable range."""
        from musiclens.errors import InstrumentRangeError

        if not self.low <= midi <= self.high:
            raise InstrumentRangeError(
                f"MIDI {midi} is outside the range of {self.name!r} ({self.low}-{self.high}); "
                "choose pitches inside it, or pass on_out_of_range='skip' to leave such notes out "
                "(skips are recorded in the manifest)"
            )

    def in_range(self, midi: int) -> bool:
        return self.low <= midi <= self.high


def _slug(label: str) -> str:
    out = "".join(c.lower() if c.isalnum() else "_" for c in label)
    while "__" in out:
        out = out.replace("__", "_")
    return out.strip("_")


def gm_instrument(program: int, *, family: str | None = None, low: int | None = None,
                  high: int | None = None) -> Instrument:
    """The General MIDI instrument with program number ``program`` (0–127)."""
    if not isinstance(program, int) or not 0 <= program <= 127:
        raise StimulusError(f"General MIDI programs are integers 0-127, got {program!r}")
    label = pretty_midi.program_to_instrument_name(program)
    g_low, g_high = _GROUP_RANGES[program // 8]
    return Instrument(
        name=_slug(label), family=family or GM_FAMILIES[program // 8], program=program,
        low=g_low if low is None else low, high=g_high if high is None else high, label=label,
    )


def gm_instruments() -> dict[str, Instrument]:
    """All 128 General MIDI melodic instruments by name."""
    return {i.name: i for i in (gm_instrument(p) for p in range(128))}


# The 30 instruments of the default paper grid: (GM program, family, GM name).  Every program
# below renders all of MIDI 60-95 at pitch with the bundled TimGM6mb SoundFont: the fundamental
# within 25 cents, no sub-octave component (tests/stimuli/test_notes.py checks all 1,080 notes).
# Left out after that check: Drawbar Organ (16) and Church Organ (19) sound a 16' sub-octave;
# Blown Bottle (76) is 31 cents flat above MIDI 76; Whistle (78) is silent at MIDI 79 and has
# no fundamental; Accordion (21) and Tango Accordion (23) are 45 cents flat above MIDI 72.  GM has
# only 8 pipe programs, so the "flute" family is completed with wind instruments (bagpipe,
# clarinet, oboe, shanai) [default, not from the paper].
_PAPER: tuple[tuple[int, str, str], ...] = (
    # 10 keyboards (pianos, electric pianos, harpsichord, clavinet, celesta, dulcimer)
    (0, "keyboard", "Acoustic Grand Piano"),
    (1, "keyboard", "Bright Acoustic Piano"),
    (2, "keyboard", "Electric Grand Piano"),
    (3, "keyboard", "Honky-tonk Piano"),
    (4, "keyboard", "Electric Piano 1"),
    (5, "keyboard", "Electric Piano 2"),
    (6, "keyboard", "Harpsichord"),
    (7, "keyboard", "Clavinet"),
    (8, "keyboard", "Celesta"),
    (15, "keyboard", "Dulcimer"),
    # 10 guitars and plucked strings
    (24, "guitar", "Acoustic Guitar (nylon)"),
    (25, "guitar", "Acoustic Guitar (steel)"),
    (26, "guitar", "Electric Guitar (jazz)"),
    (27, "guitar", "Electric Guitar (clean)"),
    (28, "guitar", "Electric Guitar (muted)"),
    (29, "guitar", "Overdriven Guitar"),
    (46, "guitar", "Orchestral Harp"),
    (104, "guitar", "Sitar"),
    (105, "guitar", "Banjo"),
    (107, "guitar", "Koto"),
    # 10 flutes, pipes and woodwinds
    (72, "flute", "Piccolo"),
    (73, "flute", "Flute"),
    (74, "flute", "Recorder"),
    (75, "flute", "Pan Flute"),
    (77, "flute", "Shakuhachi"),
    (79, "flute", "Ocarina"),
    (109, "flute", "Bagpipe"),
    (68, "flute", "Oboe"),
    (71, "flute", "Clarinet"),
    (111, "flute", "Shanai"),
)

#: The paper grid's instruments, in family order.
PAPER_INSTRUMENTS: tuple[Instrument, ...] = tuple(
    gm_instrument(p, family=f, low=min(_GROUP_RANGES[p // 8][0], 60), high=max(_GROUP_RANGES[p // 8][1], 95))
    for p, f, _ in _PAPER
)
#: MIDI 60-95: octaves 4-6 with C4 = 60 (12 pitch classes x 3 octaves).
PAPER_MIDI: tuple[int, ...] = tuple(range(60, 96))
#: One velocity for every note [default, not from the paper].
PAPER_VELOCITY: int = 100


def resolve_instrument(spec: str | int | Instrument) -> Instrument:
    """An :class:`Instrument` from a name (paper or GM), a GM program number, or an Instrument.

    Raises
    ------
    StimulusError
        Unknown name (the message lists close matches) or a program outside 0-127.
    """
    if isinstance(spec, Instrument):
        return spec
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        program = int(spec)
        for inst in PAPER_INSTRUMENTS:
            if inst.program == program:
                return inst
        return gm_instrument(program)
    paper = {i.name: i for i in PAPER_INSTRUMENTS}
    if spec in paper:
        return paper[spec]
    gm = gm_instruments()
    if spec in gm:
        return gm[spec]
    import difflib

    close = difflib.get_close_matches(str(spec), list(gm), n=3)
    raise StimulusError(
        f"unknown instrument {spec!r}; use a General MIDI program number (0-127) or a name such as "
        f"{', '.join(close) if close else ', '.join(list(gm)[:5])} (see `musiclens stimuli instruments`)"
    )
