"""MERT-style encoder: HuBERT's convolutional front end + a BERT-style transformer (family ``"mert"``).

Built on ``transformers.HubertModel`` from a ``HubertConfig`` derived from :class:`MERTConfig`
(PAPERS 3.1): conv stack ``[(512,10,5)] + [(512,3,2)]*4 + [(512,2,2)]*2`` (total stride 320, so
24 kHz -> 75 Hz, or 16 kHz -> 50 Hz), group norm in the first conv layer
(``feat_extract_norm="group"``), post-LN encoder (``do_stable_layer_norm=False``) with a
convolutional positional embedding (128 taps, 16 groups).  :data:`MERT_PRESETS` holds MERT-v1-95M
(12 x 768, FFN 3072, 12 heads) and a tiny CPU configuration.

Hidden states (``n_layers + 1``, ``[batch, n_frames, hidden]``, no special tokens): entry 0 is
Hugging Face's ``hidden_states[0]``, the projected conv features after the positional convolution
and the encoder's LayerNorm (submodule ``hf.encoder.layer_norm``); entry ``i`` is encoder layer
``i``'s output (``hf.encoder.layers.{i-1}``).  ``musiclens_layers`` names exactly those
submodules, so extraction hooks see the tensors :meth:`MERT.forward` returns.

``frame_mask`` replaces the masked projected conv features by the learned ``hf.masked_spec_embed``
(HF's ``mask_time_indices``).  ``extras["features"]`` holds the conv features ``[batch, n_frames,
conv_dim]`` before masking, for HuBERT's feature penalty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from musiclens.errors import ConfigError
from musiclens.extract.checkpoint import MODELS
from musiclens.train.base import Backbone, BackboneOutput, config_from_dict
from musiclens.train.models.frontends import MelFeatureEncoder

__all__ = ["MERTConfig", "MERT", "MERT_PRESETS", "build_mert"]

_CONV = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2


@dataclass(frozen=True)
class MERTConfig:
    """MERT encoder hyperparameters (defaults: a small CPU-friendly model at 24 kHz).

    Attributes
    ----------
    sample_rate
        Input rate, Hz (24000: MERT-v1, 75 Hz frames; 16000: MERT-v0, 50 Hz frames).
    conv_layers
        ``(channels, kernel, stride)`` per conv layer; the product of strides is the hop.
    hidden_size, num_layers, num_heads, intermediate_size
        Transformer width, depth, heads and FFN width.
    frontend, mel_n_fft, mel_n_mels, mel_f_min
        ``"conv"`` (HuBERT's raw-waveform encoder, MERT's) or ``"mel"``: a log-mel front end with the
        same frames (:class:`~musiclens.train.models.frontends.MelFeatureEncoder`), for CPU scales.
    conv_pos_kernel, conv_pos_groups
        Convolutional positional embedding taps and groups.
    dropout, attention_dropout, activation_dropout, feat_proj_dropout
        Dropouts (MERT-v1-95M: 0.1, 0.1, 0.0, 0.0).
    layerdrop
        Probability of skipping a layer in training (MERT-v1-95M: 0.05; the presets keep 0 because a
        skipped layer leaves fewer than ``num_layers + 1`` hidden states in that training step).
    attn_implementation
        ``"sdpa"`` or ``"eager"``; attention probabilities are always computed eagerly when asked for.
    """

    sample_rate: int = 24000
    conv_layers: tuple[tuple[int, int, int], ...] = _CONV
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 128
    conv_pos_kernel: int = 128
    conv_pos_groups: int = 16
    dropout: float = 0.0
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    feat_proj_dropout: float = 0.0
    layerdrop: float = 0.0
    attn_implementation: str = "sdpa"
    frontend: str = "conv"
    mel_n_fft: int = 1024
    mel_n_mels: int = 128
    mel_f_min: float = 30.0

    def __post_init__(self) -> None:
        if not self.conv_layers or any(len(t) != 3 or min(t) <= 0 for t in self.conv_layers):
            raise ConfigError(f"mert: conv_layers must be a non-empty list of positive (channels, kernel, stride), "
                              f"got {self.conv_layers}")
        if self.hidden_size <= 0 or self.num_layers <= 0 or self.num_heads <= 0 or self.hidden_size % self.num_heads:
            raise ConfigError(f"mert: hidden_size ({self.hidden_size}) must be a positive multiple of num_heads "
                              f"({self.num_heads}) and num_layers >= 1")
        if self.hidden_size % self.conv_pos_groups:
            raise ConfigError(f"mert: hidden_size ({self.hidden_size}) must be divisible by conv_pos_groups "
                              f"({self.conv_pos_groups})")
        if self.attn_implementation not in ("sdpa", "eager"):
            raise ConfigError(f"mert: attn_implementation must be 'sdpa' or 'eager', got {self.attn_implementation!r}")
        if self.frontend not in ("conv", "mel"):
            raise ConfigError(f"mert: frontend must be 'conv' (HuBERT's raw-waveform encoder) or 'mel', got "
                              f"{self.frontend!r}")
        if self.frontend == "mel" and (self.mel_n_fft < self.receptive_field or self.mel_n_mels < 1
                                       or not 0 <= self.mel_f_min < self.sample_rate / 2):
            raise ConfigError(f"mert: the mel front end needs mel_n_fft >= the receptive field ({self.receptive_field}), "
                              f"mel_n_mels >= 1 and 0 <= mel_f_min < sample_rate/2")
        if self.sample_rate % self.hop_length:
            raise ConfigError(f"mert: sample_rate {self.sample_rate} is not a multiple of the conv hop "
                              f"{self.hop_length}; the frame rate would not be an integer number of samples")

    @property
    def hop_length(self) -> int:
        hop = 1
        for _, _, s in self.conv_layers:
            hop *= int(s)
        return hop

    @property
    def receptive_field(self) -> int:
        """Samples seen by one conv frame."""
        rf, jump = 1, 1
        for _, k, s in self.conv_layers:
            rf += (int(k) - 1) * jump
            jump *= int(s)
        return rf


#: Named configurations (``model.config``): MERT-v1-95M, MERT-v0 (16 kHz) and a tiny CPU model.
MERT_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "intermediate_size": 128,
             "conv_layers": [(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2, "conv_pos_kernel": 16,
             "conv_pos_groups": 4},
    "mert_v1_95m": {"hidden_size": 768, "num_layers": 12, "num_heads": 12, "intermediate_size": 3072,
                    "dropout": 0.1, "attention_dropout": 0.1},
    "mert_v0_95m": {"sample_rate": 16000, "hidden_size": 768, "num_layers": 12, "num_heads": 12,
                    "intermediate_size": 3072, "dropout": 0.1, "attention_dropout": 0.1},
}


def hubert_config(c: MERTConfig) -> Any:
    """The ``transformers.HubertConfig`` of a :class:`MERTConfig`."""
    from transformers import HubertConfig

    cfg = HubertConfig(
        hidden_size=c.hidden_size, num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads,
        intermediate_size=c.intermediate_size, hidden_act="gelu", hidden_dropout=c.dropout,
        attention_dropout=c.attention_dropout, activation_dropout=c.activation_dropout,
        feat_proj_dropout=c.feat_proj_dropout, final_dropout=0.0, layerdrop=c.layerdrop,
        feat_extract_norm="group", feat_extract_activation="gelu",
        conv_dim=tuple(int(t[0]) for t in c.conv_layers), conv_kernel=tuple(int(t[1]) for t in c.conv_layers),
        conv_stride=tuple(int(t[2]) for t in c.conv_layers), conv_bias=False,
        num_conv_pos_embeddings=c.conv_pos_kernel, num_conv_pos_embedding_groups=c.conv_pos_groups,
        do_stable_layer_norm=False, feat_proj_layer_norm=True,
        # > 0 so that HubertModel creates masked_spec_embed; reset to 0 after construction so that
        # HF never draws its own SpecAugment masks (musiclens passes mask_time_indices itself).
        mask_time_prob=0.05, mask_feature_prob=0.0,
    )
    cfg._attn_implementation = c.attn_implementation
    return cfg


class MERT(Backbone):
    """The MERT-style encoder; see the module docstring.

    Parameters
    ----------
    config
        A :class:`MERTConfig`.
    """

    family = "mert"

    def __init__(self, config: MERTConfig | None = None) -> None:
        super().__init__()
        from transformers import HubertModel

        self.config = config or MERTConfig()
        self.hf = HubertModel(hubert_config(self.config))
        self.hf.config.mask_time_prob = 0.0
        c = self.config
        if c.frontend == "mel":   # a log-mel front end with the conv encoder's frames (CPU quick scales)
            self.hf.feature_extractor = MelFeatureEncoder(
                kernels=tuple(int(t[1]) for t in c.conv_layers), strides=tuple(int(t[2]) for t in c.conv_layers),
                sample_rate=c.sample_rate, n_fft=c.mel_n_fft, n_mels=c.mel_n_mels, f_min=c.mel_f_min,
                out_dim=int(c.conv_layers[-1][0]))
        self.n_special = 0
        self.frame_offset_s = (self.config.receptive_field / 2) / self.config.sample_rate
        n = self.config.num_layers
        self.musiclens_layers = {"layer_00": "hf.encoder.layer_norm",
                                 **{f"layer_{i + 1:02d}": f"hf.encoder.layers.{i}" for i in range(n)}}

    @property
    def frame_rate_hz(self) -> float:
        return self.config.sample_rate / self.config.hop_length

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    @property
    def n_layers(self) -> int:
        return int(self.config.num_layers)

    @property
    def conv_dim(self) -> int:
        return int(self.config.conv_layers[-1][0])

    def n_frames(self, n_samples: int) -> int:
        n = int(n_samples)
        for _, k, s in self.config.conv_layers:
            n = (n - int(k)) // int(s) + 1
        return max(n, 0)

    def forward(self, waveforms: torch.Tensor, *, frame_mask: torch.Tensor | None = None,
                output_attentions: bool = False) -> BackboneOutput:
        """Hidden states ``num_layers + 1`` x ``[B, n_frames, hidden]`` of ``waveforms`` ``[B, n_samples]``."""
        if waveforms.ndim != 2:
            raise ConfigError(f"mert expects waveforms [batch, n_samples], got shape {tuple(waveforms.shape)}")
        if waveforms.shape[1] < self.config.receptive_field:
            raise ConfigError(f"mert: clips must hold at least {self.config.receptive_field} samples, "
                              f"got {waveforms.shape[1]}")
        captured: dict[str, torch.Tensor] = {}

        def hook(_m: Any, _i: Any, out: torch.Tensor) -> None:
            captured["features"] = out.transpose(1, 2)

        handle = self.hf.feature_extractor.register_forward_hook(hook)
        hf_cfg = self.hf.config
        previous = hf_cfg._attn_implementation
        if output_attentions:
            hf_cfg._attn_implementation = "eager"
        try:
            if frame_mask is not None:
                expected = (waveforms.shape[0], self.n_frames(waveforms.shape[1]))
                if tuple(frame_mask.shape) != expected:
                    raise ConfigError(f"mert: frame_mask has shape {tuple(frame_mask.shape)}, expected {expected}")
                frame_mask = frame_mask.to(device=waveforms.device, dtype=torch.bool)
            out = self.hf(waveforms.float(), mask_time_indices=frame_mask, output_hidden_states=True,
                          output_attentions=output_attentions, return_dict=True)
        finally:
            handle.remove()
            hf_cfg._attn_implementation = previous
        attentions = list(out.attentions) if output_attentions and out.attentions is not None else None
        return BackboneOutput(hidden_states=list(out.hidden_states), n_special=0, attentions=attentions,
                              frame_mask=frame_mask, extras={"features": captured["features"]})


def build_mert(config: Mapping[str, Any]) -> MERT:
    """A :class:`MERT` from a config dict (the ``MODELS`` entry)."""
    return MERT(config_from_dict(MERTConfig, config, where="model 'mert' config"))


MODELS.register("mert", build_mert, help="MERT-style encoder (HuBERT conv front end + transformer)", overwrite=True)
