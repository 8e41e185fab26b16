"""musiclens checkpoints: the MODELS contract, safe loading, mismatches."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from musiclens.errors import CheckpointError
from musiclens.extract import build_extractor
from musiclens.extract.checkpoint import MODELS, load_weights, save_checkpoint


class TinyNet(nn.Module):
    musiclens_layers = {"layer_00": "frontend", "layer_01": "block"}

    def __init__(self, width: int) -> None:
        super().__init__()
        self.frontend = nn.Conv1d(1, width, kernel_size=4, stride=4)
        self.block = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.frontend(x.unsqueeze(1)).transpose(1, 2))


@pytest.fixture(autouse=True)
def _family() -> Iterator[None]:
    MODELS.register("tinynet-test", lambda cfg: TinyNet(int(cfg["width"])), overwrite=True)
    yield
    MODELS.unregister("tinynet-test")


def _save(path: Path, width: int = 6, seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    net = TinyNet(width)
    save_checkpoint(net, path, family="tinynet-test", config={"width": width}, sample_rate=16000,
                    to_frames={"layer_00": "bct", "layer_01": "btd"}, frame_rate_hz=4000.0)
    return net


def test_checkpoint_roundtrip_equals_module(tmp_path: Path) -> None:
    net = _save(tmp_path / "ck")
    ext = build_extractor(tmp_path / "ck")
    x = np.random.default_rng(0).standard_normal(64).astype(np.float32)
    acts = ext.extract([x])
    with torch.no_grad():
        want = net(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(acts.layers["layer_01"][0], want, atol=1e-6)
    assert acts.layers["layer_00"].shape == (1, 16, 6)
    np.testing.assert_allclose(acts.frame_times[:2], [0.5 / 4000, 1.5 / 4000])
    rnd = build_extractor(tmp_path / "ck", randomize=True, seed=1).extract([x])
    assert not np.allclose(rnd.layers["layer_01"], acts.layers["layer_01"])


def test_mismatched_checkpoint_lists_keys(tmp_path: Path) -> None:
    _save(tmp_path / "ck", width=6)
    cfg = (tmp_path / "ck" / "config.json").read_text().replace('"width": 6', '"width": 8')
    (tmp_path / "ck" / "config.json").write_text(cfg)
    with pytest.raises(CheckpointError, match="shape mismatches .*block.weight"):
        build_extractor(tmp_path / "ck")
    from safetensors.torch import load_file, save_file

    _save(tmp_path / "ck2")
    state = load_file(str(tmp_path / "ck2" / "model.safetensors"))
    state["extra.weight"] = state.pop("block.weight")
    save_file(state, str(tmp_path / "ck2" / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing keys \['block.weight'\], unexpected keys \['extra.weight'\]"):
        build_extractor(tmp_path / "ck2")


class _Evil:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (print, ("pickled code ran",))


def test_pickle_with_code_refused_without_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = TinyNet(6)
    file = tmp_path / "model.pt"
    torch.save({"state_dict": net.state_dict(), "evil": _Evil()}, file)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_weights(file)
    assert "pickled code ran" not in capsys.readouterr().out
    assert set(load_weights(file, trust_remote_code=True)) == set(net.state_dict())
    assert "pickled code ran" in capsys.readouterr().out


def test_lightning_style_checkpoint_prefix(tmp_path: Path) -> None:
    net = _save(tmp_path / "ck")
    state: Mapping[str, torch.Tensor] = {f"model.{k}": v for k, v in net.state_dict().items()}
    torch.save({"state_dict": dict(state), "epoch": 3}, tmp_path / "ck" / "model.pt")
    (tmp_path / "ck" / "model.safetensors").unlink()
    ext = build_extractor(tmp_path / "ck")
    x = np.ones(16, np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(ext.extract([x]).layers["layer_01"][0], want, atol=1e-6)
