"""Frame geometry of Hugging Face audio models: which moment of a clip each output token describes.

A geometry answers, per layer (index into the extractor's ``layer_names``):

- :meth:`FrameGeometry.expected` — how many sequence tokens the model *must* return for an input of
  ``n_input`` samples (checked against the real output; a mismatch is a :class:`FrameGeometryError`,
  never silently wrong times);
- :meth:`FrameGeometry.valid` — how many of them describe a clip of ``n_samples`` (the rest is
  padding or the model's fixed context);
- :meth:`FrameGeometry.times` — the centre of each token in seconds from the clip start (NaN for
  the ``n_special`` leading special tokens);
- :meth:`FrameGeometry.order` — a permutation to *time-major* token order for models whose tokens
  are time x frequency patches (AST, CLAP), or ``None`` when tokens already are frames.

Families (all derived from the model's config and its feature extractor, never from the output):

=================  ==========================================================================
``ConvGeometry``   wav2vec2-like waveform encoders (wav2vec2, HuBERT, data2vec-audio, WavLM,
                   UniSpeech(-SAT), wav2vec2-conformer, MERT, SEW, SEW-D): frames every
                   ``prod(conv_stride)`` samples, centred on their receptive field; SEW / SEW-D
                   run their transformer on frames average-pooled by ``squeeze_factor``.
``WhisperGeometry`` log-mel (hop ``hop_length``) through two convolutions, the second of stride 2;
                   the model's context is fixed, frames past the clip are dropped.
``ASTGeometry``    16x16 patches over a kaldi fbank (25 ms window, 10 ms shift), two special
                   tokens, patches reordered time-major.
``ClapGeometry``   HTSAT (Swin) over a log-mel that is resized to ``spec_size * freq_ratio``
                   frames and folded into ``freq_ratio`` chunks stacked along frequency; every
                   stage's tokens are reordered time-major (see the class docstring).
``EncodecGeometry`` EnCodec's SEANet encoder: padded 1-D convolutions (``ceil(n / stride)``
                   frames), residual blocks and an LSTM that keep the frame grid.
=================  ==========================================================================

This module imports without torch.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from musiclens.errors import ExtractionError
from musiclens.extract.batching import centre_times

__all__ = ["FrameGeometryError", "FrameGeometry", "ConvGeometry", "WhisperGeometry", "ASTGeometry",
           "ClapGeometry", "EncodecGeometry", "conv_geometry"]


class FrameGeometryError(ExtractionError):
    """A model's output does not have the length its configuration implies (frame times would be wrong)."""


def conv_geometry(kernels: Sequence[int], strides: Sequence[int]) -> tuple[int, int]:
    """``(receptive_field, stride)`` in samples of a stack of unpadded 1-D convolutions."""
    rf, jump = 1, 1
    for k, s in zip(kernels, strides):
        rf += (int(k) - 1) * jump
        jump *= int(s)
    return rf, jump


class FrameGeometry(abc.ABC):
    """Base: one frame grid shared by every layer (subclasses may vary it per layer)."""

    n_special: int = 0
    frame_rate_hz: float = math.nan
    min_samples: int = 1
    max_samples: int | None = None          # the model's context; longer clips need windowing

    @abc.abstractmethod
    def expected(self, layer: int, n_input: int) -> int:
        """Sequence tokens (special tokens excluded) the model returns for an input of ``n_input`` samples."""

    @abc.abstractmethod
    def valid(self, layer: int, n_samples: int) -> int:
        """Tokens that describe a clip of ``n_samples`` samples (a prefix in time-major order)."""

    @abc.abstractmethod
    def times(self, layer: int, n_tokens: int) -> np.ndarray:
        """``[shape=(n_special + n_tokens,)]`` token centres in seconds, NaN for special tokens."""

    def order(self, layer: int) -> np.ndarray | None:
        """Permutation of the model's sequence tokens into time-major order, or ``None``."""
        return None

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable summary for the extractor's info."""
        return {"geometry": type(self).__name__}

    def check(self, layer: int, actual: int, n_input: int, *, name: str, layer_name: str) -> None:
        """Raise :class:`FrameGeometryError` unless the model returned the expected number of tokens."""
        want = self.expected(layer, n_input)
        if int(actual) != want:
            raise FrameGeometryError(
                f"{name}: layer {layer_name} returned {actual} sequence tokens for an input of {n_input} samples, "
                f"but the model's configuration implies {want} ({self.describe()}); frame times would be wrong. "
                "The config does not describe this checkpoint's front end: check config.json / "
                "preprocessor_config.json, or extract it with the 'torch' extractor and explicit frame rates")


