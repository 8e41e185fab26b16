"""Readers for real datasets, each on a fixture in its official layout written by the test."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pretty_midi
import pytest
import soundfile as sf

from musiclens.corpora.dataset import Corpus
from musiclens.corpora.labels import validate_labels
from musiclens.corpora.maestro import maestro_source, read_maestro
from musiclens.corpora.mirdata_local import maestro_mirdata, source_from_mirdata
from musiclens.corpora.pairs import AudioMidiSource, apply_sustain, find_pairs
from musiclens.corpora.shards import build_corpus
from musiclens.errors import DatasetError

SR = 16000


def _performance(folder, stem, pitches, *, sustain=False, audio=True):
    """A short 'recording' (sine tones at the MIDI notes) and its MIDI, named like MAESTRO's files."""
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=0)
    t = 0.1
    y = np.zeros(int(SR * (0.1 + 0.4 * len(pitches) + 0.5)), dtype=np.float32)
    for p in pitches:
        inst.notes.append(pretty_midi.Note(velocity=80, pitch=p, start=t, end=t + 0.3))
        n0, n1 = int(t * SR), int((t + 0.3) * SR)
        y[n0:n1] += 0.3 * np.sin(2 * np.pi * pretty_midi.note_number_to_hz(p) * np.arange(n1 - n0) / SR)
        t += 0.4
    if sustain:
        inst.control_changes += [pretty_midi.ControlChange(64, 127, 0.05), pretty_midi.ControlChange(64, 0, 1.0)]
    pm.instruments.append(inst)
    folder.mkdir(parents=True, exist_ok=True)
    pm.write(str(folder / f"{stem}.midi"))
    if audio:
        sf.write(folder / f"{stem}.wav", y, SR)
    return y.size / SR


@pytest.fixture
def maestro_root(tmp_path):
    root = tmp_path / "maestro-v3.0.0"
    rows = []
    for year, stem, split, pitches in [(2004, "MIDI-Unprocessed_01_R1_2004_01_ORIG_MID--AUDIO_01_R1_2004_01_Track01_wav",
                                        "train", [60, 64, 67]),
                                       (2006, "MIDI-Unprocessed_02_R1_2006_01_ORIG_MID--AUDIO_02_R1_2006_02_Track02_wav",
                                        "test", [57, 60, 64, 69])]:
        dur = _performance(root / str(year), stem, pitches, sustain=year == 2004)
        rows.append({"canonical_composer": "Johann Sebastian Bach", "canonical_title": f"Prelude {year}",
                     "split": split, "year": year, "midi_filename": f"{year}/{stem}.midi",
                     "audio_filename": f"{year}/{stem}.wav", "duration": dur})
    df = pd.DataFrame(rows)
    df.to_csv(root / "maestro-v3.0.0.csv", index=False)
    (root / "maestro-v3.0.0.json").write_text(json.dumps(
        {c: {str(i): v for i, v in enumerate(df[c].tolist())} for c in df.columns}))
    return root


def test_read_maestro_official_layout(maestro_root) -> None:
    tracks = read_maestro(maestro_root)
    assert [t.split for t in tracks] == ["train", "test"] and tracks[0].year == 2004
    assert tracks[0].composer == "Johann Sebastian Bach" and tracks[0].audio_path.is_file()
    assert [t.id for t in read_maestro(maestro_root, splits=("test",))] == [tracks[1].id]
    (maestro_root / "maestro-v3.0.0.csv").unlink()  # the column-oriented v3 JSON reads the same
    assert read_maestro(maestro_root) == tracks


