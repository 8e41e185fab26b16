"""Hugging Face directories load strictly and safely; stores follow the weights, not the path."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from musiclens.errors import CheckpointError, StoreError
from musiclens.extract import build_extractor
from musiclens.extract.runner import extract_to_store
from musiclens.stimuli.stimulus_set import StimulusSet
from tests.extract._helpers import SR, tiny_w2v_config, tones


def _save_tiny(path: Path, seed: int = 0) -> Path:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(seed)
    Wav2Vec2Model(Wav2Vec2Config(**tiny_w2v_config())).save_pretrained(path)
    return path


def _drop_tensor(path: Path, prefix: str) -> list[str]:
    from safetensors.torch import load_file, save_file

    state = load_file(path / "model.safetensors")
    gone = [k for k in state if k.startswith(prefix)]
    save_file({k: v for k, v in state.items() if k not in gone}, path / "model.safetensors", metadata={"format": "pt"})
    return gone


def test_missing_tensors_are_an_error_naming_them(tmp_path) -> None:
    d = _save_tiny(tmp_path / "w2v")
    gone = _drop_tensor(d, "encoder.layers.1.attention.k_proj")
    with pytest.raises(CheckpointError, match=r"2 tensor\(s\) the model needs are missing.*k_proj.*allow_missing_weights"):
        build_extractor(d)
    ext = build_extractor(d, allow_missing_weights=True)
    info = ext.info()
    assert sorted(info["weights_missing_and_random"]) == sorted(gone) and info["randomized"] is False


def test_unused_tensors_of_the_model_itself_are_an_error_but_a_larger_models_head_is_not(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    d = _save_tiny(tmp_path / "w2v")
    state = load_file(d / "model.safetensors")
    save_file({**state, "lm_head.weight": torch.zeros(4, 4)}, d / "model.safetensors", metadata={"format": "pt"})
    assert build_extractor(d).info()["weights_unused"] == ["lm_head.weight"]    # a CTC head: fine, recorded
    save_file({**state, "encoder.layers.9.feed_forward.x": torch.zeros(2)}, d / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not used by the model: encoder.layers.9"):
        build_extractor(d)


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - the attack: unpickling runs code
        return (Path.write_text, (Path(self.marker), "pwned"))


def test_a_malicious_pickle_is_refused_without_running_it(tmp_path) -> None:
    d = _save_tiny(tmp_path / "w2v")
    (d / "model.safetensors").unlink()
    marker = tmp_path / "pwned.txt"
    with open(d / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"encoder.pos_conv_embed.conv.bias": _Payload(str(marker))}, fh)
    with pytest.raises(CheckpointError, match="pickle file that is not plain tensors.*safetensors"):
        build_extractor(d)
    assert not marker.exists()


def test_safetensors_are_preferred_when_both_exist(tmp_path, monkeypatch) -> None:
    d = _save_tiny(tmp_path / "w2v")
    with open(d / "pytorch_model.bin", "wb") as fh:
        fh.write(b"not even a pickle")                   # would fail if it were read
    ext = build_extractor(d)
    assert ext.info()["weights_missing_and_random"] == []


def test_a_store_is_not_reused_after_the_weights_change(tmp_path) -> None:
    s = StimulusSet(tones(3, seconds=0.2), __import__("pandas").DataFrame(
        {"stimulus_id": ["a", "b", "c"], "midi": [60, 61, 62], "instrument": ["x"] * 3}), sample_rate=SR)
    s.save(tmp_path / "stim")
    d = _save_tiny(tmp_path / "w2v", seed=0)
    store = extract_to_store(d, tmp_path / "stim", tmp_path / "feats")
    first = np.load(store / "layers" / "layer_02.npy")
    assert extract_to_store(d, tmp_path / "stim", tmp_path / "feats") == store     # same weights: reused
    _save_tiny(d, seed=1)                                   # new weights at the same path
    with pytest.raises(StoreError, match="different request"):
        extract_to_store(d, tmp_path / "stim", tmp_path / "feats")
    extract_to_store(d, tmp_path / "stim", tmp_path / "feats", overwrite=True)
    assert not np.allclose(np.load(store / "layers" / "layer_02.npy"), first)


def test_weights_hash_of_a_checkpoint_file_covers_its_json_config(tmp_path) -> None:
    """``<name>.safetensors`` + ``<name>.json``: a changed config is a changed model (store not reused)."""
    from musiclens.extract.runner import weights_hash

    (tmp_path / "net.safetensors").write_bytes(b"weights")
    (tmp_path / "net.json").write_text('{"format": "musiclens-checkpoint", "config": {"hidden": 8}}')
    before = weights_hash(tmp_path / "net.safetensors")
    (tmp_path / "net.json").write_text('{"format": "musiclens-checkpoint", "config": {"hidden": 16}}')
    assert weights_hash(tmp_path / "net.safetensors") != before


def test_cli_refuses_missing_tensors_and_records_them_with_the_flag(tmp_path, monkeypatch, capsys) -> None:
    import json
    import sys

    import pandas as pd

    from musiclens.cli import main

    StimulusSet(tones(2, seconds=0.2), pd.DataFrame({"stimulus_id": ["a", "b"]}), sample_rate=SR).save(tmp_path / "s")
    d = _save_tiny(tmp_path / "w2v")
    gone = _drop_tensor(d, "encoder.layers.0.attention.v_proj")
    base = ["musiclens", "extract", "--model", str(d), "--stimuli", str(tmp_path / "s")]
    monkeypatch.setattr(sys, "argv", [*base, "--out", str(tmp_path / "refused")])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "encoder.layers.0.attention.v_proj" in err and "--allow-missing-weights" in err
    monkeypatch.setattr(sys, "argv", [*base, "--out", str(tmp_path / "feats"), "--allow-missing-weights"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code in (0, None)
    manifest = json.loads((tmp_path / "feats" / "manifest.json").read_text())
    assert sorted(manifest["extractor"]["weights_missing_and_random"]) == sorted(gone)
    assert manifest["request"]["options"]["allow_missing_weights"] is True