class ConvGeometry(FrameGeometry):
    """A wav2vec2-style conv feature encoder (no padding), optionally followed by SEW's squeezing.

    Frame ``j`` of the conv output is centred on its receptive field, ``(rf - 1) / 2 + j * stride``
    samples; with ``squeeze > 1`` (SEW, SEW-D) the transformer sees the average of conv frames
    ``squeeze * j ... squeeze * j + squeeze - 1`` and its frames are centred on theirs.
    """

    def __init__(self, kernels: Sequence[int], strides: Sequence[int], *, sample_rate: int, squeeze: int = 1) -> None:
        if len(kernels) != len(strides) or not kernels:
            raise FrameGeometryError(f"conv_kernel {list(kernels)} and conv_stride {list(strides)} need the same "
                                     "non-zero length; the config is inconsistent")
        self.kernels, self.strides = [int(k) for k in kernels], [int(s) for s in strides]
        self.sample_rate, self.squeeze = int(sample_rate), max(1, int(squeeze))
        self.rf, self.stride = conv_geometry(self.kernels, self.strides)
        self.hop = self.stride * self.squeeze
        self.offset = (self.rf - 1) / 2 + (self.squeeze - 1) / 2 * self.stride
        self.min_samples = self.rf + (self.squeeze - 1) * self.stride
        self.frame_rate_hz = self.sample_rate / self.hop

    def n_conv(self, n_samples: int) -> int:
        """Frames of the conv encoder for ``n_samples`` samples."""
        n = int(n_samples)
        for k, s in zip(self.kernels, self.strides):
            n = (n - k) // s + 1
        return max(0, n)

    def expected(self, layer: int, n_input: int) -> int:
        return self.n_conv(n_input) // self.squeeze

    def valid(self, layer: int, n_samples: int) -> int:
        return self.n_conv(n_samples) // self.squeeze

    def times(self, layer: int, n_tokens: int) -> np.ndarray:
        return centre_times(n_tokens, hop_s=self.hop / self.sample_rate, offset_s=self.offset / self.sample_rate)

    def describe(self) -> dict[str, Any]:
        return {"geometry": "conv", "receptive_field_samples": self.rf, "hop_samples": self.hop,
                "squeeze_factor": self.squeeze, "offset_samples": self.offset}


class WhisperGeometry(FrameGeometry):
    """Whisper's encoder: log-mel frames every ``hop`` samples, halved by the stride-2 conv.

    The input is always the model's full context (``2 * n_ctx`` mel frames); frame ``j`` is
    centred on mel frame ``2 j`` (the STFT is centred), i.e. ``2 j hop`` samples.
    """

    def __init__(self, *, n_ctx: int, hop_length: int, n_fft: int, sample_rate: int) -> None:
        self.n_ctx, self.hop, self.sample_rate = int(n_ctx), int(hop_length), int(sample_rate)
        self.min_samples = int(n_fft) // 2 + 1
        self.max_samples = 2 * self.n_ctx * self.hop
        self.frame_rate_hz = self.sample_rate / (2 * self.hop)

    def expected(self, layer: int, n_input: int) -> int:
        return self.n_ctx

    def valid(self, layer: int, n_samples: int) -> int:
        return min(self.n_ctx, math.ceil(n_samples / (2 * self.hop)))

    def times(self, layer: int, n_tokens: int) -> np.ndarray:
        return centre_times(n_tokens, hop_s=2 * self.hop / self.sample_rate)

    def describe(self) -> dict[str, Any]:
        return {"geometry": "whisper", "context_frames": self.n_ctx, "hop_samples": 2 * self.hop}


