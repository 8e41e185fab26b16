"""Spectral front ends in torch: the group's log-mel (ViT-1D input) and MERT's CQT target.

torchaudio is not used (it does not import on the project's machines); both front ends are
plain modules whose fixed filters are non-persistent buffers (derived from the config, never
saved in checkpoints).

- :class:`LogMel`: equal to ``torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=1024,
  f_min=0, f_max=11025, n_mels=128, mel_scale="slaney", normalized=True)`` (hop ``n_fft // 2``, periodic
  Hann window, centred reflect padding, power 2, filter bank without area normalisation) followed by
  ``AmplitudeToDB(stype="power", top_db=100)`` (PAPERS 2.2).  One difference on purpose: the
  ``top_db`` floor is taken per example, whereas torchaudio takes it over a whole ``[B, F, T]`` batch.
- :class:`MelFeatureEncoder`: a log-mel front end with a conv encoder's frames (wav2vec2 / data2vec /
  MERT ``frontend: mel``, the CPU quick scales).
- :class:`CQTTarget`: nnAudio's ``CQT`` (= ``CQT1992v2``, the class MERT's ``model_cqt_pred`` uses)
  with MERT's parameters (PAPERS 3.2): fmin 32.7 Hz, 336 bins, 48 per octave, ``filter_scale=1``,
  ``norm=1``, Hann, magnitude.  CQT1992v2 convolves with full-length kernels (no downsampling), so any
  hop works: 320 at 24 kHz (75 Hz) or 512 at 16 kHz (31.25 Hz, a ViT-1D's frame rate).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from musiclens.errors import ConfigError

__all__ = ["MelFields", "MelConfig", "LogMel", "CQTConfig", "CQTTarget", "power_to_db", "MelFeatureEncoder",
           "receptive_field", "conv_n_frames"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MelFields:
    """The leading log-mel fields and the group's defaults (PAPERS 2.2), shared by :class:`MelConfig`
    and the configs of backbones with a log-mel front end (``ViT1DConfig``), so both keep one set
    of defaults.  Documented in :class:`MelConfig`.
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    f_min: float = 0.0
    f_max: float | None = 11025.0
    n_mels: int = 128


