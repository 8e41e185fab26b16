"""Hugging Face audio models as extractors: wav2vec2, data2vec-audio, HuBERT, Whisper, AST, MERT.

Models load from a local directory (``from_pretrained(dir, local_files_only=True)``: nothing is
downloaded) or are built from a config with random weights (tests, the untrained control).
Layers are ``hidden_states``: ``layer_00`` (front-end / embedding output) to ``layer_L``.
The model is always in ``eval()`` mode (no dropout, no LayerDrop).

Per family:

- **wav2vec2, data2vec-audio, HuBERT, MERT** (waveform in): the model's own normalisation
  (zero mean, unit variance per clip, as ``Wav2Vec2FeatureExtractor``, when the directory's
  ``preprocessor_config.json`` says ``do_normalize`` or by default).  Frames every
  ``prod(conv_stride)`` samples, centred on their receptive field.  Clips of different lengths
  share a batch (padded, with an attention mask) only for wav2vec2/HuBERT with
  ``feat_extract_norm="layer"``; all others (``"group"``, data2vec-audio, MERT) are
  bucketed by length, since padding changes their outputs (PAPERS §3.5 #19).
- **Whisper**: encoder only.  The log-mel input is padded to the model's context (30 s for real
  checkpoints); outputs are trimmed to the frames whose centre lies inside the clip
  (``ceil(n_samples / 320)`` at 16 kHz, 50 Hz).  Longer clips need windowing.
- **AST**: two special tokens (CLS, distillation) first → ``n_special = 2``.  Patch tokens are
  reordered from the model's frequency-major order to *time-major* (all frequency patches of
  time patch 0, then of time patch 1, ...), so that valid tokens form a prefix and
  ``frame_times`` increase; ``valid_frames`` counts the patch tokens that overlap the clip
  (``f_dim`` per time patch).  Clips longer than ``max_length`` fbank frames need windowing.

Attention maps (:meth:`HFExtractor.extract_attentions`) switch the model to eager attention for
that call.  torch and transformers are imported when this module is imported; the registry
entries in :mod:`musiclens.extract` import it lazily.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musiclens.errors import CheckpointError, ConfigError, ExtractionError
from musiclens.extract.base import layer_name, resolve_layers
from musiclens.extract.batching import BatchedExtractor, LayerBatch, centre_times
from musiclens.extract.hooks import module_hash, resolve_device

__all__ = ["HFExtractor", "FAMILIES", "MODEL_TYPES", "build_hf", "load_hf_directory", "normalize_waveform",
           "from_pretrained_checked"]

logger = logging.getLogger(__name__)

#: family -> (config class, model class, input kind)
FAMILIES: dict[str, tuple[str, str, str]] = {
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model", "waveform"),
    "data2vec-audio": ("Data2VecAudioConfig", "Data2VecAudioModel", "waveform"),
    "hubert": ("HubertConfig", "HubertModel", "waveform"),
    "whisper": ("WhisperConfig", "WhisperModel", "whisper"),
    "ast": ("ASTConfig", "ASTModel", "ast"),
}
#: ``config.json`` model_type -> family
MODEL_TYPES = {
    "wav2vec2": "wav2vec2", "data2vec-audio": "data2vec-audio", "hubert": "hubert", "whisper": "whisper",
    "audio-spectrogram-transformer": "ast", "mert_model": "mert",
}
SAMPLE_RATES = {"wav2vec2": 16000, "data2vec-audio": 16000, "hubert": 16000, "whisper": 16000, "ast": 16000}


def normalize_waveform(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance, as ``Wav2Vec2FeatureExtractor`` (``(x - mean) / sqrt(var + 1e-7)``)."""
    x = np.asarray(x, dtype=np.float32)
    return ((x - x.mean()) / np.sqrt(x.var() + 1e-7)).astype(np.float32)


def _conv_geometry(config: Any) -> tuple[int, int]:
    """``(receptive_field, stride)`` in samples of a wav2vec2-style conv feature encoder."""
    rf, jump = 1, 1
    for k, s in zip(config.conv_kernel, config.conv_stride):
        rf += (k - 1) * jump
        jump *= s
    return rf, jump


