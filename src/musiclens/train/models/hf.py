"""Backbones ``wav2vec2`` and ``data2vec-audio``: transformers' ``Wav2Vec2Model`` / ``Data2VecAudioModel``.

Both families share one dataclass config (:class:`HFBackboneConfig`) whose defaults are a tiny
CPU-sized model (hidden 64, 2 layers, 64-channel convolutions) with the standard convolutional
feature encoder (kernels ``10,3,3,3,3,2,2``, strides ``5,2,2,2,2,2,2``: 320 samples per frame,
50 Hz at 16 kHz).  Any other transformers config field goes through ``hf_overrides``.

Two ways to get one:

- random initialisation: ``MODELS.get("wav2vec2")(config_dict)`` (via
  :func:`musiclens.train.models.build_backbone`, which seeds the draw);
- a **local** Hugging Face directory: :func:`from_pretrained_dir` (``local_files_only=True``,
  never remote code).  The directory's full config is stored in ``hf_config``, so the musiclens
  checkpoint written by :meth:`~musiclens.train.base.Backbone.save` rebuilds without it.

Forward conventions:

- input waveforms are normalised per clip to zero mean and unit variance (as
  ``Wav2Vec2FeatureExtractor``) when ``normalize_input`` (default), in training and extraction
  alike;
- ``hidden_states`` are transformers' ``hidden_states`` (``n_layers + 1``): entry 0 is the
  transformer input (feature projection + positional convolution, after the encoder's layer norm
  in the post-LN variant), entry ``i`` the output of block ``i``.  With transformers 5 the
  pre-LN (``do_stable_layer_norm``) variant's final layer norm is *not* part of them;
- ``frame_mask`` is passed as ``mask_time_indices``: masked frames' projected features are
  replaced by the learned ``masked_spec_embed``.  A mask is always passed (all False when none
  is given), so transformers' own random SpecAugment never fires: masking belongs to the
  objectives, which seed it.  ``mask_feature_prob`` stays 0;
- LayerDrop (``layerdrop``, default 0) acts only in ``train()`` mode; extraction runs in
  ``eval()`` (:class:`~musiclens.extract.hooks.TorchHookExtractor` sets it).

``musiclens_layers`` hooks ``model.encoder.dropout`` (layer 0: its output is ``hidden_states[0]``
in both layer-norm variants) and ``model.encoder.layers.{i}`` (layer ``i + 1``), so a saved
backbone extracts exactly its ``hidden_states``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from musiclens.errors import CheckpointError, ConfigError, TrainingError
from musiclens.extract.checkpoint import MODELS
from musiclens.train.base import Backbone, BackboneOutput, config_from_dict
from musiclens.train.models.frontends import MelFeatureEncoder, conv_n_frames, receptive_field

__all__ = ["HFBackboneConfig", "HFBackbone", "Wav2Vec2Backbone", "Data2VecAudioBackbone", "HF_FAMILIES",
           "from_pretrained_dir", "build_hf_backbone"]

logger = logging.getLogger(__name__)

#: family -> (transformers config class, model class, ``model_type`` in config.json)
HF_FAMILIES: dict[str, tuple[str, str, str]] = {
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model", "wav2vec2"),
    "data2vec-audio": ("Data2VecAudioConfig", "Data2VecAudioModel", "data2vec-audio"),
}

#: Tiny per-family defaults for fields the two configs name differently.
_FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "wav2vec2": {"num_conv_pos_embeddings": 16},                         # one conv, kernel 16
    "data2vec-audio": {"num_conv_pos_embeddings": 2, "conv_pos_kernel_size": 5},  # 2 convs, kernel 5
}

#: Dataclass fields that describe the architecture (taken from ``hf_config`` when it is set).
_ARCH_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "conv_dim",
                "conv_stride", "conv_kernel", "num_conv_pos_embedding_groups")
#: Dataclass fields that are training settings (always applied, also over ``hf_config``).
_TRAIN_FIELDS = ("hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout", "layerdrop")


@dataclass
class HFBackboneConfig:
    """Config of a ``wav2vec2`` / ``data2vec-audio`` backbone.

    Attributes
    ----------
    hidden_size, num_hidden_layers, num_attention_heads, intermediate_size
        Transformer width, depth, heads and feed-forward width.
    conv_dim, conv_stride, conv_kernel
        Convolutional feature encoder: channels, strides and kernels per layer (samples).
    num_conv_pos_embedding_groups
        Groups of the positional convolution (must divide ``hidden_size``).
    hidden_dropout, attention_dropout, activation_dropout, feat_proj_dropout
        Dropout probabilities (transformers' names), active in ``train()`` mode only.
    layerdrop
        Probability of skipping a block in ``train()`` mode (0: never).
    sample_rate
        Input rate, Hz.
    normalize_input
        Zero-mean unit-variance per clip before the network.
    hf_overrides
        Any other transformers config field (e.g. ``{"feat_extract_norm": "layer",
        "do_stable_layer_norm": True}``), applied last.
    hf_config
        Full transformers config dict of a model loaded with :func:`from_pretrained_dir`; when
        set it is the base config and overrides the architecture fields above.
    source
        Where the initial weights came from (a directory), for the record.
    frontend
        ``"conv"`` (default: wav2vec 2.0's convolutional feature encoder on the raw waveform) or
        ``"mel"``: a log-mel spectrogram (:class:`~musiclens.train.models.frontends.MelFeatureEncoder`)
        with one learned convolution
        to ``conv_dim[-1]`` channels, at the same frames as the convolutional encoder (same hop,
        same frame centres, same ``n_frames``), so every objective, mask and label alignment is
        unchanged.  The CPU quick scales use it: a tiny raw-waveform encoder does not learn
        transcription or phoneme recognition in a few hundred steps (issue 12's measurements).
    mel_n_fft, mel_n_mels, mel_f_min
        The ``"mel"`` front end's FFT size (window, samples; at least the conv encoder's receptive
        field), number of mel bands and lowest band edge (Hz).
    """

    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 128
    conv_dim: tuple[int, ...] = (64, 64, 64, 64, 64, 64, 64)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    num_conv_pos_embedding_groups: int = 4
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    feat_proj_dropout: float = 0.0
    layerdrop: float = 0.0
    sample_rate: int = 16000
    normalize_input: bool = True
    hf_overrides: dict[str, Any] = field(default_factory=dict)
    hf_config: dict[str, Any] | None = None
    source: str | None = None
    frontend: str = "conv"
    mel_n_fft: int = 1024
    mel_n_mels: int = 128
    mel_f_min: float = 30.0

    def __post_init__(self) -> None:
        self.conv_dim, self.conv_stride, self.conv_kernel = (tuple(int(v) for v in x) for x in (
            self.conv_dim, self.conv_stride, self.conv_kernel))
        if self.hf_config is not None:
            hf = dict(self.hf_config)
            for name in _ARCH_FIELDS:
                if name in hf:
                    value = hf[name]
                    setattr(self, name, tuple(int(v) for v in value) if isinstance(value, list | tuple) else value)
        if not len(self.conv_dim) == len(self.conv_stride) == len(self.conv_kernel) or not self.conv_dim:
            raise ConfigError(f"conv_dim, conv_stride and conv_kernel need the same non-zero length, got "
                             f"{len(self.conv_dim)}, {len(self.conv_stride)}, {len(self.conv_kernel)}")
        if min(self.hidden_size, self.num_hidden_layers, self.num_attention_heads, self.intermediate_size) <= 0:
            raise ConfigError("hidden_size, num_hidden_layers, num_attention_heads and intermediate_size must be positive")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                             f"{self.num_attention_heads}")
        for name in _TRAIN_FIELDS:
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise ConfigError(f"{name} must lie in [0, 1), got {getattr(self, name)}")
        if self.sample_rate <= 0:
            raise ConfigError(f"sample_rate must be positive, got {self.sample_rate}")
        if not isinstance(self.hf_overrides, Mapping):
            raise ConfigError(f"hf_overrides must be a mapping of transformers config fields, got {self.hf_overrides!r}")
        self.hf_overrides = dict(self.hf_overrides)
        if self.frontend not in ("conv", "mel"):
            raise ConfigError(f"frontend must be 'conv' or 'mel', got {self.frontend!r}")
        if self.frontend == "mel":
            if self.hf_config is not None:
                raise ConfigError("frontend 'mel' builds a new feature encoder; it cannot be combined with a "
                                 "pretrained Hugging Face directory (model.init_from), whose encoder is convolutional")
            if self.mel_n_fft < receptive_field(self.conv_kernel, self.conv_stride) or self.mel_n_mels < 1:
                raise ConfigError(f"mel_n_fft must be >= the conv encoder's receptive field "
                                 f"({receptive_field(self.conv_kernel, self.conv_stride)} samples) and mel_n_mels >= 1, "
                                 f"got {self.mel_n_fft}, {self.mel_n_mels}")
            if not 0.0 <= self.mel_f_min < self.sample_rate / 2:
                raise ConfigError(f"mel_f_min must lie in [0, sample_rate/2), got {self.mel_f_min}")


def _transformers_classes(family: str) -> tuple[type, type]:
    import transformers

    cfg_name, model_name, _ = HF_FAMILIES[family]
    return getattr(transformers, cfg_name), getattr(transformers, model_name)


def hf_config_of(family: str, config: HFBackboneConfig) -> Any:
    """The transformers config object a backbone config describes.

    Base: ``hf_config`` when set, else the family defaults plus the architecture fields; then
    the training fields (dropouts, layerdrop) and ``hf_overrides``.  Masking stays with musiclens:
    ``apply_spec_augment`` is on and ``mask_time_prob`` positive (so the learned mask embedding
    exists), ``mask_feature_prob`` 0 unless overridden.
    """
    config_cls, _ = _transformers_classes(family)
    if config.hf_config is not None:
        values = {k: v for k, v in config.hf_config.items()
                  if k not in ("transformers_version", "architectures", "_name_or_path", "model_type")}
    else:
        values = {**_FAMILY_DEFAULTS[family], **{k: getattr(config, k) for k in _ARCH_FIELDS},
                  "mask_feature_prob": 0.0}
        values["conv_dim"], values["conv_stride"], values["conv_kernel"] = (
            list(config.conv_dim), list(config.conv_stride), list(config.conv_kernel))
        values["num_feat_extract_layers"] = len(config.conv_dim)
    values.update({k: float(getattr(config, k)) for k in _TRAIN_FIELDS})
    values.update(config.hf_overrides)
    values["apply_spec_augment"] = True
    if float(values.get("mask_time_prob", 0.05)) <= 0.0:
        values["mask_time_prob"] = 0.05   # only so the model owns masked_spec_embed; never drawn from
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid {family} transformers config: {err}") from err


class HFBackbone(Backbone):
    """A transformers waveform model as a musiclens :class:`~musiclens.train.base.Backbone`.

    Parameters
    ----------
    config
        The backbone config.
    model
        An already-built transformers model (from :func:`from_pretrained_dir`); default: built
        from ``config`` with random weights drawn from the global RNG.

    Attributes
    ----------
    model
        The ``Wav2Vec2Model`` / ``Data2VecAudioModel``; its weights are the backbone's.
    musiclens_layers
        ``{"layer_00": "model.encoder.dropout", "layer_01": "model.encoder.layers.0", ...}``.
    """

    family = ""

    def __init__(self, config: HFBackboneConfig, *, model: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        if model is None:
            _, model_cls = _transformers_classes(self.family)
            try:
                model = model_cls(hf_config_of(self.family, config))
            except (TypeError, ValueError) as err:   # transformers validates some fields only here
                raise ConfigError(f"invalid {self.family} backbone config: {err}") from err
        if config.frontend == "mel":
            model.feature_extractor = MelFeatureEncoder(
                kernels=config.conv_kernel, strides=config.conv_stride, sample_rate=config.sample_rate,
                n_fft=config.mel_n_fft, n_mels=config.mel_n_mels, f_min=config.mel_f_min, out_dim=config.conv_dim[-1])
        self.model = model
        hf = self.model.config
        if int(hf.num_hidden_layers) != config.num_hidden_layers or int(hf.hidden_size) != config.hidden_size:
            raise CheckpointError(f"{self.family} model ({hf.num_hidden_layers} layers, width {hf.hidden_size}) does "
                                  f"not match its config ({config.num_hidden_layers}, {config.hidden_size})")
        if not hasattr(self.model, "masked_spec_embed"):
            raise ConfigError(f"{self.family} model has no masked_spec_embed; keep mask_time_prob > 0 in its config")
        self.musiclens_layers = {"layer_00": "model.encoder.dropout", **{
            f"layer_{i + 1:02d}": f"model.encoder.layers.{i}" for i in range(config.num_hidden_layers)}}
        #: parameter-name prefix of the transformer (EMA teachers may copy the rest from the student)
        self.transformer_prefix = "model.encoder."

    # ------------------------------------------------------------------ geometry
    @property
    def hop(self) -> int:
        """Samples per frame (product of the conv strides)."""
        return int(math.prod(self.config.conv_stride))

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate / self.hop

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    @property
    def n_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    def n_frames(self, n_samples: int) -> int:
        """Frames for ``n_samples`` samples: ``n -> (n - kernel) // stride + 1`` per conv layer (0 if too short);
        the ``mel`` front end gives the same frames."""
        return conv_n_frames(n_samples, self.config.conv_kernel, self.config.conv_stride)

    def ffn_module_names(self) -> list[str]:
        """Submodules whose outputs are each block's feed-forward output (before the residual sum)."""
        return [f"model.encoder.layers.{i}.feed_forward" for i in range(self.n_layers)]

    # ------------------------------------------------------------------ forward
    def prepare_input(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Per-clip zero-mean unit-variance (``normalize_input``) of ``[batch, n_samples]`` float32."""
        if waveforms.ndim != 2:
            raise TrainingError(f"{self.family} backbone expects waveforms [batch, n_samples], got {tuple(waveforms.shape)}")
        x = waveforms.float()
        if self.config.normalize_input:
            mean = x.mean(dim=1, keepdim=True)
            var = x.var(dim=1, keepdim=True, unbiased=False)
            x = (x - mean) / torch.sqrt(var + 1e-7)
        return x

    def time_mask(self, waveforms: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        """``mask_time_indices`` for transformers: ``frame_mask`` checked, or all False."""
        n = self.n_frames(waveforms.shape[-1])
        if n <= 0:
            raise TrainingError(f"{waveforms.shape[-1]} samples are shorter than the {self.family} receptive field")
        if frame_mask is None:
            return torch.zeros(waveforms.shape[0], n, dtype=torch.bool, device=waveforms.device)
        if tuple(frame_mask.shape) != (waveforms.shape[0], n):
            raise TrainingError(f"frame_mask has shape {tuple(frame_mask.shape)}, expected (batch, n_frames) = "
                                f"({waveforms.shape[0]}, {n}) for {waveforms.shape[-1]} samples")
        return frame_mask.to(device=waveforms.device, dtype=torch.bool)

    def forward(self, waveforms: torch.Tensor, *, frame_mask: torch.Tensor | None = None,
                output_attentions: bool = False) -> BackboneOutput:
        """Hidden states of ``waveforms`` ``[batch, n_samples]`` (see the module docstring).

        Returns
        -------
        BackboneOutput
            ``hidden_states``: ``n_layers + 1`` tensors ``[batch, n_frames, hidden_size]``;
            ``attentions`` (eager attention) when asked; ``extras["extract_features"]`` the
            un-masked, layer-normed conv features ``[batch, n_frames, conv_dim[-1]]``;
            ``extras["last_hidden_state"]`` transformers' final output.
        """
        mask = self.time_mask(waveforms, frame_mask)
        x = self.prepare_input(waveforms)
        previous = self.model.config._attn_implementation
        if output_attentions and previous != "eager":
            self.model.set_attn_implementation("eager")
        try:
            out = self.model(x, mask_time_indices=mask, output_hidden_states=True,
                             output_attentions=output_attentions)
        finally:
            if output_attentions and previous != "eager":
                self.model.set_attn_implementation(previous)
        return BackboneOutput(
            hidden_states=list(out.hidden_states), n_special=0,
            attentions=list(out.attentions) if output_attentions and out.attentions is not None else None,
            frame_mask=mask if frame_mask is not None else None,
            extras={"extract_features": out.extract_features, "last_hidden_state": out.last_hidden_state},
        )


class Wav2Vec2Backbone(HFBackbone):
    """transformers' ``Wav2Vec2Model`` (family ``wav2vec2``)."""

    family = "wav2vec2"


class Data2VecAudioBackbone(HFBackbone):
    """transformers' ``Data2VecAudioModel`` (family ``data2vec-audio``)."""

    family = "data2vec-audio"


_BACKBONE_CLASSES: dict[str, type[HFBackbone]] = {"wav2vec2": Wav2Vec2Backbone,
                                                  "data2vec-audio": Data2VecAudioBackbone}


def build_hf_backbone(family: str, config: Mapping[str, Any] | HFBackboneConfig | None = None) -> HFBackbone:
    """A randomly initialised backbone of ``family`` from a config dict (draws from the global RNG)."""
    if family not in _BACKBONE_CLASSES:
        raise ConfigError(f"unknown Hugging Face backbone family {family!r}; choose one of {sorted(_BACKBONE_CLASSES)}")
    cfg = config if isinstance(config, HFBackboneConfig) else config_from_dict(
        HFBackboneConfig, config, where=f"model config of family {family!r}")
    return _BACKBONE_CLASSES[family](cfg)


def from_pretrained_dir(family: str, path: str | Path, *, config: Mapping[str, Any] | None = None) -> HFBackbone:
    """A backbone from a local Hugging Face model directory (no download, no remote code).

    Parameters
    ----------
    family
        ``"wav2vec2"`` or ``"data2vec-audio"``; must match the directory's ``model_type``.
    path
        Folder with ``config.json`` and weights (``save_pretrained`` output; a
        ``Wav2Vec2ForPreTraining`` / ``ForCTC`` checkpoint loads its base model).
    config
        Backbone config keys.  The directory's architecture wins (architecture keys are ignored
        with a warning); the training keys (dropouts, ``layerdrop``), ``normalize_input``,
        ``sample_rate`` and ``hf_overrides`` apply.

    Raises
    ------
    CheckpointError
        No readable config, another model type, or weights that do not load.
    """
    from transformers import AutoConfig

    if family not in _BACKBONE_CLASSES:
        raise ConfigError(f"family {family!r} cannot load a Hugging Face directory; choose one of {sorted(_BACKBONE_CLASSES)}")
    path = Path(path).expanduser()
    user = dict(config or {})
    ignored = sorted(k for k in user if k in _ARCH_FIELDS or k in ("hf_config", "source"))
    if ignored:
        logger.warning("model.init_from %s sets the architecture; ignoring config keys %s", path, ignored)
        for k in ignored:
            user.pop(k)
    try:
        hf = AutoConfig.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read a Hugging Face config from {path}: {err}") from err
    want = HF_FAMILIES[family][2]
    if getattr(hf, "model_type", None) != want:
        raise CheckpointError(f"{path} holds a {getattr(hf, 'model_type', None)!r} model, not {want!r} (family {family!r})")
    hf_dict = {k: v for k, v in hf.to_dict().items() if k not in ("transformers_version", "architectures",
                                                                    "_name_or_path", "model_type")}
    cfg = config_from_dict(HFBackboneConfig, {**user, "hf_config": hf_dict, "source": str(path.resolve())},
                           where=f"model config of family {family!r}")
    _, model_cls = _transformers_classes(family)
    hf_obj = hf_config_of(family, cfg)
    from musiclens.extract.hf_loading import from_pretrained_checked

    # the directory's own model has no mask embedding when it was saved without masking; musiclens's
    # config always adds one (the training objectives mask), so there it is drawn fresh, not refused
    added = (("masked_spec_embed",) if float(getattr(hf, "mask_time_prob", 0.0) or 0.0) <= 0.0
             and float(getattr(hf, "mask_feature_prob", 0.0) or 0.0) <= 0.0 else ())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        # strict: a tensor the directory lacks would start training from random weights unannounced
        model, _ = from_pretrained_checked(model_cls, path, config=hf_obj, expected_missing=added, allow_hint=None)
    # record the config the model really runs with, so the checkpoint rebuilds it exactly
    cfg.hf_config = {k: v for k, v in model.config.to_dict().items()
                     if k not in ("transformers_version", "architectures", "_name_or_path", "model_type")}
    cfg.hf_overrides = {}
    return _BACKBONE_CLASSES[family](cfg, model=model)


def _register() -> None:
    for fam in _BACKBONE_CLASSES:
        if fam not in MODELS:
            MODELS.register(fam, lambda cfg, _f=fam: build_hf_backbone(_f, cfg),
                            help=f"musiclens {fam} backbone (transformers), musiclens.train.models.hf")


_register()