class ASTGeometry(FrameGeometry):
    """AST: two special tokens (CLS, distillation), then ``f_dim x t_dim`` patches.

    The model emits patches frequency-major; :meth:`order` lists them time-major (all frequency
    patches of time patch 0, then of time patch 1, ...) so that a clip's tokens form a prefix and
    times increase.  A patch is valid when its time patch starts inside the clip.
    """

    n_special = 2

    def __init__(self, *, num_mel_bins: int, max_length: int, patch_size: int, frequency_stride: int,
                 time_stride: int, sample_rate: int) -> None:
        self.sample_rate = int(sample_rate)
        self.win, self.shift = round(0.025 * sample_rate), round(0.010 * sample_rate)    # kaldi fbank
        self.patch, self.t_stride = int(patch_size), int(time_stride)
        self.f_dim = (int(num_mel_bins) - self.patch) // int(frequency_stride) + 1
        self.t_dim = (int(max_length) - self.patch) // self.t_stride + 1
        self.min_samples = self.win
        self.max_samples = self.win + (int(max_length) - 1) * self.shift
        self.frame_rate_hz = self.sample_rate / (self.shift * self.t_stride)

    def expected(self, layer: int, n_input: int) -> int:
        return self.f_dim * self.t_dim

    def valid(self, layer: int, n_samples: int) -> int:
        n_fbank = 1 + (n_samples - self.win) // self.shift
        return min(self.t_dim, math.ceil(n_fbank / self.t_stride)) * self.f_dim

    def times(self, layer: int, n_tokens: int) -> np.ndarray:
        t_patch = np.arange(self.t_dim)
        centres = ((t_patch * self.t_stride + (self.patch - 1) / 2) * self.shift + self.win / 2) / self.sample_rate
        return np.concatenate([np.full(self.n_special, np.nan), np.repeat(centres, self.f_dim)])[: self.n_special + n_tokens]

    def order(self, layer: int) -> np.ndarray:
        return np.arange(self.f_dim * self.t_dim).reshape(self.f_dim, self.t_dim).T.reshape(-1)

    def describe(self) -> dict[str, Any]:
        return {"geometry": "ast", "f_dim": self.f_dim, "t_dim": self.t_dim, "n_special": 2,
                "token_order": "time-major (all frequency patches of time patch 0 first)"}


