"""CREPE (torchcrepe) extractor: known pitches, layers, frame times, batching, controls, bad input."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytest.importorskip("torch")
if importlib.util.find_spec("torchcrepe") is None:  # imported only behind musiclens' torchaudio stand-in
    pytest.skip("torchcrepe is not installed", allow_module_level=True)

from musiclens.errors import AudioError, ConfigError  # noqa: E402
from musiclens.extract import EXTRACTORS  # noqa: E402
from musiclens.extract.pretrained.crepe import CrepeExtractor, crepe_bins_to_hz  # noqa: E402

SR = 16000


def tone(f0: float, seconds: float, *, sr: int = SR, harmonics: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, harmonics + 1))
    return (0.4 * x / np.abs(x).max()).astype(np.float32)


def cents_error(hz: np.ndarray, f0: float) -> np.ndarray:
    return 1200.0 * np.log2(hz / f0)


@pytest.fixture(scope="module")
def tiny() -> CrepeExtractor:
    return EXTRACTORS.get("crepe-tiny")()


@pytest.mark.parametrize("f0,harmonics", [(110.0, 1), (261.63, 1), (440.0, 4), (880.0, 3)])
def test_tiny_recovers_pitch_within_50_cents(tiny: CrepeExtractor, f0: float, harmonics: int) -> None:
    acts = tiny.extract([tone(f0, 0.3, harmonics=harmonics)], layers=["classifier"])
    hz = tiny.decode_hz(acts)[0, 3:-3]          # frames whose window lies inside the tone
    assert np.median(np.abs(cents_error(hz, f0))) < 50


def test_every_layer_shape_and_frame_times(tiny: CrepeExtractor) -> None:
    n = 4000                                      # 0.25 s -> 1 + 4000 // 160 = 26 frames
    acts = tiny.extract([tone(220.0, n / SR), tone(330.0, 0.1)], stimulus_ids=["a", "b"])
    assert acts.layer_names == tiny.layer_names == [f"conv{i}" for i in range(1, 7)] + ["classifier"]
    for name, arr in acts.layers.items():
        assert arr.ndim == 3 and arr.shape[:2] == (2, 26), name
    assert acts.layers["classifier"].shape[2] == 360
    assert acts.layers["conv1"].shape[2] == 128 * 128          # tiny: 128 channels x 128 positions
    assert acts.valid_frames.tolist() == [26, 1 + 1600 // 160]
    np.testing.assert_allclose(acts.frame_times, np.arange(26) * 0.01)
    assert not acts.layers["classifier"][1, 11:].any()         # padding beyond the short clip
    assert acts.extractor["weights_hash"] and acts.extractor["sample_rate"] == SR


def test_hop_and_block_pooling_options() -> None:
    ex = CrepeExtractor(capacity="tiny", hop_s=0.02, block_pooling="mean")
    acts = ex.extract([tone(220.0, 0.2)], layers="0:3")
    assert acts.layer_names == ["conv1", "conv2", "conv3"]
    assert acts.layers["conv1"].shape == (1, 1 + 3200 // 320, 128)
    np.testing.assert_allclose(acts.frame_times, np.arange(11) * 0.02)
    assert ex.frame_rate_hz == 50.0


def test_batched_equals_one_at_a_time(tiny: CrepeExtractor) -> None:
    clips = [tone(200.0, 0.12), tone(300.0, 0.2, harmonics=3), tone(450.0, 0.05)]
    together = tiny.extract(clips, layers=["conv6", "classifier"])
    for i, clip in enumerate(clips):
        alone = tiny.extract([clip], layers=["conv6", "classifier"])
        n = alone.valid_frames[0]
        for name in ("conv6", "classifier"):
            np.testing.assert_allclose(together.layers[name][i, :n], alone.layers[name][0], rtol=1e-4, atol=1e-5)


def test_matches_torchcrepe_reference(tiny: CrepeExtractor) -> None:
    import torch
    import torchcrepe

    clip = tone(330.0, 0.2)
    frames = next(torchcrepe.preprocess(torch.from_numpy(clip)[None], SR, 160))
    with torch.no_grad():
        ref = tiny.model(frames).numpy()
    np.testing.assert_allclose(tiny.extract([clip], layers=["classifier"]).layers["classifier"][0], ref,
                               rtol=1e-5, atol=1e-6)


def test_randomized_differs_and_is_seeded(tiny: CrepeExtractor) -> None:
    clip = [tone(220.0, 0.1)]
    r1 = CrepeExtractor(capacity="tiny", randomize=True, seed=3)
    r2 = CrepeExtractor(capacity="tiny", randomize=True, seed=3)
    a, b = r1.extract(clip, layers=["classifier"]), r2.extract(clip, layers=["classifier"])
    p = tiny.extract(clip, layers=["classifier"])
    np.testing.assert_array_equal(a.layers["classifier"], b.layers["classifier"])
    assert not np.allclose(a.layers["classifier"], p.layers["classifier"])
    assert r1.weights_hash != tiny.weights_hash and a.extractor["randomized"]


def test_full_capacity_on_a_few_frames() -> None:
    full = EXTRACTORS.get("crepe-full")(hop_s=0.02)
    acts = full.extract([tone(440.0, 0.1)], layers=["conv5", "classifier"])   # 6 frames
    assert acts.layers["classifier"].shape == (1, 6, 360)
    assert acts.layers["conv5"].shape == (1, 6, 256 * 8)
    hz = full.decode_hz(acts)[0, 2:-2]
    assert np.median(np.abs(cents_error(hz, 440.0))) < 50


def test_resampled_input_is_recorded(tiny: CrepeExtractor) -> None:
    acts = tiny.extract([tone(440.0, 0.2, sr=22050)], sample_rate=22050, layers=["classifier"])
    assert any("22050 Hz -> 16000 Hz" in c for c in acts.extractor["conversions"])
    assert np.median(np.abs(cents_error(tiny.decode_hz(acts)[0, 3:-3], 440.0))) < 50


def test_bad_input(tiny: CrepeExtractor) -> None:
    bad = tone(220.0, 0.1)
    bad[10] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        tiny.extract([bad])
    with pytest.raises(AudioError, match="empty"):
        tiny.extract([np.zeros(0, np.float32)])
    with pytest.raises(AudioError, match="list of clips"):
        tiny.extract(tone(220.0, 0.1))
    with pytest.raises(ConfigError, match="valid layers are conv1"):
        tiny.extract([tone(220.0, 0.1)], layers=["conv9"])
    with pytest.raises(ConfigError):
        CrepeExtractor(capacity="medium")


def test_decoder_known_answer() -> None:
    p = np.zeros((1, 360))
    p[0, 100] = 1.0                                   # bin 100 -> 1997.38 + 2000 cents re 10 Hz
    np.testing.assert_allclose(crepe_bins_to_hz(p), 10 * 2 ** ((1997.3794084376191 + 2000) / 1200))
