"""ViT-1D backbone: shapes, sizes, class token, attention paths, masking, checkpoint round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musiclens.errors import ConfigError
from musiclens.extract.checkpoint import MODELS
from musiclens.train.models import build_backbone
from musiclens.train.models.vit1d import VIT1D_PRESETS, ViT1D, ViT1DConfig, build_vit1d
from tests.train._util import assert_checkpoint_round_trip, chords

UPDATED = {"positional": "rope", "norm": "rmsnorm", "ffn": "gated"}


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_sizes_match_the_papers() -> None:
    tiny = build_vit1d(VIT1D_PRESETS["vit_tiny"])
    updated = build_vit1d(VIT1D_PRESETS["vit_tiny_updated"])
    assert 5.3e6 < _n_params(tiny) < 5.8e6          # PAPERS 2.3: about 5.5M
    assert 7.0e6 < _n_params(updated) < 7.2e6       # PAPERS 2.3: 7.1M
    c = tiny.config
    expected_block = 4 * 192 * 192 + 4 * 192 + 2 * 192 * 768 + 768 + 192 + 4 * 192
    assert _n_params(tiny.blocks[0]) == expected_block
    assert _n_params(tiny.embed) == 128 * 192 + 192 + 2 * 192 + (c.max_frames + 1) * 192


def test_shapes_rates_and_registration(one_thread: None) -> None:
    m = build_backbone({"family": "vit1d", "config": VIT1D_PRESETS["test"]}, seed=0).eval()
    assert "vit1d" in MODELS and isinstance(m, ViT1D)
    assert m.frame_rate_hz == 31.25 and m.n_frames(64000) == 126 and m.n_special == 1
    x = chords(2, 16000, 16000, seed=0)
    out = m(x)
    assert len(out.hidden_states) == m.n_layers + 1 == 3
    assert all(h.shape == (2, 1 + m.n_frames(16000), 64) for h in out.hidden_states)
    assert out.frames().shape == (2, m.n_frames(16000), 64)
    assert list(m.musiclens_layers) == ["layer_00", "layer_01", "layer_02"]


def test_class_token_is_learned_vector_plus_mean_of_tokens(one_thread: None) -> None:
    m = build_vit1d(VIT1D_PRESETS["test"]).eval()
    x = chords(2, 8000, 16000, seed=1)
    with torch.no_grad():
        mel = m.frontend(x)
        tokens = m.embed.proj(mel.transpose(1, 2) * m.config.input_scale)
        h0 = m(x).hidden_states[0]
        expected_cls = m.embed.cls + tokens.mean(dim=1) + m.embed.pos[0, 0]
        torch.testing.assert_close(h0[:, 0], expected_cls, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(h0[:, 1:], tokens + m.embed.pos[:, 1:1 + tokens.shape[1]], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", [{}, UPDATED])
def test_explicit_attention_equals_sdpa(variant: dict, one_thread: None) -> None:
    m = build_vit1d({**VIT1D_PRESETS["test"], **variant}).eval()
    x = chords(2, 8000, 16000, seed=2)
    with torch.no_grad():
        fast, slow = m(x), m(x, output_attentions=True)
    assert fast.attentions is None and len(slow.attentions) == m.n_layers
    t = 1 + m.n_frames(8000)
    for a in slow.attentions:
        assert a.shape == (2, m.config.heads, t, t)
        torch.testing.assert_close(a.sum(-1), torch.ones(2, m.config.heads, t))
    for a, b in zip(fast.hidden_states, slow.hidden_states):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_rope_is_relative(one_thread: None) -> None:
    """With RoPE (and no learned table) a query-key score depends on the positions' offset only."""
    m = build_vit1d({**VIT1D_PRESETS["test"], **UPDATED}).eval()
    assert m.embed.pos is None
    q = torch.randn(1, 2, 5, 32)
    from musiclens.train.models.vit1d import _apply_rope, _rope_tables
    cos, sin = _rope_tables(12, 32, 10000.0, torch.device("cpu"))
    s1 = (_apply_rope(q, cos[:5], sin[:5]) @ _apply_rope(q, cos[:5], sin[:5]).transpose(-1, -2))
    s2 = (_apply_rope(q, cos[7:12], sin[7:12]) @ _apply_rope(q, cos[7:12], sin[7:12]).transpose(-1, -2))
    torch.testing.assert_close(s1, s2, atol=1e-4, rtol=1e-4)


def test_frame_mask_replaces_tokens_by_mask_embedding(one_thread: None) -> None:
    m = build_vit1d(VIT1D_PRESETS["test"]).eval()
    x = chords(2, 8000, 16000, seed=3)
    mask = torch.zeros(2, m.n_frames(8000), dtype=torch.bool)
    mask[0, 2:6] = True
    with torch.no_grad():
        plain, masked = m(x).hidden_states[0], m(x, frame_mask=mask).hidden_states[0]
        expected = m.embed.mask_emb + m.embed.pos[0, 3:7]
    torch.testing.assert_close(masked[0, 3:7], expected)
    torch.testing.assert_close(masked[1], plain[1])
    assert not torch.allclose(masked[0, 0], plain[0, 0])   # the class token's mean sees the mask
    with pytest.raises(ConfigError, match="frame_mask"):
        m(x, frame_mask=mask[:, :-1])


@pytest.mark.parametrize("variant", [{}, UPDATED])
def test_checkpoint_round_trip_gives_every_layer(tmp_path, variant: dict, one_thread: None) -> None:
    m = build_vit1d({**VIT1D_PRESETS["test"], **variant}).eval()
    ext, acts = assert_checkpoint_round_trip(m, chords(2, 12000, 16000, seed=4), tmp_path / "ck")
    assert acts.n_special == 1
    assert np.isnan(acts.frame_times[0]) and np.allclose(np.diff(acts.frame_times[1:]), 1 / 31.25)
    assert ext.n_special == 1 and ext.frame_rate_hz == 31.25


def test_bad_configs() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        build_vit1d({"dimm": 64})
    with pytest.raises(ConfigError, match="multiple of heads"):
        ViT1DConfig(dim=65, heads=2)
    with pytest.raises(ConfigError, match="positional"):
        ViT1DConfig(positional="sinusoidal")
    m = build_vit1d({**VIT1D_PRESETS["test"], "max_frames": 8})
    with pytest.raises(ConfigError, match="max_frames"):
        m(torch.zeros(1, 16000))
    assert np.isfinite(m(torch.zeros(1, 2000)).last.detach().numpy()).all()  # silence stays finite


def test_build_backbone_takes_preset_names_and_rejects_bad_ones() -> None:
    from musiclens.errors import ConfigError
    from musiclens.train.models import build_backbone, family_presets

    assert {"test", "vit_tiny", "vit_tiny_updated"} <= set(family_presets("vit1d"))
    b = build_backbone({"family": "vit1d", "config": "test"})
    assert b.config.dim == 64 and b.n_layers == 2
    with pytest.raises(ConfigError, match="unknown vit1d preset 'huge'.*vit_tiny"):
        build_backbone({"family": "vit1d", "config": "huge"})
    with pytest.raises(ConfigError, match="unknown model family"):
        build_backbone({"family": "vit2d"})
