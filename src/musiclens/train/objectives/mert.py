"""MERT masked prediction: acoustic-code teacher + CQT reconstruction (objective ``"mert"``).

PAPERS 3.2-3.3 (``yizhilll/MERT``):

- **Masking**: HuBERT span masking (:func:`span_mask`), ``mask_prob 0.8``, span 5; masked frames'
  inputs are replaced by the backbone's learned mask embedding.
- **Acoustic teacher** (``teacher``): discrete codes per frame at the backbone's frame rate, one
  label set per codebook; :data:`TEACHERS` holds

  ``kmeans``   MERT-v0 style: MFCC + chroma of the audio, k-means fitted in :meth:`prepare` (seeded
               ``sklearn.cluster.MiniBatchKMeans``); one codebook;
  ``rvq``      a residual-VQ autoencoder over log-mel frames (``vector_quantize_pytorch.ResidualVQ``)
               trained in :meth:`prepare` for ``rvq_steps`` steps, then frozen;
  ``encodec``  EnCodec codes from a *local* checkpoint directory (``encodec_path``, loaded with
               ``transformers.EncodecModel.from_pretrained``), MERT-v1's teacher;
  ``none``     no acoustic loss (CQT reconstruction only).

- **Scoring** (HuBERT/MERT): per codebook, ``final_proj_k`` maps masked frame outputs to
  ``final_dim``; logits are cosine similarities with learned label embeddings divided by
  ``logit_temp`` (0.1); cross-entropy on masked frames only, summed over codebooks.
- **CQT reconstruction**: one linear layer ``hidden -> n_bins`` at masked frames, MSE against the
  nnAudio CQT (:class:`~musiclens.train.models.frontends.CQTTarget`, MERT's parameters, hop =
  ``sample_rate / frame_rate``) of the **clean** audio.
- **Feature penalty** (HuBERT): mean square of the conv features (``extras["features"]``) when the
  backbone provides them (``mert``), weight 10.
- **In-batch noise mixing**: with probability ``mixture_prob`` a clip gets 1-3 excerpts of 0.5-1.0 s
  cut from *other* clips of the batch, added at volume 1 at random positions (targets stay clean).
  With several processes the batch is the global one (every rank's clean clips are gathered, the
  mixing and the masks are drawn for all of them, each rank keeps its rows) and the losses are
  means over the global batch's masked frames (:mod:`musiclens.train.distributed`).

Frame alignment: teacher features and the CQT use centred frames (frame ``i`` centred on sample
``i * hop``); backbone frame ``j`` is centred at ``backbone.frame_offset_s + j / frame_rate`` (0 for
``vit1d``, half the conv receptive field for ``mert``), so it takes teacher frame
``j + round(frame_offset_s * frame_rate)`` (EnCodec frames are centred half a frame later).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from musiclens.errors import ConfigError, TrainingError
from musiclens.registry import Registry
from musiclens.train.base import OBJECTIVES, Backbone, DataSpec, Objective, config_from_dict
from musiclens.train.distributed import batch_mean, current_shard, gather_rows, local_rows, mean_loss
from musiclens.train.objectives._common import seeded_heads
from musiclens.train.models.frontends import CQTConfig, CQTTarget

__all__ = ["MERTOptions", "MERTObjective", "span_mask", "expected_mask_fraction", "mix_in_batch", "TEACHERS",
           "Teacher", "KMeansTeacher", "RVQTeacher", "EncodecTeacher", "build_mert_objective"]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------- masking
def _num_spans(n_frames: int, prob: float, span: int, min_masks: int, u: float) -> int:
    n = int(prob * n_frames / span + u)
    n = max(n, min_masks)
    return max(0, min(n, n_frames - span + 1 if n_frames >= span else 0))


def span_mask(batch: int, n_frames: int, *, prob: float, span: int, generator: torch.Generator | None = None,
              min_masks: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
    """HuBERT/wav2vec 2.0 span mask ``[batch, n_frames]`` (True = masked).

    As ``_compute_mask_indices`` in fairseq / transformers: per sequence, the number of spans is
    ``int(prob * n_frames / span + u)`` with ``u ~ U[0, 1)`` (probabilistic rounding), at least
    ``min_masks``; span starts are drawn without replacement from ``0 .. n_frames - span``; spans
    may overlap, so the masked fraction is below ``prob`` (see :func:`expected_mask_fraction`).

    Parameters
    ----------
    batch, n_frames
        Mask shape.
    prob
        Fraction of frames chosen as span starts times ``span`` (HuBERT's ``mask_prob``).
    span
        Span length, frames.
    generator
        Source of randomness (the global RNG when ``None``).
    min_masks
        Smallest number of spans per sequence.
    device
        Device of the returned mask.
    """
    if not 0 <= prob <= 1 or span < 1:
        raise ConfigError(f"span_mask needs 0 <= prob <= 1 and span >= 1, got prob={prob}, span={span}")
    gdev = generator.device if generator is not None else torch.device("cpu")
    mask = torch.zeros(batch, n_frames, dtype=torch.bool)
    if n_frames < span:
        return mask.to(device)
    n_starts = n_frames - span + 1
    u = torch.rand(batch, generator=generator, device=gdev).cpu()
    scores = torch.rand(batch, n_starts, generator=generator, device=gdev).cpu()
    order = scores.argsort(dim=1)
    offsets = torch.arange(span)
    for i in range(batch):
        k = _num_spans(n_frames, prob, span, min_masks, float(u[i]))
        if k:
            idx = (order[i, :k, None] + offsets).reshape(-1)
            mask[i, idx] = True
    return mask.to(device)


def expected_mask_fraction(n_frames: int, *, prob: float, span: int, min_masks: int = 0) -> float:
    """Expected fraction of frames :func:`span_mask` masks (exact, overlaps included).

    With ``k`` starts drawn without replacement from ``M = n_frames - span + 1`` positions, frame
    ``t`` stays unmasked with probability ``C(M - w_t, k) / C(M, k)``, ``w_t`` being the number of
    starts whose span covers ``t``; ``k`` is averaged over its two values under probabilistic rounding.
    """
    if n_frames < span:
        return 0.0
    m = n_frames - span + 1
    x = prob * n_frames / span
    lo = math.floor(x)
    cases = [(lo, 1.0 - (x - lo)), (lo + 1, x - lo)]
    t = np.arange(n_frames)
    w = np.minimum(t, m - 1) - np.maximum(t - span + 1, 0) + 1
    total = 0.0
    for k_raw, p in cases:
        if p <= 0:
            continue
        k = max(0, min(max(k_raw, min_masks), m))
        keep = np.array([math.comb(m - int(wt), k) / math.comb(m, k) for wt in w])
        total += p * float(np.mean(1.0 - keep))
    return total


# ---------------------------------------------------------------------------------------- mixing
def mix_in_batch(audio: torch.Tensor, *, prob: float, n_excerpts: tuple[int, int], excerpt_s: tuple[float, float],
                 sample_rate: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """MERT's in-batch noise mixing of waveforms ``audio`` ``[batch, n_samples]``.

    Each clip is mixed with probability ``prob``: ``n ~ U{n_excerpts}`` excerpts of
    ``U(excerpt_s)`` seconds, each cut at a random position of another random clip of the batch,
    are added at volume 1 at random positions.  Returns a new tensor; a batch of one is unchanged.
    """
    b, n = audio.shape
    if b < 2 or prob <= 0:
        return audio
    gdev = generator.device if generator is not None else torch.device("cpu")

    def draw(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=gdev).cpu()

    out = audio.clone()
    mixed = draw(b) < prob
    lo_n, hi_n = int(n_excerpts[0]), int(n_excerpts[1])
    for i in range(b):
        counts = draw(1)
        if not bool(mixed[i]):
            continue
        k = lo_n + min(int(float(counts[0]) * (hi_n - lo_n + 1)), hi_n - lo_n)
        u = draw(k, 4)
        for j in range(k):
            length = min(n, int(round((excerpt_s[0] + (excerpt_s[1] - excerpt_s[0]) * float(u[j, 0])) * sample_rate)))
            other = int(float(u[j, 1]) * (b - 1))
            other = other + 1 if other >= i else other
            src = int(float(u[j, 2]) * (n - length + 1))
            dst = int(float(u[j, 3]) * (n - length + 1))
            out[i, dst:dst + length] = out[i, dst:dst + length] + audio[other, src:src + length]
    return out


# ---------------------------------------------------------------------------------------- options
@dataclass(frozen=True)
class MERTOptions:
    """Options of the ``mert`` objective (defaults: MERT-v1-95M's where known).

    Attributes
    ----------
    teacher
        ``"kmeans"``, ``"rvq"``, ``"encodec"`` or ``"none"`` (see the module docstring).
    mask_prob, mask_span, min_masks
        Span masking (0.8, 5 frames; HF's ``mask_time_min_masks`` 2).
    final_dim, logit_temp
        Projection width of the code predictions and cosine-logit temperature (64, 0.1).
    acoustic_weight, cqt_weight, feature_penalty_weight
        Loss weights (1, 1, 10).
    cqt_fmin, cqt_n_bins, cqt_bins_per_octave
        CQT target (32.7 Hz, 336 bins, 48 per octave); hop = ``sample_rate / frame_rate``.
    mixture_prob, mix_excerpts, mix_excerpt_s
        In-batch mixing: probability per clip, number of excerpts, excerpt length range, s.
    crop_s
        Training crop, s (5 s).
    n_clusters, kmeans_n_mfcc, kmeans_n_mels
        ``kmeans`` teacher: clusters, MFCCs and mel bands (chroma adds 12 features).
    rvq_num_quantizers, rvq_codebook_size, rvq_dim, rvq_n_mels, rvq_steps, rvq_lr
        ``rvq`` teacher: codebooks, codes per codebook, latent width, log-mel bands, training steps, Adam lr.
    encodec_path, encodec_bandwidth
        ``encodec`` teacher: a local EnCodec model directory and its bandwidth, kbps (None: the largest).
    prepare_batches
        Largest number of training batches :meth:`MERTObjective.prepare` reads to fit a teacher.
    seed
        Seed of the teacher fitting (k-means, RVQ).
    """

    teacher: str = "kmeans"
    mask_prob: float = 0.8
    mask_span: int = 5
    min_masks: int = 2
    final_dim: int = 64
    logit_temp: float = 0.1
    acoustic_weight: float = 1.0
    cqt_weight: float = 1.0
    feature_penalty_weight: float = 10.0
    cqt_fmin: float = 32.7
    cqt_n_bins: int = 336
    cqt_bins_per_octave: int = 48
    mixture_prob: float = 0.5
    mix_excerpts: tuple[int, int] = (1, 3)
    mix_excerpt_s: tuple[float, float] = (0.5, 1.0)
    crop_s: float = 5.0
    n_clusters: int = 100
    kmeans_n_mfcc: int = 20
    kmeans_n_mels: int = 64
    rvq_num_quantizers: int = 4
    rvq_codebook_size: int = 256
    rvq_dim: int = 64
    rvq_n_mels: int = 64
    rvq_steps: int = 200
    rvq_lr: float = 1e-3
    encodec_path: str | None = None
    encodec_bandwidth: float | None = None
    prepare_batches: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        if self.teacher not in TEACHERS:
            raise ConfigError(f"mert: unknown teacher {self.teacher!r}; choose one of {', '.join(TEACHERS.names())}")
        if self.teacher == "none" and self.cqt_weight <= 0:
            raise ConfigError("mert: teacher 'none' with cqt_weight 0 leaves no loss; set cqt_weight > 0 or choose a "
                              "teacher (kmeans, rvq, encodec)")
        if self.teacher == "encodec" and not self.encodec_path:
            raise ConfigError("mert: teacher 'encodec' needs encodec_path, a local EnCodec model directory "
                              "(transformers EncodecModel.save_pretrained layout); nothing is downloaded")
        if not 0 <= self.mask_prob <= 1 or self.mask_span < 1 or self.min_masks < 0:
            raise ConfigError(f"mert: need 0 <= mask_prob <= 1, mask_span >= 1, min_masks >= 0; got "
                              f"{self.mask_prob}, {self.mask_span}, {self.min_masks}")
        if min(self.acoustic_weight, self.cqt_weight, self.feature_penalty_weight) < 0:
            raise ConfigError("mert: loss weights must be non-negative")
        if self.final_dim <= 0 or self.logit_temp <= 0:
            raise ConfigError("mert: final_dim and logit_temp must be positive")
        if not 0 <= self.mixture_prob <= 1:
            raise ConfigError(f"mert: mixture_prob must lie in [0, 1], got {self.mixture_prob}")
        if len(self.mix_excerpts) != 2 or not 1 <= self.mix_excerpts[0] <= self.mix_excerpts[1]:
            raise ConfigError(f"mert: mix_excerpts must be [low, high] with 1 <= low <= high, got {self.mix_excerpts}")
        if len(self.mix_excerpt_s) != 2 or not 0 < self.mix_excerpt_s[0] <= self.mix_excerpt_s[1]:
            raise ConfigError(f"mert: mix_excerpt_s must be [low, high] with 0 < low <= high, got {self.mix_excerpt_s}")
        if min(self.n_clusters, self.rvq_num_quantizers, self.rvq_codebook_size, self.rvq_dim, self.rvq_steps,
               self.prepare_batches) < 1 or self.n_clusters < 2:
            raise ConfigError("mert: n_clusters (>= 2), rvq sizes, rvq_steps and prepare_batches must be positive")


# ---------------------------------------------------------------------------------------- features
class FrameFeatures(nn.Module):
    """Centred STFT frames at ``hop``: log-mel (dB / 20), MFCC and chroma ``[batch, n_frames, dim]``."""

    def __init__(self, *, sample_rate: int, hop: int, n_mels: int, n_mfcc: int = 0, chroma: bool = False) -> None:
        super().__init__()
        import librosa
        import scipy.fft

        n_fft = max(512, 1 << int(math.ceil(math.log2(2 * hop))))
        self.n_fft, self.hop, self.n_mfcc, self.chroma = n_fft, hop, n_mfcc, chroma
        fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmax=sample_rate / 2)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("mel_fb", torch.from_numpy(fb).float(), persistent=False)
        if n_mfcc:
            dct = scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc]
            self.register_buffer("dct", torch.from_numpy(dct).float(), persistent=False)
        if chroma:
            cf = librosa.filters.chroma(sr=sample_rate, n_fft=n_fft)
            self.register_buffer("chroma_fb", torch.from_numpy(cf).float(), persistent=False)
        self.dim = (n_mfcc if n_mfcc else n_mels) + (12 if chroma else 0)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(waveforms.float(), n_fft=self.n_fft, hop_length=self.hop, window=self.window, center=True,
                          pad_mode="constant", return_complex=True).abs().pow(2)
        logmel = 10.0 * torch.log10(torch.clamp(self.mel_fb @ spec, min=1e-10)) / 20.0
        feats = [self.dct @ logmel if self.n_mfcc else logmel]
        if self.chroma:
            c = self.chroma_fb @ spec
            feats.append(c / c.amax(dim=1, keepdim=True).clamp_min(1e-10))
        return torch.cat(feats, dim=1).transpose(1, 2)


# ---------------------------------------------------------------------------------------- teachers
class Teacher(nn.Module, ABC):
    """A frozen source of discrete frame codes.

    Attributes: ``codebook_sizes`` (one per codebook), ``offset_frames`` (centre of code frame 0
    in code frames: 0 for centred frames).  :meth:`codes` returns ``[batch, n_code_frames, n_codebooks]``.
    """

    codebook_sizes: tuple[int, ...] = ()
    offset_frames: float = 0.0

    def fit(self, audio: Iterator[torch.Tensor]) -> None:
        """Fit from training waveforms ``[batch, n_samples]`` (default: nothing to fit)."""

    @property
    def fitted(self) -> bool:
        return True

    @abstractmethod
    def codes(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Codes ``[batch, n_code_frames, n_codebooks]`` (int64) of ``waveforms`` ``[batch, n_samples]``."""

    def train(self, mode: bool = True) -> Teacher:  # teachers stay frozen
        return super().train(False)


#: Teachers by name: ``TEACHERS.get(name)(options, sample_rate=..., hop=...) -> Teacher | None``.
TEACHERS: Registry[Callable[..., Teacher | None]] = Registry("MERT teacher")


class KMeansTeacher(Teacher):
    """MERT-v0 style codes: k-means over standardised MFCC + chroma frames (one codebook)."""

    def __init__(self, options: MERTOptions, *, sample_rate: int, hop: int) -> None:
        super().__init__()
        self.features = FrameFeatures(sample_rate=sample_rate, hop=hop, n_mels=options.kmeans_n_mels,
                                      n_mfcc=options.kmeans_n_mfcc, chroma=True)
        k, d = options.n_clusters, self.features.dim
        self.seed = options.seed
        self.codebook_sizes = (k,)
        self.register_buffer("centroids", torch.zeros(k, d))
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("std", torch.ones(d))
        self.register_buffer("is_fitted", torch.zeros((), dtype=torch.bool))

    @property
    def fitted(self) -> bool:
        return bool(self.is_fitted)

    def fit(self, audio: Iterator[torch.Tensor]) -> None:
        from sklearn.cluster import MiniBatchKMeans

        with torch.no_grad():
            x = torch.cat([self.features(a).reshape(-1, self.features.dim).cpu() for a in audio]).double().numpy()
        k = self.codebook_sizes[0]
        if x.shape[0] < k:
            raise TrainingError(f"k-means teacher: {x.shape[0]} frames cannot fit {k} clusters; give prepare() more "
                                "batches or lower n_clusters")
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-8
        km = MiniBatchKMeans(n_clusters=k, random_state=self.seed, n_init=3, batch_size=max(1024, 4 * k))
        km.fit((x - mean) / std)
        self.centroids.copy_(torch.from_numpy(km.cluster_centers_).float())
        self.mean.copy_(torch.from_numpy(mean).float())
        self.std.copy_(torch.from_numpy(std).float())
        self.is_fitted.fill_(True)
        logger.info("k-means teacher: %d clusters fitted on %d frames (inertia %.4g)", k, x.shape[0], km.inertia_)

    def codes(self, waveforms: torch.Tensor) -> torch.Tensor:
        z = (self.features(waveforms) - self.mean) / self.std
        d = (z.pow(2).sum(-1, keepdim=True) - 2 * z @ self.centroids.T + self.centroids.pow(2).sum(-1))
        return d.argmin(dim=-1, keepdim=True)


class RVQTeacher(Teacher):
    """Codes of a residual-VQ autoencoder over log-mel frames, trained in :meth:`fit`, then frozen."""

    def __init__(self, options: MERTOptions, *, sample_rate: int, hop: int) -> None:
        super().__init__()
        from vector_quantize_pytorch import ResidualVQ

        self.options = options
        self.features = FrameFeatures(sample_rate=sample_rate, hop=hop, n_mels=options.rvq_n_mels)
        d = self.features.dim
        w = options.rvq_dim
        self.encoder = nn.Sequential(nn.Linear(d, w), nn.GELU(), nn.Linear(w, w))
        self.decoder = nn.Sequential(nn.Linear(w, w), nn.GELU(), nn.Linear(w, d))
        # no cross-process codebook sync: with several processes every rank fits the teacher on the
        # same (global) batches, so it is the one-process teacher on each; syncing would count them W times
        self.rvq = ResidualVQ(dim=options.rvq_dim, num_quantizers=options.rvq_num_quantizers,
                              codebook_size=options.rvq_codebook_size, kmeans_init=True, kmeans_iters=10, decay=0.9,
                              sync_codebook=False, sync_kmeans=False)
        self.codebook_sizes = (options.rvq_codebook_size,) * options.rvq_num_quantizers
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("std", torch.ones(d))
        self.register_buffer("is_fitted", torch.zeros((), dtype=torch.bool))
        self.requires_grad_(False)

    @property
    def fitted(self) -> bool:
        return bool(self.is_fitted)

    def fit(self, audio: Iterator[torch.Tensor]) -> None:
        o = self.options
        with torch.no_grad():
            x = torch.cat([self.features(a).reshape(-1, self.features.dim) for a in audio])
        if x.shape[0] < o.rvq_codebook_size:
            raise TrainingError(f"rvq teacher: {x.shape[0]} frames cannot initialise {o.rvq_codebook_size} codes; "
                                "give prepare() more batches or lower rvq_codebook_size")
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0) + 1e-5)
        x = (x - self.mean) / self.std
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(o.seed)
            self.requires_grad_(True)
            nn.Module.train(self, True)
            params = list(self.encoder.parameters()) + list(self.decoder.parameters())
            params += [p for p in self.rvq.parameters() if p.requires_grad]
            opt = torch.optim.Adam(params, lr=o.rvq_lr)
            batch = min(4096, x.shape[0])
            first = last = float("nan")
            for step in range(o.rvq_steps):
                idx = torch.randint(0, x.shape[0], (batch,), device=x.device)
                xb = x[idx][None]
                q, _, commit = self.rvq(self.encoder(xb))
                loss = F.mse_loss(self.decoder(q), xb) + commit.sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                first = float(loss.detach()) if step == 0 else first
                last = float(loss.detach())
            self.requires_grad_(False)
            nn.Module.train(self, False)
        self.is_fitted.fill_(True)
        logger.info("rvq teacher: %d steps on %d frames, loss %.4g -> %.4g", o.rvq_steps, x.shape[0], first, last)

    def codes(self, waveforms: torch.Tensor) -> torch.Tensor:
        z = self.encoder((self.features(waveforms) - self.mean) / self.std)
        _, indices, _ = self.rvq(z)
        return indices


class EncodecTeacher(Teacher):
    """EnCodec RVQ codes from a local ``transformers`` EnCodec directory (MERT-v1's teacher)."""

    offset_frames = 0.5

    def __init__(self, options: MERTOptions, *, sample_rate: int, hop: int) -> None:
        super().__init__()
        from transformers import EncodecModel

        path = Path(str(options.encodec_path)).expanduser()
        if not path.is_dir():
            raise ConfigError(f"mert: encodec_path {path} is not a directory; give a local EnCodec model folder")
        from musiclens.extract.hf_loading import from_pretrained_checked

        # strict and safe: a teacher with missing tensors would hand out labels from random weights
        model, _ = from_pretrained_checked(EncodecModel, path, allow_hint=None)
        cfg = model.config
        if int(cfg.sampling_rate) != int(sample_rate):
            raise ConfigError(f"mert: the EnCodec model runs at {cfg.sampling_rate} Hz but the backbone at "
                              f"{sample_rate} Hz; use a backbone with sample_rate {cfg.sampling_rate}")
        codec_hop = int(np.prod(cfg.upsampling_ratios))
        if codec_hop != hop:
            raise ConfigError(f"mert: EnCodec labels come at {cfg.sampling_rate / codec_hop:g} Hz but the backbone's "
                              f"frames at {sample_rate / hop:g} Hz; the label rate must equal the frame rate")
        self.bandwidth = float(options.encodec_bandwidth or max(cfg.target_bandwidths))
        if self.bandwidth not in [float(b) for b in cfg.target_bandwidths]:
            raise ConfigError(f"mert: encodec_bandwidth {self.bandwidth} is not one of {cfg.target_bandwidths}")
        self.codec = model.eval().requires_grad_(False)
        with torch.no_grad():
            n_q = int(self.codec.encode(torch.zeros(1, 1, hop * 4), bandwidth=self.bandwidth).audio_codes.shape[-2])
        self.codebook_sizes = (int(cfg.codebook_size),) * n_q

    def codes(self, waveforms: torch.Tensor) -> torch.Tensor:
        out = self.codec.encode(waveforms.float()[:, None], bandwidth=self.bandwidth)
        codes = out.audio_codes  # [chunks, batch, n_q, frames]
        if codes.shape[0] != 1:
            codes = torch.cat(list(codes), dim=-1)
        else:
            codes = codes[0]
        return codes.transpose(1, 2).long()


TEACHERS.register("kmeans", KMeansTeacher, help="k-means over MFCC + chroma (MERT-v0)")
TEACHERS.register("rvq", RVQTeacher, help="residual-VQ autoencoder over log-mel frames, trained in prepare()")
TEACHERS.register("encodec", EncodecTeacher, help="EnCodec codes from a local checkpoint (MERT-v1)")
TEACHERS.register("none", lambda options, **_: None, help="no acoustic teacher (CQT reconstruction only)")


def _align(target: torch.Tensor, n_frames: int, shift: int) -> torch.Tensor:
    """Frames ``j + shift`` (clamped) of ``target`` ``[B, T_t, ...]`` for ``j < n_frames``."""
    idx = (torch.arange(n_frames, device=target.device) + shift).clamp(0, target.shape[1] - 1)
    return target[:, idx]


# ---------------------------------------------------------------------------------------- objective
class MERTObjective(Objective):
    """MERT masked prediction; see the module docstring.

    Parameters
    ----------
    backbone
        A backbone with a mask embedding (``mert`` or ``vit1d``).
    options
        :class:`MERTOptions`.
    """

    name = "mert"

    def learning_bar(self) -> dict[str, Any] | None:
        """With an acoustic teacher: masked code accuracy of codebook 0 at least 0.05 above the
        same network at initialisation; CQT reconstruction only: masked-frame CQT MSE at least 10 %
        below its value at initialisation."""
        if self.teacher is not None and self.options.acoustic_weight > 0:
            return {"metric": "val/acc_0", "threshold": 0.05, "direction": "higher", "relative_to": "init"}
        if self.cqt_head is not None:
            return {"metric": "val/cqt", "threshold": 0.1, "direction": "lower", "relative_to": "init",
                    "relative": True}
        return None

    def __init__(self, backbone: Backbone, options: MERTOptions | None = None) -> None:
        super().__init__(backbone)
        self.options = o = options or MERTOptions()
        sr, rate = backbone.sample_rate, backbone.frame_rate_hz
        hop = sr / rate
        if abs(hop - round(hop)) > 1e-6:
            raise ConfigError(f"mert: the backbone's frame rate {rate:g} Hz is not sample_rate / integer hop "
                              f"({sr} Hz); the CQT and teacher labels need hop = sample_rate / frame_rate")
        self.hop = int(round(hop))
        offset = float(getattr(backbone, "frame_offset_s", 0.5 / rate))
        self.shift = int(round(offset * rate))
        self.cqt = CQTTarget(CQTConfig(sample_rate=sr, hop_length=self.hop, fmin=o.cqt_fmin, n_bins=o.cqt_n_bins,
                                       bins_per_octave=o.cqt_bins_per_octave)) if o.cqt_weight > 0 else None
        self.teacher = TEACHERS.get(o.teacher)(o, sample_rate=sr, hop=self.hop)
        dim = backbone.hidden_size
        sizes = self.teacher.codebook_sizes if self.teacher is not None else ()
        self.final_proj = nn.ModuleList([nn.Linear(dim, o.final_dim) for _ in sizes])
        self.label_embs = nn.ParameterList([nn.Parameter(torch.randn(v, o.final_dim) * o.final_dim ** -0.5)
                                            for v in sizes])
        self.cqt_head = nn.Linear(dim, o.cqt_n_bins) if self.cqt is not None else None

    def data_spec(self) -> DataSpec:
        return DataSpec(sample_rate=self.backbone.sample_rate, crop_s=self.options.crop_s, kinds=("music",))

    def prepare(self, batches: Callable[[], Any]) -> None:
        """Fit the teacher (k-means / RVQ) on up to ``prepare_batches`` training batches."""
        if self.teacher is None or isinstance(self.teacher, EncodecTeacher):
            return

        def audio() -> Iterator[torch.Tensor]:
            for i, batch in enumerate(batches()):
                if i >= self.options.prepare_batches:
                    break
                a = batch["audio"]
                yield (a.reshape(-1, a.shape[-1]) if a.ndim == 3 else a).float().to(self._device())

        self.teacher.fit(audio())

    def _device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    def targets(self, clean: torch.Tensor, n_frames: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(codes [B, T, n_codebooks] | None, cqt [B, T, n_bins] | None)`` of clean audio, at backbone frames."""
        codes = cqt = None
        with torch.no_grad():
            if self.teacher is not None:
                if not self.teacher.fitted:
                    raise TrainingError(f"mert: the {self.options.teacher} teacher is not fitted; "
                                        "call prepare(batches) before training")
                shift = self.shift - int(round(self.teacher.offset_frames))
                codes = _align(self.teacher.codes(clean), n_frames, shift)
            if self.cqt is not None:
                cqt = _align(self.cqt(clean), n_frames, self.shift)
        return codes, cqt

    def training_loss(self, batch: Mapping[str, Any], *, generator: torch.Generator | None = None
                      ) -> dict[str, torch.Tensor]:
        o = self.options
        clean = batch["audio"]
        if clean.ndim != 2:
            raise ConfigError(f"mert needs batch['audio'] [batch, n_samples], got shape {tuple(clean.shape)}")
        b, n = clean.shape
        t = self.backbone.n_frames(n)
        codes, cqt = self.targets(clean, t)
        x = clean
        world = current_shard().world_size   # several processes: mixing and masks drawn for the global batch
        if self.training and o.mixture_prob > 0:
            x = local_rows(mix_in_batch(gather_rows(clean), prob=o.mixture_prob, n_excerpts=o.mix_excerpts,
                                        excerpt_s=o.mix_excerpt_s, sample_rate=self.backbone.sample_rate,
                                        generator=generator))
        mask = local_rows(span_mask(b * world, t, prob=o.mask_prob, span=o.mask_span, min_masks=o.min_masks,
                                    generator=generator, device=clean.device))
        out = self.backbone(x, frame_mask=mask)
        h = out.frames(-1)[mask]
        zero = h.sum() * 0.0
        logs: dict[str, torch.Tensor] = {"mask_fraction": mask.float().mean()}
        loss = zero
        if codes is not None and o.acoustic_weight > 0:
            labels = codes[mask]
            ce_total = zero
            for k, (proj, emb) in enumerate(zip(self.final_proj, self.label_embs)):
                logits = F.cosine_similarity(proj(h)[:, None, :].float(), emb[None].float(), dim=-1) / o.logit_temp
                ce = mean_loss(F.cross_entropy, logits, labels[:, k])   # over the global batch's masked frames
                ce_total = ce_total + ce
                with torch.no_grad():
                    logs[f"acc_{k}"] = (logits.argmax(-1) == labels[:, k]).float().mean()
            logs["acoustic"] = ce_total.detach()
            loss = loss + o.acoustic_weight * ce_total
        if cqt is not None and self.cqt_head is not None:
            mse = mean_loss(F.mse_loss, self.cqt_head(h).float(), cqt[mask].float())
            logs["cqt"] = mse.detach()
            loss = loss + o.cqt_weight * mse
        feats = out.extras.get("features")
        if feats is not None and o.feature_penalty_weight > 0:
            pen = batch_mean(feats.float().pow(2))
            logs["features_pen"] = pen.detach()
            loss = loss + o.feature_penalty_weight * pen
        return {"loss": loss, **logs}


def build_mert_objective(options: Mapping[str, Any], model: Mapping[str, Any], *, seed: int = 0) -> MERTObjective:
    """The ``mert`` objective; an empty ``model`` section gives a tiny MERT encoder."""
    from musiclens.train.models import build_backbone
    from musiclens.train.models.mert import MERT_PRESETS

    opts = config_from_dict(MERTOptions, options, where="objective 'mert' options")
    model = dict(model or {}) or {"family": "mert", "config": dict(MERT_PRESETS["tiny"])}
    backbone = build_backbone(model, seed=seed)
    with seeded_heads(seed):
        return MERTObjective(backbone, opts)


OBJECTIVES.register("mert", build_mert_objective, help="MERT masked prediction: acoustic codes + CQT reconstruction",
                    overwrite=True)
