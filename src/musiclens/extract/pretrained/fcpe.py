"""FCPE (torchfcpe 0.0.4, the bundled ``fcpe_c_v001.pt`` model), layer by layer.

FCPE computes a 128-band log-mel spectrogram (16 kHz, n_fft = window = 1024, hop 160, 0–8 kHz;
the clip is reflect-padded by 432 samples on the left, so frame ``i`` covers samples
``[160 i - 432, 160 i + 592)`` and is centred on sample ``160 i + 80``: time ``(160 i + 80) / 16000``
s), trimmed to ``n_samples // 160 + 1`` frames, then a conformer-style stack (the bundled model is
conv-only: ``conv_only=True``) maps each frame to 360 pitch bins (20 cents apart, 32.7–1975.5 Hz).

Layers, input to output (all ``[frames, dim]``):

``mel``          the log-mel input (128)
``input_stack``  Conv1d → GroupNorm → LeakyReLU → Conv1d (512)
``conformer1`` … ``conformer6``  the encoder layers (512)
``norm``         final LayerNorm (512)
``output_proj``  weight-normalised linear logits (360)
``latent``       sigmoid of the logits: the pitch-bin activations FCPE decodes

GroupNorm in the input stack normalises over the whole clip, so clips are batched only with clips
of equal length.
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
    FeatureHooks,
    PretrainedExtractor,
    info_head,
    layer_for_decode,
    randomize_module,
    run_equal_length,
    state_dict_hash,
)
from musiclens.extract.pretrained._imports import import_torch, import_torchfcpe, quiet

__all__ = ["FcpeExtractor", "fcpe_latent_to_hz"]

logger = logging.getLogger(__name__)

FCPE_SAMPLE_RATE = 16000


def fcpe_latent_to_hz(latent: np.ndarray, *, cent_table: np.ndarray) -> np.ndarray:
    """FCPE's ``local_argmax`` decoder (weighted mean of the 9 bins around the argmax) → Hz.

    Parameters
    ----------
    latent
        ``[shape=(..., 360)]`` the ``latent`` layer.
    cent_table
        ``[shape=(360,)]`` cents (re 10 Hz) of each bin (the model's ``cent_table``).
    """
    y = np.asarray(latent, dtype=np.float64)
    centre = y.argmax(-1)
    idx = np.clip(centre[..., None] + np.arange(-4, 5), 0, y.shape[-1] - 1)
    w = np.take_along_axis(y, idx, axis=-1)
    cents = (w * np.asarray(cent_table, dtype=np.float64)[idx]).sum(-1) / np.maximum(w.sum(-1), 1e-12)
    return 10.0 * 2.0 ** (cents / 1200.0)


class FcpeExtractor(PretrainedExtractor):
    """FCPE's bundled model as an :class:`~musiclens.extract.base.Extractor`.

    Parameters
    ----------
    randomize
        Re-initialise the network (not the mel front end) with ``seed``.
    seed
        Seed of the re-initialisation.
    batch_size
        Clips of equal length per forward pass.
    device
        Torch device.
    progress
        Progress bar over batches.
    """

    sample_rate: int = FCPE_SAMPLE_RATE

    def __init__(
        self,
        *,
        randomize: bool = False,
        seed: int = 0,
        batch_size: int = 16,
        device: str = "cpu",
        progress: bool = False,
    ) -> None:
        torchfcpe = import_torchfcpe()
        import_torch()
        weights = Path(torchfcpe.__file__).parent / "assets" / "fcpe_c_v001.pt"
        with quiet("torchfcpe"):
            infer = torchfcpe.spawn_bundled_infer_model(device="cpu")
        self.randomize = bool(randomize)
        self.seed = int(seed)
        if self.randomize:
            randomize_module(infer.model, seed=self.seed)
        self.infer_model = infer.to(device).eval()
        self.model = self.infer_model.model
        self.wav2mel = self.infer_model.wav2mel
        mel_cfg = self.infer_model.get_mel_config()
        if int(mel_cfg["sr"]) != FCPE_SAMPLE_RATE:
            raise ConfigError(f"unexpected FCPE mel rate {mel_cfg['sr']}; reinstall torchfcpe==0.0.4")
        self.hop_length = int(mel_cfg["hop_size"])
        self.win_size = int(mel_cfg["win_size"])
        self.pad_left = (self.win_size - self.hop_length) // 2
        self.frame_rate_hz = FCPE_SAMPLE_RATE / self.hop_length
        self.device = device
        self.batch_size = int(batch_size)
        self.progress = progress
        n_layers = len(self.model.net.encoder_layers)
        self.layer_names = (["mel", "input_stack"] + [f"conformer{i + 1}" for i in range(n_layers)]
                            + ["norm", "output_proj", "latent"])
        self.weights_file = str(weights)
        self.weights_hash = state_dict_hash(self.model)
        self.name = "fcpe" + ("-random" if self.randomize else "")
        #: Reflect padding needs more samples than the right pad; shorter clips are zero padded by FCPE.
        self.min_samples = 1

    def n_frames(self, n_samples: int) -> int:
        """Frames of a clip of ``n_samples`` (FCPE's ``n // hop + 1``)."""
        return int(n_samples) // self.hop_length + 1

    def frame_times(self, n_frames: int) -> np.ndarray:
        """``[shape=(n_frames,)]`` seconds: frame ``i`` is centred on sample ``hop * i + (win/2 - pad_left)``."""
        centre = self.win_size // 2 - self.pad_left
        return (np.arange(n_frames, dtype=np.float64) * self.hop_length + centre) / FCPE_SAMPLE_RATE

    def _forward(self, x: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
        torch = import_torch()
        m = self.model
        modules = {"input_stack": m.input_stack, "norm": m.norm, "output_proj": m.output_proj}
        modules.update({f"conformer{i + 1}": layer for i, layer in enumerate(m.net.encoder_layers)})
        hooks = FeatureHooks({k: v for k, v in modules.items() if k in names},
                             transform={"input_stack": lambda t: t.transpose(1, 2)})
        with torch.inference_mode(), hooks, quiet("torchfcpe"):
            mel = self.wav2mel(x[:, :, None], FCPE_SAMPLE_RATE)
            latent = m(mel)
        out = dict(hooks.outputs)
        out["mel"] = mel
        out["latent"] = latent
        return {n: out[n].float().cpu().numpy() for n in names}

    def _per_clip(
        self, clips: list[np.ndarray], ids: list[str], names: list[str]
    ) -> tuple[list[dict[str, np.ndarray]], list[int]]:
        """Clips of equal length batched; ``frame_times[i] = (160 i + 80) / 16000``."""
        for c, sid in zip(clips, ids):
            peak = float(np.abs(c).max())
            if peak > 1.0:
                logger.warning("%s: stimulus %r peaks at %.3f > 1; FCPE expects audio in [-1, 1]", self.name, sid, peak)
        per_clip = run_equal_length(clips, names, self._forward, batch_size=self.batch_size, device=self.device,
                                    desc=self.name, progress=self.progress)
        return per_clip, [self.n_frames(c.shape[0]) for c in clips]

    def decode_hz(self, activations: Activations) -> np.ndarray:
        """Pitch in Hz ``[shape=(n_clips, n_frames)]`` from the ``latent`` layer (FCPE's local argmax)."""
        latent = layer_for_decode(activations, "latent")
        table = self.model.cent_table.detach().cpu().numpy()
        return fcpe_latent_to_hz(latent, cent_table=table)

    def info(self) -> dict[str, Any]:
        """Architecture, weights hash and options."""
        return {
            **info_head(self.name, "fcpe", "torchfcpe"),
            "weights_file": self.weights_file,
            "weights_hash": self.weights_hash,
            "randomized": self.randomize,
            "seed": self.seed if self.randomize else None,
            "sample_rate": FCPE_SAMPLE_RATE,
            "hop_length": self.hop_length,
            "frame_rate_hz": self.frame_rate_hz,
            "mel": self.infer_model.get_mel_config(),
            "layers": list(self.layer_names),
            "frame_convention": "frame i centred on sample 160*i + 80 (left reflect pad 432, window 1024)",
            "licence": "torchfcpe MIT (code and bundled weights)",
        }
