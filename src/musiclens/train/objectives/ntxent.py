"""NT-Xent over the class token of two temporally close crops of a clip (objective ``"ntxent"``).

Kong et al. (ISMIR 2025) train ViT-1D with NT-Xent on the class token only (PAPERS 2.1, 2.4).
Defaults [not from the paper] follow the group's framework: temperature 0.1, cosine similarity,
the positive pair excluded from the denominator, max-subtraction for numerical stability; two
random 4 s crops of one track whose starts lie at most ``max_view_gap_s`` apart.

Waveform augmentations (random gain, additive white noise at a random SNR, polarity inversion,
a small circular time shift) are applied per view from the step generator; each can be turned
off (``augment: false`` turns all off).

Loss for ``2B`` embeddings ``z`` (view 1 then view 2), ``s_ij = cos(z_i, z_j) / tau``, positive
``p(i)`` (the other view of the same clip)::

    l_i = -s_{i,p(i)} + log sum_{k != i, k != p(i)} exp(s_ik)

averaged over the ``2B`` anchors.  (The positive is *not* in the denominator, as in the group's
``NT_Xent``; this "decoupled" form differs from SimCLR's by the positive's term only.)

With several processes the batch is the global one: the augmentations are drawn for every rank's
views and each rank keeps its own, the embeddings of all ranks are gathered with their gradient
(``torch.distributed.nn.functional.all_gather``), and each rank averages the loss of its own
anchors against all ``2 W B`` rows; DDP's gradient average is then the gradient of the one-process
loss over the global batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from musiclens.errors import ConfigError
from musiclens.train.base import OBJECTIVES, Backbone, DataSpec, Objective, config_from_dict
from musiclens.train.distributed import current_shard, gather_rows
from musiclens.train.objectives._common import seeded_heads

__all__ = ["NTXentOptions", "NTXentObjective", "nt_xent", "augment_waveforms", "build_ntxent"]


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, *, temperature: float = 0.1,
            anchors: torch.Tensor | None = None) -> torch.Tensor:
    """NT-Xent of paired embeddings, positive excluded from the denominator.

    Parameters
    ----------
    z1, z2
        ``[batch, dim]`` embeddings of the two views; row ``i`` of each is a positive pair.
    temperature
        Softmax temperature tau (cosine similarities are divided by it).
    anchors
        Indices into the ``2 * batch`` rows of ``cat([z1, z2])`` whose losses are averaged (default
        all; a rank of several processes averages its own rows, against the global batch).

    Returns
    -------
    torch.Tensor
        Scalar mean loss over the ``2 * batch`` anchors (or over ``anchors``).
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ConfigError(f"nt_xent needs two [batch, dim] tensors of equal shape, got {tuple(z1.shape)} and "
                          f"{tuple(z2.shape)}")
    b = z1.shape[0]
    if b < 2:
        raise ConfigError("nt_xent needs a batch of at least 2 clips (negatives come from the other clips)")
    if temperature <= 0:
        raise ConfigError(f"nt_xent temperature must be positive, got {temperature}")
    z = F.normalize(torch.cat([z1, z2], dim=0).float(), dim=1)
    sim = (z @ z.T) / temperature
    idx = torch.arange(2 * b, device=z.device)
    pos_idx = (idx + b) % (2 * b)
    pos = sim[idx, pos_idx]
    excluded = torch.zeros_like(sim, dtype=torch.bool)
    excluded[idx, idx] = True
    excluded[idx, pos_idx] = True
    neg = sim.masked_fill(excluded, float("-inf"))
    peak = neg.amax(dim=1, keepdim=True).detach()
    log_denom = torch.log(torch.exp(neg - peak).sum(dim=1)) + peak.squeeze(1)
    losses = log_denom - pos
    return (losses if anchors is None else losses[anchors]).mean()


