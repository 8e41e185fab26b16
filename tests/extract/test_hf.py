"""Hugging Face extractors on tiny random models: known answers, batching, randomize, attentions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from musiclens.errors import CheckpointError, ConfigError
from musiclens.extract import build_extractor, extract_activations
from musiclens.extract.hf import normalize_waveform
from tests.extract._helpers import SR, tiny_w2v_config, tones


def _direct(model: torch.nn.Module, clip: np.ndarray, *, normalize: bool = True) -> list[np.ndarray]:
    x = normalize_waveform(clip) if normalize else clip
    with torch.no_grad():
        out = model.eval()(torch.from_numpy(x)[None], output_hidden_states=True)
    return [h[0].numpy() for h in out.hidden_states]


@pytest.mark.parametrize("family", ["wav2vec2", "hubert", "data2vec-audio"])
def test_hidden_states_equal_transformers(family: str) -> None:
    ext = build_extractor(family, config=tiny_w2v_config(), seed=0)
    clip = tones(1, seconds=0.2)[0]
    acts = ext.extract([clip])
    direct = _direct(ext.model, clip)
    assert acts.layer_names == ["layer_00", "layer_01", "layer_02"]
    for i, h in enumerate(direct):
        np.testing.assert_allclose(acts.layers[f"layer_{i:02d}"][0], h, atol=1e-5)
    assert acts.valid_frames[0] == direct[0].shape[0]
    assert ext.frame_rate_hz == SR / 20
    np.testing.assert_allclose(np.diff(acts.frame_times), 20 / SR)


def test_normalisation_matches_wav2vec2_feature_extractor() -> None:
    from transformers import Wav2Vec2FeatureExtractor

    clip = tones(1, seconds=0.1)[0] * 3 + 0.2
    ref = Wav2Vec2FeatureExtractor(do_normalize=True)(clip, sampling_rate=SR, return_tensors="np")["input_values"][0]
    np.testing.assert_allclose(normalize_waveform(clip), ref, atol=1e-5)


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_batched_equals_one_at_a_time(norm: str) -> None:
    ext = build_extractor("wav2vec2", config=tiny_w2v_config(feat_extract_norm=norm), batch_size=4)
    assert ext.padding_invariant == (norm == "layer")
    clips = tones(5, seconds=0.15, vary=True) + tones(2, seconds=0.15)
    batched = ext.extract(clips)
    for i, clip in enumerate(clips):
        single = ext.extract([clip])
        for name in batched.layer_names:
            np.testing.assert_allclose(batched.sequence(name, i), single.sequence(name, 0), atol=2e-5, rtol=1e-4)


def test_randomized_differs_from_pretrained(tmp_path: Path) -> None:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    Wav2Vec2Model(Wav2Vec2Config(**tiny_w2v_config())).save_pretrained(tmp_path / "w2v")
    clip = tones(1, seconds=0.2)[0]
    pre = build_extractor(tmp_path / "w2v")
    rnd = build_extractor(tmp_path / "w2v", randomize=True, seed=1)
    rnd2 = build_extractor(tmp_path / "w2v", randomize=True, seed=1)
    assert pre.info()["weights_hash"] != rnd.info()["weights_hash"] == rnd2.info()["weights_hash"]
    a, b = pre.extract([clip]).pool("mean"), rnd.extract([clip]).pool("mean")
    assert not np.allclose(a["layer_02"], b["layer_02"])
    # the loaded directory reproduces the saved model
    direct = _direct(Wav2Vec2Model.from_pretrained(tmp_path / "w2v"), clip)
    np.testing.assert_allclose(pre.extract([clip]).layers["layer_02"][0], direct[2], atol=1e-5)


def test_whisper_encoder_trims_padding() -> None:
    cfg = dict(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
               encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=16, max_source_positions=50, max_target_positions=8)
    ext = build_extractor("whisper", config=cfg)
    clips = [tones(1, seconds=0.5)[0], tones(1, seconds=0.3)[0]]
    acts = ext.extract(clips)
    assert list(acts.valid_frames) == [25, 15]              # ceil(n / 320)
    assert acts.layers["layer_02"].shape == (2, 25, 32)
    feats = ext.feature_extractor(clips[:1], sampling_rate=SR, return_tensors="pt")["input_features"]
    assert feats.shape[-1] == 100
    with torch.no_grad():
        full = ext.model(feats, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(acts.layers["layer_02"][0], full[2][0, :25].numpy(), atol=1e-5)
    np.testing.assert_allclose(acts.frame_times[:3], [0.0, 0.02, 0.04])
    with pytest.raises(Exception, match="window"):
        ext.extract([tones(1, seconds=1.5)[0]])


def test_ast_special_tokens_and_time_major_order() -> None:
    cfg = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_mel_bins=32,
               max_length=48, patch_size=16, frequency_stride=16, time_stride=16)
    ext = build_extractor("ast", config=cfg)
    clip = tones(1, seconds=0.25)[0]                         # 24 fbank frames -> 2 of 3 time patches
    acts = ext.extract([clip])
    assert acts.n_special == 2 and ext.f_dim == 2 and ext.t_dim == 3
    assert acts.valid_frames[0] == 2 * 2
    assert np.isnan(acts.frame_times[:2]).all() and np.all(np.diff(acts.frame_times[2:]) >= 0)
    inputs = ext.feature_extractor([clip], sampling_rate=SR, return_tensors="pt")["input_values"]
    with torch.no_grad():
        h = ext.model(inputs, output_hidden_states=True).hidden_states[2][0].numpy()
    seq = h[2:].reshape(2, 3, 32)                            # model order: frequency-major
    np.testing.assert_allclose(acts.layers["layer_02"][0, :2], h[:2], atol=1e-5)
    np.testing.assert_allclose(acts.layers["layer_02"][0, 2:4], seq[:, 0], atol=1e-5)   # time patch 0
    np.testing.assert_allclose(acts.layers["layer_02"][0, 4:6], seq[:, 1], atol=1e-5)   # time patch 1
    assert acts.pool("cls")["layer_02"].shape == (1, 32)
    att = ext.extract_attentions(clip)
    assert att["layer_01"].shape == (2, 6, 6)


def test_attention_maps_eager() -> None:
    ext = build_extractor("wav2vec2", config=tiny_w2v_config())
    clip = tones(1, seconds=0.1)[0]
    att = ext.extract_attentions(clip)
    n = ext.extract([clip]).valid_frames[0]
    assert set(att) == {"layer_01", "layer_02"}
    assert att["layer_01"].shape == (2, n, n)
    np.testing.assert_allclose(att["layer_01"].sum(-1), 1.0, atol=1e-5)
    assert ext.model.config._attn_implementation != "eager"


def test_remote_code_needs_flag(tmp_path: Path) -> None:
    d = tmp_path / "custom"
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "my_custom", "auto_map": {"AutoModel": "modeling.MyModel"}}')
    (d / "modeling.py").write_text("raise RuntimeError('remote code ran')\n")
    with pytest.raises(CheckpointError, match="trust_remote_code"):
        build_extractor(d)


def test_config_and_path_conflict() -> None:
    with pytest.raises(ConfigError):
        build_extractor("wav2vec2", path="x", config={"hidden_size": 32})


def test_stereo_and_resampling_recorded() -> None:
    clip = tones(1, seconds=0.2, sr=22050)[0]
    stereo = np.stack([clip, 0.5 * clip])
    acts = extract_activations("wav2vec2", [stereo], sample_rate=22050, config=tiny_w2v_config())
    conv = acts.extractor["conversions"]
    assert any("downmixed 2 channels" in k for k in conv) and any("22050 Hz -> 16000 Hz" in k for k in conv)
