"""Backbones ``wav2vec2`` / ``data2vec-audio`` (musiclens.train.models.hf) against transformers itself."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from musiclens.errors import CheckpointError, ConfigError
from musiclens.extract.checkpoint import MODELS, checkpoint_extractor, load_checkpoint
from musiclens.train.models import build_backbone
from musiclens.train.models.hf import HFBackboneConfig
from tests.train._util import one_torch_thread

STABLE = {"hf_overrides": {"feat_extract_norm": "layer", "do_stable_layer_norm": True}}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


def _audio(n: int = 2, samples: int = 8000, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, samples)).astype(np.float32))


def test_registered_in_models():
    build_backbone({"family": "wav2vec2"})
    assert "wav2vec2" in MODELS and "data2vec-audio" in MODELS


@pytest.mark.parametrize("family,config", [("wav2vec2", {}), ("data2vec-audio", {}), ("wav2vec2", STABLE)])
def test_forward_matches_transformers(family, config):
    b = build_backbone({"family": family, "config": config}, seed=3).eval()
    x = _audio()
    out = b(x)
    # geometry: 320 samples per frame at 16 kHz, receptive field 400 samples
    assert b.frame_rate_hz == 50.0
    assert b.n_frames(8000) == (8000 - 400) // 320 + 1 == out.last.shape[1]
    assert b.n_frames(399) == 0 and b.n_frames(400) == 1
    assert len(out.hidden_states) == b.n_layers + 1 == 3
    assert out.last.shape == (2, 24, b.hidden_size)
    # independent reference: transformers' model on the normalised input
    xn = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, keepdim=True, unbiased=False) + 1e-7)
    with torch.no_grad():
        ref = b.model(xn, output_hidden_states=True)
    for h, r in zip(out.hidden_states, ref.hidden_states):
        torch.testing.assert_close(h, r)
    assert out.extras["extract_features"].shape == (2, 24, 64)


def test_frame_mask_uses_masked_spec_embed():
    b = build_backbone({"family": "wav2vec2"}, seed=1).eval()
    x = _audio()
    mask = torch.zeros(2, 24, dtype=torch.bool)
    mask[0, 5:10] = True
    out = b(x, frame_mask=mask)
    xn = b.prepare_input(x)
    with torch.no_grad():
        ref = b.model(xn, mask_time_indices=mask, output_hidden_states=True)
        plain = b(x)
    torch.testing.assert_close(out.last, ref.hidden_states[-1])
    assert not torch.allclose(out.last[0], plain.last[0])      # masking changed clip 0
    torch.testing.assert_close(out.last[1], plain.last[1])     # clip 1 had no masked frame
    with pytest.raises(Exception, match="frame_mask has shape"):
        b(x, frame_mask=torch.zeros(2, 23, dtype=torch.bool))


def test_attentions_are_eager_probabilities():
    b = build_backbone({"family": "data2vec-audio"}, seed=1).eval()
    before = b.model.config._attn_implementation
    out = b(_audio(1), output_attentions=True)
    assert b.model.config._attn_implementation == before       # eager only for that call
    assert len(out.attentions) == b.n_layers
    a = out.attentions[0]
    assert a.shape == (1, 4, 24, 24)
    torch.testing.assert_close(a.sum(-1), torch.ones(1, 4, 24))
    assert b(_audio(1)).attentions is None


def test_training_mode_does_not_mask_or_drop_layers_at_extraction(tmp_path):
    b = build_backbone({"family": "wav2vec2", "config": {"layerdrop": 0.9, "hidden_dropout": 0.5}}, seed=2)
    x = _audio(1)
    b.eval()
    ref = [h.detach() for h in b(x).hidden_states]
    b.train()
    b.save(tmp_path / "ck")
    acts = checkpoint_extractor(tmp_path / "ck").extract([x[0].numpy()])
    assert len(acts.layer_names) == len(ref)       # every layer ran although layerdrop is 0.9
    for name, h in zip(acts.layer_names, ref):
        np.testing.assert_allclose(acts.layers[name][0], h[0].numpy(), atol=1e-5)


@pytest.mark.parametrize("family,config", [("wav2vec2", {}), ("data2vec-audio", {}), ("wav2vec2", STABLE)])
def test_saved_backbone_extracts_all_hidden_states(tmp_path, family, config):
    b = build_backbone({"family": family, "config": config}, seed=4).eval()
    clips = [_audio(1, 8000, 1)[0].numpy(), _audio(1, 8000, 2)[0].numpy()]
    with torch.no_grad():
        ref = b(torch.from_numpy(np.stack(clips))).hidden_states
    b.save(tmp_path / "ck")
    ext = checkpoint_extractor(tmp_path / "ck")
    acts = ext.extract(clips)
    assert acts.layer_names == [f"layer_{i:02d}" for i in range(b.n_layers + 1)]
    for name, h in zip(acts.layer_names, ref):
        np.testing.assert_allclose(acts.layers[name], h.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.diff(acts.frame_times), 0.02)
    reloaded = build_backbone({"family": family, "init_from": str(tmp_path / "ck")}, seed=99)
    for (k, v), (k2, v2) in zip(b.state_dict().items(), reloaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_seeded_random_init():
    a = build_backbone({"family": "wav2vec2"}, seed=5)
    b = build_backbone({"family": "wav2vec2"}, seed=5)
    c = build_backbone({"family": "wav2vec2"}, seed=6)
    pa, pb, pc = (next(iter(m.parameters())) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_from_local_hf_directory_and_back_without_it(tmp_path):
    from transformers import Data2VecAudioConfig, Data2VecAudioModel

    torch.manual_seed(0)
    hf = Data2VecAudioModel(Data2VecAudioConfig(
        hidden_size=48, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96, conv_dim=(32,) * 7,
        num_conv_pos_embeddings=2, conv_pos_kernel_size=5, num_conv_pos_embedding_groups=4)).eval()
    hf.save_pretrained(tmp_path / "hf")
    b = build_backbone({"family": "data2vec-audio", "init_from": str(tmp_path / "hf"),
                        "config": {"hidden_size": 999, "layerdrop": 0.05}}, seed=0)
    assert (b.hidden_size, b.n_layers) == (48, 3)          # the directory's architecture wins
    assert b.model.config.layerdrop == 0.05                # training settings apply
    hf_state = hf.state_dict()
    for k, v in b.model.state_dict().items():
        assert torch.equal(v, hf_state[k]), k
    x = _audio(1)
    b.eval()
    with torch.no_grad():
        ref = b(x).hidden_states
    b.save(tmp_path / "ml")
    shutil.rmtree(tmp_path / "hf")                          # the checkpoint must not need it
    module, cfg = load_checkpoint(tmp_path / "ml")
    assert cfg["config"]["hf_config"]["hidden_size"] == 48
    with torch.no_grad():
        again = module.eval()(x).hidden_states
    for h, r in zip(again, ref):
        torch.testing.assert_close(h, r)


def test_hf_directory_of_another_family_is_refused(tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    Wav2Vec2Model(Wav2Vec2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                 conv_dim=(16,) * 7, num_conv_pos_embeddings=4,
                                 num_conv_pos_embedding_groups=2)).save_pretrained(tmp_path / "hf")
    with pytest.raises(CheckpointError, match="not 'data2vec-audio'"):
        build_backbone({"family": "data2vec-audio", "init_from": str(tmp_path / "hf")})
    b = build_backbone({"family": "wav2vec2", "init_from": str(tmp_path / "hf")})
    assert b.n_layers == 1 and b.hidden_size == 32


@pytest.mark.parametrize("config,match", [
    ({"hiden_size": 64}, "hidden_size"),
    ({"hidden_size": 66}, "divisible"),
    ({"layerdrop": 1.5}, "layerdrop"),
    ({"conv_stride": [5, 2]}, "same non-zero length"),
    ({"hf_overrides": {"feat_extract_norm": "batch"}}, "feat_extract_norm|invalid"),
])
def test_bad_backbone_config(config, match):
    with pytest.raises(ConfigError, match=match):
        build_backbone({"family": "wav2vec2", "config": config})


def test_config_dataclass_roundtrip():
    from musiclens.train.base import config_from_dict, config_to_dict

    cfg = HFBackboneConfig(hidden_size=32, num_attention_heads=2, hf_overrides={"conv_bias": True})
    again = config_from_dict(HFBackboneConfig, config_to_dict(cfg), where="test")
    assert again == cfg


def test_mel_front_end_keeps_the_conv_encoders_frames_and_round_trips(tmp_path):
    from musiclens.train.models.frontends import LogMel, MelConfig
    from musiclens.train.models.hf import receptive_field

    cfg = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
           "conv_dim": [16] * 7, "frontend": "mel", "mel_n_mels": 40}
    with one_torch_thread():
        torch.manual_seed(0)
        conv = build_backbone({"family": "wav2vec2", "config": {**cfg, "frontend": "conv"}})
        mel = build_backbone({"family": "wav2vec2", "config": cfg})
        mel.eval()
        enc = mel.model.feature_extractor
        rng = np.random.default_rng(0)
        for n in (400, 401, 719, 720, 16000, 16123):
            x = torch.from_numpy(rng.standard_normal((2, n)).astype(np.float32))
            assert enc(x).shape == (2, 16, conv.n_frames(n)) == (2, 16, mel.n_frames(n))
            assert conv.model.feature_extractor(x).shape[-1] == conv.n_frames(n)
        # frame j is the log-mel of the window centred on the conv frame's centre j*320 + 200
        x = torch.from_numpy(rng.standard_normal((1, 8000)).astype(np.float32))
        assert receptive_field((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2)) == 400
        ref = LogMel(MelConfig(n_fft=1024, hop_length=320, f_min=30.0, f_max=8000.0, n_mels=40, top_db=80.0,
                               center=False))
        j = 7
        centre = j * 320 + 200
        padded = torch.nn.functional.pad(x, (512 - 200, 1024))
        window = padded[:, centre - 512 + 312: centre + 512 + 312]
        full = enc.mel(torch.nn.functional.pad(x, (enc.left_pad, enc.n_fft)))
        np.testing.assert_allclose(full[:, :, j].numpy(), ref.power_mel(window).clamp_min(1e-10).log10().mul(10)
                                   .clamp_min(float(full.max()) - 80.0)[:, :, 0].numpy(), atol=1e-3)
        # a saved mel backbone loads back strictly and extracts the same hidden states
        mel.save(tmp_path / "ck")
        ex = checkpoint_extractor(tmp_path / "ck")
        clip = rng.standard_normal(16000).astype(np.float32) * 0.1
        acts = ex.extract([clip])
        with torch.no_grad():
            hs = mel(torch.from_numpy(clip[None])).hidden_states
        for k, name in enumerate(ex.layer_names):
            np.testing.assert_allclose(np.asarray(acts.layers[name][0]), hs[k][0].numpy(), atol=1e-4)
    with pytest.raises(ConfigError, match="mel_n_fft"):
        build_backbone({"family": "wav2vec2", "config": {**cfg, "mel_n_fft": 256}})


def _tiny_w2v_dir(path, **extra):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    Wav2Vec2Model(Wav2Vec2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                 conv_dim=(16,) * 7, num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2,
                                 **extra)).save_pretrained(path)
    return path


def test_directory_saved_without_masking_loads_its_mask_embedding_drawn_fresh(tmp_path):
    """musiclens's config adds masked_spec_embed; a directory saved without masking lacks it by design."""
    from safetensors.torch import load_file

    d = _tiny_w2v_dir(tmp_path / "hf", mask_time_prob=0.0)
    assert "masked_spec_embed" not in load_file(d / "model.safetensors")
    b = build_backbone({"family": "wav2vec2", "init_from": str(d)})
    state = load_file(d / "model.safetensors")
    own = b.model.state_dict()
    assert hasattr(b.model, "masked_spec_embed")
    for k, v in state.items():
        if k in own:
            assert torch.equal(own[k], v), k


def test_training_never_starts_from_a_directory_with_missing_tensors(tmp_path):
    from safetensors.torch import load_file, save_file

    d = _tiny_w2v_dir(tmp_path / "hf")
    state = load_file(d / "model.safetensors")
    save_file({k: v for k, v in state.items() if "layers.0.attention.q_proj" not in k}, d / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"missing: encoder.layers.0.attention.q_proj") as exc:
        build_backbone({"family": "wav2vec2", "init_from": str(d)})
    assert "allow-missing-weights" not in str(exc.value)      # training offers no such flag
