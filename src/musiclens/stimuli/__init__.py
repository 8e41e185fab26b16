"""Stimuli: what musiclens plays to a network, with exact labels.  Imports without torch."""

from musiclens.stimuli.instruments import PAPER_INSTRUMENTS, PAPER_MIDI, PAPER_VELOCITY, Instrument, resolve_instrument
from musiclens.stimuli.notes import GRIDS, NOTE_SYNTHS, NoteGrid, render_grid, render_notes
from musiclens.stimuli.nsynth import read_nsynth
from musiclens.stimuli.stimulus_set import REQUIRED_COLUMNS, StimulusSet, hz_to_midi, midi_to_hz, note_name

__all__ = [
    "GRIDS", "NOTE_SYNTHS", "PAPER_INSTRUMENTS", "PAPER_MIDI", "PAPER_VELOCITY", "REQUIRED_COLUMNS",
    "Instrument", "NoteGrid", "StimulusSet", "hz_to_midi", "midi_to_hz", "note_name", "read_nsynth",
    "render_grid", "render_notes", "resolve_instrument",
]