@dataclass(frozen=True)
class NTXentOptions:
    """Options of the ``ntxent`` objective.

    Attributes
    ----------
    temperature
        Softmax temperature (0.1).
    crop_s
        View length, s (4.0).
    max_view_gap_s
        Largest distance between the two views' starts, s.
    projection_dims
        Hidden and output widths of an MLP projection head on the class token (e.g. ``[512, 128]``:
        Linear-ReLU-Linear); empty: the class token itself.
    augment
        Master switch of the waveform augmentations below.
    gain_db
        Random gain range, dB (uniform); ``[0, 0]`` disables.
    noise_prob, snr_db
        Probability of additive white noise and its SNR range, dB.
    polarity_prob
        Probability of inverting the waveform.
    max_shift_s
        Largest circular time shift, s (0 disables).
    """

    temperature: float = 0.1
    crop_s: float = 4.0
    max_view_gap_s: float = 2.0
    projection_dims: tuple[int, ...] = ()
    augment: bool = True
    gain_db: tuple[float, float] = (-6.0, 6.0)
    noise_prob: float = 0.5
    snr_db: tuple[float, float] = (10.0, 40.0)
    polarity_prob: float = 0.5
    max_shift_s: float = 0.0

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ConfigError(f"ntxent: temperature must be positive, got {self.temperature}")
        if self.crop_s <= 0 or self.max_view_gap_s < 0:
            raise ConfigError("ntxent: crop_s must be positive and max_view_gap_s non-negative")
        if any(int(d) <= 0 for d in self.projection_dims):
            raise ConfigError(f"ntxent: projection_dims must be positive widths, got {self.projection_dims}")
        for name in ("gain_db", "snr_db"):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
                raise ConfigError(f"ntxent: {name} must be [low, high] with low <= high, got {lo_hi}")
        for name in ("noise_prob", "polarity_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"ntxent: {name} must lie in [0, 1], got {getattr(self, name)}")
        if self.max_shift_s < 0:
            raise ConfigError(f"ntxent: max_shift_s must be non-negative, got {self.max_shift_s}")


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator, device=device)


def augment_waveforms(x: torch.Tensor, options: NTXentOptions, *, sample_rate: int,
                      generator: torch.Generator | None = None, rows: torch.Tensor | None = None,
                      n_rows: int | None = None) -> torch.Tensor:
    """Randomly augmented copy of waveforms ``x`` ``[batch, n_samples]`` (see :class:`NTXentOptions`).

    Every draw comes from ``generator`` (on its device; the global RNG when ``None``), in a fixed
    order, so the same generator state gives the same augmentations.  ``rows`` (with ``n_rows``):
    ``x`` holds rows ``rows`` of a batch of ``n_rows``; the draws are made for all ``n_rows`` and
    ``x`` gets its rows' (one rank's part of a global batch).
    """
    if not options.augment:
        return x
    b, n = x.shape
    m = b if rows is None else int(n_rows if n_rows is not None else b)
    g = generator
    gdev = g.device if g is not None else torch.device("cpu")

    def mine(t: torch.Tensor) -> torch.Tensor:
        return t if rows is None else t[rows.to(t.device)]

    gain = mine(10.0 ** (_uniform(m, *options.gain_db, g, gdev) / 20.0))
    noisy = mine(torch.rand(m, generator=g, device=gdev) < options.noise_prob)
    snr = mine(_uniform(m, *options.snr_db, g, gdev))
    flip = mine(torch.rand(m, generator=g, device=gdev) < options.polarity_prob)
    max_shift = int(round(options.max_shift_s * sample_rate))
    shifts = mine(torch.randint(-max_shift, max_shift + 1, (m,), generator=g, device=gdev) if max_shift
                  else torch.zeros(m, dtype=torch.long))
    noise = mine(torch.randn(m, n, generator=g, device=gdev))
    dev = x.device
    out = x * gain.to(dev)[:, None]
    signal_power = out.pow(2).mean(dim=1).clamp_min(1e-12)
    noise_scale = torch.sqrt(signal_power / (10.0 ** (snr.to(dev) / 10.0)))
    out = out + noise.to(dev) * (noise_scale * noisy.to(dev))[:, None]
    out = torch.where(flip.to(dev)[:, None], -out, out)
    if max_shift:
        out = torch.stack([torch.roll(row, int(s)) for row, s in zip(out, shifts.tolist())])
    return out