class HFExtractor(BatchedExtractor):
    """A Hugging Face audio model's hidden states (see the module docstring per family).

    Parameters
    ----------
    model
        The transformers model (a Whisper model is reduced to its encoder).
    family
        ``"wav2vec2"``, ``"data2vec-audio"``, ``"hubert"``, ``"mert"``, ``"whisper"``, ``"ast"``.
    sample_rate
        Rate the model expects, Hz.
    normalize
        Zero-mean unit-variance per clip (waveform families).
    feature_extractor
        transformers feature extractor for Whisper / AST (built from the config when None).
    batch_size, device, dtype
        Clips per forward pass; ``"cpu"``/``"cuda"``/``"auto"``; ``"bfloat16"`` runs under autocast.
    source
        Where the weights came from (directory or ``"random-init"``), for the manifest.
    extra_info
        Merged into :meth:`info`.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        family: str,
        sample_rate: int,
        normalize: bool = True,
        feature_extractor: Any = None,
        batch_size: int = 8,
        device: str = "cpu",
        dtype: str | None = None,
        source: str = "random-init",
        extra_info: Mapping[str, Any] | None = None,
    ) -> None:
        self.family = family
        self.kind = "waveform" if family == "mert" else FAMILIES[family][2]
        self.device = resolve_device(device)
        if self.kind == "whisper" and hasattr(model, "get_encoder"):
            model = model.get_encoder()
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.sample_rate = int(sample_rate)
        self.normalize = bool(normalize)
        self.batch_size = int(batch_size)
        self.dtype = dtype
        self.source = source
        self.extra_info = dict(extra_info or {})
        self.name = f"hf:{family}"
        n_layers = int(self.config.num_hidden_layers)
        self.layer_names = [layer_name(i) for i in range(n_layers + 1)]
        self.feature_extractor = feature_extractor
        if self.kind == "waveform":
            self.rf, self.stride = _conv_geometry(self.config)
            self.min_samples = self.rf
            self.frame_rate_hz = self.sample_rate / self.stride
            self.padding_invariant = family in ("wav2vec2", "hubert") and self.config.feat_extract_norm == "layer"
        elif self.kind == "whisper":
            from transformers import WhisperFeatureExtractor

            self.n_ctx = int(self.config.max_source_positions)
            if self.feature_extractor is None:
                self.feature_extractor = WhisperFeatureExtractor(feature_size=self.config.num_mel_bins,
                                                                 sampling_rate=self.sample_rate)
            fe = self.feature_extractor
            fe.nb_max_frames = 2 * self.n_ctx
            fe.n_samples = 2 * self.n_ctx * fe.hop_length
            self.max_samples = fe.n_samples
            self.min_samples = fe.n_fft // 2 + 1
            self.frame_rate_hz = self.sample_rate / (2 * fe.hop_length)
            self.padding_invariant = True
        else:  # ast
            from transformers import ASTFeatureExtractor

            c = self.config
            if self.feature_extractor is None:
                self.feature_extractor = ASTFeatureExtractor(num_mel_bins=c.num_mel_bins, max_length=c.max_length,
                                                             sampling_rate=self.sample_rate)
            self.n_special = 2
            self.f_dim = (c.num_mel_bins - c.patch_size) // c.frequency_stride + 1
            self.t_dim = (c.max_length - c.patch_size) // c.time_stride + 1
            self.min_samples = 400
            self.max_samples = 400 + (c.max_length - 1) * 160
            self.frame_rate_hz = 100.0 / c.time_stride
            self.padding_invariant = True
        self._weights_hash: str | None = None

    # ------------------------------------------------------------------ description
    def weights_hash(self) -> str:
        if self._weights_hash is None:
            self._weights_hash = module_hash(self.model)
        return self._weights_hash

    def info(self) -> dict[str, Any]:
        out = super().info()
        out.update({
            "family": self.family, "model_class": type(self.model).__name__, "source": self.source,
            "weights_hash": self.weights_hash(), "normalize": self.normalize, "n_special": self.n_special,
            "padding_invariant": self.padding_invariant, "config": self.config.to_diff_dict(),
        })
        out.update(self.extra_info)
        return out

    # ------------------------------------------------------------------ inputs
    def _inputs(self, clips: list[np.ndarray]) -> dict[str, torch.Tensor]:
        if self.kind == "waveform":
            longest = max(c.size for c in clips)
            x = np.zeros((len(clips), longest), dtype=np.float32)
            mask = np.zeros((len(clips), longest), dtype=np.int64)
            for i, c in enumerate(clips):
                x[i, :c.size] = normalize_waveform(c) if self.normalize else c
                mask[i, :c.size] = 1
            inputs = {"input_values": torch.from_numpy(x)}
            if self.padding_invariant and not mask.all():
                inputs["attention_mask"] = torch.from_numpy(mask)
            return inputs
        too_long = [c.size for c in clips if c.size > self.max_samples]
        if too_long:
            raise ExtractionError(
                f"{self.name}: a clip of {too_long[0] / self.sample_rate:.2f} s exceeds the model's context of "
                f"{self.max_samples / self.sample_rate:.2f} s; extract with window_s (--window) instead"
            )
        if self.kind == "whisper":
            feats = self.feature_extractor(clips, sampling_rate=self.sample_rate, return_tensors="np")
            return {"input_features": torch.from_numpy(np.asarray(feats["input_features"], dtype=np.float32))}
        feats = self.feature_extractor(clips, sampling_rate=self.sample_rate, return_tensors="np")
        return {"input_values": torch.from_numpy(np.asarray(feats["input_values"], dtype=np.float32))}

    def _valid(self, n_samples: int) -> int:
        if self.kind == "waveform":
            n = n_samples
            for k, s in zip(self.config.conv_kernel, self.config.conv_stride):
                n = (n - k) // s + 1
            return max(0, n)
        if self.kind == "whisper":
            return min(self.n_ctx, math.ceil(n_samples / (2 * self.feature_extractor.hop_length)))
        n_fbank = 1 + (n_samples - 400) // 160
        return min(self.t_dim, math.ceil(n_fbank / self.config.time_stride)) * self.f_dim

    def _times(self, n_frames: int) -> np.ndarray:
        if self.kind == "waveform":
            return centre_times(n_frames, hop_s=self.stride / self.sample_rate,
                                offset_s=(self.rf - 1) / 2 / self.sample_rate)
        if self.kind == "whisper":
            return centre_times(n_frames, hop_s=1.0 / self.frame_rate_hz)
        c = self.config
        t_patch = np.arange(self.t_dim)
        centres = (t_patch * c.time_stride + (c.patch_size - 1) / 2) * 0.010 + 0.0125
        return np.concatenate([np.full(2, np.nan), np.repeat(centres, self.f_dim)])[: 2 + n_frames]

    def _to_time_major(self, h: torch.Tensor) -> torch.Tensor:
        b, _, d = h.shape
        seq = h[:, 2:].reshape(b, self.f_dim, self.t_dim, d).transpose(1, 2).reshape(b, self.t_dim * self.f_dim, d)
        return torch.cat([h[:, :2], seq], dim=1)

    def _run(self, inputs: Mapping[str, torch.Tensor], *, attentions: bool = False) -> Any:
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.inference_mode():
            if self.dtype is not None:
                with torch.autocast(self.device.type, dtype=getattr(torch, self.dtype)):
                    return self.model(**inputs, output_hidden_states=True, output_attentions=attentions)
            return self.model(**inputs, output_hidden_states=True, output_attentions=attentions)

    # ------------------------------------------------------------------ forward
    def _forward(self, clips: list[np.ndarray], layers: list[str]) -> dict[str, LayerBatch]:
        out = self._run(self._inputs(clips))
        hidden = out.hidden_states
        if len(hidden) != len(self.layer_names):
            raise ExtractionError(f"{self.name}: model returned {len(hidden)} hidden states, expected {len(self.layer_names)}")
        valid = np.array([self._valid(c.size) for c in clips], dtype=np.int64)
        keep = self.n_special + int(valid.max())
        result: dict[str, LayerBatch] = {}
        for name in layers:
            h = hidden[self.layer_names.index(name)]
            if self.kind == "ast":
                h = self._to_time_major(h)
            values = h[:, :keep].float().cpu().numpy()
            result[name] = LayerBatch(values, valid, self._times(keep - self.n_special))
        return result

    def extract_attentions(self, clip: np.ndarray, *, layers: str | Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Attention maps of one clip, ``{layer: [shape=(heads, T, T)]}`` over its valid tokens.

        ``layer_01`` ... ``layer_L`` name the blocks whose output is that hidden state.  Special
        tokens come first (AST), sequence tokens in the same order as :meth:`extract`.
        """
        names = resolve_layers(self.layer_names[1:], layers)
        clip = self.check_clips([clip], ["clip"])[0]
        previous = self.model.config._attn_implementation
        self.model.set_attn_implementation("eager")
        try:
            out = self._run(self._inputs([clip]), attentions=True)
        finally:
            self.model.set_attn_implementation(previous)
        if not out.attentions:
            raise ExtractionError(f"{self.name}: the model returned no attention maps")
        n = self.n_special + self._valid(clip.size)
        result: dict[str, np.ndarray] = {}
        for name in names:
            a = out.attentions[self.layer_names.index(name) - 1][0].float().cpu()
            if self.kind == "ast":
                perm = torch.arange(self.f_dim * self.t_dim).reshape(self.f_dim, self.t_dim).T.reshape(-1) + 2
                perm = torch.cat([torch.arange(2), perm])
                a = a[:, perm][:, :, perm]
            result[name] = a[:, :n, :n].numpy()
        return result


