"""ViT-1D: a transformer over log-mel frames, one token per frame (family ``"vit1d"``).

Kong et al. (ISMIR 2025; PAPERS 2.1-2.3): the mel spectrogram is "patched along vertical slices
of frequency bins per time frame", so each frame (all ``n_mels`` bins) is one token, projected
linearly to ``dim``.  A class token, **a learned vector plus the mean of the projected sequence
tokens**, is prepended (``n_special = 1``).

Defaults [not from the paper] are the non-updated ViT-Tiny (PAPERS 2.3): learned absolute
positional embeddings, pre-LN blocks with LayerNorm and a GELU MLP of ratio 4, ``dim 192``, depth
12, 3 heads, about 5.5M parameters.  The "updated ViT-1D" of the CoJEPA paper (RoPE, RMSNorm,
gated FFN; 7.1M parameters) is ``positional="rope", norm="rmsnorm", ffn="gated"``
(:data:`VIT1D_PRESETS`).

Layers (``musiclens_layers``): ``layer_00`` is the token embedding (class token and positions
included, the ``embed`` submodule), ``layer_01 .. layer_L`` the blocks' outputs.  Hidden states
are ``[batch, 1 + n_frames, dim]``; frame ``j`` is centred on sample ``j * hop_length``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from musiclens.errors import ConfigError
from musiclens.extract.checkpoint import MODELS
from musiclens.train.base import Backbone, BackboneOutput, config_from_dict
from musiclens.train.models.frontends import LogMel, MelConfig, MelFields

__all__ = ["ViT1DConfig", "ViT1D", "VIT1D_PRESETS", "build_vit1d"]


@dataclass(frozen=True)
class ViT1DConfig(MelFields):
    """ViT-1D hyperparameters.

    Attributes
    ----------
    sample_rate, n_fft, hop_length, f_min, f_max, n_mels, top_db
        The log-mel front end (:class:`~musiclens.train.models.frontends.MelConfig`; group defaults,
        the first six inherited from :class:`~musiclens.train.models.frontends.MelFields`).
    input_scale
        Tokens are ``dB * input_scale`` before the projection (0.05: dB / 20, so about [-5, 2]).
    dim, depth, heads
        Width, blocks, attention heads (ViT-Tiny: 192, 12, 3).
    mlp_ratio
        Hidden width of the feed-forward network relative to ``dim`` (also for the gated FFN).
    max_frames
        Longest input in frames (learned positional table size; 1024 frames = 32.8 s at 31.25 Hz).
    positional
        ``"learned"`` absolute embeddings, or ``"rope"`` (rotary, on queries and keys).
    norm
        ``"layernorm"`` or ``"rmsnorm"``.
    ffn
        ``"gelu"`` (Linear-GELU-Linear) or ``"gated"`` (SwiGLU: ``W2 (silu(W1 x) * W3 x)``).
    dropout
        Dropout on attention probabilities and block outputs.
    qkv_bias
        Bias in the query/key/value projection.
    rope_base
        RoPE frequency base.
    """

    top_db: float | None = 100.0
    input_scale: float = 0.05
    dim: int = 192
    depth: int = 12
    heads: int = 3
    mlp_ratio: float = 4.0
    max_frames: int = 1024
    positional: str = "learned"
    norm: str = "layernorm"
    ffn: str = "gelu"
    dropout: float = 0.0
    qkv_bias: bool = True
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        if self.dim <= 0 or self.depth <= 0 or self.heads <= 0 or self.dim % self.heads:
            raise ConfigError(f"vit1d: dim ({self.dim}) must be a positive multiple of heads ({self.heads}), "
                              "depth >= 1")
        if self.positional not in ("learned", "rope"):
            raise ConfigError(f"vit1d: positional must be 'learned' or 'rope', got {self.positional!r}")
        if self.positional == "rope" and (self.dim // self.heads) % 2:
            raise ConfigError(f"vit1d: RoPE needs an even head width, got dim/heads = {self.dim // self.heads}")
        if self.norm not in ("layernorm", "rmsnorm"):
            raise ConfigError(f"vit1d: norm must be 'layernorm' or 'rmsnorm', got {self.norm!r}")
        if self.ffn not in ("gelu", "gated"):
            raise ConfigError(f"vit1d: ffn must be 'gelu' or 'gated', got {self.ffn!r}")
        if self.max_frames <= 0 or self.mlp_ratio <= 0 or not 0 <= self.dropout < 1:
            raise ConfigError("vit1d: max_frames and mlp_ratio must be positive, dropout in [0, 1)")
        self.mel_config()  # validates the front-end fields

    def mel_config(self) -> MelConfig:
        return MelConfig(sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length, f_min=self.f_min,
                         f_max=self.f_max, n_mels=self.n_mels, top_db=self.top_db)


#: Named configurations: ``{**VIT1D_PRESETS["vit_tiny_updated"], ...}`` as a model config.
VIT1D_PRESETS: dict[str, dict[str, Any]] = {
    "test": {"dim": 64, "depth": 2, "heads": 2, "max_frames": 256},
    "vit_tiny": {"dim": 192, "depth": 12, "heads": 3},
    "vit_tiny_updated": {"dim": 192, "depth": 12, "heads": 3, "positional": "rope", "norm": "rmsnorm", "ffn": "gated"},
}


def _norm(kind: str, dim: int) -> nn.Module:
    return nn.LayerNorm(dim) if kind == "layernorm" else nn.RMSNorm(dim, eps=1e-6)


def _rope_tables(n: int, head_dim: int, base: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    ang = torch.arange(n, device=device, dtype=torch.float32)[:, None] * inv[None]
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos(), ang.sin()


def _apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rot * sin


class Attention(nn.Module):
    """Multi-head self-attention; explicit softmax when the probabilities are asked for, else SDPA."""

    def __init__(self, dim: int, heads: int, *, qkv_bias: bool, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, *, rope: tuple[torch.Tensor, torch.Tensor] | None = None,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if rope is not None:
            q, k = _apply_rope(q, *rope), _apply_rope(k, *rope)
        p = self.dropout if self.training else 0.0
        if need_weights:
            attn = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim), dim=-1)
            out = F.dropout(attn, p=p, training=self.training) @ v
        else:
            attn = None
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return self.proj(out.transpose(1, 2).reshape(b, n, d)), attn


class FeedForward(nn.Module):
    """GELU MLP or gated (SwiGLU) FFN."""

    def __init__(self, dim: int, hidden: int, *, kind: str, dropout: float) -> None:
        super().__init__()
        self.kind = kind
        self.fc1 = nn.Linear(dim, hidden)
        self.gate = nn.Linear(dim, hidden) if kind == "gated" else None
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate is not None:
            h = F.silu(self.fc1(x)) * self.gate(x)
        else:
            h = F.gelu(self.fc1(x))
        return self.fc2(self.drop(h))


class Block(nn.Module):
    """Pre-norm block: ``x + attn(norm(x))``, then ``x + ffn(norm(x))``.  Returns ``(x, attn | None)``."""

    def __init__(self, c: ViT1DConfig) -> None:
        super().__init__()
        self.norm1 = _norm(c.norm, c.dim)
        self.attn = Attention(c.dim, c.heads, qkv_bias=c.qkv_bias, dropout=c.dropout)
        self.norm2 = _norm(c.norm, c.dim)
        self.ffn = FeedForward(c.dim, int(round(c.dim * c.mlp_ratio)), kind=c.ffn, dropout=c.dropout)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, *, rope: tuple[torch.Tensor, torch.Tensor] | None = None,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        a, attn = self.attn(self.norm1(x), rope=rope, need_weights=need_weights)
        x = x + self.drop(a)
        x = x + self.drop(self.ffn(self.norm2(x)))
        return x, attn


class TokenEmbedding(nn.Module):
    """Mel frames ``[B, n_mels, T]`` (dB) -> tokens ``[B, 1 + T, dim]``: projection, masking, class token, positions."""

    def __init__(self, c: ViT1DConfig) -> None:
        super().__init__()
        self.input_scale = c.input_scale
        self.max_frames = c.max_frames
        self.proj = nn.Linear(c.n_mels, c.dim)
        self.cls = nn.Parameter(torch.zeros(c.dim))
        self.mask_emb = nn.Parameter(torch.zeros(c.dim))
        self.pos = nn.Parameter(torch.zeros(1, 1 + c.max_frames, c.dim)) if c.positional == "learned" else None
        nn.init.normal_(self.cls, std=0.02)
        nn.init.normal_(self.mask_emb, std=0.02)
        if self.pos is not None:
            nn.init.normal_(self.pos, std=0.02)

    def forward(self, mel: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        tokens = self.proj(mel.transpose(1, 2) * self.input_scale)
        b, t, d = tokens.shape
        if t > self.max_frames:
            raise ConfigError(f"vit1d: {t} frames exceed max_frames={self.max_frames}; use shorter windows or a "
                              "model with a larger max_frames")
        if frame_mask is not None:
            if tuple(frame_mask.shape) != (b, t):
                raise ConfigError(f"vit1d: frame_mask has shape {tuple(frame_mask.shape)}, expected {(b, t)}")
            tokens = torch.where(frame_mask[..., None].to(tokens.device), self.mask_emb.to(tokens.dtype), tokens)
        cls = self.cls.expand(b, 1, d) + tokens.mean(dim=1, keepdim=True)
        x = torch.cat([cls, tokens], dim=1)
        if self.pos is not None:
            x = x + self.pos[:, : 1 + t]
        return x


class ViT1D(Backbone):
    """The ViT-1D backbone; see the module docstring.

    Parameters
    ----------
    config
        A :class:`ViT1DConfig`.
    """

    family = "vit1d"

    def __init__(self, config: ViT1DConfig | None = None) -> None:
        super().__init__()
        self.config = config or ViT1DConfig()
        c = self.config
        self.mel_config = c.mel_config()
        self.frontend = LogMel(self.mel_config)
        self.embed = TokenEmbedding(c)
        self.blocks = nn.ModuleList([Block(c) for _ in range(c.depth)])
        self.n_special = 1
        self.frame_offset_s = 0.0
        self.musiclens_layers = {"layer_00": "embed", **{f"layer_{i + 1:02d}": f"blocks.{i}" for i in range(c.depth)}}
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @property
    def frame_rate_hz(self) -> float:
        return self.mel_config.frame_rate_hz

    @property
    def hidden_size(self) -> int:
        return int(self.config.dim)

    @property
    def n_layers(self) -> int:
        return int(self.config.depth)

    def n_frames(self, n_samples: int) -> int:
        return self.mel_config.n_frames(n_samples)

    def forward(self, waveforms: torch.Tensor, *, frame_mask: torch.Tensor | None = None,
                output_attentions: bool = False) -> BackboneOutput:
        """Hidden states ``depth + 1`` x ``[B, 1 + n_frames, dim]`` of ``waveforms`` ``[B, n_samples]``."""
        mel = self.frontend(waveforms)
        x = self.embed(mel, frame_mask)
        rope = None
        if self.config.positional == "rope":
            rope = _rope_tables(x.shape[1], self.config.dim // self.config.heads, self.config.rope_base, x.device)
            rope = (rope[0].to(x.dtype), rope[1].to(x.dtype))
        hidden = [x]
        attentions: list[torch.Tensor] = []
        for block in self.blocks:
            x, attn = block(x, rope=rope, need_weights=output_attentions)
            hidden.append(x)
            if attn is not None:
                attentions.append(attn)
        return BackboneOutput(hidden_states=hidden, n_special=1, attentions=attentions if output_attentions else None,
                              frame_mask=frame_mask, extras={"mel": mel})


def build_vit1d(config: Mapping[str, Any]) -> ViT1D:
    """A :class:`ViT1D` from a config dict (the ``MODELS`` entry)."""
    return ViT1D(config_from_dict(ViT1DConfig, config, where="model 'vit1d' config"))


MODELS.register("vit1d", build_vit1d, help="ViT-1D over log-mel frames (one token per frame, class token)",
                overwrite=True)
