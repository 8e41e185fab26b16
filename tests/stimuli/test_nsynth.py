from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musiclens.errors import DatasetError, StimulusError
from musiclens.stimuli import read_nsynth
from musiclens.stimuli.synth import pure_tone

FAMILIES = {"flute": (2, 4), "guitar": (3, 5), "keyboard": (4, 6), "bass": (0, 0)}


def write_nsynth_fixture(root: Path, *, split: str = "valid", short: bool = True) -> Path:
    """An NSynth split in exactly the official layout (examples.json fields as NSynth has them)."""
    folder = root / f"nsynth-{split}"
    (folder / "audio").mkdir(parents=True)
    examples = {}
    note_id = 1000
    sources = ["acoustic", "electronic", "synthetic"]
    for family, (fam_id, _) in FAMILIES.items():
        for k in range(3):
            inst = f"{family}_{sources[k]}_{k:03d}"
            pitches = range(60, 63) if not (family == "guitar" and k == 0) else range(60, 62)  # one gap
            for pitch in pitches:
                for vel in (75, 100):
                    note_str = f"{inst}-{pitch:03d}-{vel:03d}"
                    examples[note_str] = {
                        "note": note_id, "note_str": note_str, "instrument": 100 + k, "instrument_str": inst,
                        "pitch": pitch, "velocity": vel, "sample_rate": 16000,
                        "qualities": [0, 1, 0, 0, 0, 0, 0, 0, 0, 0], "qualities_str": ["dark"],
                        "instrument_family": fam_id, "instrument_family_str": family,
                        "instrument_source": k, "instrument_source_str": sources[k],
                    }
                    note_id += 1
                    audio = pure_tone(midi=pitch, duration_s=0.5 if short else 4.0, hold_s=0.4 if short else 3.0,
                                      sample_rate=16000, amplitude=vel / 254)
                    sf.write(folder / "audio" / f"{note_str}.wav", audio, 16000, subtype="PCM_16")
    (folder / "examples.json").write_text(json.dumps(examples))
    return folder


def test_reads_official_layout_with_deterministic_selection(tmp_path) -> None:
    write_nsynth_fixture(tmp_path)
    s = read_nsynth(tmp_path, split="valid", families=["flute", "guitar", "keyboard"], midi=range(60, 63),
                    velocities=100, n_per_family=2, progress=False)
    meta = s.metadata
    # guitar_acoustic_000 lacks pitch 62 -> excluded; the first two qualifying per family are kept
    assert sorted(meta.instrument.unique()) == [
        "flute_acoustic_000", "flute_electronic_001", "guitar_electronic_001", "guitar_synthetic_002",
        "keyboard_acoustic_000", "keyboard_electronic_001"]
    assert len(s) == 6 * 3 and set(meta.velocity) == {100} and s.sample_rate == 16000
    assert (meta.pitch_class == meta.midi % 12).all() and set(meta.source) == {"nsynth"}
    sel = s.info["selection"]
    assert sel["excluded_instruments_per_family"]["guitar"] == 1 and "sort instruments" in sel["rule"]
    assert s.ids[0] == "flute_acoustic_000-060-100"
    # the audio is the file's content
    data, _ = sf.read(tmp_path / "nsynth-valid" / "audio" / "flute_acoustic_000-060-100.wav", dtype="float32")
    assert np.array_equal(s.audio[0], data)
    again = read_nsynth(tmp_path / "nsynth-valid", families=["flute", "guitar", "keyboard"], midi=range(60, 63),
                        velocities=100, n_per_family=2, progress=False)
    assert again.content_hash() == s.content_hash()


def test_selection_filters_and_resampling(tmp_path) -> None:
    write_nsynth_fixture(tmp_path)
    s = read_nsynth(tmp_path / "nsynth-valid", families="keyboard", midi=[60, 61], velocities=None,
                    sources=["synthetic"], n_per_family=None, sample_rate=8000, progress=False)
    assert set(s.metadata.instrument) == {"keyboard_synthetic_002"} and len(s) == 4
    assert s.sample_rate == 8000 and s.audio[0].size == 4000 and "resampled" in s.info["conversions"][0]
    with pytest.raises(StimulusError, match="only 2 instrument"):
        read_nsynth(tmp_path / "nsynth-valid", families=["guitar"], midi=range(60, 63), n_per_family=3,
                    progress=False)
    with pytest.raises(StimulusError, match="no NSynth note matches"):
        read_nsynth(tmp_path / "nsynth-valid", families=["vocal"], progress=False)


def test_bad_folders(tmp_path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        read_nsynth(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no examples.json"):
        read_nsynth(tmp_path / "empty")
    folder = write_nsynth_fixture(tmp_path)
    with pytest.raises(DatasetError, match="Splits found under it: nsynth-valid"):
        read_nsynth(tmp_path, split="train")
    (folder / "audio" / "flute_acoustic_000-061-100.wav").unlink()
    (folder / "audio" / "flute_acoustic_000-062-100.wav").write_bytes(b"garbage")
    with pytest.raises(DatasetError) as err:
        read_nsynth(folder, families=["flute"], midi=range(60, 63), n_per_family=1, progress=False)
    assert "missing" in str(err.value) and "061-100.wav" in str(err.value) and "corrupt" in str(err.value)
    (folder / "examples.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        read_nsynth(folder)


@pytest.mark.parametrize("n", [-1, 0, 1.5])
def test_n_per_family_must_be_positive(tmp_path, n) -> None:
    from musiclens.errors import StimulusError

    write_nsynth_fixture(tmp_path)
    with pytest.raises(StimulusError, match="n_per_family must be a whole number >= 1"):
        read_nsynth(tmp_path, split="valid", families=["flute"], midi=range(60, 63), n_per_family=n, progress=False)