# ---------------------------------------------------------------------- building
def _classes(family: str) -> tuple[type, type]:
    import transformers

    cfg_name, model_name, _ = FAMILIES[family]
    return getattr(transformers, cfg_name), getattr(transformers, model_name)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read {path} ({err}); the model directory is incomplete or corrupt") from err


def _do_normalize(path: Path | None, default: bool) -> bool:
    if path is not None and (path / "preprocessor_config.json").is_file():
        return bool(_read_json(path / "preprocessor_config.json").get("do_normalize", default))
    return default


def _random_model(model_cls: type, config: Any, seed: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return model_cls(config)


#: How to proceed past missing weights, in the words of the extractor's interfaces.
_ALLOW_HINT = ("pass allow_missing_weights=True (--allow-missing-weights on the command line) to proceed with them "
               "random (recorded in the extractor's info and the manifest)")


def from_pretrained_checked(model_cls: Any, path: str | Path, *, allow_missing_weights: bool = False,
                            expected_missing: Sequence[str] = (), allow_hint: str | None = _ALLOW_HINT,
                            **kwargs: Any) -> tuple[Any, dict[str, list[str]]]:
    """``model_cls.from_pretrained(path)`` from local files, safely and strictly.

    Safetensors are used whenever the directory has them; a directory whose weights exist only as
    a pickle (``pytorch_model.bin``) is loaded by transformers with ``torch.load(weights_only=True)``,
    and a file that is not plain tensors (a pickle that would run code) is a
    :class:`CheckpointError` instead of an ``UnpicklingError``.  Tensors the model needs but the
    files lack would be randomly initialised: that is a :class:`CheckpointError` naming them unless
    ``allow_missing_weights``; tensors in the files that the model does not use are an error too,
    unless they all belong to modules the model does not have (the head of a larger model, e.g.
    ``lm_head`` of a CTC checkpoint loaded as the encoder).  Returns the model and
    ``{"missing_keys": [...], "unexpected_keys": [...], "added_by_config": [...]}`` for the manifest.

    ``expected_missing`` names tensors that the caller's configuration adds and that a directory
    may lack without harm (e.g. the training-only ``masked_spec_embed``): they are drawn, logged
    and listed, never refused.  ``allow_hint`` is the error's advice on proceeding anyway, in the
    words of the caller's interface (``None``: the caller offers no way to proceed).
    """
    import pickle

    path = Path(path)
    has_safetensors = any(path.glob("*.safetensors"))
    try:
        model, info = model_cls.from_pretrained(str(path), local_files_only=True, output_loading_info=True,
                                                use_safetensors=True if has_safetensors else None, **kwargs)
    except (pickle.UnpicklingError, EOFError) as err:
        raise CheckpointError(
            f"{path} holds its weights only as a pickle file that is not plain tensors ({type(err).__name__}: "
            f"{str(err)[:200]}); musiclens never runs code from a weight file. Convert the weights to safetensors "
            "where you trust the file (model.save_pretrained(dir, safe_serialization=True)) and load that") from None
    except (OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"cannot load weights from {path}: {err}") from err
    missing = sorted(info.get("missing_keys") or [])
    tolerated = [k for k in missing if k in set(expected_missing)]
    missing = [k for k in missing if k not in set(expected_missing)]
    mismatched = sorted(str(k[0]) if isinstance(k, tuple) else str(k) for k in info.get("mismatched_keys") or [])
    modules = {name.split(".")[0] for name, _ in model.named_parameters()} | {
        name.split(".")[0] for name, _ in model.named_buffers()}
    unexpected = sorted(info.get("unexpected_keys") or [])
    foreign = [k for k in unexpected if k.split(".")[0] in modules]
    if (missing or mismatched or foreign) and not allow_missing_weights:
        def _some(keys: list[str]) -> str:
            return ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")
        parts = ([f"{len(missing)} tensor(s) the model needs are missing: {_some(missing)}"] if missing else []) + (
            [f"{len(mismatched)} have the wrong shape: {_some(mismatched)}"] if mismatched else []) + (
            [f"{len(foreign)} in the files are not used by the model: {_some(foreign)}"] if foreign else [])
        raise CheckpointError(
            f"{path}: the weight files do not match the model's architecture; " + "; ".join(parts) + ". Those layers "
            "would run with random weights. Use the directory the weights belong to"
            + (f", or {allow_hint}" if allow_hint else ""))
    if missing or mismatched:
        logger.warning("%s: %d tensor(s) missing and %d of the wrong shape are randomly initialised "
                       "(allow_missing_weights)", path, len(missing), len(mismatched))
    if tolerated:
        logger.info("%s lacks %s, which this configuration adds; drawn fresh", path, ", ".join(tolerated))
    return model, {"missing_keys": missing + mismatched, "unexpected_keys": unexpected,
                   "added_by_config": tolerated}


def load_hf_directory(
    path: str | Path,
    *,
    randomize: bool = False,
    seed: int = 0,
    trust_remote_code: bool = False,
    device: str = "cpu",
    batch_size: int = 8,
    normalize: bool | None = None,
    dtype: str | None = None,
    allow_missing_weights: bool = False,
) -> HFExtractor:
    """An extractor from a local Hugging Face model directory (no network, no remote code).

    Raises
    ------
    CheckpointError
        No ``config.json``, an unsupported ``model_type`` (with ``trust_remote_code=False``), or
        weights that do not load.
    """
    path = Path(path)
    cfg = _read_json(path / "config.json")
    model_type = cfg.get("model_type")
    family = MODEL_TYPES.get(str(model_type))
    if family == "mert":
        from musiclens.extract.mert import load_mert

        return load_mert(path, randomize=randomize, seed=seed, device=device, batch_size=batch_size,
                         normalize=normalize, dtype=dtype, allow_missing_weights=allow_missing_weights)
    if family is None:
        if not trust_remote_code:
            raise CheckpointError(
                f"{path}: model_type {model_type!r} is not one musiclens loads natively "
                f"({', '.join(sorted(MODEL_TYPES))}). Loading it would run code from the directory "
                "(auto_map); pass trust_remote_code=True (--trust-remote-code) only if you trust its author"
            )
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=True)
        loading: dict[str, list[str]] = {}
        if randomize:
            model = _random_model(AutoModel.from_config, config, seed)  # type: ignore[arg-type]
        else:
            model, loading = from_pretrained_checked(AutoModel, path, allow_missing_weights=allow_missing_weights,
                                                     trust_remote_code=True)
        if not hasattr(model.config, "conv_kernel"):
            raise CheckpointError(f"{path}: remote-code model {type(model).__name__} is not a waveform model musiclens understands")
        sr = int(_read_json(path / "preprocessor_config.json").get("sampling_rate", 16000)) if (
            path / "preprocessor_config.json").is_file() else 16000
        return HFExtractor(model, family="wav2vec2", sample_rate=sr, normalize=_do_normalize(path, True)
                           if normalize is None else normalize, batch_size=batch_size, device=device, dtype=dtype,
                           source=str(path), extra_info={"trust_remote_code": True, "randomized": randomize, "seed": seed,
                                                         "weights_missing_and_random": loading.get("missing_keys", []),
                                                         "weights_unused": loading.get("unexpected_keys", [])})
    config_cls, model_cls = _classes(family)
    config = config_cls.from_pretrained(path, local_files_only=True)
    fe = None
    if family in ("whisper", "ast") and (path / "preprocessor_config.json").is_file():
        from transformers import ASTFeatureExtractor, WhisperFeatureExtractor

        fe_cls = WhisperFeatureExtractor if family == "whisper" else ASTFeatureExtractor
        fe = fe_cls.from_pretrained(path, local_files_only=True)
    loading: dict[str, list[str]] = {}
    if randomize:
        model = _random_model(model_cls, config, seed)
    else:
        model, loading = from_pretrained_checked(model_cls, path, allow_missing_weights=allow_missing_weights)
    sr = int(getattr(fe, "sampling_rate", SAMPLE_RATES[family]))
    return HFExtractor(model, family=family, sample_rate=sr,
                       normalize=_do_normalize(path, True) if normalize is None else normalize,
                       feature_extractor=fe, batch_size=batch_size, device=device, dtype=dtype,
                       source=str(path.resolve()), extra_info={
                           "randomized": randomize, "seed": seed,
                           "weights_missing_and_random": loading.get("missing_keys", []),
                           "weights_unused": loading.get("unexpected_keys", [])})