class ClapGeometry(FrameGeometry):
    """CLAP's HTSAT audio tower (a Swin transformer over a folded log-mel).

    The feature extractor makes ``T_in`` log-mel frames (hop ``hop_length``, centred STFT) over
    its fixed context; the model resizes them to ``W = spec_size * freq_ratio`` frames (bicubic,
    ``align_corners``: frame ``x`` of the resized image is input frame ``x (T_in - 1) / (W - 1)``)
    and folds time into ``freq_ratio`` chunks stacked along the image height.  A token of hidden
    state ``k`` at grid row ``h``, column ``w`` therefore covers chunk ``h // F_k`` (``F_k`` rows per
    chunk), mel band ``h % F_k`` and resized frames ``chunk * spec_size + w * s_k ...`` (``s_k`` the
    stage's column stride).  Tokens are listed *time-major*: time columns in order, the ``F_k``
    frequency rows of each column together.  ``hidden_states`` follow transformers: the patch
    embedding, then each stage's output after its patch merging (the last stage unmerged).
    """

    def __init__(self, config: Any, *, hop_length: int, sample_rate: int, max_samples: int) -> None:
        self.sample_rate, self.hop = int(sample_rate), int(hop_length)
        self.freq_ratio = int(config.spec_size) // int(config.num_mel_bins)
        if self.freq_ratio < 1:
            raise FrameGeometryError(f"CLAP spec_size {config.spec_size} < num_mel_bins {config.num_mel_bins}")
        self.spec_size = int(config.spec_size)
        self.width = self.spec_size * self.freq_ratio
        self.max_samples = int(max_samples)
        self.t_in = self.max_samples // self.hop + 1
        if self.t_in > self.width:
            raise FrameGeometryError(
                f"CLAP: the feature extractor's context gives {self.t_in} mel frames but the model takes at most "
                f"{self.width} (spec_size x freq_ratio); preprocessor_config.json and config.json disagree")
        self.ratio = (self.t_in - 1) / (self.width - 1) if self.t_in < self.width else 1.0
        ps = config.patch_stride
        self.stride_h, self.stride_w = (int(ps), int(ps)) if isinstance(ps, int) else (int(ps[0]), int(ps[1]))
        self.n_stages = len(config.depths)
        self.grids: list[tuple[int, int]] = []
        for k in range(self.n_stages + 1):
            level = min(k, self.n_stages - 1)
            h, w = (self.spec_size // self.stride_h) >> level, (self.spec_size // self.stride_w) >> level
            if h % self.freq_ratio or h == 0 or w == 0:
                raise FrameGeometryError(
                    f"CLAP hidden state {k} has a {h} x {w} token grid whose rows do not split into freq_ratio="
                    f"{self.freq_ratio} time chunks; musiclens cannot give its tokens times")
            self.grids.append((h, w))
        self.frame_rate_hz = 1.0 / self._col_seconds(self.n_stages)

    def _stride(self, layer: int) -> int:
        return self.stride_w << min(layer, self.n_stages - 1)

    def _col_seconds(self, layer: int) -> float:
        return self._stride(layer) * self.ratio * self.hop / self.sample_rate

    def _columns(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """Start and centre (seconds) of every time column, in time order."""
        w = self.grids[layer][1]
        s = self._stride(layer)
        chunk, col = np.divmod(np.arange(self.freq_ratio * w), w)
        start = chunk * self.spec_size + col * s
        scale = self.ratio * self.hop / self.sample_rate
        return start * scale, (start + (s - 1) / 2) * scale

    def rows_per_chunk(self, layer: int) -> int:
        return self.grids[layer][0] // self.freq_ratio

    def expected(self, layer: int, n_input: int) -> int:
        h, w = self.grids[layer]
        return h * w

    def valid(self, layer: int, n_samples: int) -> int:
        start, _ = self._columns(layer)
        return int(np.sum(start < n_samples / self.sample_rate)) * self.rows_per_chunk(layer)

    def times(self, layer: int, n_tokens: int) -> np.ndarray:
        return np.repeat(self._columns(layer)[1], self.rows_per_chunk(layer))[:n_tokens]

    def order(self, layer: int) -> np.ndarray:
        h, w = self.grids[layer]
        f = h // self.freq_ratio
        t = np.arange(self.freq_ratio * w)
        chunk, col = np.divmod(t, w)
        rows = chunk[:, None] * f + np.arange(f)[None, :]                    # (time column, band)
        return (rows * w + col[:, None]).reshape(-1)

    def describe(self) -> dict[str, Any]:
        return {"geometry": "clap-htsat", "freq_ratio": self.freq_ratio, "grids": [list(g) for g in self.grids],
                "mel_frames": self.t_in, "resized_frames": self.width,
                "token_order": "time-major (frequency rows of each time column together)"}


class EncodecGeometry(FrameGeometry):
    """EnCodec's SEANet encoder as a list of stages built from its config, input to output.

    ``stages`` holds ``(kind, kernel, stride)`` with kind ``"conv"``, ``"resblock"`` or ``"lstm"``,
    in the order of the encoder's non-activation layers.  A padded conv of stride ``s`` gives
    ``ceil(n / s)`` frames; frame ``j`` is centred on its receptive field (padding included:
    ``j s - pad_left + (k - 1) / 2``, ``pad_left`` all of ``k - s`` for causal convs).  Residual
    blocks and the LSTM keep their input's frame grid and times.
    """

    def __init__(self, config: Any, *, sample_rate: int) -> None:
        self.sample_rate = int(sample_rate)
        self.causal = bool(config.use_causal_conv)
        stages: list[tuple[str, int, int]] = [("conv", int(config.kernel_size), 1)]
        for ratio in reversed(list(config.upsampling_ratios)):
            stages += [("resblock", 1, 1)] * int(config.num_residual_layers)
            stages.append(("conv", 2 * int(ratio), int(ratio)))
        stages += [("lstm", 1, 1), ("conv", int(config.last_kernel_size), 1)]
        self.stages = stages
        self.offsets: list[float] = []
        self.jumps: list[int] = []
        offset, jump = 0.0, 1
        for kind, k, s in stages:
            if kind == "conv":
                pad_total = k - s
                pad_left = pad_total if self.causal else pad_total - pad_total // 2
                offset += jump * ((k - 1) / 2 - pad_left)
                jump *= s
            self.offsets.append(offset)
            self.jumps.append(jump)
        self.frame_rate_hz = self.sample_rate / self.jumps[-1]

    def _length(self, layer: int, n: int) -> int:
        for kind, k, s in self.stages[: layer + 1]:
            if kind == "conv":
                n = -(-(n - k + (k - s)) // s) + 1          # ceil((n - k + pad_total) / s) + 1
        return max(0, n)

    def expected(self, layer: int, n_input: int) -> int:
        return self._length(layer, n_input)

    def valid(self, layer: int, n_samples: int) -> int:
        return self._length(layer, n_samples)

    def times(self, layer: int, n_tokens: int) -> np.ndarray:
        return centre_times(n_tokens, hop_s=self.jumps[layer] / self.sample_rate,
                            offset_s=self.offsets[layer] / self.sample_rate)

    def describe(self) -> dict[str, Any]:
        return {"geometry": "encodec", "causal": self.causal, "stages": [list(s) for s in self.stages],
                "hop_samples": self.jumps[-1]}
