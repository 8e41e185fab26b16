"""Training corpora with exact, aligned labels: generated tonal music, MIDI and music21 scores,
synthetic speech, and readers for real datasets (MAESTRO, audio/MIDI pairs, mirdata), written
to resumable, content-hashed shards and read back as random-access training crops.

Torch-free; :mod:`musiclens.corpora.torch_dataset` adds the ``torch.utils.data.Dataset`` wrapper.
"""

from musiclens.corpora.base import Piece, PieceSource
from musiclens.corpora.dataset import Corpus, CropDataset
from musiclens.corpora.generator import MUSIC_PRESETS, GeneratedPiece, MusicConfig, generate_piece, music_preset
from musiclens.corpora.harmony import Chord, Key, estimate_key, functional_progression, voice_lead
from musiclens.corpora.labels import MusicLabels, piano_roll, validate_labels
from musiclens.corpora.maestro import maestro_source, read_maestro
from musiclens.corpora.midi import (MidiFileSource, Music21Source, find_midi_files, labels_from_midi, load_midi,
                                    music21_analysis_entries, music21_score_entries)
from musiclens.corpora.mirdata_local import local_mirdata, maestro_mirdata, source_from_mirdata
from musiclens.corpora.pairs import AudioMidiSource, find_pairs
from musiclens.corpora.render import render_midi
from musiclens.corpora.shards import build_corpus
from musiclens.corpora.speech import SpeechSource, synthesize
from musiclens.corpora.synthetic import GeneratedMusicSource, render_generated

__all__ = [
    "Piece", "PieceSource", "Corpus", "CropDataset", "MUSIC_PRESETS", "GeneratedPiece", "MusicConfig",
    "generate_piece", "music_preset", "Chord", "Key", "estimate_key", "functional_progression", "voice_lead",
    "MusicLabels", "piano_roll", "validate_labels", "maestro_source", "read_maestro", "MidiFileSource",
    "Music21Source", "find_midi_files", "labels_from_midi", "load_midi", "music21_analysis_entries",
    "music21_score_entries", "local_mirdata", "maestro_mirdata", "source_from_mirdata", "AudioMidiSource",
    "find_pairs", "render_midi", "build_corpus", "SpeechSource", "synthesize", "GeneratedMusicSource",
    "render_generated",
]
