"""NT-Xent: the loss against a hand computation, augmentations, the objective, and its training."""

from __future__ import annotations

import math

import pytest
import torch

from musiclens.errors import ConfigError
from musiclens.train.base import OBJECTIVES, step_generator
from musiclens.train.objectives.ntxent import NTXentOptions, augment_waveforms, nt_xent
from tests.train._util import chords


def _hand_nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    z = [v / math.sqrt(sum(float(c) ** 2 for c in v)) for v in list(z1) + list(z2)]
    n, b = len(z), len(z1)
    total = 0.0
    for i in range(n):
        p = (i + b) % n
        sim = [sum(float(a) * float(c) for a, c in zip(z[i], z[k])) / tau for k in range(n)]
        denom = sum(math.exp(sim[k]) for k in range(n) if k not in (i, p))
        total += -sim[p] + math.log(denom)
    return total / n


def test_nt_xent_equals_hand_computation() -> None:
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    for tau in (0.1, 0.5):
        assert float(nt_xent(z1, z2, temperature=tau)) == pytest.approx(_hand_nt_xent(z1, z2, tau), rel=1e-5)


def test_nt_xent_invariances_and_stability() -> None:
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    ref = nt_xent(z1, z2, temperature=0.1)
    perm = torch.randperm(6, generator=g)
    torch.testing.assert_close(nt_xent(z1[perm], z2[perm], temperature=0.1), ref)
    torch.testing.assert_close(nt_xent(z1 * 7.0, z2 * 0.01, temperature=0.1), ref)   # cosine: scale-free
    torch.testing.assert_close(nt_xent(z2, z1, temperature=0.1), ref)                  # symmetric in the views
    assert torch.isfinite(nt_xent(z1, z2, temperature=1e-3))                           # max-subtraction
    # perfectly aligned, orthogonal pairs: the positive term is 1/tau, negatives exp(0)
    e = torch.eye(4)
    assert float(nt_xent(e, e, temperature=0.1)) == pytest.approx(-10.0 + math.log(6.0), rel=1e-6)


def test_augmentations_follow_the_generator_and_switch_off() -> None:
    x = chords(4, 8000, 16000, seed=0)
    opts = NTXentOptions(noise_prob=1.0, snr_db=(20.0, 20.0), polarity_prob=0.0, gain_db=(0.0, 0.0), max_shift_s=0.0)
    a = augment_waveforms(x, opts, sample_rate=16000, generator=step_generator(0, 3))
    b = augment_waveforms(x, opts, sample_rate=16000, generator=step_generator(0, 3))
    torch.testing.assert_close(a, b)
    snr = 10 * torch.log10(x.pow(2).mean(1) / (a - x).pow(2).mean(1))
    assert torch.allclose(snr, torch.full_like(snr, 20.0), atol=0.5)
    flip = augment_waveforms(x, NTXentOptions(polarity_prob=1.0, noise_prob=0.0, gain_db=(0.0, 0.0)), sample_rate=16000)
    torch.testing.assert_close(flip, -x)
    off = NTXentOptions(augment=False)
    assert augment_waveforms(x, off, sample_rate=16000) is x


def test_objective_spec_and_bad_options() -> None:
    obj = OBJECTIVES.get("ntxent")({}, {})
    spec = obj.data_spec()
    assert spec.views == 2 and spec.crop_s == 4.0 and spec.kinds == ("music",) and spec.sample_rate == 16000
    with pytest.raises(ConfigError, match="temprature"):
        OBJECTIVES.get("ntxent")({"temprature": 0.2}, {})
    with pytest.raises(ConfigError, match="temperature"):
        OBJECTIVES.get("ntxent")({"temperature": 0.0}, {})
    with pytest.raises(ConfigError, match="class token"):
        OBJECTIVES.get("ntxent")({}, {"family": "mert", "config": {"hidden_size": 32, "num_layers": 1,
                                                                    "conv_pos_kernel": 16, "conv_pos_groups": 4}})
    with pytest.raises(ConfigError, match=r"\[batch, 2, n_samples\]"):
        obj.training_loss({"audio": torch.zeros(2, 16000)})


def test_loss_falls_on_a_tiny_task(one_thread: None) -> None:
    """Two noisy views of one chord per clip: the class token learns to tell the chords apart."""
    torch.manual_seed(0)
    obj = OBJECTIVES.get("ntxent")({"projection_dims": [64, 32], "snr_db": [15.0, 30.0]},
                                   {"family": "vit1d", "config": {"dim": 32, "depth": 2, "heads": 2, "max_frames": 64}})
    clips = chords(8, 12000, 16000, seed=5)
    audio = torch.stack([clips[:, :8000], clips[:, 4000:]], dim=1)  # two overlapping views per clip
    from musiclens.train.bar import evaluate_bar, resolve_bar

    bar = resolve_bar(None, obj.learning_bar())
    obj.eval()
    at_init = {"val/loss": float(obj.validation_loss({"audio": audio})["loss"])}
    assert not evaluate_bar(bar, at_init, at_init)["passed"]          # the untrained network misses the bar
    obj.train()
    opt = torch.optim.Adam(obj.trainable_parameters(), lr=1e-3)
    losses, top1 = [], []
    for step in range(30):
        out = obj.training_loss({"audio": audio}, generator=step_generator(0, step))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
        top1.append(float(out["top1"]))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    # the decoupled loss has no floor at 0 (positive excluded from the denominator): compare drops
    assert first - last > 2.0, losses
    assert sum(top1[-5:]) / 5 >= 0.9, top1
    obj.eval()
    trained = {"val/loss": float(obj.validation_loss({"audio": audio})["loss"])}
    assert evaluate_bar(bar, trained, at_init)["passed"], (at_init, trained)
