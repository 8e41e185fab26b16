from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from musiclens.errors import DatasetError, StimulusError, StoreError
from musiclens.stimuli import REQUIRED_COLUMNS, StimulusSet, note_name


def _toy(n: int = 6, sr: int = 8000) -> StimulusSet:
    rng = np.random.default_rng(0)
    meta = pd.DataFrame({
        "stimulus_id": [f"s{i}" for i in range(n)],
        "midi": [60 + i for i in range(n)],
        "instrument": ["a", "a", "b", "b", "c", "c"][:n],
        "family": ["x", "x", "y", "y", "z", "z"][:n],
    })
    audio = [rng.standard_normal(800 + 10 * i).astype(np.float32) * 0.1 for i in range(n)]
    return StimulusSet(audio, meta, sample_rate=sr, info={"seed": 3})


def test_required_columns_and_derived_fields() -> None:
    s = _toy()
    for col in REQUIRED_COLUMNS:
        assert col in s.metadata.columns
    assert s.metadata["duration_s"].iloc[1] == pytest.approx(810 / 8000)
    assert note_name(60) == "C4" and note_name(69) == "A4" and note_name(95) == "B6"


def test_save_load_round_trip_is_exact(tmp_path) -> None:
    s = _toy()
    s.save(tmp_path / "set")
    t = StimulusSet.load(tmp_path / "set")
    assert t.content_hash() == s.content_hash()
    for a, b in zip(s.audio, t.audio):
        assert a.dtype == b.dtype == np.float32 and np.array_equal(a, b)
    pd.testing.assert_frame_equal(s.metadata, t.metadata, check_dtype=False)
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert manifest["content_hash"] == s.content_hash() and manifest["seed"] == 3
    assert manifest["environment"]["packages"]["numpy"] == np.__version__
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    pd.testing.assert_frame_equal(StimulusSet.read_metadata(tmp_path / "set"), t.metadata, check_dtype=False)


def test_content_hash_changes_with_any_clip_or_label() -> None:
    s = _toy()
    h = s.content_hash()
    audio = [a.copy() for a in s.audio]
    audio[3][17] += 1e-6
    changed = StimulusSet(audio, s.metadata.drop(columns=["n_samples"]), sample_rate=s.sample_rate)
    assert changed.content_hash() != h
    meta = s.metadata.drop(columns=["n_samples"]).copy()
    meta.loc[2, "midi"] = 99
    assert StimulusSet(s.audio, meta, sample_rate=s.sample_rate).content_hash() != h
    assert StimulusSet(s.audio, s.metadata.drop(columns=["n_samples"]), sample_rate=16000).content_hash() != h
    assert StimulusSet(s.audio, s.metadata.drop(columns=["n_samples"]), sample_rate=s.sample_rate).content_hash() == h


