"""PESTO (pesto-pitch 2.0.1, checkpoint ``mir-1k_g7`` shipped in the package), layer by layer.

Only ``mir-1k_g7`` is accepted: the other shipped checkpoint (``mir-1k``, PESTO v1) does not fit
pesto-pitch 2.0.1, and its loader silently carries on with a partly random model.

PESTO computes a log-magnitude constant-Q transform (251 bins, 3 per semitone, from 27.5 Hz;
centred frames with reflect padding of about 16 k samples per side, so clips must be longer than
that padding: about 1.03 s at 16 kHz) every ``step_ms`` and then runs a small 1-D CNN on each frame
*independently*.  Frame ``i`` is centred on sample ``i * hop`` (time ``i * step_ms / 1000`` s).

The forward pass below is the one of ``pesto.model.PESTO`` / ``Resnet1d``, written out so that
every block's output can be kept.  Layers, input to output:

``hcqt``       encoder input: cropped log-CQT (219 bins) as PESTO feeds it
``layernorm``  after the LayerNorm
``conv1``      first prefiltering conv (40 channels × 219 bins, flattened channel-major)
``prefilt1``, ``prefilt2``  residual prefiltering blocks (after the residual sum)
``conv2`` … ``conv5``  the 1×1 conv blocks (30, 30, 10, 3 channels × 219 bins)
``fc``         Toeplitz-linear logits (384), before the softmax and the pitch shift
``activations`` the 384-bin pitch distribution PESTO returns (softmax, shifted; 3 bins/semitone,
               bin ``k`` = MIDI ``k / 3``)

The CQT depends on neighbouring samples (reflect padding at the clip ends), so clips are batched
only with clips of equal length.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musiclens.errors import ConfigError
from musiclens.extract.base import Activations
from musiclens.extract.pretrained._common import (
    PretrainedExtractor,
    first_layer_frames,
    info_head,
    layer_for_decode,
    randomize_module,
    run_equal_length,
    state_dict_hash,
)
from musiclens.extract.pretrained._imports import import_pesto, import_torch, quiet

__all__ = ["PestoExtractor", "pesto_activations_to_hz", "PESTO_CHECKPOINT"]

logger = logging.getLogger(__name__)

PESTO_CHECKPOINT = "mir-1k_g7"
PESTO_SAMPLE_RATE = 16000


def pesto_activations_to_hz(activations: np.ndarray, *, bins_per_semitone: int = 3) -> np.ndarray:
    """PESTO's own decoder (``alwa``: argmax-local weighted average) on ``[..., 384]`` → Hz.

    Parameters
    ----------
    activations
        ``[shape=(..., 128 * bins_per_semitone)]`` the ``activations`` layer.

    Returns
    -------
    np.ndarray
        ``[shape=(...)]`` Hz.
    """
    a = np.asarray(activations, dtype=np.float64)
    bps = int(bins_per_semitone)
    n = a.shape[-1]
    centre = a.argmax(-1)
    idx = np.clip(centre[..., None] + np.arange(1, 2 * bps) - bps, 0, n - 1)
    w = np.take_along_axis(a, idx, axis=-1)
    midi = (w * idx / bps).sum(-1) / np.maximum(w.sum(-1), 1e-12)
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


class PestoExtractor(PretrainedExtractor):
    """PESTO ``mir-1k_g7`` as an :class:`~musiclens.extract.base.Extractor`.

    Parameters
    ----------
    checkpoint
        Must be ``"mir-1k_g7"`` (see the module docstring).
    step_ms
        Hop between frames in milliseconds (default 10).
    randomize
        Re-initialise the CNN (encoder and confidence head; the CQT stays a CQT) with ``seed``.
    seed
        Seed of the re-initialisation.
    batch_size
        Clips of equal length per forward pass.
    device
        Torch device.
    progress
        Progress bar over batches.
    """

    sample_rate: int = PESTO_SAMPLE_RATE

    def __init__(
        self,
        *,
        checkpoint: str = PESTO_CHECKPOINT,
        step_ms: float = 10.0,
        randomize: bool = False,
        seed: int = 0,
        batch_size: int = 16,
        device: str = "cpu",
        progress: bool = False,
    ) -> None:
        if checkpoint != PESTO_CHECKPOINT:
            raise ConfigError(
                f"PESTO checkpoint {checkpoint!r} is not supported: only 'mir-1k_g7' fits pesto-pitch 2.0.1 "
                "(the v1 'mir-1k' checkpoint loads as a partly random model)"
            )
        if step_ms <= 0:
            raise ConfigError(f"step_ms must be positive, got {step_ms}")
        loader = import_pesto()
        import_torch()
        with quiet("pesto"):
            model = loader.load_model(checkpoint, step_size=float(step_ms), sampling_rate=PESTO_SAMPLE_RATE)
        missing = [k for k in ("encoder.fc.weight", "confidence.linear.weight") if k not in model.state_dict()]
        if missing:
            raise ConfigError(f"PESTO model lacks {missing}; reinstall pesto-pitch==2.0.1")
        self.checkpoint = checkpoint
        self.weights_file = str(Path(loader.__file__).parent / "weights" / f"{checkpoint}.ckpt")
        self.randomize = bool(randomize)
        self.seed = int(seed)
        if self.randomize:
            randomize_module(model.encoder, seed=self.seed)
            randomize_module(model.confidence, seed=self.seed + 1)
        self.model = model.to(device).eval()
        self.device = device
        self.batch_size = int(batch_size)
        self.progress = progress
        self.step_ms = float(step_ms)
        self.hop_length = int(self.step_ms * PESTO_SAMPLE_RATE / 1000 + 0.5)
        self.frame_rate_hz = PESTO_SAMPLE_RATE / self.hop_length
        enc = self.model.encoder
        self.bins_per_semitone = int(self.model.bins_per_semitone)
        self.layer_names = (["hcqt", "layernorm", "conv1"]
                            + [f"prefilt{i + 1}" for i in range(enc.n_prefilt_layers - 1)]
                            + [f"conv{i + 2}" for i in range(len(enc.conv_layers) // 3)]
                            + ["fc", "activations"])
        pads = [int(k.conv.padding[0]) for k in self.model.preprocessor.hcqt_kernels.cqt_kernels]
        #: Shortest clip in samples (the CQT's reflect padding must be shorter than the clip).
        self.min_samples = max(pads) + 1
        self.name = "pesto" + ("-random" if self.randomize else "")
        self.weights_hash = state_dict_hash(self.model)

    def n_frames(self, n_samples: int) -> int:
        """Frames of a clip of ``n_samples`` (the CQT's centred framing)."""
        k = self.model.preprocessor.hcqt_kernels.cqt_kernels[0].conv
        return (int(n_samples) + 2 * int(k.padding[0]) - int(k.kernel_size[0])) // int(k.stride[0]) + 1

    def frame_times(self, n_frames: int) -> np.ndarray:
        """``[shape=(n_frames,)]`` seconds: frame ``i`` is centred on sample ``i * hop``."""
        return np.arange(n_frames, dtype=np.float64) * self.hop_length / PESTO_SAMPLE_RATE

    def _forward(self, x: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
        torch = import_torch()
        m, enc = self.model, self.model.encoder
        b = x.shape[0]
        out: dict[str, Any] = {}
        with torch.inference_mode():
            cqt = m.preprocessor(x, sr=PESTO_SAMPLE_RATE).flatten(0, 1)   # (B*T, harmonics, bins) dB
            cqt = cqt * (math.log(10) / 10.0)                              # as PESTO's in-place mul_
            h = m.crop_cqt(cqt)
            out["hcqt"] = h
            h = enc.layernorm(h)
            out["layernorm"] = h
            h = enc.conv1(h)
            out["conv1"] = h
            for p in range(enc.n_prefilt_layers - 1):
                new = enc.prefilt_layers[p](h)
                h = new + h if enc.residual else new
                out[f"prefilt{p + 1}"] = h
            for i in range(len(enc.conv_layers) // 3):
                for j in range(3):
                    h = enc.conv_layers[3 * i + j](h)
                out[f"conv{i + 2}"] = h
            h = enc.fc(enc.flatten(h))
            out["fc"] = h
            act = enc.final_norm(h)
            act = act.roll(-round(m.shift.cpu().item() * self.bins_per_semitone), -1)
            out["activations"] = act
        return {n: out[n].reshape(b, -1, int(np.prod(out[n].shape[1:]))).float().cpu().numpy() for n in names}

    def _per_clip(
        self, clips: list[np.ndarray], ids: list[str], names: list[str]
    ) -> tuple[list[dict[str, np.ndarray]], list[int]]:
        """Clips of equal length batched; ``frame_times[i] = i * step_ms / 1000``."""
        import_torch()
        with quiet("pesto"):
            per_clip = run_equal_length(clips, names, self._forward, batch_size=self.batch_size, device=self.device,
                                        desc=self.name, progress=self.progress)
        return per_clip, first_layer_frames(per_clip)

    def decode_hz(self, activations: Activations) -> np.ndarray:
        """Pitch in Hz ``[shape=(n_clips, n_frames)]`` from the ``activations`` layer (PESTO's ``alwa``)."""
        return pesto_activations_to_hz(layer_for_decode(activations, "activations"),
                                       bins_per_semitone=self.bins_per_semitone)

    def info(self) -> dict[str, Any]:
        """Architecture, weights hash and options."""
        return {
            **info_head(self.name, "pesto", "pesto-pitch"),
            "checkpoint": self.checkpoint,
            "weights_file": self.weights_file,
            "weights_hash": self.weights_hash,
            "randomized": self.randomize,
            "seed": self.seed if self.randomize else None,
            "sample_rate": PESTO_SAMPLE_RATE,
            "hop_length": self.hop_length,
            "frame_rate_hz": self.frame_rate_hz,
            "min_samples": self.min_samples,
            "bins_per_semitone": self.bins_per_semitone,
            "layers": list(self.layer_names),
            "frame_convention": "frame i centred on sample i*hop (CQT with reflect padding)",
            "licence": "pesto-pitch LGPL-3.0 (code and weights)",
        }