def build_hf(
    family: str,
    *,
    path: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
    randomize: bool = False,
    seed: int = 0,
    trust_remote_code: bool = False,
    device: str = "cpu",
    batch_size: int = 8,
    normalize: bool | None = None,
    dtype: str | None = None,
    allow_missing_weights: bool = False,
) -> HFExtractor:
    """A family's extractor from a directory (``path``) or from a config with random weights.

    Parameters
    ----------
    family
        A key of :data:`FAMILIES` (or ``"mert"``).
    path
        Local model directory; ``None`` builds the family's default config (overridden by
        ``config``) with random weights drawn with ``seed``.
    config
        Config overrides, e.g. ``{"hidden_size": 64, "num_hidden_layers": 2}``.
    """
    if path is not None:
        if config:
            raise ConfigError("give either path= (a model directory) or config= (random weights), not both")
        ext = load_hf_directory(path, randomize=randomize, seed=seed, trust_remote_code=trust_remote_code,
                                device=device, batch_size=batch_size, normalize=normalize, dtype=dtype,
                                allow_missing_weights=allow_missing_weights)
        if family != "hf" and ext.family != family:
            raise CheckpointError(f"{path} holds a {ext.family!r} model, not {family!r}")
        return ext
    if family == "mert":
        from musiclens.extract.mert import build_mert

        return build_mert(config=config, seed=seed, device=device, batch_size=batch_size,
                          normalize=True if normalize is None else normalize, dtype=dtype)
    if family not in FAMILIES:
        raise ConfigError(f"unknown Hugging Face family {family!r}; choose one of {sorted(FAMILIES)} or 'mert'")
    config_cls, model_cls = _classes(family)
    try:
        cfg = config_cls(**dict(config or {}))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid {family} config: {err}") from err
    model = _random_model(model_cls, cfg, seed)
    return HFExtractor(model, family=family, sample_rate=SAMPLE_RATES[family],
                       normalize=True if normalize is None else normalize, batch_size=batch_size, device=device,
                       dtype=dtype, source="random-init", extra_info={"randomized": True, "seed": seed})
