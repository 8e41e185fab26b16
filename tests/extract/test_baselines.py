"""Hand-crafted baselines: a tone at MIDI n peaks at the CQT bin of n; chroma at its pitch class."""

from __future__ import annotations

import numpy as np
import pytest

from musiclens.errors import ConfigError
from musiclens.extract import build_extractor
from musiclens.stimuli.stimulus_set import midi_to_hz

SR = 22050


def _tone(midi: int, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * float(midi_to_hz(midi)) * t)).astype(np.float32)


@pytest.mark.parametrize("midi", [36, 57, 69, 81])
def test_cqt_tone_peaks_at_its_bin(midi: int) -> None:
    ext = build_extractor("cqt")                              # fmin MIDI 24, 12 bins per octave
    pooled = ext.extract([_tone(midi)]).pool("mean")["cqt"][0]
    assert int(np.argmax(pooled)) == midi - 24
    ext3 = build_extractor("cqt", bins_per_octave=36, n_bins=252)
    assert int(np.argmax(ext3.extract([_tone(midi)]).pool("mean")["cqt"][0])) == 3 * (midi - 24)


@pytest.mark.parametrize("midi", [60, 64, 67, 70])
def test_chroma_peaks_at_pitch_class(midi: int) -> None:
    pooled = build_extractor("chroma").extract([_tone(midi)]).pool("mean")["chroma"][0]
    assert int(np.argmax(pooled)) == midi % 12


def test_logmel_and_mfcc_shapes_and_times() -> None:
    clips = [_tone(60, 0.5), _tone(62, 0.3)]
    for name, dim in (("logmel", 128), ("mfcc", 20)):
        acts = build_extractor(name).extract(clips)
        assert acts.layers[name].shape == (2, 1 + len(clips[0]) // 512, dim)
        assert list(acts.valid_frames) == [1 + len(c) // 512 for c in clips]
        np.testing.assert_allclose(acts.frame_times[:2], [0.0, 512 / SR])
        single = build_extractor(name).extract([clips[1]])
        np.testing.assert_allclose(acts.sequence(name, 1), single.sequence(name, 0), rtol=1e-6, atol=1e-6)


def test_baseline_rejects_randomize_and_bad_params() -> None:
    with pytest.raises(ConfigError, match="randomize"):
        build_extractor("cqt", randomize=True)
    with pytest.raises(ConfigError, match="invalid parameters"):
        build_extractor("mfcc", n_bogus=3)
