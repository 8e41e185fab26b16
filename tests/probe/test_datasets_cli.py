"""Readers on tiny fake layouts (NSynth, GTZAN, CSV), music labels in a stimulus set, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from musiclens.cli import app
from musiclens.errors import DatasetError
from musiclens.probe.datasets import load_probe_stimuli, read_audio_csv, read_gtzan, read_nsynth_splits
from musiclens.stimuli.stimulus_set import StimulusSet

from .conftest import make_piece, note_grid

SR = 8000


def _tone(freq: float, n: int = 800) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * freq * np.arange(n) / SR)).astype(np.float32)


def _nsynth_split(root, split: str, insts: list[str]) -> None:
    folder = root / f"nsynth-{split}"
    (folder / "audio").mkdir(parents=True)
    ex = {}
    for k, inst in enumerate(insts):
        for pitch in (60, 61):
            note = f"{inst}-{pitch:03d}-100"
            ex[note] = {"note": len(ex), "note_str": note, "instrument": k, "instrument_str": inst, "pitch": pitch,
                        "velocity": 100, "sample_rate": SR, "qualities": [0] * 10, "qualities_str": [],
                        "instrument_family": 0, "instrument_family_str": "keyboard", "instrument_source": 0,
                        "instrument_source_str": "acoustic"}
            sf.write(folder / "audio" / f"{note}.wav", _tone(220.0 * (k + 1)), SR, subtype="PCM_16")
    (folder / "examples.json").write_text(json.dumps(ex))


def test_read_nsynth_official_splits(tmp_path) -> None:
    for split, insts in (("train", ["keyboard_acoustic_000", "keyboard_acoustic_001"]),
                         ("valid", ["keyboard_acoustic_002"]), ("test", ["keyboard_acoustic_003"])):
        _nsynth_split(tmp_path, split, insts)
    s = read_nsynth_splits(tmp_path, families=["keyboard"], midi=[60, 61], n_per_family=None, progress=False)
    assert len(s) == 8
    assert s.metadata.groupby("split")["instrument"].nunique().to_dict() == {"test": 1, "train": 2, "valid": 1}
    assert set(s.metadata["midi"]) == {60, 61}


def test_read_gtzan_layout_and_split_lists(tmp_path) -> None:
    base = tmp_path / "gtzan" / "genres_original"
    for g, freq in (("blues", 200.0), ("jazz", 300.0)):
        (base / g).mkdir(parents=True)
        for i in range(3):
            sf.write(base / g / f"{g}.{i:05d}.wav", _tone(freq + i), SR)
    s = read_gtzan(tmp_path / "gtzan")
    assert len(s) == 6 and sorted(set(s.metadata["genre"])) == ["blues", "jazz"]
    assert "blues.00001" in s.ids and s.sample_rate == SR
    (tmp_path / "train.txt").write_text("blues/blues.00000.wav\njazz/jazz.00000.wav\n")
    (tmp_path / "test.txt").write_text("blues/blues.00001.wav\n")
    s2 = read_gtzan(tmp_path / "gtzan", split_files={"train": tmp_path / "train.txt", "test": tmp_path / "test.txt"})
    assert dict(zip(s2.ids, s2.metadata["split"])) == {"blues.00000": "train", "blues.00001": "test", "jazz.00000": "train"}
    with pytest.raises(DatasetError, match="not a folder"):
        read_gtzan(tmp_path / "train.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no genre folders"):
        read_gtzan(tmp_path / "empty")


def test_read_audio_csv(tmp_path) -> None:
    (tmp_path / "wav").mkdir()
    rows = []
    for i in range(4):
        sf.write(tmp_path / "wav" / f"c{i}.wav", _tone(100.0 + 50 * i), SR)
        rows.append({"file": f"wav/c{i}.wav", "tag": "lo" if i < 2 else "hi", "song": f"s{i // 2}"})
    pd.DataFrame(rows).to_csv(tmp_path / "list.csv", index=False)
    s = read_audio_csv(tmp_path / "list.csv", audio_column="file", label_column="tag", group_column="song")
    assert s.ids == ["c0", "c1", "c2", "c3"]
    assert s.metadata["label"].tolist() == ["lo", "lo", "hi", "hi"] and s.metadata["group"].tolist()[2] == "s1"
    with pytest.raises(DatasetError, match="lacks the columns"):
        read_audio_csv(tmp_path / "list.csv", audio_column="path")


def test_music_labels_travel_in_the_stimulus_set(tmp_path) -> None:
    labs = {f"p{i}": make_piece(i, duration_s=1.0) for i in range(2)}
    meta = pd.DataFrame({"stimulus_id": list(labs), "music_labels": [json.dumps(l.to_dict()) for l in labs.values()]})
    StimulusSet([_tone(200.0, SR), _tone(300.0, SR)], meta, sample_rate=SR).save(tmp_path / "set")
    m, got = load_probe_stimuli(tmp_path / "set")
    assert list(got) == ["p0", "p1"] and got["p1"].chords == labs["p1"].chords


def test_cli_probe_writes_tables_figures_and_manifest(tmp_path) -> None:
    meta = note_grid(6, midi=range(55, 67))
    StimulusSet([_tone(100.0, 80)] * len(meta), meta, sample_rate=SR).save(tmp_path / "notes")
    rng = np.random.default_rng(0)
    onehot = np.eye(12, dtype=np.float32)[meta["pitch_class"].to_numpy()]
    np.savez(tmp_path / "acts.npz", layer_00=rng.normal(size=(len(meta), 4)).astype(np.float32), layer_01=onehot,
             stimulus_id=np.array(meta["stimulus_id"], dtype=str))
    runner = CliRunner()
    res = runner.invoke(app, ["probe", "-a", str(tmp_path / "acts.npz"), "-s", str(tmp_path / "notes"),
                              "-t", "pitch_class,octave", "-o", str(tmp_path / "out"), "--lr", "0.01",
                              "--max-epochs", "30", "--bootstraps", "50"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "out"
    for name in ("probe.csv", "probe.parquet", "probe_splits.csv", "probe_layer_weights.csv", "manifest.json",
                 "figures/probe_profile_pitch_class.png", "figures/probe_weights_octave.png"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "probe.csv")
    row = table[(table.task == "pitch_class") & (table.layer == "layer_01") & (table.split == "test")]
    assert row["value"].iloc[0] == 1.0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "probe" and manifest["config"]["lrs"] == [0.01]
    assert "pitch_class" in runner.invoke(app, ["probe", "--help"]).output
