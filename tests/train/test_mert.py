"""MERT: the backbone (HF Hubert inside), span masking, in-batch mixing, teachers, the objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musiclens.errors import ConfigError, TrainingError
from musiclens.extract.checkpoint import MODELS
from musiclens.train.base import OBJECTIVES, step_generator
from musiclens.train.models import build_backbone
from musiclens.train.models.mert import MERT_PRESETS, MERTConfig, build_mert
from musiclens.train.objectives.mert import expected_mask_fraction, mix_in_batch, span_mask
from tests.train._util import assert_checkpoint_round_trip, chords

TINY = MERT_PRESETS["tiny"]
FAST_CQT = {"cqt_fmin": 130.8, "cqt_n_bins": 48, "cqt_bins_per_octave": 12}  # short kernels for CPU tests


# ------------------------------------------------------------------------------------ backbone
def test_backbone_shapes_rates_and_presets(one_thread: None) -> None:
    m = build_backbone({"family": "mert", "config": TINY}, seed=0).eval()
    assert "mert" in MODELS and m.frame_rate_hz == 75.0 and m.config.hop_length == 320
    assert m.config.receptive_field == 400
    assert build_mert({**TINY, "sample_rate": 16000}).frame_rate_hz == 50.0
    x = chords(2, 24000, 24000, seed=0)
    with torch.no_grad():
        out = m(x)
        att = m(x, output_attentions=True)
    t = m.n_frames(24000)
    assert t == 74 and len(out.hidden_states) == m.n_layers + 1
    assert all(h.shape == (2, t, 64) for h in out.hidden_states)
    assert out.extras["features"].shape == (2, t, 32)
    assert att.attentions is not None and [a.shape for a in att.attentions] == [(2, 2, t, t)] * 2
    for a, b in zip(out.hidden_states, att.hidden_states):  # eager == sdpa
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert m.hf.config._attn_implementation == "sdpa"       # restored after the eager call


def test_mert_95m_preset_size() -> None:
    from transformers import HubertConfig

    from musiclens.train.models.mert import hubert_config

    cfg = hubert_config(MERTConfig(**{k: v for k, v in MERT_PRESETS["mert_v1_95m"].items()}))
    assert isinstance(cfg, HubertConfig)
    sizes = (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size)
    assert sizes == (768, 12, 12, 3072)
    assert tuple(cfg.conv_dim) == (512,) * 7 and tuple(cfg.conv_stride) == (5, 2, 2, 2, 2, 2, 2)


def test_frame_mask_uses_the_learned_mask_embedding(one_thread: None) -> None:
    m = build_mert(TINY).eval()
    x = chords(2, 12000, 24000, seed=1)
    t = m.n_frames(12000)
    mask = torch.zeros(2, t, dtype=torch.bool)
    mask[0, 5:10] = True
    proj = {}
    h = m.hf.feature_projection.register_forward_hook(lambda _m, _i, o: proj.__setitem__("p", o))
    with torch.no_grad():
        plain = m(x)
        masked = m(x, frame_mask=mask)
    h.remove()
    torch.testing.assert_close(proj["p"][0, 5:10], m.hf.masked_spec_embed.expand(5, -1))  # replaced in place
    torch.testing.assert_close(masked.extras["features"], plain.extras["features"])    # features: pre-mask
    assert not torch.allclose(masked.hidden_states[-1][0], plain.hidden_states[-1][0])
    with pytest.raises(ConfigError, match="frame_mask"):
        m(x, frame_mask=mask[:, 1:])


def test_checkpoint_round_trip_gives_every_layer(tmp_path, one_thread: None) -> None:
    m = build_mert(TINY).eval()
    ext, acts = assert_checkpoint_round_trip(m, chords(2, 16000, 24000, seed=2), tmp_path / "ck")
    assert ext.frame_rate_hz == 75.0 and acts.n_special == 0


def test_mel_front_end_keeps_the_frames_and_round_trips(tmp_path, one_thread: None) -> None:
    conv = build_mert(TINY)
    m = build_mert({**TINY, "frontend": "mel", "mel_n_mels": 40}).eval()
    x = chords(2, 16000, 24000, seed=2)
    out = m(x)
    assert out.hidden_states[0].shape[1] == m.n_frames(16000) == conv.n_frames(16000)
    assert out.extras["features"].shape[-1] == m.conv_dim    # the feature penalty still sees the front end
    ext, acts = assert_checkpoint_round_trip(m, x, tmp_path / "ck")
    assert ext.frame_rate_hz == 75.0
    with pytest.raises(ConfigError, match="mel front end"):
        MERTConfig(frontend="mel", mel_n_fft=128)
    with pytest.raises(ConfigError, match="frontend"):
        MERTConfig(frontend="cqt")


def test_bad_backbone_configs() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        build_mert({"hidden": 64})
    with pytest.raises(ConfigError, match="multiple of num_heads"):
        MERTConfig(hidden_size=66, num_heads=4)
    with pytest.raises(ConfigError, match="hop"):
        MERTConfig(sample_rate=22050)


# ------------------------------------------------------------------------------------ masking, mixing
@pytest.mark.parametrize(("n_frames", "prob", "span"), [(100, 0.8, 5), (375, 0.8, 5), (50, 0.3, 10)])
def test_span_mask_statistics(n_frames: int, prob: float, span: int) -> None:
    """Masked fraction = the exact expectation (overlapping spans), and = transformers'
    ``_compute_mask_indices`` on the same configuration."""
    from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices

    g = torch.Generator().manual_seed(0)
    mask = span_mask(2000, n_frames, prob=prob, span=span, generator=g)
    ours = float(mask.float().mean())
    expected = expected_mask_fraction(n_frames, prob=prob, span=span)
    np.random.seed(0)
    hf = float(np.mean([_compute_mask_indices((1, n_frames), mask_prob=prob, mask_length=span, min_masks=0).mean()
                        for _ in range(2000)]))
    assert ours == pytest.approx(expected, abs=0.01)
    assert hf == pytest.approx(expected, abs=0.01)
    assert expected < prob  # overlaps
    # every masked run is at least one span long
    row = mask[0].numpy().astype(int)
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, row, 0])))[::2]
    assert runs.min() >= span
    torch.testing.assert_close(span_mask(3, n_frames, prob=prob, span=span, generator=torch.Generator().manual_seed(5)),
                               span_mask(3, n_frames, prob=prob, span=span, generator=torch.Generator().manual_seed(5)))


def test_mix_in_batch_adds_excerpts_of_other_clips() -> None:
    sr = 1000
    audio = torch.zeros(3, 3000)
    audio[1] = 1.0                                   # only clip 1 is non-silent
    mixed = mix_in_batch(audio, prob=1.0, n_excerpts=(1, 1), excerpt_s=(0.5, 0.5), sample_rate=sr,
                         generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(mixed[1] - audio[1], mixed[1] - 1.0)
    added = [int((mixed[i] != audio[i]).sum()) for i in (0, 2)]
    assert all(a in (0, 500) for a in added)         # one excerpt of 0.5 s from another clip, or silence drawn
    assert float(mixed[1].min()) >= 1.0              # clip 1 only received silence from clips 0 and 2
    same = mix_in_batch(audio, prob=0.0, n_excerpts=(1, 3), excerpt_s=(0.5, 1.0), sample_rate=sr)
    torch.testing.assert_close(same, audio)


# ------------------------------------------------------------------------------------ objective
def test_bad_objective_options() -> None:
    build = OBJECTIVES.get("mert")
    with pytest.raises(ConfigError, match="no loss"):
        build({"teacher": "none", "cqt_weight": 0.0}, {})
    with pytest.raises(ConfigError, match="unknown teacher"):
        build({"teacher": "hubert"}, {})
    with pytest.raises(ConfigError, match="encodec_path"):
        build({"teacher": "encodec"}, {})
    with pytest.raises(ConfigError, match="mask_prob"):
        build({"mask_prob": 1.5}, {})
    with pytest.raises(ConfigError, match="mask_porb"):
        build({"mask_porb": 0.5}, {})
    with pytest.raises(ConfigError, match="frame rate"):
        build({"teacher": "none", **FAST_CQT}, {"family": "mert", "config": {**TINY, "sample_rate": 16000,
                                                "conv_layers": [(32, 10, 5), (32, 3, 3)]}})
    obj = build({"teacher": "kmeans", "n_clusters": 4, **FAST_CQT}, {})
    with pytest.raises(TrainingError, match="prepare"):
        obj.training_loss({"audio": torch.zeros(2, 8000)})


def test_cqt_target_is_aligned_to_backbone_frames(one_thread: None) -> None:
    """A tone's CQT target peaks at its bin in every frame, for both backbones' rates (75 Hz at
    24 kHz; 31.25 Hz at 16 kHz for vit1d), and backbone frame j takes the CQT frame centred
    nearest to its own centre: j + 1 for the conv front end (centre 200 samples = 0.625 hop), j for
    the centred mel frames of vit1d."""
    build = OBJECTIVES.get("mert")
    for model, sr, shift in [({}, 24000, 1), ({"family": "vit1d", "config": {"dim": 32, "depth": 1, "heads": 2}},
                                               16000, 0)]:
        obj = build({"teacher": "none", **FAST_CQT}, model)
        t = np.arange(sr) / sr
        x = torch.tensor(0.5 * np.sin(2 * np.pi * 440.0 * t), dtype=torch.float32)[None]
        n = obj.backbone.n_frames(sr)
        _, cqt = obj.targets(x, n)
        assert cqt.shape == (1, n, 48) and obj.shift == shift
        assert bool((cqt[0, 5:-5].argmax(-1) == 69 - 48).all())  # A4; fmin C3, 12 bins per octave
        full = obj.cqt(x)
        torch.testing.assert_close(cqt[0, : n - 1], full[0, shift: shift + n - 1])


def _train(obj: torch.nn.Module, data: list[torch.Tensor], steps: int) -> list[float]:
    obj.train()
    opt = torch.optim.Adam(obj.trainable_parameters(), lr=2e-3)
    losses = []
    for step in range(steps):
        out = obj.training_loss({"audio": data[step % len(data)]}, generator=step_generator(0, step))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    return losses


@pytest.mark.parametrize("teacher", ["kmeans", "rvq"])
def test_loss_falls_with_each_teacher(teacher: str, one_thread: None) -> None:
    torch.manual_seed(0)
    opts = {"teacher": teacher, "n_clusters": 8, "rvq_num_quantizers": 2, "rvq_codebook_size": 16, "rvq_dim": 16,
            "rvq_steps": 40, **FAST_CQT}
    obj = OBJECTIVES.get("mert")(opts, {})
    data = [chords(4, 12000, 24000, seed=s) for s in range(3)]
    obj.prepare(lambda: iter({"audio": a} for a in data))
    frozen = {k: v.clone() for k, v in obj.teacher.state_dict().items()}
    assert not any(p.requires_grad for p in obj.teacher.parameters())
    codes, _ = obj.targets(data[0], obj.backbone.n_frames(12000))
    assert codes.shape == (4, obj.backbone.n_frames(12000), len(obj.teacher.codebook_sizes))
    assert len(torch.unique(codes[..., 0])) > 1
    from musiclens.train.bar import evaluate_bar, resolve_bar

    bar = resolve_bar(None, obj.learning_bar())
    assert bar.metric == "val/acc_0"

    def acc() -> dict:
        obj.eval()
        return {"val/acc_0": float(np.mean([float(obj.validation_loss({"audio": a})["acc_0"]) for a in data]))}

    at_init = acc()
    losses = _train(obj, data, 24)
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4]), losses
    assert evaluate_bar(bar, acc(), at_init)["passed"] and not evaluate_bar(bar, at_init, at_init)["passed"]
    for k, v in obj.teacher.state_dict().items():  # the teacher stayed frozen
        torch.testing.assert_close(v, frozen[k])


def test_loss_falls_with_vit1d_backbone_and_cqt_only(one_thread: None) -> None:
    torch.manual_seed(0)
    obj = OBJECTIVES.get("mert")({"teacher": "none", **FAST_CQT},
                                 {"family": "vit1d", "config": {"dim": 32, "depth": 2, "heads": 2, "max_frames": 64}})
    data = [chords(4, 16000, 16000, seed=s) for s in range(3)]
    from musiclens.train.bar import evaluate_bar, resolve_bar

    bar = resolve_bar(None, obj.learning_bar())
    assert (bar.metric, bar.relative) == ("val/cqt", True)

    def mse() -> dict:
        obj.eval()
        return {"val/cqt": float(np.mean([float(obj.validation_loss({"audio": a})["cqt"]) for a in data]))}

    at_init = mse()
    losses = _train(obj, data, 24)
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4]), losses
    assert evaluate_bar(bar, mse(), at_init)["passed"] and not evaluate_bar(bar, at_init, at_init)["passed"]


def test_encodec_teacher_from_a_local_directory(tmp_path, one_thread: None) -> None:
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(0)
    cfg = EncodecConfig(sampling_rate=24000, target_bandwidths=[1.5, 3.0], hidden_size=16, num_filters=4,
                        num_lstm_layers=1, codebook_size=32, codebook_dim=16, upsampling_ratios=[8, 5, 4, 2])
    codec = EncodecModel(cfg).eval()
    codec.save_pretrained(tmp_path / "encodec")
    obj = OBJECTIVES.get("mert")({"teacher": "encodec", "encodec_path": str(tmp_path / "encodec"),
                                  "encodec_bandwidth": 1.5, **FAST_CQT}, {})
    x = chords(2, 12000, 24000, seed=0)
    with torch.no_grad():
        direct = codec.encode(x[:, None], bandwidth=1.5).audio_codes[0]       # [B, n_q, frames]
    n_q = direct.shape[1]
    assert obj.teacher.codebook_sizes == (32,) * n_q and len(obj.label_embs) == n_q
    n = obj.backbone.n_frames(12000)
    codes, _ = obj.targets(x, n)
    assert codes.shape == (2, n, n_q)
    torch.testing.assert_close(codes, direct.transpose(1, 2)[:, :n].long())  # frame j <-> code frame j
    losses = _train(obj, [x], 3)
    assert np.isfinite(losses).all()
    with pytest.raises(ConfigError, match="Hz"):
        OBJECTIVES.get("mert")({"teacher": "encodec", "encodec_path": str(tmp_path / "encodec"), **FAST_CQT},
                               {"family": "mert", "config": {**TINY, "sample_rate": 16000}})


def test_encodec_teacher_with_missing_tensors_is_refused(tmp_path, one_thread: None) -> None:
    """A teacher with randomly initialised tensors would hand out meaningless labels."""
    from safetensors.torch import load_file, save_file
    from transformers import EncodecConfig, EncodecModel

    from musiclens.errors import CheckpointError

    cfg = EncodecConfig(sampling_rate=24000, target_bandwidths=[1.5, 3.0], hidden_size=16, num_filters=4,
                        num_lstm_layers=1, codebook_size=32, codebook_dim=16, upsampling_ratios=[8, 5, 4, 2])
    EncodecModel(cfg).save_pretrained(tmp_path / "encodec")
    state = load_file(tmp_path / "encodec" / "model.safetensors")
    gone = sorted(k for k in state if k.startswith("quantizer.layers.0."))
    assert gone
    save_file({k: v for k, v in state.items() if k not in gone}, tmp_path / "encodec" / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="missing: quantizer.layers.0"):
        OBJECTIVES.get("mert")({"teacher": "encodec", "encodec_path": str(tmp_path / "encodec"),
                                "encodec_bandwidth": 1.5, **FAST_CQT}, {})
