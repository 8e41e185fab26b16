"""Audio: load, validate, downmix, resample — one policy for all of musiclens.

The policy:

- Samples are float32 in [-1, 1]-ish; NaN/inf or empty audio is an error (:class:`AudioError`),
  never silently repaired.
- Multi-channel audio is downmixed by averaging channels, and the conversion is *recorded*.
- Resampling uses soxr's ``"VHQ"`` quality (via :func:`resample`); the conversion is recorded.
- The sample rate always travels with the samples (:class:`Audio`).

Every conversion is appended to a ``conversions`` list of strings so that manifests can say
exactly what was done to the input.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from musiclens.errors import AudioError, ConfigError

__all__ = ["Audio", "load_audio", "validate", "to_mono", "resample", "prepare"]

logger = logging.getLogger(__name__)


@dataclass
class Audio:
    """Samples with their rate.

    Attributes
    ----------
    samples
        ``[shape=(n_samples,)]`` mono or ``[shape=(n_channels, n_samples)]`` float32.
    sample_rate
        Hz.
    conversions
        Human-readable record of every conversion applied since loading.
    """

    samples: np.ndarray
    sample_rate: int
    conversions: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.samples.shape[-1] / float(self.sample_rate)


def validate(samples: np.ndarray, *, name: str = "audio", min_samples: int = 1) -> np.ndarray:
    """Check audio is a finite, non-empty float array; return it as float32.

    Parameters
    ----------
    samples
        ``[shape=(n_samples,)]`` or ``[shape=(n_channels, n_samples)]``.
    name
        How to call the clip in error messages (e.g. its stimulus id or path).
    min_samples
        Minimum length (e.g. a network's receptive field).

    Raises
    ------
    AudioError
        Empty, too short, non-finite, or more than 2 dimensions.
    """
    a = np.asarray(samples)
    if a.ndim not in (1, 2):
        raise AudioError(f"{name}: expected 1-D mono or 2-D (channels, samples) audio, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise AudioError(f"{name}: audio must be numeric, got dtype {a.dtype}")
    if a.shape[-1] == 0:
        raise AudioError(f"{name}: audio is empty (0 samples); remove the clip or fix its source")
    if a.shape[-1] < min_samples:
        raise AudioError(
            f"{name}: {a.shape[-1]} samples is shorter than the required {min_samples} "
            "(the network's receptive field); pad the clip or use longer audio"
        )
    a = a.astype(np.float32, copy=False)
    bad = ~np.isfinite(a)
    if bad.any():
        raise AudioError(
            f"{name}: {int(bad.sum())} NaN or inf sample(s) (first at index {int(np.argmax(bad.ravel()))}); "
            "fix or drop the clip; musiclens never repairs audio silently"
        )
    return a


def to_mono(samples: np.ndarray, *, conversions: list[str] | None = None, channels_first: bool = True) -> np.ndarray:
    """Average channels into mono, recording the conversion.

    Parameters
    ----------
    samples
        ``[shape=(n_channels, n_samples)]`` (``channels_first``) or ``(n_samples, n_channels)``.
    conversions
        If given, a description of the downmix is appended.
    """
    a = np.asarray(samples, dtype=np.float32)
    if a.ndim == 1:
        return a
    if not channels_first:
        a = a.T
    if a.shape[0] == 1:
        return a[0]
    if conversions is not None:
        conversions.append(f"downmixed {a.shape[0]} channels to mono by averaging")
    return a.mean(axis=0, dtype=np.float64).astype(np.float32)


def resample(
    samples: np.ndarray,
    *,
    orig_sr: int,
    target_sr: int,
    conversions: list[str] | None = None,
) -> np.ndarray:
    """Resample along the last axis with soxr (very high quality), recording the conversion."""
    if orig_sr <= 0 or target_sr <= 0:
        raise ConfigError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr:
        return np.asarray(samples, dtype=np.float32)
    import soxr

    a = np.asarray(samples, dtype=np.float32)
    if a.ndim == 1:
        out = soxr.resample(a, orig_sr, target_sr, quality="VHQ")
    else:
        out = np.stack([soxr.resample(ch, orig_sr, target_sr, quality="VHQ") for ch in a])
    if conversions is not None:
        conversions.append(f"resampled {orig_sr} Hz -> {target_sr} Hz (soxr VHQ)")
    return np.asarray(out, dtype=np.float32)


def load_audio(path: str | Path, *, sample_rate: int | None = None, mono: bool = True) -> Audio:
    """Read an audio file; optionally downmix and resample (each step recorded).

    Raises
    ------
    AudioError
        The file is missing, unreadable, empty, or contains NaN/inf.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file {path} does not exist")
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as err:
        raise AudioError(f"cannot read audio file {path} ({err}); is it a valid WAV/FLAC/OGG file?") from err
    conversions: list[str] = []
    samples = validate(data.T, name=str(path))
    if mono:
        samples = to_mono(samples, conversions=conversions)
    if sample_rate is not None:
        samples = resample(samples, orig_sr=sr, target_sr=sample_rate, conversions=conversions)
        sr = sample_rate
    return Audio(samples, int(sr), conversions)


def prepare(
    samples: np.ndarray,
    *,
    sample_rate: int,
    target_sr: int,
    name: str = "audio",
    min_samples: int = 1,
    conversions: list[str] | None = None,
) -> np.ndarray:
    """Validate, downmix (channels first) and resample one clip for a network.

    Returns mono float32 ``[shape=(n_samples,)]`` at ``target_sr``; every conversion is appended
    to ``conversions``.
    """
    a = validate(samples, name=name)
    a = to_mono(a, conversions=conversions)
    a = resample(a, orig_sr=sample_rate, target_sr=target_sr, conversions=conversions)
    return validate(a, name=name, min_samples=min_samples)
