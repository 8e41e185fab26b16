"""SSL objectives ``wav2vec2`` and ``data2vec`` on tiny backbones (CPU, a few dozen steps)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musiclens.errors import ConfigError
from musiclens.extract.checkpoint import load_checkpoint
from musiclens.train.bar import evaluate_bar, resolve_bar
from musiclens.train.base import OBJECTIVES, step_generator
from musiclens.train.objectives.data2vec import ema_decay_at, instance_norm_time
from musiclens.train.objectives.wav2vec2 import span_mask
from tests.train._util import objectives_on_one_thread  # noqa: F401  (autouse: objectives registered, one thread)

SR = 16000


def _tones(n: int = 8, seed: int = 0) -> dict:
    """1 s clips: a tone (one of four pitches) under a 3 Hz tremolo."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR) / SR
    f = rng.choice([220.0, 330.0, 440.0, 660.0], size=n)
    x = np.stack([np.sin(2 * np.pi * fi * t + rng.uniform(0, 6)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
                  for fi in f]).astype(np.float32)
    return {"audio": torch.from_numpy(x), "lengths": torch.full((n,), SR)}


def _train(obj, batch, steps: int, lr: float = 1e-3) -> list[float]:
    opt = torch.optim.Adam(obj.trainable_parameters(), lr=lr)
    obj.train()
    losses = []
    for step in range(steps):
        torch.manual_seed(1000 + step)            # what the engine does before every step
        out = obj.training_loss(batch, generator=step_generator(0, step))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        obj.after_optimizer_step(step)
        losses.append(float(out["loss"].detach()))
    return losses


def _falls(losses: list[float], factor: float) -> bool:
    return np.mean(losses[-4:]) < factor * np.mean(losses[:2])


# ---------------------------------------------------------------------- masks
def test_span_mask_is_a_function_of_the_generator_and_respects_padding():
    valid = torch.ones(3, 49, dtype=torch.bool)
    valid[2, 30:] = False
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    a = span_mask(valid, mask_prob=0.65, mask_length=10, generator=step_generator(0, 7))
    b = span_mask(valid, mask_prob=0.65, mask_length=10, generator=step_generator(0, 7))
    c = span_mask(valid, mask_prob=0.65, mask_length=10, generator=step_generator(0, 8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not a[2, 30:].any()
    assert 0.3 < a[:2].float().mean() < 0.9
    np.testing.assert_array_equal(np.random.get_state()[1], state)   # numpy's global state restored


# ---------------------------------------------------------------------- wav2vec2
def test_wav2vec2_loss_falls_and_trains_the_backbone(tmp_path):
    obj = OBJECTIVES.get("wav2vec2")({"crop_s": 1.0, "num_negatives": 10}, {})
    assert obj._pretraining.wav2vec2 is obj.backbone.model
    names = set(obj.state_dict())
    assert not any(k.startswith("_pretraining") for k in names)
    assert {"quantizer.codevectors", "project_hid.weight", "project_q.weight", "optimizer_steps"} <= names
    before = obj.backbone.model.encoder.layers[0].attention.q_proj.weight.detach().clone()
    batch = _tones()
    bar = resolve_bar(None, obj.learning_bar())
    obj.eval()
    at_init = {"val/contrastive_accuracy": float(obj.validation_loss(batch)["contrastive_accuracy"])}
    losses = _train(obj, batch, 20)
    assert _falls(losses, 0.9), losses
    obj.eval()
    trained = {"val/contrastive_accuracy": float(obj.validation_loss(batch)["contrastive_accuracy"])}
    assert evaluate_bar(bar, trained, at_init)["passed"], (at_init, trained)     # learned: past the bar
    assert not evaluate_bar(bar, at_init, at_init)["passed"]                    # the untrained one is not
    after = obj.backbone.model.encoder.layers[0].attention.q_proj.weight
    assert not torch.equal(before, after)
    obj.backbone.save(tmp_path / "ck")
    module, _ = load_checkpoint(tmp_path / "ck")
    assert torch.equal(module.model.encoder.layers[0].attention.q_proj.weight, after.detach())


def test_contrastive_accuracy_equals_a_hand_loop():
    from musiclens.train.objectives.wav2vec2 import contrastive_accuracy

    g = torch.Generator().manual_seed(0)
    b, t, d, k = 2, 7, 5, 3
    pred, quant = torch.randn(b, t, d, generator=g), torch.randn(b, t, d, generator=g)
    quant[1, 2] = quant[1, 4]                       # a distractor equal to the positive is not held against it
    neg = torch.randint(0, b * t, (b, t, k), generator=g)
    neg[1, 2, 0] = 1 * t + 4
    mask = torch.rand(b, t, generator=g) < 0.7
    mask[1, 2] = True
    flat = quant.reshape(-1, d)
    hits = []
    for i in range(b):
        for j in range(t):
            if not mask[i, j]:
                continue
            pos = float(torch.cosine_similarity(pred[i, j], quant[i, j], dim=0))
            others = [float(torch.cosine_similarity(pred[i, j], flat[n], dim=0)) for n in neg[i, j].tolist()
                      if not torch.equal(flat[n], quant[i, j])]
            hits.append(all(pos > o for o in others))
    assert float(contrastive_accuracy(pred, quant, neg, mask)) == pytest.approx(np.mean(hits))


def test_wav2vec2_step_is_deterministic_and_gumbel_schedule():
    obj = OBJECTIVES.get("wav2vec2")({"crop_s": 1.0, "max_gumbel_temperature": 2.0, "min_gumbel_temperature": 0.5,
                                       "gumbel_temperature_decay": 0.5}, {})
    batch = _tones(2)
    obj.train()
    out = []
    for _ in range(2):
        torch.manual_seed(5)
        out.append(obj.training_loss(batch, generator=step_generator(3, 11)))
    assert torch.equal(out[0]["loss"], out[1]["loss"])
    assert obj.gumbel_temperature() == 2.0
    obj.after_optimizer_step(0)
    assert obj.gumbel_temperature() == 1.0                    # 2 * 0.5 ** 1
    obj.after_optimizer_step(4)
    assert obj.gumbel_temperature() == 0.5                    # max(2 * 0.5 ** 5, 0.5)
    assert int(obj.state_dict()["optimizer_steps"]) == 5      # resumes with the schedule


@pytest.mark.parametrize("options,model,match", [
    ({}, {"family": "data2vec-audio"}, "family 'wav2vec2'"),
    ({"contrastive_logits_temperature": -0.1}, {}, "temperature"),
    ({"min_gumbel_temperature": -1.0}, {}, "gumbel"),
    ({"mask_prob": 1.5}, {}, "mask_prob"),
    ({"lr": 0.1}, {}, "unknown key"),
])
def test_wav2vec2_bad_options(options, model, match):
    with pytest.raises(ConfigError, match=match):
        OBJECTIVES.get("wav2vec2")(options, model)


# ---------------------------------------------------------------------- data2vec
def test_ema_schedule_and_instance_norm():
    assert ema_decay_at(0, start=0.999, end=0.9999, anneal_steps=100) == pytest.approx(0.999)
    assert ema_decay_at(50, start=0.999, end=0.9999, anneal_steps=100) == pytest.approx(0.99945)
    assert ema_decay_at(500, start=0.999, end=0.9999, anneal_steps=100) == pytest.approx(0.9999)
    x = torch.randn(2, 30, 5) * 3 + 1
    y = instance_norm_time(x)
    ref = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(y, ref)


@pytest.mark.parametrize("family", ["data2vec-audio", "wav2vec2"])
def test_data2vec_loss_falls(family):
    obj = OBJECTIVES.get("data2vec")({"crop_s": 1.0}, {"family": family})
    assert obj.target_source == "ffn" and obj.top_k == 2       # top_k 8 clipped to 2 layers
    bar = resolve_bar(None, obj.learning_bar())
    obj.eval()
    at_init = {"val/loss": float(obj.validation_loss(_tones())["loss"].detach())}
    losses = _train(obj, _tones(), 16)
    assert _falls(losses, 0.8), losses
    obj.eval()
    trained = {"val/loss": float(obj.validation_loss(_tones())["loss"].detach())}
    assert evaluate_bar(bar, trained, at_init)["passed"], (at_init, trained)
    assert not evaluate_bar(bar, at_init, at_init)["passed"]


def test_data2vec_teacher_ema_and_state():
    obj = OBJECTIVES.get("data2vec")({"ema_decay": 0.9, "ema_end_decay": 0.99, "ema_anneal_end_steps": 10}, {})
    teacher_ids = {id(p) for p in obj.teacher.parameters()}
    assert not teacher_ids & {id(p) for p in obj.trainable_parameters()}
    assert any(k.startswith("teacher.") for k in obj.state_dict())
    obj.train()
    assert not obj.teacher.training and obj.backbone.training
    t_before = {k: v.detach().clone() for k, v in obj.teacher.named_parameters()}
    with torch.no_grad():
        for p in obj.backbone.parameters():
            p.add_(0.5)
    obj.after_optimizer_step(5)                               # decay 0.99 - 0.09 * 0.5 = 0.945
    d = 0.945
    student = dict(obj.backbone.named_parameters())
    for k, v in obj.teacher.named_parameters():
        if k.startswith("model.encoder."):
            torch.testing.assert_close(v, d * t_before[k] + (1 - d) * student[k])
        else:                                                  # front end copied (ema_transformer_only)
            torch.testing.assert_close(v, student[k])


def test_data2vec_layer_targets_are_normalised_teacher_layers():
    obj = OBJECTIVES.get("data2vec")({"top_k": 2, "target_source": "layer"}, {})
    x = _tones(2)["audio"]
    with torch.no_grad():
        hs = obj.teacher(x).hidden_states
    ref = 0.5 * (instance_norm_time(hs[1]) + instance_norm_time(hs[2]))
    torch.testing.assert_close(obj.targets(x), ref)


def test_data2vec_ffn_targets_use_feed_forward_outputs():
    obj = OBJECTIVES.get("data2vec")({"top_k": 1}, {"family": "data2vec-audio"})
    x = _tones(2)["audio"]
    layer = obj.teacher.model.encoder.layers[-1]
    got = {}
    h = layer.feed_forward.register_forward_hook(lambda m, i, o: got.setdefault("ffn", o))
    with torch.no_grad():
        obj.teacher(x)
    h.remove()
    torch.testing.assert_close(obj.targets(x), instance_norm_time(got["ffn"]))


@pytest.mark.parametrize("options,match", [
    ({"ema_decay": 1.5}, "ema_decay"),
    ({"loss": "l3"}, "loss"),
    ({"target_source": "attention"}, "target_source"),
    ({"topk": 3}, "top_k"),
])
def test_data2vec_bad_options(options, match):
    with pytest.raises(ConfigError, match=match):
        OBJECTIVES.get("data2vec")(options, {})


# ---------------------------------------------------------------------- SSL -> fine-tuning
@pytest.mark.parametrize("ssl", ["data2vec", "wav2vec2"])
def test_finetuning_starts_from_the_saved_student(tmp_path, ssl):
    obj = OBJECTIVES.get(ssl)({"crop_s": 1.0}, {"family": "wav2vec2"})
    _train(obj, _tones(4), 2)
    obj.backbone.save(tmp_path / "ssl")
    ft = OBJECTIVES.get("transcription")({}, {"family": "wav2vec2", "init_from": str(tmp_path / "ssl")})
    student = obj.backbone.state_dict()
    for k, v in ft.backbone.state_dict().items():
        assert torch.equal(v, student[k]), k
    if ssl == "data2vec":                     # the teacher is not what was exported
        assert not all(torch.equal(v, obj.teacher.state_dict()[k]) for k, v in student.items())
    with pytest.raises(ConfigError, match="not 'data2vec-audio'"):
        OBJECTIVES.get("transcription")({}, {"family": "data2vec-audio", "init_from": str(tmp_path / "ssl")})
