"""Hand-crafted baselines: CQT, CQT chroma, log-mel, MFCC (librosa; no torch).

Each is an extractor with a single layer named after the feature, frames at ``hop_length /
sample_rate`` seconds, frame ``j`` centred at ``j * hop_length / sample_rate`` (librosa's
``center=True``).  Every clip is computed on its own, so batching never changes a result.

========  =========================================================================
``cqt``   log-magnitude CQT ``log(|C| + 1e-6)``, ``n_bins`` bins from ``fmin_midi``:
          with ``bins_per_octave = 12 * r``, bin ``r * (m - fmin_midi)`` is MIDI ``m``
``chroma`` CQT chroma (librosa ``chroma_cqt``), 12 pitch classes from C
``logmel`` ``log(mel power + 1e-10)`` (natural log), ``n_mels`` bands
``mfcc``  ``n_mfcc`` coefficients of the log-mel spectrum (librosa ``mfcc`` on dB)
========  =========================================================================
"""

from __future__ import annotations

import warnings

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from musiclens.errors import ConfigError
from musiclens.extract.base import EXTRACTORS
from musiclens.extract.batching import BatchedExtractor, LayerBatch, centre_times

__all__ = ["SpectralExtractor", "cqt_features", "chroma_features", "logmel_features", "mfcc_features"]

logger = logging.getLogger(__name__)


def cqt_features(y: np.ndarray, *, sr: int, hop_length: int = 512, fmin_midi: float = 24.0,
                 n_bins: int = 84, bins_per_octave: int = 12) -> np.ndarray:
    """Log-magnitude CQT ``[shape=(n_frames, n_bins)]`` (natural log of ``|C| + 1e-6``)."""
    import librosa

    c = librosa.cqt(y, sr=sr, hop_length=hop_length, fmin=librosa.midi_to_hz(fmin_midi), n_bins=n_bins,
                    bins_per_octave=bins_per_octave)
    return np.log(np.abs(c) + 1e-6).T.astype(np.float32)


def chroma_features(y: np.ndarray, *, sr: int, hop_length: int = 512, fmin_midi: float = 24.0,
                    n_bins: int = 84, bins_per_octave: int = 12) -> np.ndarray:
    """CQT chroma ``[shape=(n_frames, 12)]``, pitch classes C, C#, ..., B."""
    import librosa

    c = np.abs(librosa.cqt(y, sr=sr, hop_length=hop_length, fmin=librosa.midi_to_hz(fmin_midi),
                           n_bins=n_bins, bins_per_octave=bins_per_octave))
    chroma = librosa.feature.chroma_cqt(C=c, sr=sr, hop_length=hop_length, fmin=librosa.midi_to_hz(fmin_midi),
                                        bins_per_octave=bins_per_octave, n_chroma=12)
    # librosa's chroma starts at the pitch class of fmin; roll so that row 0 is C.
    shift = int(round(fmin_midi)) % 12
    return np.roll(chroma, shift, axis=0).T.astype(np.float32)


def logmel_features(y: np.ndarray, *, sr: int, hop_length: int = 512, n_fft: int = 2048,
                    n_mels: int = 128) -> np.ndarray:
    """Natural-log mel power ``[shape=(n_frames, n_mels)]``."""
    import librosa

    s = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    return np.log(s + 1e-10).T.astype(np.float32)


def mfcc_features(y: np.ndarray, *, sr: int, hop_length: int = 512, n_fft: int = 2048, n_mels: int = 128,
                  n_mfcc: int = 20) -> np.ndarray:
    """MFCCs ``[shape=(n_frames, n_mfcc)]`` of the dB mel spectrum."""
    import librosa

    s = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    return librosa.feature.mfcc(S=librosa.power_to_db(s, ref=1.0, top_db=None), n_mfcc=n_mfcc).T.astype(np.float32)


_FEATURES: dict[str, Callable[..., np.ndarray]] = {
    "cqt": cqt_features, "chroma": chroma_features, "logmel": logmel_features, "mfcc": mfcc_features,
}


class SpectralExtractor(BatchedExtractor):
    """One hand-crafted spectral feature as a one-layer extractor.

    Parameters
    ----------
    feature
        ``"cqt"``, ``"chroma"``, ``"logmel"`` or ``"mfcc"``.
    sample_rate
        Rate in Hz the feature is computed at (clips are resampled to it).
    hop_length
        Samples between frames.
    **params
        Feature parameters (``n_bins``, ``bins_per_octave``, ``fmin_midi``, ``n_mels``,
        ``n_fft``, ``n_mfcc``).
    """

    padding_invariant = True  # every clip is computed alone

    def __init__(self, feature: str, *, sample_rate: int = 22050, hop_length: int = 512,
                 batch_size: int = 8, **params: Any) -> None:
        if feature not in _FEATURES:
            raise ConfigError(f"unknown spectral feature {feature!r}; choose one of {sorted(_FEATURES)}")
        self.feature = feature
        self.name = feature
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.params = dict(params)
        self.layer_names = [feature]
        self.frame_rate_hz = self.sample_rate / self.hop_length
        self.batch_size = int(batch_size)
        self.min_samples = 1
        try:  # validate the parameters once, on silence (librosa's short-input warnings are moot here)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                _FEATURES[feature](np.zeros(self.hop_length * 4, np.float32), sr=self.sample_rate,
                                   hop_length=self.hop_length, **self.params)
        except TypeError as err:
            raise ConfigError(f"invalid parameters for {feature!r}: {err}") from err

    def info(self) -> dict[str, Any]:
        out = super().info()
        out.update({"feature": self.feature, "hop_length": self.hop_length, "params": self.params,
                    "weights_hash": None})
        return out

    def _forward(self, clips: list[np.ndarray], layers: list[str]) -> dict[str, LayerBatch]:
        feats = [_FEATURES[self.feature](c, sr=self.sample_rate, hop_length=self.hop_length, **self.params)
                 for c in clips]
        n_frames = max(f.shape[0] for f in feats)
        values = np.zeros((len(feats), n_frames, feats[0].shape[1]), dtype=np.float32)
        for i, f in enumerate(feats):
            values[i, :f.shape[0]] = f
        valid = np.array([f.shape[0] for f in feats], dtype=np.int64)
        times = centre_times(n_frames, hop_s=self.hop_length / self.sample_rate)
        return {self.feature: LayerBatch(values, valid, times)}


def _builder(feature: str) -> Callable[..., SpectralExtractor]:
    def build(*, randomize: bool = False, seed: int = 0, device: str = "cpu", batch_size: int = 8,
              trust_remote_code: bool = False, **params: Any) -> SpectralExtractor:
        if randomize:
            raise ConfigError(f"{feature!r} is a hand-crafted feature without weights; randomize does not apply")
        return SpectralExtractor(feature, batch_size=batch_size, **params)

    build.__doc__ = {
        "cqt": "Log-magnitude constant-Q transform (librosa), one layer.",
        "chroma": "CQT chroma, 12 pitch classes (librosa), one layer.",
        "logmel": "Log mel spectrogram (librosa), one layer.",
        "mfcc": "MFCCs of the log mel spectrogram (librosa), one layer.",
    }[feature]
    return build


for _feature in _FEATURES:
    EXTRACTORS.register(_feature, _builder(_feature), overwrite=True)