def test_maestro_corpus_labels_match_midi(tmp_path, maestro_root) -> None:
    manifest = build_corpus(tmp_path / "c", source=maestro_source(maestro_root), pieces_per_shard=1)
    assert manifest["n_pieces"] == 2
    corpus = Corpus(tmp_path / "c")
    lab = corpus.labels(0)
    validate_labels(lab)
    np.testing.assert_allclose(lab.onsets(), [0.1, 0.5, 0.9])
    # sustain pedal held to 1.0 s: the first two notes ring until the pedal lifts
    np.testing.assert_allclose(lab.notes["offset"], [1.0, 1.0, 1.2])
    y, sr = sf.read(read_maestro(maestro_root)[0].audio_path, dtype="float32")
    np.testing.assert_allclose(corpus.audio(0), y, atol=1e-4)
    assert corpus.metadata()["split"].tolist() == ["train", "test"]


def test_maestro_missing_files_error_or_skip(tmp_path, maestro_root) -> None:
    missing = next((maestro_root / "2006").glob("*.wav"))
    missing.unlink()
    with pytest.raises(DatasetError, match=missing.name):
        maestro_source(maestro_root)
    src = maestro_source(maestro_root, skip_bad=True)
    with pytest.raises(DatasetError, match=missing.name):
        build_corpus(tmp_path / "strict", source=src)
    manifest = build_corpus(tmp_path / "lenient", source=src, skip_bad=True)
    assert manifest["n_pieces"] == 1
    assert len(manifest["skipped"]) == 1 and missing.name in manifest["skipped"][0]["error"]
    with pytest.raises(DatasetError, match="maestro-v"):
        read_maestro(tmp_path)  # a folder without metadata


def test_pairs_folder(tmp_path) -> None:
    folder = tmp_path / "pairs"
    _performance(folder / "a", "one", [60, 62])
    _performance(folder, "two", [65])
    _performance(folder, "lonely", [70], audio=False)
    with pytest.raises(DatasetError, match="lonely.midi"):
        find_pairs(folder)
    items, unpaired = find_pairs(folder, skip_bad=True)
    assert [i["id"] for i in items] == ["a__one", "two"] and "lonely" in unpaired[0]["source"]
    manifest = build_corpus(tmp_path / "c", source=AudioMidiSource(items=items, sample_rate=8000))
    corpus = Corpus(tmp_path / "c")
    assert manifest["n_pieces"] == 2 and corpus.sample_rate == 8000
    np.testing.assert_allclose(corpus.labels(0).onsets(), [0.1, 0.5])


def test_apply_sustain_stops_at_restrike() -> None:
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=0)
    inst.notes = [pretty_midi.Note(velocity=80, pitch=60, start=0.0, end=0.2),
                  pretty_midi.Note(velocity=80, pitch=60, start=0.5, end=0.7)]
    inst.control_changes = [pretty_midi.ControlChange(64, 100, 0.1), pretty_midi.ControlChange(64, 0, 2.0)]
    pm.instruments.append(inst)
    apply_sustain(pm)
    assert [(n.start, n.end) for n in inst.notes] == [(0.0, 0.5), (0.5, 2.0)]


def test_mirdata_maestro_loader_on_local_copy_without_download(tmp_path, maestro_root, monkeypatch) -> None:
    import mirdata.download_utils as du

    def no_download(*args, **kwargs):
        raise AssertionError("mirdata tried to download")

    monkeypatch.setattr(du, "downloader", no_download)
    ds = maestro_mirdata(maestro_root, index_path=tmp_path / "maestro_index.json")
    assert sorted(ds.track_ids) == sorted(t.midi_path.relative_to(maestro_root).as_posix().split(".")[0]
                                          for t in read_maestro(maestro_root))
    track = ds.track(ds.track_ids[0])
    assert track.split in ("train", "test") and track.canonical_composer == "Johann Sebastian Bach"
    assert len(track.notes.intervals) >= 3
    missing, invalid = ds.validate(verbose=False)
    assert not any(missing.values()) and not any(invalid.values())
    src = source_from_mirdata(ds, sample_rate=SR)
    manifest = build_corpus(tmp_path / "c", source=src)
    assert manifest["n_pieces"] == 2
    validate_labels(Corpus(tmp_path / "c").labels(1))
