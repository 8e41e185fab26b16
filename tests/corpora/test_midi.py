"""MIDI files and folders, bad MIDI input, and music21 scores with RomanText chord/key labels."""

from __future__ import annotations

import mir_eval
import numpy as np
import pretty_midi
import pytest

from musiclens.corpora.dataset import Corpus
from musiclens.corpora.labels import MusicLabels, sounding_pitch_classes, validate_labels
from musiclens.corpora.midi import MidiFileSource, Music21Source, find_midi_files, load_midi, music21_analysis_entries
from musiclens.corpora.shards import build_corpus
from musiclens.errors import DatasetError, StoreError


def _write_midi(path, notes, *, program=0, key_number=None):
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=program, name="piano")
    inst.notes = [pretty_midi.Note(velocity=90, pitch=p, start=s, end=e) for s, e, p in notes]
    pm.instruments.append(inst)
    if key_number is not None:
        pm.key_signature_changes.append(pretty_midi.KeySignature(key_number, 0.0))
    pm.write(str(path))
    return path


@pytest.fixture
def midi_folder(tmp_path):
    folder = tmp_path / "midi"
    folder.mkdir()
    _write_midi(folder / "a_good.mid", [(0.0, 0.5, 60), (0.5, 1.0, 64), (1.0, 2.0, 67)], key_number=0)
    _write_midi(folder / "b_empty.mid", [])
    (folder / "c_corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    _write_midi(folder / "d_good.mid", [(0.0, 1.0, 57), (0.2, 1.2, 60), (0.4, 1.4, 64)], program=24)
    return folder


def test_bad_midi_errors_name_the_file(midi_folder) -> None:
    with pytest.raises(DatasetError, match="c_corrupt.mid"):
        load_midi(midi_folder / "c_corrupt.mid")
    with pytest.raises(DatasetError, match="b_empty.mid.*no notes"):
        load_midi(midi_folder / "b_empty.mid")
    with pytest.raises(DatasetError, match="missing.mid"):
        load_midi(midi_folder / "missing.mid")


def test_midi_folder_build_stops_or_skips_and_records(tmp_path, midi_folder) -> None:
    src = MidiFileSource(find_midi_files(midi_folder))
    with pytest.raises(DatasetError, match="b_empty.mid"):
        build_corpus(tmp_path / "strict", source=src, pieces_per_shard=2)
    manifest = build_corpus(tmp_path / "lenient", source=src, pieces_per_shard=2, skip_bad=True)
    assert manifest["n_pieces"] == 2
    skipped = {s["source"].split("/")[-1]: s["error"] for s in manifest["skipped"]}
    assert set(skipped) == {"b_empty.mid", "c_corrupt.mid"}
    assert "no notes" in skipped["b_empty.mid"] and "corrupt" in skipped["c_corrupt.mid"]
    corpus = Corpus(tmp_path / "lenient")
    assert [corpus.record(i)["id"] for i in range(2)] == ["a_good", "d_good"]
    lab = corpus.labels(0)
    validate_labels(lab)
    ref = pretty_midi.PrettyMIDI(str(midi_folder / "a_good.mid"))
    np.testing.assert_array_equal(lab.piano_roll(frame_rate=100)[:200], ref.get_piano_roll(fs=100)[21:109].T[:200] > 0)
    assert lab.key == "C major" and lab.sources["key"] == "midi key signature"
    assert corpus.labels(1).key is not None and "estimated" in corpus.labels(1).sources["key"]
    np.testing.assert_allclose(lab.beats[:4], [0.0, 0.5, 1.0, 1.5])
    # only bad files, skipped: no finished-looking empty corpus
    bad_only = MidiFileSource([midi_folder / "b_empty.mid", midi_folder / "c_corrupt.mid"])
    with pytest.raises(StoreError, match="no piece of the corpus could be built.*c_corrupt.mid"):
        build_corpus(tmp_path / "empty", source=bad_only, pieces_per_shard=2, skip_bad=True)
    assert not (tmp_path / "empty" / "corpus.json").exists()


@pytest.fixture(scope="module")
def chorale() -> MusicLabels:
    entries = [e for e in music21_analysis_entries() if e["id"] == "bach-bwv269"]
    assert entries, "music21 ships riemenschneider001.rntxt (BWV 269)"
    piece = Music21Source(entries).make(0)
    assert piece.audio.size == int(round(piece.labels["duration_s"] * 16000))
    return MusicLabels.from_dict(piece.labels)


def test_music21_rntxt_gives_real_chord_and_key_labels(chorale) -> None:
    validate_labels(chorale)
    assert chorale.key == "G major" and chorale.sources["chords"] == "rntxt"
    civ, labels = chorale.chord_intervals()
    assert len(labels) > 40
    covered = 0
    real = 0
    for (start, end), lab in zip(civ, labels):
        if lab == "N":
            continue
        root, bitmap, _ = mir_eval.chord.encode(lab)
        pcs = {(root + i) % 12 for i in np.flatnonzero(bitmap)}
        real += 1
        covered += pcs <= sounding_pitch_classes(chorale.notes, start_s=start, end_s=end)
    # the analysed chord sounds in full in nearly every segment (passing tones may add more)
    assert covered / real >= 0.9


def test_music21_key_agrees_with_krumhansl(chorale) -> None:
    from musiclens.corpora.harmony import estimate_key

    n = chorale.notes
    est, _ = estimate_key(np.bincount(n["pitch"] % 12, weights=n["offset"] - n["onset"], minlength=12))
    assert est.label == chorale.key
