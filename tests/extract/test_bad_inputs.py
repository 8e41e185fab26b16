"""Bad input gives clear errors or recorded conversions, never a silent wrong answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from musiclens.errors import AudioError, ConfigError, RegistryError
from musiclens.extract import FeatureStore, build_extractor, extract_activations, extract_to_store
from musiclens.stimuli.stimulus_set import StimulusSet
from tests.extract._helpers import SR, tiny_w2v_config, tones


@pytest.fixture(scope="module")
def w2v():  # type: ignore[no-untyped-def]
    return build_extractor("wav2vec2", config=tiny_w2v_config())


def test_nan_inf_empty_short(w2v) -> None:  # type: ignore[no-untyped-def]
    clip = tones(1, seconds=0.1)[0]
    bad = clip.copy()
    bad[10] = np.nan
    with pytest.raises(AudioError, match="NaN or inf"):
        w2v.extract([bad])
    bad[10] = np.inf
    with pytest.raises(AudioError, match="NaN or inf"):
        extract_activations(w2v, [bad], sample_rate=SR)
    with pytest.raises(AudioError, match="empty"):
        w2v.extract([np.zeros(0, np.float32)])
    with pytest.raises(AudioError, match="receptive field"):
        w2v.extract([clip[: w2v.min_samples - 1]])
    assert w2v.extract([clip[: w2v.min_samples]]).valid_frames[0] == 1


def test_resampled_and_downmixed_recorded_in_manifest(tmp_path: Path) -> None:
    clips = tones(3, seconds=0.2, sr=22050)
    stereo = [np.stack([c, c[::-1]]) for c in clips]
    out = extract_to_store("logmel", stereo, tmp_path / "s", sample_rate=22050, chunk_size=2,
                           options={"sample_rate": SR, "hop_length": 256, "n_mels": 8, "n_fft": 512}, progress=False)
    conv = FeatureStore(out).manifest["conversions"]
    assert conv == {"downmixed 2 channels to mono by averaging": 3, "resampled 22050 Hz -> 16000 Hz (soxr VHQ)": 3}
    stim = StimulusSet(clips, pd.DataFrame({"stimulus_id": ["a", "b", "c"]}), sample_rate=22050)
    out2 = extract_to_store("logmel", stim, tmp_path / "s2", progress=False,
                            options={"sample_rate": SR, "hop_length": 256, "n_mels": 8, "n_fft": 512})
    man = FeatureStore(out2).manifest
    assert man["input_sample_rate"] == 22050 and man["sample_rate"] == SR
    assert man["conversions"] == {"resampled 22050 Hz -> 16000 Hz (soxr VHQ)": 3}


def test_unknown_layer_and_model(tmp_path: Path, w2v) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="valid layers are layer_00, layer_01, layer_02"):
        w2v.extract(tones(1, seconds=0.1), layers=["layer_07"])
    with pytest.raises(ConfigError, match="valid layers"):
        extract_to_store(w2v, tones(2, seconds=0.1), tmp_path / "x", sample_rate=SR, layers="layer_9", progress=False)
    assert not (tmp_path / "x").exists()
    with pytest.raises(RegistryError, match="Valid names"):
        build_extractor("wav2vec3")


def test_bad_pooling_and_shard_range(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pooling"):
        extract_to_store("cqt", tones(2), tmp_path / "x", sample_rate=SR, pooling="median", progress=False)
    with pytest.raises(ConfigError, match="shard range"):
        extract_to_store("cqt", tones(2), tmp_path / "x", sample_rate=SR, start=2, stop=2, progress=False)
    with pytest.raises(ConfigError, match="class token"):
        extract_to_store("cqt", tones(2), tmp_path / "y", sample_rate=SR, pooling="cls", progress=False)