def test_subset_and_grouped_split() -> None:
    s = _toy()
    sub = s.subset(instrument=["a", "c"])
    assert sub.ids == ["s0", "s1", "s4", "s5"]
    assert s.subset(lambda m: m.midi >= 63).ids == ["s3", "s4", "s5"]
    assert s.subset(family="y", midi=63).ids == ["s3"]
    with pytest.raises(StimulusError, match="unknown metadata column"):
        s.subset(colour="red")
    with pytest.raises(StimulusError, match="no stimulus matches"):
        s.subset(instrument="zzz")
    parts = s.split(by="instrument", fractions={"train": 0.67, "test": 0.33}, seed=1)
    train, test = set(parts["train"].metadata.instrument), set(parts["test"].metadata.instrument)
    assert train.isdisjoint(test) and train | test == {"a", "b", "c"}
    assert len(parts["train"]) + len(parts["test"]) == len(s)
    again = s.split(by="instrument", fractions={"train": 0.67, "test": 0.33}, seed=1)
    assert again["test"].ids == parts["test"].ids
    with pytest.raises(StimulusError, match="cannot fill"):
        s.split(by="family", fractions={"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25})


def test_bad_clips_and_metadata_rejected() -> None:
    meta = pd.DataFrame({"stimulus_id": ["a", "b"]})
    with pytest.raises(StimulusError, match="NaN or inf"):
        StimulusSet([np.zeros(4), np.array([0, np.nan, 0, 0])], meta, sample_rate=8000)
    with pytest.raises(StimulusError, match="empty"):
        StimulusSet([np.zeros(4), np.zeros(0)], meta, sample_rate=8000)
    with pytest.raises(StimulusError, match="mono"):
        StimulusSet([np.zeros(4), np.zeros((2, 4))], meta, sample_rate=8000)
    with pytest.raises(StimulusError, match="unique"):
        StimulusSet([np.zeros(4)] * 2, pd.DataFrame({"stimulus_id": ["a", "a"]}), sample_rate=8000)
    with pytest.raises(StimulusError, match="one row per clip"):
        StimulusSet([np.zeros(4)], meta, sample_rate=8000)
    with pytest.raises(StimulusError, match="file names"):
        StimulusSet([np.zeros(4)], pd.DataFrame({"stimulus_id": ["../x"]}), sample_rate=8000)


def test_load_names_missing_and_corrupt_files(tmp_path) -> None:
    s = _toy()
    folder = s.save(tmp_path / "set")
    (folder / "audio" / "s2.wav").unlink()
    (folder / "audio" / "s4.wav").write_bytes(b"not a wav file")
    with pytest.raises(DatasetError) as err:
        StimulusSet.load(folder)
    msg = str(err.value)
    assert "missing audio file" in msg and "s2.wav" in msg and "corrupt audio file" in msg and "s4.wav" in msg
    with pytest.raises(DatasetError, match="does not exist"):
        StimulusSet.load(tmp_path / "nope")
    (folder / "manifest.json").unlink()
    with pytest.raises(DatasetError, match="manifest.json is missing"):
        StimulusSet.load(folder)


def test_modified_audio_detected_by_hash(tmp_path) -> None:
    import soundfile as sf

    s = _toy()
    folder = s.save(tmp_path / "set")
    data, sr = sf.read(folder / "audio" / "s1.wav", dtype="float32")
    data[0] += 0.01
    sf.write(folder / "audio" / "s1.wav", data, sr, subtype="FLOAT")
    with pytest.raises(DatasetError, match="does not match its hash"):
        StimulusSet.load(folder)
    assert len(StimulusSet.load(folder, verify=False)) == len(s)


def test_save_refuses_to_clobber_and_leaves_nothing_on_failure(tmp_path, monkeypatch) -> None:
    s = _toy()
    s.save(tmp_path / "set")
    with pytest.raises(StoreError, match="already exists"):
        s.save(tmp_path / "set")
    import soundfile

    calls = {"n": 0}
    real = soundfile.write

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(soundfile, "write", failing)
    with pytest.raises(OSError, match="disk full"):
        s.save(tmp_path / "other")
    assert not (tmp_path / "other").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


@pytest.mark.parametrize("damage", ["no_stimulus_id", "repeated_ids", "no_sample_rate", "bad_sample_rate",
                                    "manifest_not_object"])
def test_hand_edited_sets_are_named_errors_not_key_errors(tmp_path, damage) -> None:
    """Metadata without ids or a manifest without a sample rate: a DatasetError naming the file."""
    folder = _toy().save(tmp_path / "set")
    manifest = json.loads((folder / "manifest.json").read_text())
    table_path = folder / manifest["metadata_file"]
    table = StimulusSet.read_metadata(folder)
    if damage == "no_stimulus_id":
        table = table.drop(columns=["stimulus_id"])
    elif damage == "repeated_ids":
        table["stimulus_id"] = "s0"
    elif damage == "no_sample_rate":
        del manifest["sample_rate"]
    elif damage == "bad_sample_rate":
        manifest["sample_rate"] = "fast"
    else:
        manifest = [manifest]
    if table_path.suffix == ".parquet":
        table.to_parquet(table_path, index=False)
    else:
        table.to_csv(table_path, index=False)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    expected = {"no_stimulus_id": "no 'stimulus_id' column", "repeated_ids": "missing or repeated stimulus ids",
                "no_sample_rate": "no valid 'sample_rate'", "bad_sample_rate": "no valid 'sample_rate'",
                "manifest_not_object": "not a JSON object"}[damage]
    with pytest.raises(DatasetError, match=expected):
        StimulusSet.load(folder)
    if damage in ("no_stimulus_id", "repeated_ids", "manifest_not_object"):
        with pytest.raises(DatasetError, match=expected):
            StimulusSet.read_metadata(folder)
