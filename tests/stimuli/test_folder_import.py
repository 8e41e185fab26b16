"""`musiclens stimuli import`: a folder of the user's audio plus a table -> StimulusSet."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from musiclens.errors import DatasetError, MusicLensError, StimulusError
from musiclens.stimuli.folder import import_folder
from musiclens.stimuli.stimulus_set import StimulusSet


def _tone(f: float, sr: int, n: int | None = None) -> np.ndarray:
    t = np.arange(n or sr // 2) / sr
    return (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)


@pytest.fixture
def folder(tmp_path):
    audio = tmp_path / "audio"
    (audio / "sub").mkdir(parents=True)
    sf.write(audio / "a.wav", _tone(220, 22050), 22050, subtype="FLOAT")
    sf.write(audio / "b.flac", _tone(440, 22050), 22050)
    stereo = np.stack([_tone(330, 44100), 0.5 * _tone(330, 44100)], axis=1)
    sf.write(audio / "sub" / "c.wav", stereo, 44100, subtype="FLOAT")
    table = pd.DataFrame({"file": ["a.wav", "b.flac", "sub/c.wav"], "midi": [57, 69, None],
                          "instrument": ["sine", "sine", "stereo sine"], "rating": [1.5, 2.0, 3.5]})
    table.to_csv(tmp_path / "meta.csv", index=False)
    return tmp_path


def test_import_resamples_downmixes_and_keeps_columns(folder):
    s = import_folder(folder / "audio", folder / "meta.csv", sample_rate=16000)
    assert s.ids == ["a", "b", "c"] and s.sample_rate == 16000
    m = s.metadata
    assert m["rating"].tolist() == [1.5, 2.0, 3.5]                     # extra columns kept
    assert m["midi"].tolist()[:2] == [57, 69] and pd.isna(m["midi"].iloc[2])
    assert m["pitch_class"].tolist()[:2] == [9, 9]                      # derived like every set
    assert m["file"].tolist() == ["a.wav", "b.flac", "sub/c.wav"]
    assert [len(c) for c in s.audio] == [8000, 8000, 8000]
    conv = s.info["conversions"]
    assert any("downmixed" in c for c in conv["c"]) and any("44100 Hz -> 16000 Hz" in c for c in conv["c"])
    ref, _ = sf.read(folder / "audio" / "a.wav", dtype="float32")
    import soxr
    np.testing.assert_allclose(s.audio[0], soxr.resample(ref, 22050, 16000, quality="VHQ"), atol=1e-6)
    s.save(folder / "set")
    back = StimulusSet.load(folder / "set")
    assert back.ids == s.ids
    assert json.loads((folder / "set" / "manifest.json").read_text())["info"]["generator"] == "import_folder"


def test_problems_are_named_together_or_skipped(folder):
    audio = folder / "audio"
    sf.write(audio / "silent.wav", np.zeros(4000, np.float32), 22050)
    (audio / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    sf.write(audio / "orphan.wav", _tone(500, 22050), 22050)
    table = pd.read_csv(folder / "meta.csv")
    extra = pd.DataFrame({"file": ["silent.wav", "broken.wav", "missing.wav", "a.wav"], "instrument": ["x"] * 4})
    pd.concat([table, extra]).to_csv(folder / "bad.csv", index=False)
    with pytest.raises(StimulusError) as err:
        import_folder(audio, folder / "bad.csv", sample_rate=16000)
    text = str(err.value)
    for needle in ("silent.wav: silent", "broken.wav: unreadable", "missing.wav", "duplicates row 2",
                   "orphan.wav: audio file has no row", "--skip-bad"):
        assert needle in text, needle
    s = import_folder(audio, folder / "bad.csv", sample_rate=16000, skip_bad=True)
    assert s.ids == ["a", "b", "c"]
    assert len(s.info["skipped"]) == 5


def test_table_level_refusals(folder):
    audio = folder / "audio"
    with pytest.raises(StimulusError, match="different sample rates"):
        import_folder(audio, folder / "meta.csv")
    pd.DataFrame({"name": ["a.wav"]}).to_csv(folder / "nokey.csv", index=False)
    with pytest.raises(StimulusError, match="--file-column"):
        import_folder(audio, folder / "nokey.csv")
    pd.DataFrame({"file": ["a.wav", "b.flac"], "midi": [60.5, 200]}).to_csv(folder / "labels.csv", index=False)
    with pytest.raises(StimulusError, match="row 2: midi = 60.5") as err:
        import_folder(audio, folder / "labels.csv", sample_rate=16000)
    assert "row 3: midi = 200" in str(err.value)
    pd.DataFrame({"file": ["a.wav", "b.flac"], "stimulus_id": ["x", "x"]}).to_csv(folder / "dupid.csv", index=False)
    with pytest.raises(StimulusError, match="stimulus_id repeats"):
        import_folder(audio, folder / "dupid.csv", sample_rate=16000, skip_bad=False)
    with pytest.raises(DatasetError, match="does not exist"):
        import_folder(folder / "nope", folder / "meta.csv")
    (folder / "t.xlsx").write_text("x")
    with pytest.raises(MusicLensError, match="unknown format"):
        import_folder(audio, folder / "t.xlsx")


def test_pitch_hz_gives_midi(folder):
    pd.DataFrame({"file": ["a.wav", "b.flac"], "pitch_hz": [220.0, 440.0]}).to_csv(folder / "hz.tsv", sep="\t",
                                                                                   index=False)
    s = import_folder(folder / "audio", folder / "hz.tsv", sample_rate=16000, skip_bad=True)
    assert s.metadata["midi"].tolist() == [57, 69]


def test_cli(folder):
    from musiclens.cli import app

    out = folder / "set"
    res = CliRunner().invoke(app, ["stimuli", "import", str(folder / "audio"), "--metadata", str(folder / "meta.csv"),
                                   "--out", str(out), "--sample-rate", "16000"])
    assert res.exit_code == 0, res.output
    assert "wrote 3 stimuli" in res.output and "downmixed or resampled" in res.output
    assert StimulusSet.load(out).ids == ["a", "b", "c"]
    foreign = folder / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    res = CliRunner().invoke(app, ["stimuli", "import", str(folder / "audio"), "--metadata", str(folder / "meta.csv"),
                                   "--out", str(foreign), "--sample-rate", "16000"])
    assert res.exit_code != 0 and (foreign / "keep.txt").read_text() == "mine"
