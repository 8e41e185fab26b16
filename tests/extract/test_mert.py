"""MERT checkpoints in MERT's own key layout load without running the directory's code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from musiclens.errors import CheckpointError
from musiclens.extract import build_extractor
from musiclens.extract.hf import normalize_waveform
from tests.extract._helpers import tiny_w2v_config, tones

RENAME = {"encoder.pos_conv_embed.conv.parametrizations.weight.original0": "encoder.pos_conv_embed.conv.weight_g",
          "encoder.pos_conv_embed.conv.parametrizations.weight.original1": "encoder.pos_conv_embed.conv.weight_v"}


def write_mert_dir(path: Path, *, cqt: bool = False, drop: str | None = None, seed: int = 0) -> torch.nn.Module:
    """A tiny MERT checkpoint folder: MERT config.json (auto_map, extras), MERT key names, poison code files."""
    from safetensors.torch import save_file
    from transformers import HubertConfig, HubertModel

    from musiclens.extract.mert import _assemble

    path.mkdir(parents=True)
    # with the CQT front end, conv frames must come at the CQT's rate (sample_rate // 50 = 480 samples)
    arch = tiny_w2v_config(conv_stride=(10, 48), conv_kernel=(10, 48)) if cqt else tiny_w2v_config()
    mert_cfg = {**arch, "model_type": "mert_model", "architectures": ["MERTModel"],
                "auto_map": {"AutoConfig": "configuration_MERT.MERTConfig", "AutoModel": "modeling_MERT.MERTModel"},
                "feature_extractor_cqt": cqt, "feature_extractor_cqt_bins": 14, "deepnorm": False,
                "attention_relax": -1.0, "sample_rate": 24000}
    if cqt:
        model, _, _ = _assemble(mert_cfg, seed=seed)
    else:
        torch.manual_seed(seed)
        model = HubertModel(HubertConfig(**tiny_w2v_config()))
    state = {RENAME.get(k, k): v.contiguous() for k, v in model.state_dict().items() if k != drop}
    save_file(state, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(mert_cfg))
    (path / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True, "sampling_rate": 24000,
                                                               "feature_extractor_type": "Wav2Vec2FeatureExtractor"}))
    for name in ("configuration_MERT.py", "modeling_MERT.py"):
        (path / name).write_text("raise RuntimeError('code from the checkpoint directory was executed')\n")
    return model.eval()


def test_mert_loads_as_hubert_without_remote_code(tmp_path: Path) -> None:
    ref = write_mert_dir(tmp_path / "mert")
    ext = build_extractor(tmp_path / "mert")
    assert ext.family == "mert" and ext.sample_rate == 24000 and ext.frame_rate_hz == 24000 / 20
    assert ext.info()["loaded_without_remote_code"]
    clip = tones(1, seconds=0.2, sr=24000)[0]
    acts = ext.extract([clip])
    with torch.no_grad():
        hs = ref(torch.from_numpy(normalize_waveform(clip))[None], output_hidden_states=True).hidden_states
    for i, h in enumerate(hs):
        np.testing.assert_allclose(acts.layers[f"layer_{i:02d}"][0], h[0].numpy(), atol=1e-5)
    assert not ext.padding_invariant                    # group-norm front end: buckets only


def test_mert_with_cqt_front_end(tmp_path: Path) -> None:
    write_mert_dir(tmp_path / "mert", cqt=True)
    ext = build_extractor(tmp_path / "mert")
    assert ext.info()["cqt_kernels_recomputed"]
    a = ext.extract([tones(1, seconds=0.3, sr=24000)[0]])
    assert a.layers["layer_00"].shape[-1] == 32 and np.isfinite(a.layers["layer_02"]).all()
    same = build_extractor(tmp_path / "mert").extract([tones(1, seconds=0.3, sr=24000)[0]])
    np.testing.assert_array_equal(a.layers["layer_02"], same.layers["layer_02"])


def test_mert_mismatched_weights_list_keys(tmp_path: Path) -> None:
    write_mert_dir(tmp_path / "mert", drop="encoder.layers.1.final_layer_norm.weight")
    with pytest.raises(CheckpointError, match="encoder.layers.1.final_layer_norm.weight"):
        build_extractor(tmp_path / "mert")


def test_mert_randomized_differs(tmp_path: Path) -> None:
    write_mert_dir(tmp_path / "mert")
    clip = tones(1, seconds=0.2, sr=24000)[0]
    pre = build_extractor(tmp_path / "mert").extract([clip]).pool("mean")["layer_02"]
    rnd = build_extractor(tmp_path / "mert", randomize=True, seed=5).extract([clip]).pool("mean")["layer_02"]
    assert not np.allclose(pre, rnd)


def test_mert_missing_weights_proceed_only_when_allowed_and_recorded(tmp_path: Path) -> None:
    """--allow-missing-weights reaches MERT directories too; the random tensors are named in info()."""
    gone = "encoder.layers.1.final_layer_norm.weight"
    write_mert_dir(tmp_path / "mert", drop=gone)
    with pytest.raises(CheckpointError, match="allow_missing_weights=True .--allow-missing-weights"):
        build_extractor(tmp_path / "mert")
    info = build_extractor(tmp_path / "mert", allow_missing_weights=True).info()
    assert info["weights_missing_and_random"] == [gone] and info["randomized"] is False
    write_mert_dir(tmp_path / "whole")
    assert build_extractor(tmp_path / "whole").info()["weights_missing_and_random"] == []
