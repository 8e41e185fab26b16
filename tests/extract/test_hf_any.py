"""Any Hugging Face audio model from a local directory: tiny random models of many types.

Each model is built from a config (hidden size ~32, 2 layers or stages, tiny convolutions), saved
with ``save_pretrained`` next to its feature extractor, and loaded through the same path as
``musiclens extract --model DIR``.  Frame counts are checked against the model's real outputs
computed directly with transformers, not against musiclens' own geometry.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from musiclens.errors import CheckpointError, MusicLensError
from musiclens.extract import build_extractor, extract_activations
from musiclens.extract.hf_geometry import ConvGeometry, FrameGeometryError
from tests.extract._helpers import SR, tiny_w2v_config, tones

transformers = pytest.importorskip("transformers")


def _wave_fe() -> Any:
    return transformers.Wav2Vec2FeatureExtractor(do_normalize=True, sampling_rate=SR)


def _clap_audio_config() -> Any:
    return transformers.ClapAudioConfig(
        num_mel_bins=16, spec_size=64, patch_size=4, patch_stride=4, depths=[1, 1], num_attention_heads=[2, 2],
        patch_embeds_hidden_size=16, hidden_size=32, window_size=4, projection_dim=16, enable_fusion=False)


def _clap_fe() -> Any:        # 1 s context at 16 kHz: 101 mel frames, resized to 256 by the model
    return transformers.ClapFeatureExtractor(feature_size=16, sampling_rate=SR, hop_length=160, max_length_s=1,
                                             fft_window_size=400, frequency_max=8000, truncation="rand_trunc")


def _whisper() -> tuple[Any, Any]:
    cfg = transformers.WhisperConfig(
        d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=16, max_source_positions=50, max_target_positions=8)
    return transformers.WhisperModel(cfg), transformers.WhisperFeatureExtractor(feature_size=16, sampling_rate=SR)


def _ast() -> tuple[Any, Any]:
    cfg = transformers.ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                 num_mel_bins=32, max_length=48, patch_size=16, frequency_stride=16, time_stride=16)
    return transformers.ASTModel(cfg), transformers.ASTFeatureExtractor(num_mel_bins=32, max_length=48,
                                                                         sampling_rate=SR)


def _clap_full() -> tuple[Any, Any]:
    text = transformers.ClapTextConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=32, max_position_embeddings=40, projection_dim=16)
    cfg = transformers.ClapConfig(text_config=text.to_dict(), audio_config=_clap_audio_config().to_dict(),
                                  projection_dim=16)
    return transformers.ClapModel(cfg), _clap_fe()


def _encodec() -> tuple[Any, Any]:
    cfg = transformers.EncodecConfig(sampling_rate=SR, audio_channels=1, num_filters=4, upsampling_ratios=[4, 2],
                                     hidden_size=16, num_residual_layers=1, codebook_size=16, codebook_dim=16,
                                     num_lstm_layers=1, target_bandwidths=[1.5])
    return transformers.EncodecModel(cfg), transformers.EncodecFeatureExtractor(feature_size=1, sampling_rate=SR)


def _wave(cfg_cls: str, model_cls: str, **extra: Any) -> Callable[[], tuple[Any, Any]]:
    def make() -> tuple[Any, Any]:
        cfg = getattr(transformers, cfg_cls)(**tiny_w2v_config(), **extra)
        return getattr(transformers, model_cls)(cfg), _wave_fe()
    return make


#: name -> (builder, musiclens family, number of layers)
MODELS: dict[str, tuple[Callable[[], tuple[Any, Any]], str, int]] = {
    "wavlm": (_wave("WavLMConfig", "WavLMModel", num_buckets=16, max_bucket_distance=50), "wavlm", 3),
    "unispeech-sat": (_wave("UniSpeechSatConfig", "UniSpeechSatModel"), "unispeech-sat", 3),
    "unispeech": (_wave("UniSpeechConfig", "UniSpeechModel"), "unispeech", 3),
    "hubert": (_wave("HubertConfig", "HubertModel"), "hubert", 3),
    "sew": (_wave("SEWConfig", "SEWModel", squeeze_factor=2), "sew", 3),
    "sew-d": (_wave("SEWDConfig", "SEWDModel", squeeze_factor=2, position_buckets=16, max_position_embeddings=64),
              "sew-d", 3),
    "wav2vec2-conformer": (_wave("Wav2Vec2ConformerConfig", "Wav2Vec2ConformerModel", conv_depthwise_kernel_size=3),
                           "wav2vec2-conformer", 3),
    "whisper": (_whisper, "whisper", 3),
    "ast": (_ast, "ast", 3),
    "clap-audio": (lambda: (transformers.ClapAudioModel(_clap_audio_config()), _clap_fe()), "clap", 3),
    "clap": (_clap_full, "clap", 3),
    "encodec": (_encodec, "encodec", 7),     # conv, resblock, conv/2, resblock, conv/4, lstm, conv
}


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf_any")
    out = {}
    for i, (name, (make, _, _)) in enumerate(MODELS.items()):
        torch.manual_seed(i)
        model, fe = make()
        model.save_pretrained(root / name)
        fe.save_pretrained(root / name)
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def extractors(model_dirs: dict[str, Path]) -> dict[str, Any]:
    return {name: build_extractor(d, batch_size=3) for name, d in model_dirs.items()}


def _direct_lengths(name: str, ext: Any, clip: np.ndarray) -> list[int]:
    """Sequence length of every layer for one clip, computed with transformers directly (no musiclens)."""
    if name == "encodec":
        x = torch.from_numpy(clip)[None, None]
        lengths = []
        with torch.no_grad():
            for layer in ext.model.layers:
                x = layer(x)
                if not isinstance(layer, torch.nn.ELU):
                    lengths.append(x.shape[-1])
        return lengths
    if name in ("whisper",):                                 # fixed context: frames whose centre is in the clip
        return [math.ceil(clip.size / 320)] * 3
    if name.startswith("clap") or name == "ast":
        return []                                            # checked separately (token grids)
    with torch.no_grad():
        out = ext.model(torch.from_numpy(clip)[None], output_hidden_states=True)
    return [h.shape[1] for h in out.hidden_states]


@pytest.mark.parametrize("name", list(MODELS))
def test_every_layer_extracts_with_times_matching_the_output(name: str, extractors: dict[str, Any]) -> None:
    ext = extractors[name]
    _, family, n_layers = MODELS[name]
    assert ext.family == family and ext.name == f"hf:{family}" and ext.sample_rate == SR
    assert ext.layer_names == [f"layer_{i:02d}" for i in range(n_layers)]
    clips = [tones(1, seconds=0.3)[0], tones(1, seconds=0.45, seed=1)[0]]
    acts = ext.extract(clips, layers="all")
    assert acts.layer_names == ext.layer_names
    for i, layer in enumerate(acts.layer_names):
        times, valid = acts.frames_of(layer)
        assert times.shape[0] == acts.layers[layer].shape[1] == acts.n_special + valid.max()
        seq_t = times[acts.n_special:]
        assert np.all(np.diff(seq_t) >= 0) and np.isfinite(seq_t).all()
        for c, clip in enumerate(clips):                     # the last valid token overlaps the clip
            assert seq_t[valid[c] - 1] < clip.size / SR + 0.5 / ext.frame_rate_hz
    for c, clip in enumerate(clips):
        direct = _direct_lengths(name, ext, clip)
        if direct:
            assert [int(acts.frames_of(n)[1][c]) for n in acts.layer_names] == direct


@pytest.mark.parametrize("name", ["wavlm", "sew", "encodec"])
def test_values_equal_the_models_own_outputs(name: str, extractors: dict[str, Any]) -> None:
    ext = extractors[name]
    clip = tones(1, seconds=0.3)[0]
    acts = ext.extract([clip])
    if name == "encodec":
        x, outs = torch.from_numpy(clip)[None, None], []
        with torch.no_grad():
            for layer in ext.model.layers:
                x = layer(x)
                if not isinstance(layer, torch.nn.ELU):
                    outs.append(x[0].T.numpy())
    else:
        x = ext.feature_extractor(clip, sampling_rate=SR, return_tensors="pt")["input_values"]
        with torch.no_grad():
            outs = [h[0].numpy() for h in ext.model(x, output_hidden_states=True).hidden_states]
    for i, ref in enumerate(outs):
        np.testing.assert_allclose(acts.layers[f"layer_{i:02d}"][0], ref, atol=1e-5)


def test_sew_frames_are_pooled_conv_frames(extractors: dict[str, Any]) -> None:
    ext = extractors["sew"]                                  # conv stride 20, squeeze 2: 40 samples per frame
    assert ext.frame_rate_hz == SR / 40
    acts = ext.extract([tones(1, seconds=0.3)[0]])
    n_conv = ((4800 - 10) // 5 + 1 - 4) // 4 + 1
    assert acts.valid_frames[0] == n_conv // 2
    # frame j averages conv frames 2j, 2j+1, centred at (rf-1)/2 + 20 (2j + 1/2) samples, rf = 25
    np.testing.assert_allclose(acts.frame_times[:3], (12 + 20 * (2 * np.arange(3) + 0.5)) / SR)


def test_whisper_trims_to_the_clip(extractors: dict[str, Any]) -> None:
    acts = extractors["whisper"].extract([tones(1, seconds=0.5)[0], tones(1, seconds=0.3)[0]])
    assert list(acts.valid_frames) == [25, 15]
    np.testing.assert_allclose(acts.frame_times[:3], [0.0, 0.02, 0.04])


def test_clap_tokens_are_time_major_patches(extractors: dict[str, Any]) -> None:
    ext = extractors["clap-audio"]
    clip = tones(1, seconds=0.45)[0]
    acts = ext.extract([clip])
    feats = ext.feature_extractor([clip], sampling_rate=SR, return_tensors="pt")
    with torch.no_grad():
        hidden = ext.model(input_features=feats["input_features"], output_hidden_states=True).hidden_states
    assert [tuple(h.shape[2:]) for h in hidden] == [(16, 16), (8, 8), (8, 8)]
    # layer_00: 16 x 16 grid, 4 time chunks of 4 mel rows; time column t = chunk * 16 + col
    h0 = hidden[0][0].numpy()                                # (C, rows, cols)
    for chunk, col, band in [(0, 0, 0), (0, 3, 2), (1, 5, 1), (0, 15, 3)]:
        t = chunk * 16 + col
        np.testing.assert_allclose(acts.layers["layer_00"][0, t * 4 + band], h0[:, chunk * 4 + band, col], atol=1e-5)
    times, valid = acts.frames_of("layer_00")
    # resized frame x is mel frame x * 100 / 255 (10 ms hop); a column spans 4 resized frames
    col_s = 4 * 100 / 255 * 0.01
    np.testing.assert_allclose(times[[0, 4, 8]], (np.arange(3) * 4 + 1.5) * 100 / 255 * 0.01)
    assert valid[0] == 4 * math.ceil(0.45 / col_s)


def test_clap_model_directory_gives_its_audio_tower(extractors: dict[str, Any]) -> None:
    ext = extractors["clap"]
    assert type(ext.model).__name__ == "ClapAudioModel"
    info = ext.info()
    assert info["task"].startswith("contrastive audio-text") and info["model_class"] == "ClapAudioModel"
    with pytest.raises(MusicLensError, match="attention"):
        ext.extract_attentions(tones(1, seconds=0.2)[0])


@pytest.mark.parametrize("name", list(MODELS))
def test_batched_equals_one_at_a_time(name: str, extractors: dict[str, Any]) -> None:
    ext = extractors[name]
    clips = tones(3, seconds=0.25, vary=True, seed=2) + tones(2, seconds=0.25, seed=3)
    batched = ext.extract(clips)
    for i, clip in enumerate(clips):
        single = ext.extract([clip])
        for layer in batched.layer_names:
            np.testing.assert_allclose(batched.sequence(layer, i), single.sequence(layer, 0), atol=3e-5, rtol=1e-4)


def _drop(src: Path, dst: Path, pick: Callable[[str], bool]) -> list[str]:
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    state = load_file(dst / "model.safetensors")
    gone = [k for k in state if pick(k)][:1]
    assert gone, sorted(state)[:5]
    save_file({k: v for k, v in state.items() if k not in gone}, dst / "model.safetensors", metadata={"format": "pt"})
    return gone


@pytest.mark.parametrize("name", list(MODELS))
def test_a_missing_weight_is_refused(name: str, model_dirs: dict[str, Path], tmp_path: Path) -> None:
    gone = _drop(model_dirs[name], tmp_path / name, lambda k: ("layers.1" in k or "layers.0" in k or "layer.0" in k)
                 and "decoder" not in k and "text" not in k)        # a tensor of the part musiclens runs
    with pytest.raises(CheckpointError, match="missing.*allow_missing_weights"):
        build_extractor(tmp_path / name)
    ext = build_extractor(tmp_path / name, allow_missing_weights=True)
    missing = ext.info()["weights_missing_and_random"]   # in the model's names (AST renames legacy keys)
    assert len(missing) == len(gone) == 1 and ("0." in missing[0] or "1." in missing[0])


def test_a_damaged_weight_file_is_refused(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    d = tmp_path / "enc"
    shutil.copytree(model_dirs["encodec"], d)
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged"):
        build_extractor(d)


@pytest.mark.parametrize("name", ["sew-d", "clap", "encodec"])
def test_random_control_and_weights_hash(name: str, model_dirs: dict[str, Path], extractors: dict[str, Any]) -> None:
    pre = extractors[name]
    rnd = build_extractor(model_dirs[name], randomize=True, seed=1)
    again = build_extractor(model_dirs[name], randomize=True, seed=1)
    assert pre.weights_hash() != rnd.weights_hash() == again.weights_hash()
    assert build_extractor(model_dirs[name]).weights_hash() == pre.weights_hash()
    info = rnd.info()
    assert info["task"] == "none (random weights)" and info["weights_source"].startswith("random-init (seed 1)")
    clip = tones(1, seconds=0.3)[0]
    assert not np.allclose(pre.extract([clip]).pool("mean")["layer_02"], rnd.extract([clip]).pool("mean")["layer_02"])


def test_info_says_where_the_weights_come_from(model_dirs: dict[str, Path], extractors: dict[str, Any]) -> None:
    info = extractors["wavlm"].info()
    assert info["task"] == info["training_data"] == "unknown (local Hugging Face checkpoint)"
    assert info["weights_source"] == str(model_dirs["wavlm"].resolve())
    assert info["preprocessing"] == "preprocessor_config.json" and info["feature_extractor"] == "Wav2Vec2FeatureExtractor"
    assert "architectures: EncodecModel" in extractors["encodec"].info()["task"]
    json.dumps({k: v for k, v in info.items() if k != "config"})


def test_sample_rate_comes_from_the_feature_extractor(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    d = tmp_path / "wavlm8k"
    shutil.copytree(model_dirs["wavlm"], d)
    fe = json.loads((d / "preprocessor_config.json").read_text())
    (d / "preprocessor_config.json").write_text(json.dumps({**fe, "sampling_rate": 8000}))
    ext = build_extractor(d)
    assert ext.sample_rate == 8000 and ext.frame_rate_hz == 8000 / 20
    acts = extract_activations(ext, tones(1, seconds=0.3), sample_rate=SR)
    assert any("16000 Hz -> 8000 Hz" in k for k in acts.extractor["conversions"])
    with pytest.raises(ValueError, match="8000"):       # the feature extractor itself refuses another rate
        ext.feature_extractor(tones(1)[0], sampling_rate=SR)
    e = tmp_path / "enc"
    shutil.copytree(model_dirs["encodec"], e)
    fe = json.loads((e / "preprocessor_config.json").read_text())
    (e / "preprocessor_config.json").write_text(json.dumps({**fe, "sampling_rate": 24000}))
    with pytest.raises(CheckpointError, match="24000 Hz"):
        build_extractor(e)


def test_without_preprocessor_config_the_family_defaults_are_used(model_dirs: dict[str, Path], tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "conformer"
    shutil.copytree(model_dirs["wav2vec2-conformer"], d)
    (d / "preprocessor_config.json").unlink()
    with caplog.at_level(logging.INFO, logger="musiclens.extract.hf_loading"):
        ext = build_extractor(d)
    assert "no preprocessor_config.json" in caplog.text and ext.info()["preprocessing"] == "musiclens default"
    clip = tones(1, seconds=0.3)[0]
    ref = build_extractor(model_dirs["wav2vec2-conformer"]).extract([clip])
    np.testing.assert_allclose(ext.extract([clip]).layers["layer_02"], ref.layers["layer_02"], atol=1e-5)


def test_a_wrong_geometry_is_a_clear_error(model_dirs: dict[str, Path]) -> None:
    ext = build_extractor(model_dirs["wavlm"])
    ext.geometry = ConvGeometry([10, 4], [5, 2], sample_rate=SR)          # not the model's strides
    with pytest.raises(FrameGeometryError, match="layer_00.*configuration implies") as err:
        ext.extract([tones(1, seconds=0.2)[0]])
    assert isinstance(err.value, MusicLensError)


def test_unknown_model_types_are_refused_with_the_reason(tmp_path: Path) -> None:
    d = tmp_path / "custom"
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "my_music_net", "auto_map": {"AutoModel": "m.Net"}}')
    with pytest.raises(CheckpointError, match=r"my_music_net.*--trust-remote-code"):
        build_extractor(d)
    b = tmp_path / "bert"
    transformers.BertModel(transformers.BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1,
                                                   num_attention_heads=1, intermediate_size=8)).save_pretrained(b)
    with pytest.raises(CheckpointError, match=r"'bert' is implemented by transformers.*time"):
        build_extractor(b)


def test_cli_extracts_a_clap_directory_into_a_store(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    import pandas as pd
    import typer
    from typer.testing import CliRunner

    from musiclens.commands.extract import register
    from musiclens.extract import load_pooled
    from musiclens.stimuli.stimulus_set import StimulusSet

    StimulusSet(tones(2, seconds=0.3), pd.DataFrame({"stimulus_id": ["a", "b"]}), sample_rate=SR).save(tmp_path / "s")
    app = typer.Typer()
    register(app)
    res = CliRunner().invoke(app, ["extract", "--model", str(model_dirs["clap-audio"]), "--stimuli",
                                   str(tmp_path / "s"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    layers, ids = load_pooled(tmp_path / "out")
    assert sorted(layers) == ["layer_00", "layer_01", "layer_02"] and layers["layer_02"].shape == (2, 32)