@dataclass(frozen=True)
class MelConfig(MelFields):
    """Log-mel parameters; the defaults are the group's (PAPERS 2.2).

    Attributes
    ----------
    sample_rate
        Input rate, Hz.
    n_fft
        FFT size and window length, samples.
    hop_length
        Hop, samples (16000 / 512 = 31.25 frames per second).
    f_min, f_max
        Band edges of the mel filter bank, Hz (``None``: Nyquist).  The group's 11025 Hz lies above
        the Nyquist frequency of 16 kHz audio: the top bands are then empty (all at the dB floor),
        exactly as in torchaudio with those settings.
    n_mels
        Mel bands.
    mel_scale
        ``"slaney"`` (librosa's default scale) or ``"htk"``.
    mel_norm
        Filter-bank normalisation: ``None`` (torchaudio's default, triangles of peak 1) or
        ``"slaney"`` (area normalisation, librosa's default).
    normalized
        Divide the STFT by ``sqrt(sum(window**2))`` (torchaudio's ``normalized=True``).
    power
        Exponent of the magnitude (2: power spectrogram).
    top_db
        Dynamic range kept below each example's maximum, dB (``None``: no floor).
    center, pad_mode
        Centred frames (frame ``j`` is centred on sample ``j * hop_length``) and the padding mode.
    """

    mel_scale: str = "slaney"
    mel_norm: str | None = None
    normalized: bool = True
    power: float = 2.0
    top_db: float | None = 100.0
    center: bool = True
    pad_mode: str = "reflect"

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ConfigError(f"mel front end: sample_rate, n_fft, hop_length and n_mels must be positive, got {self}")
        f_max = self.sample_rate / 2 if self.f_max is None else self.f_max
        if not 0 <= self.f_min < min(f_max, self.sample_rate / 2):
            raise ConfigError("mel front end: need 0 <= f_min < min(f_max, sample_rate/2) "
                              f"({self.sample_rate / 2} Hz), "
                              f"got f_min={self.f_min}, f_max={self.f_max}")
        if self.mel_scale not in ("slaney", "htk"):
            raise ConfigError(f"mel front end: mel_scale must be 'slaney' or 'htk', got {self.mel_scale!r}")
        if self.mel_norm not in (None, "slaney"):
            raise ConfigError(f"mel front end: mel_norm must be null or 'slaney', got {self.mel_norm!r}")
        if self.top_db is not None and self.top_db <= 0:
            raise ConfigError(f"mel front end: top_db must be positive or null, got {self.top_db}")

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate / self.hop_length

    def n_frames(self, n_samples: int) -> int:
        """Frames of a clip of ``n_samples`` samples."""
        if self.center:
            return int(n_samples) // self.hop_length + 1
        return max(0, (int(n_samples) - self.n_fft) // self.hop_length + 1)


def power_to_db(power: torch.Tensor, *, top_db: float | None = 100.0, amin: float = 1e-10) -> torch.Tensor:
    """``10 * log10(max(power, amin))``, floored at each example's maximum minus ``top_db``.

    Parameters
    ----------
    power
        ``[batch, ...]`` power values.
    top_db
        Dynamic range, dB; ``None`` keeps everything.
    amin
        Smallest power, avoids ``log(0)``.

    Returns
    -------
    torch.Tensor
        Same shape, dB (reference power 1).
    """
    db = 10.0 * torch.log10(torch.clamp(power, min=amin))
    if top_db is not None:
        peak = db.reshape(db.shape[0], -1).amax(dim=1).reshape((-1,) + (1,) * (db.ndim - 1))
        db = torch.maximum(db, peak - top_db)
    return db


class LogMel(nn.Module):
    """Waveforms ``[batch, n_samples]`` -> log-mel ``[batch, n_mels, n_frames]`` in dB.

    The STFT is ``torch.stft``; the filter bank is ``librosa.filters.mel`` (a buffer).
    """

    def __init__(self, config: MelConfig | None = None) -> None:
        super().__init__()
        import librosa

        self.config = config or MelConfig()
        c = self.config
        with warnings.catch_warnings():  # empty top bands are expected when f_max > Nyquist (see below)
            warnings.simplefilter("ignore", UserWarning)
            fb = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.f_min, fmax=c.f_max,
                                     htk=c.mel_scale == "htk", norm=c.mel_norm, dtype=np.float64)
        n_empty = int((fb.max(axis=1) == 0).sum())
        if n_empty:
            logger.info("log-mel: %d of %d mel bands lie above Nyquist (f_max %s Hz > %s Hz) and are empty; they sit "
                        "at the top_db floor (as in torchaudio with the group's settings)",
                        n_empty, c.n_mels, c.f_max, c.sample_rate / 2)
        window = torch.hann_window(c.n_fft, periodic=True, dtype=torch.float64)
        scale = 1.0 / float(window.pow(2).sum().sqrt()) if c.normalized else 1.0
        self.register_buffer("window", window.float(), persistent=False)
        self.register_buffer("mel_fb", torch.from_numpy(fb).float(), persistent=False)
        self.stft_scale = scale

    def power_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Mel power spectrogram ``[batch, n_mels, n_frames]`` (before dB)."""
        c = self.config
        if waveforms.ndim != 2:
            raise ConfigError(f"LogMel expects waveforms [batch, n_samples], got shape {tuple(waveforms.shape)}")
        if c.center and c.pad_mode == "reflect" and waveforms.shape[-1] <= c.n_fft // 2:
            raise ConfigError(f"clips must be longer than n_fft/2 = {c.n_fft // 2} samples for reflect padding, "
                              f"got {waveforms.shape[-1]}")
        spec = torch.stft(waveforms.float(), n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.n_fft,
                          window=self.window, center=c.center, pad_mode=c.pad_mode, normalized=False,
                          onesided=True, return_complex=True)
        mag = spec.abs() * self.stft_scale
        power = mag.pow(c.power) if c.power != 1.0 else mag
        return torch.matmul(self.mel_fb, power)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return power_to_db(self.power_mel(waveforms), top_db=self.config.top_db)


@dataclass(frozen=True)
class CQTConfig:
    """CQT-target parameters; the defaults are MERT's ``model_cqt_pred`` (PAPERS 3.2).

    Attributes
    ----------
    sample_rate
        Input rate, Hz.
    hop_length
        Hop, samples (``sample_rate / label_rate``: 320 at 24 kHz for 75 Hz).
    fmin
        Centre of the lowest bin, Hz (32.7 Hz = C1 = MIDI 24).
    n_bins, bins_per_octave
        336 bins, 48 per octave: 7 octaves of quarter-semitone bins.
    filter_scale, norm, window
        Kernel length factor, kernel normalisation (1: L1) and window, as in nnAudio/librosa.
    center, pad_mode
        Centred frames (frame ``j`` is centred on sample ``j * hop_length``), zero padding as MERT.
    """

    sample_rate: int = 24000
    hop_length: int = 320
    fmin: float = 32.7
    n_bins: int = 336
    bins_per_octave: int = 48
    filter_scale: float = 1.0
    norm: int = 1
    window: str = "hann"
    center: bool = True
    pad_mode: str = "constant"

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.hop_length <= 0 or self.n_bins <= 0 or self.bins_per_octave <= 0:
            raise ConfigError(f"CQT: sample_rate, hop_length, n_bins and bins_per_octave must be positive, got {self}")
        top = self.fmin * 2.0 ** ((self.n_bins - 1) / self.bins_per_octave)
        if self.fmin <= 0 or top >= self.sample_rate / 2:
            raise ConfigError(f"CQT: the top bin ({top:.1f} Hz) must lie below Nyquist ({self.sample_rate / 2} Hz) "
                              "and fmin must be positive; lower fmin or n_bins, or raise sample_rate")
        if self.pad_mode not in ("constant", "reflect"):
            raise ConfigError(f"CQT: pad_mode must be 'constant' or 'reflect', got {self.pad_mode!r}")

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate / self.hop_length

    def n_frames(self, n_samples: int) -> int:
        """Frames of a clip of ``n_samples`` samples (centred frames)."""
        return int(n_samples) // self.hop_length + 1

    def bin_frequencies(self) -> np.ndarray:
        """Centre frequency of each bin, Hz ``[n_bins]``."""
        return self.fmin * 2.0 ** (np.arange(self.n_bins) / self.bins_per_octave)


class CQTTarget(nn.Module):
    """Waveforms ``[batch, n_samples]`` -> CQT magnitude ``[batch, n_frames, n_bins]`` (frames first).

    Wraps ``nnAudio.features.CQT`` (``CQT1992v2``) with librosa-style normalisation; its kernels
    are non-persistent buffers.  It has no parameters and is meant to run under ``no_grad``.
    """

    def __init__(self, config: CQTConfig | None = None) -> None:
        super().__init__()
        from nnAudio.features import CQT

        self.config = config or CQTConfig()
        c = self.config
        self.cqt = CQT(sr=c.sample_rate, hop_length=c.hop_length, fmin=c.fmin, fmax=None, n_bins=c.n_bins,
                       bins_per_octave=c.bins_per_octave, filter_scale=c.filter_scale, norm=c.norm, window=c.window,
                       center=c.center, pad_mode=c.pad_mode, trainable=False, output_format="Magnitude",
                       verbose=False)
        for name, buf in list(self.cqt.named_buffers(recurse=False)):
            self.cqt.register_buffer(name, buf, persistent=False)
        self.kernel_width = int(self.cqt.kernel_width)
        logger.debug("CQT target: %d bins, kernel width %d samples", c.n_bins, self.kernel_width)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        if waveforms.ndim != 2:
            raise ConfigError(f"CQTTarget expects waveforms [batch, n_samples], got shape {tuple(waveforms.shape)}")
        if self.config.pad_mode == "reflect" and waveforms.shape[-1] <= self.kernel_width // 2:
            raise ConfigError(f"reflect padding needs clips longer than {self.kernel_width // 2} samples; "
                              "use pad_mode='constant'")
        return self.cqt(waveforms.float()).transpose(1, 2)


def receptive_field(kernels: tuple[int, ...], strides: tuple[int, ...]) -> int:
    """Samples one output frame of a stack of 1-D convolutions sees (wav2vec 2.0 base: 400)."""
    field, jump = 1, 1
    for k, s in zip(kernels, strides):
        field += (int(k) - 1) * jump
        jump *= int(s)
    return field


def conv_n_frames(n_samples: int, kernels: tuple[int, ...], strides: tuple[int, ...]) -> int:
    """Frames a stack of unpadded 1-D convolutions gives for ``n_samples`` (0 if too short)."""
    n = int(n_samples)
    for k, s in zip(kernels, strides):
        n = (n - int(k)) // int(s) + 1
        if n <= 0:
            return 0
    return n


class MelFeatureEncoder(nn.Module):
    """Log-mel front end in place of a wav2vec 2.0 / HuBERT convolutional feature encoder.

    Waveforms ``[batch, n_samples]`` -> ``[batch, out_dim, n_frames]`` (the encoder's output
    layout).  Frame ``j`` is the log-mel spectrum (:class:`~musiclens.train.models.frontends.LogMel`,
    Hann window of ``n_fft`` samples, power, slaney mel scale, dB with an 80 dB floor per clip)
    centred on sample ``j * hop + receptive // 2`` -- the centre of the convolutional encoder's
    frame ``j`` -- then scaled to about unit range, passed through a learned ``Conv1d`` (kernel 3)
    and GELU.  The frame count is the convolutional encoder's, so lengths, masks and labels line
    up exactly as with the raw-waveform encoder.
    """

    def __init__(self, *, kernels: tuple[int, ...], strides: tuple[int, ...], sample_rate: int, n_fft: int,
                 n_mels: int, f_min: float, out_dim: int) -> None:
        super().__init__()
        self.kernels, self.strides = tuple(int(k) for k in kernels), tuple(int(s) for s in strides)
        self.hop = int(np.prod(self.strides))
        receptive = receptive_field(self.kernels, self.strides)
        self.n_fft = int(n_fft)
        if self.n_fft < receptive:
            raise ConfigError(f"mel front end: n_fft {self.n_fft} is shorter than the conv encoder's receptive field "
                              f"({receptive} samples)")
        # left pad so window j starts at j*hop + receptive//2 - n_fft//2 (centred like conv frame j)
        self.left_pad = self.n_fft // 2 - receptive // 2
        self.mel = LogMel(MelConfig(sample_rate=int(sample_rate), n_fft=self.n_fft, hop_length=self.hop,
                                    f_min=float(f_min), f_max=sample_rate / 2.0, n_mels=int(n_mels), top_db=80.0,
                                    center=False))
        self.proj = nn.Conv1d(int(n_mels), int(out_dim), kernel_size=3, padding=1)
        self.act = nn.GELU()
        # transformers' Wav2Vec2Model reads these attributes of its feature encoder
        self._requires_grad = True
        self.gradient_checkpointing = False

    def _freeze_parameters(self) -> None:
        for param in self.parameters():
            param.requires_grad = False
        self._requires_grad = False

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        n = conv_n_frames(input_values.shape[-1], self.kernels, self.strides)
        x = nn.functional.pad(input_values, (self.left_pad, self.n_fft))
        mel = self.mel(x)[:, :, :n]
        mel = (mel - mel.amax(dim=(1, 2), keepdim=True) + 40.0) / 20.0   # 0 dB peak -> 2, floor -> -2
        return self.act(self.proj(mel))
