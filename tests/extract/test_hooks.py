"""TorchHookExtractor: hand-computed activations, frame layouts, errors, randomize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from musiclens.errors import ConfigError, ExtractionError
from musiclens.extract import build_extractor
from musiclens.extract.hooks import TorchHookExtractor, module_hash, randomize_module


class Tiny(nn.Module):
    """[B, N] -> conv (kernel 2, stride 2, 2 channels) -> relu -> linear over channels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 2, kernel_size=2, stride=2, bias=True)
        self.act = nn.ReLU()
        self.proj = nn.Linear(2, 3, bias=False)
        with torch.no_grad():
            self.conv.weight[:] = torch.tensor([[[1.0, 1.0]], [[1.0, -1.0]]])
            self.conv.bias[:] = torch.tensor([0.0, -0.5])
            self.proj.weight[:] = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.conv(x.unsqueeze(1)))       # [B, 2, T]
        return self.proj(h.transpose(1, 2))            # [B, T, 3]


def test_hand_computed_activations() -> None:
    ext = TorchHookExtractor(Tiny(), layers={"conv": "conv", "relu": "act", "proj": "proj"}, sample_rate=4,
                             to_frames={"conv": "bct", "relu": "bct"})
    x = np.array([1.0, 2.0, 3.0, 1.0, 0.0, 0.5], dtype=np.float32)
    acts = ext.extract([x])
    pairs = x.reshape(3, 2)
    conv = np.stack([pairs.sum(1), pairs[:, 0] - pairs[:, 1] - 0.5], axis=1)       # [3, 2]
    relu = np.maximum(conv, 0)
    proj = np.stack([relu[:, 0], relu[:, 1], relu.sum(1)], axis=1)
    np.testing.assert_allclose(acts.layers["conv"][0], conv, atol=1e-6)
    np.testing.assert_allclose(acts.layers["relu"][0], relu, atol=1e-6)
    np.testing.assert_allclose(acts.layers["proj"][0], proj, atol=1e-6)
    # 3 frames over 1.5 s -> 2 frames/s, centres at 0.25, 0.75, 1.25 s
    np.testing.assert_allclose(acts.frame_times, [0.25, 0.75, 1.25])
    assert acts.layer_names == ["conv", "relu", "proj"]
    assert not ext.module.training


def test_layers_with_different_frame_axes() -> None:
    class TwoRates(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Identity()
            self.b = nn.AvgPool1d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x.unsqueeze(1)))

    ext = TorchHookExtractor(TwoRates(), layers=["a", "b"], sample_rate=8, to_frames="bct", frame_rate_hz={"a": 8.0, "b": 4.0})
    x = np.arange(8, dtype=np.float32)
    acts = ext.extract([x, x + 1])
    assert acts.layers["a"].shape == (2, 8, 1) and acts.layers["b"].shape == (2, 4, 1)
    np.testing.assert_allclose(acts.frames_of("b")[0], 0.5 / 4 + np.arange(4) / 4)
    pooled = acts.pool("mean")
    np.testing.assert_allclose(pooled["a"][:, 0], [3.5, 4.5])
    np.testing.assert_allclose(pooled["b"][:, 0], [3.5, 4.5])


def test_unknown_submodule_lists_names() -> None:
    with pytest.raises(ConfigError, match="conv"):
        TorchHookExtractor(Tiny(), layers=["nope"], sample_rate=4)


def test_wrong_layout_is_explained() -> None:
    ext = TorchHookExtractor(Tiny(), layers=["conv"], sample_rate=4, to_frames="bd")
    with pytest.raises(ExtractionError, match="layout"):
        ext.extract([np.ones(8, np.float32)])


def test_unknown_layer_name_lists_valid() -> None:
    ext = TorchHookExtractor(Tiny(), layers=["conv", "proj"], sample_rate=4, to_frames={"conv": "bct"})
    with pytest.raises(ConfigError, match="valid layers are conv, proj"):
        ext.extract([np.ones(8, np.float32)], layers=["layer_99"])


def test_randomize_changes_weights_with_seed() -> None:
    net = Tiny()
    a = randomize_module(Tiny(), seed=1)
    b = randomize_module(Tiny(), seed=1)
    c = randomize_module(Tiny(), seed=2)
    assert module_hash(a) == module_hash(b) != module_hash(c) != module_hash(net)
    x = np.linspace(-1, 1, 16).astype(np.float32)
    pre = build_extractor("torch", module=net, layers=["proj"], sample_rate=4).extract([x])
    rnd = build_extractor("torch", module=net, layers=["proj"], sample_rate=4, randomize=True, seed=3).extract([x])
    assert not np.allclose(pre.layers["proj"], rnd.layers["proj"])
    # the original module is untouched
    np.testing.assert_array_equal(net.proj.weight.detach().numpy(), Tiny().proj.weight.detach().numpy())