class NTXentObjective(Objective):
    """NT-Xent over the class token of two views; see the module docstring."""

    name = "ntxent"
    #: learned = validation NT-Xent loss at least 1 nat below the same network at initialisation (the
    #: positive view's odds against the negatives rose e-fold).  In-batch top-1 retrieval is logged too,
    #: but saturates at 1.0 already at initialisation when views of one piece are close (measured on the
    #: quick vit1d study: random weights retrieve every positive among 16 pieces), so it cannot be the bar.
    default_bar = {"metric": "val/loss", "threshold": 1.0, "direction": "lower", "relative_to": "init"}
    #: NT-Xent never masks frames: the backbone's mask embedding gets no gradient
    ddp_unused_parameters = True

    def __init__(self, backbone: Backbone, options: NTXentOptions | None = None) -> None:
        super().__init__(backbone)
        self.options = options or NTXentOptions()
        if int(getattr(backbone, "n_special", 0)) < 1:
            raise ConfigError(f"ntxent needs a backbone with a class token (n_special >= 1), e.g. vit1d; "
                              f"family {backbone.family!r} has none")
        dims = [backbone.hidden_size, *map(int, self.options.projection_dims)]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(nn.ReLU())
        self.head = nn.Sequential(*layers) if layers else nn.Identity()

    def data_spec(self) -> DataSpec:
        return DataSpec(sample_rate=self.backbone.sample_rate, crop_s=self.options.crop_s, views=2,
                        max_view_gap_s=self.options.max_view_gap_s, kinds=("music",))

    def embed(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Projected class token ``[batch, out_dim]`` of waveforms ``[batch, n_samples]``."""
        return self.head(self.backbone(waveforms).hidden_states[-1][:, 0])

    def training_loss(self, batch: Mapping[str, Any], *, generator: torch.Generator | None = None
                      ) -> dict[str, torch.Tensor]:
        audio = batch["audio"]
        if audio.ndim != 3 or audio.shape[1] != 2:
            raise ConfigError(f"ntxent needs batch['audio'] of shape [batch, 2, n_samples] (two views), "
                              f"got {tuple(audio.shape)}")
        b = audio.shape[0]
        views = audio.transpose(0, 1).reshape(2 * b, audio.shape[-1])
        shard = current_shard()
        mine = None   # several processes: this rank's rows of the global [view 1 of all clips; view 2 of all]
        if shard.world_size > 1:
            own = torch.arange(shard.rank * b, (shard.rank + 1) * b)
            mine = torch.cat([own, own + shard.world_size * b])
        if self.training:
            views = augment_waveforms(views, self.options, sample_rate=self.backbone.sample_rate, generator=generator,
                                      rows=mine, n_rows=2 * b * shard.world_size)
        z = self.embed(views)
        # negatives from the global batch: the embeddings are gathered with their gradient (SimCLR's way)
        z1, z2 = gather_rows(z[:b], grad=True), gather_rows(z[b:], grad=True)
        loss = nt_xent(z1, z2, temperature=self.options.temperature,
                       anchors=None if mine is None else mine.to(z.device))
        with torch.no_grad():   # retrieval of each own clip's second view among the global batch's
            sim = F.normalize(z[:b].float(), dim=1) @ F.normalize(z2.float(), dim=1).T
            own = torch.arange(b, device=sim.device) + shard.rank * b
            acc = (sim.argmax(dim=1) == own).float().mean()
            sim = sim[torch.arange(b, device=sim.device), own][None]
        return {"loss": loss, "pos_sim": sim.mean(), "top1": acc}


def build_ntxent(options: Mapping[str, Any], model: Mapping[str, Any], *, seed: int = 0) -> NTXentObjective:
    """The ``ntxent`` objective; an empty ``model`` section gives a small ViT-1D."""
    from musiclens.train.models import build_backbone
    from musiclens.train.models.vit1d import VIT1D_PRESETS

    opts = config_from_dict(NTXentOptions, options, where="objective 'ntxent' options")
    model = dict(model or {}) or {"family": "vit1d", "config": dict(VIT1D_PRESETS["test"])}
    backbone = build_backbone(model, seed=seed)
    with seeded_heads(seed):
        return NTXentObjective(backbone, opts)


OBJECTIVES.register("ntxent", build_ntxent, help="NT-Xent over the class token of two close crops", overwrite=True)
