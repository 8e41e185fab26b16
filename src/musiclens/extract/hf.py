"""Hugging Face audio models as extractors: any waveform or spectrogram model transformers implements.

Models load from a local directory (``from_pretrained(dir, local_files_only=True)``: nothing is
downloaded, no code from the directory runs) or are built from a config with random weights
(tests, the untrained control).  The model is always in ``eval()`` mode (no dropout, no LayerDrop).

Inputs are prepared by the directory's own feature extractor (``preprocessor_config.json``
through ``transformers.AutoFeatureExtractor``), and the extractor's ``sample_rate`` is that
feature extractor's ``sampling_rate``: clips at any other rate are resampled (and the conversion
recorded) by :func:`musiclens.extract.extract_activations` before they reach the model, and the
feature extractor itself refuses a mismatched rate.  A directory without one gets musiclens'
defaults for its family (logged, and named in ``info()["preprocessing"]``).

Layers are the model's ``hidden_states``: ``layer_00`` (front-end / embedding output) to
``layer_L``.  Frame times follow from the model's geometry (:mod:`musiclens.extract.hf_geometry`)
and every forward pass checks them against the real output length (a
:class:`~musiclens.extract.hf_geometry.FrameGeometryError` on a mismatch).  Per family:

- **wav2vec2, data2vec-audio, HuBERT, WavLM, UniSpeech, UniSpeech-SAT, wav2vec2-conformer, MERT,
  SEW, SEW-D** (waveform in, and any other transformers model with a ``conv_kernel`` /
  ``conv_stride`` feature encoder and ``input_values``): frames every ``prod(conv_stride)``
  samples, centred on their receptive field; SEW and SEW-D's transformer (all their hidden
  states) runs on frames average-pooled by ``squeeze_factor``.  Clips of different lengths share a
  batch (padded, with an attention mask) only for wav2vec2/HuBERT with ``feat_extract_norm=
  "layer"``; all others are bucketed by length, since padding changes their outputs (PAPERS §3.5 #19).
- **Whisper**: encoder only.  The log-mel input is padded to the model's context (30 s for real
  checkpoints); outputs are trimmed to the frames whose centre lies inside the clip
  (``ceil(n_samples / 320)`` at 16 kHz, 50 Hz).  Longer clips need windowing.
- **AST**: two special tokens (CLS, distillation) first → ``n_special = 2``.  Patch tokens are
  reordered from the model's frequency-major order to *time-major* (all frequency patches of
  time patch 0, then of time patch 1, ...), so that valid tokens form a prefix and
  ``frame_times`` increase; ``valid_frames`` counts the patch tokens that overlap the clip
  (``f_dim`` per time patch).  Clips longer than ``max_length`` fbank frames need windowing.
- **CLAP** (a ``ClapAudioModel`` directory, or a full ``ClapModel`` directory: its audio tower):
  HTSAT stages of time x frequency tokens, as AST reordered time-major (each layer has its own
  token grid, so its own ``frame_times``; see :class:`~musiclens.extract.hf_geometry.ClapGeometry`).
  The feature extractor fills its fixed context as configured (``repeatpad``: the clip repeated);
  only tokens starting inside the clip are kept.  ``is_longer`` is False for every clip (longer
  clips need windowing), never drawn at random as the feature extractor does for fused models;
  an unfused model gets one of the 4 identical copies that ``truncation="fusion"`` stacks.
- **EnCodec**: no ``hidden_states``; forward hooks on the encoder's layers (every convolution,
  residual block and the LSTM, activations skipped), ``[B, C, T]`` outputs as frames.  The whole
  clip runs through the encoder at once (``chunk_length`` is not applied; frames of the feature
  extractor's padding to whole chunks are dropped); with
  ``normalize=True`` in its config the clip is divided by its RMS first, as EnCodec does; mono
  clips are copied to every input channel of a stereo model.

``info()`` records ``task``, ``training_data`` and ``weights_source`` (a directory's path): task and
training data are "unknown (local Hugging Face checkpoint)" unless ``config.json`` hints at them
(``architectures`` such as ``...ForCTC``, or a model_type that implies its task: CLAP, EnCodec,
Whisper, MERT).  A model_type that transformers does not implement needs ``trust_remote_code``.

Attention maps (:meth:`HFExtractor.extract_attentions`) switch the model to eager attention for
that call (not for CLAP's windowed attention or EnCodec).  torch and transformers are imported when
this module is imported; the registry entries in :mod:`musiclens.extract` import it lazily.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from musiclens.errors import CheckpointError, ExtractionError
from musiclens.extract.base import layer_name, resolve_layers
from musiclens.extract.batching import BatchedExtractor, LayerBatch
from musiclens.extract.hf_geometry import (ASTGeometry, ClapGeometry, ConvGeometry, EncodecGeometry, FrameGeometry,
                                           FrameGeometryError, WhisperGeometry)
from musiclens.extract.hooks import module_hash, record_outputs, resolve_device, to_frames

__all__ = ["HFExtractor", "FAMILIES", "MODEL_TYPES", "normalize_waveform", "FrameGeometryError"]

logger = logging.getLogger(__name__)

#: family -> (config class, model class, input kind)
FAMILIES: dict[str, tuple[str, str, str]] = {
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model", "waveform"),
    "data2vec-audio": ("Data2VecAudioConfig", "Data2VecAudioModel", "waveform"),
    "hubert": ("HubertConfig", "HubertModel", "waveform"),
    "wavlm": ("WavLMConfig", "WavLMModel", "waveform"),
    "unispeech": ("UniSpeechConfig", "UniSpeechModel", "waveform"),
    "unispeech-sat": ("UniSpeechSatConfig", "UniSpeechSatModel", "waveform"),
    "wav2vec2-conformer": ("Wav2Vec2ConformerConfig", "Wav2Vec2ConformerModel", "waveform"),
    "sew": ("SEWConfig", "SEWModel", "waveform"),
    "sew-d": ("SEWDConfig", "SEWDModel", "waveform"),
    "whisper": ("WhisperConfig", "WhisperModel", "whisper"),
    "ast": ("ASTConfig", "ASTModel", "ast"),
    "clap": ("ClapAudioConfig", "ClapAudioModel", "clap"),
    "encodec": ("EncodecConfig", "EncodecModel", "encodec"),
}
#: ``config.json`` model_type -> family
MODEL_TYPES = {
    "wav2vec2": "wav2vec2", "data2vec-audio": "data2vec-audio", "hubert": "hubert", "wavlm": "wavlm",
    "unispeech": "unispeech", "unispeech-sat": "unispeech-sat", "wav2vec2-conformer": "wav2vec2-conformer",
    "sew": "sew", "sew-d": "sew-d", "whisper": "whisper", "audio-spectrogram-transformer": "ast",
    "clap_audio_model": "clap", "clap": "clap", "encodec": "encodec", "mert_model": "mert",
}
#: Directories whose model holds the audio tower: model_type -> (config class, model class).
_WRAPPERS = {"clap": ("ClapConfig", "ClapModel")}
#: Rates assumed when a directory has no feature extractor (EnCodec: its config's sampling_rate).
SAMPLE_RATES = {"whisper": 16000, "ast": 16000, "clap": 48000, "waveform": 16000}
_UNKNOWN = "unknown (local Hugging Face checkpoint)"


def normalize_waveform(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance, as ``Wav2Vec2FeatureExtractor`` (``(x - mean) / sqrt(var + 1e-7)``)."""
    x = np.asarray(x, dtype=np.float32)
    return ((x - x.mean()) / np.sqrt(x.var() + 1e-7)).astype(np.float32)


def _default_feature_extractor(kind: str, config: Any, sample_rate: int) -> Any:
    """musiclens' defaults where a directory has no ``preprocessor_config.json`` (None: raw waveform)."""
    if kind == "whisper":
        from transformers import WhisperFeatureExtractor

        return WhisperFeatureExtractor(feature_size=config.num_mel_bins, sampling_rate=sample_rate)
    if kind == "ast":
        from transformers import ASTFeatureExtractor

        return ASTFeatureExtractor(num_mel_bins=config.num_mel_bins, max_length=config.max_length,
                                   sampling_rate=sample_rate)
    if kind == "clap":
        from transformers import ClapFeatureExtractor

        fe = ClapFeatureExtractor(feature_size=config.num_mel_bins, sampling_rate=sample_rate)
        width = int(config.spec_size) * (int(config.spec_size) // int(config.num_mel_bins))
        fe.nb_max_samples = min(int(fe.nb_max_samples), (width - 1) * int(fe.hop_length))
        return fe
    return None


#: Attributes a feature extractor needs for each input kind (a directory's own is checked).
_FE_NEEDS = {"whisper": ("hop_length", "n_fft", "nb_max_frames"), "ast": ("num_mel_bins", "max_length"),
             "clap": ("hop_length", "nb_max_samples"), "waveform": (), "encodec": ()}


class HFExtractor(BatchedExtractor):
    """A Hugging Face audio model's hidden states (see the module docstring per family).

    Parameters
    ----------
    model
        The transformers model (Whisper is reduced to its encoder, a ``ClapModel`` to its audio
        tower, EnCodec to its encoder).
    family
        A key of :data:`FAMILIES`, ``"mert"``, or a transformers model_type of a conv waveform model.
    sample_rate
        Rate the model expects, Hz.
    normalize
        Zero-mean unit-variance per clip (waveform families); overrides the feature extractor's
        ``do_normalize``.
    feature_extractor
        transformers feature extractor (default: musiclens' defaults for the family).
    kind
        ``"waveform"``, ``"whisper"``, ``"ast"``, ``"clap"`` or ``"encodec"`` (default: the family's).
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
        kind: str | None = None,
        batch_size: int = 8,
        device: str = "cpu",
        dtype: str | None = None,
        source: str = "random-init",
        extra_info: Mapping[str, Any] | None = None,
    ) -> None:
        self.family = family
        self.kind = kind or ("waveform" if family == "mert" else FAMILIES[family][2])
        self.device = resolve_device(device)
        config = model.config
        if self.kind == "whisper" and hasattr(model, "get_encoder"):
            model = model.get_encoder()
        elif self.kind == "clap" and hasattr(model, "audio_model"):
            model, config = model.audio_model, model.audio_model.config
        elif self.kind == "encodec":
            model = model.encoder
        self.model = model.to(self.device).eval()
        self.config = config
        self.sample_rate = int(sample_rate)
        self.normalize = bool(normalize)
        self.batch_size = int(batch_size)
        self.dtype = dtype
        self.source = source
        self.extra_info = dict(extra_info or {})
        self.name = f"hf:{family}"
        self.preprocessing = "preprocessor_config.json" if feature_extractor is not None else "musiclens default"
        self.feature_extractor = (feature_extractor if feature_extractor is not None
                                  else _default_feature_extractor(self.kind, config, self.sample_rate))
        if self.kind == "waveform" and hasattr(self.feature_extractor, "do_normalize"):
            self.feature_extractor.do_normalize = self.normalize
        self.geometry = self._geometry()
        self.n_special = self.geometry.n_special
        self.min_samples = self.geometry.min_samples
        self.max_samples = self.geometry.max_samples
        self.frame_rate_hz = self.geometry.frame_rate_hz
        for attr in ("rf", "stride", "n_ctx", "f_dim", "t_dim"):        # geometry shortcuts (AST: f_dim x t_dim)
            if hasattr(self.geometry, attr):
                setattr(self, attr, getattr(self.geometry, attr))
        self.padding_invariant = self.kind in ("whisper", "ast", "clap") or (
            family in ("wav2vec2", "hubert") and getattr(config, "feat_extract_norm", None) == "layer")
        if self.kind == "encodec":
            self._encodec_layers = [str(i) for i, m in enumerate(self.model.layers) if not isinstance(m, torch.nn.ELU)]
            kinds = [{"EncodecConv1d": "conv", "EncodecResnetBlock": "resblock", "EncodecLSTM": "lstm"}.get(
                type(self.model.layers[int(i)]).__name__, "?") for i in self._encodec_layers]
            if kinds != [k for k, _, _ in self.geometry.stages]:
                raise FrameGeometryError(f"{self.name}: encoder layers {kinds} do not match the config's stages "
                                         f"{[k for k, _, _ in self.geometry.stages]}")
            n_layers = len(self._encodec_layers)
        elif self.kind == "clap":
            n_layers = len(config.depths) + 1
        else:
            n_layers = int(config.num_hidden_layers) + 1
        self.layer_names = [layer_name(i) for i in range(n_layers)]
        self._weights_hash: str | None = None

    def _geometry(self) -> FrameGeometry:
        c, fe, sr = self.config, self.feature_extractor, self.sample_rate
        if self.kind == "waveform":
            return ConvGeometry(c.conv_kernel, c.conv_stride, sample_rate=sr, squeeze=getattr(c, "squeeze_factor", 1))
        if self.kind == "whisper":
            n_ctx = int(c.max_source_positions)
            fe.nb_max_frames = 2 * n_ctx                    # the model's context (tiny test models: shorter)
            fe.n_samples = 2 * n_ctx * fe.hop_length
            return WhisperGeometry(n_ctx=n_ctx, hop_length=fe.hop_length, n_fft=fe.n_fft, sample_rate=sr)
        if self.kind == "ast":
            if int(fe.max_length) != int(c.max_length) or int(fe.num_mel_bins) != int(c.num_mel_bins):
                raise CheckpointError(
                    f"{self.name}: the feature extractor makes {fe.max_length} x {fe.num_mel_bins} fbank inputs but the "
                    f"model takes {c.max_length} x {c.num_mel_bins}; preprocessor_config.json does not belong to it")
            return ASTGeometry(num_mel_bins=c.num_mel_bins, max_length=c.max_length, patch_size=c.patch_size,
                               frequency_stride=c.frequency_stride, time_stride=c.time_stride, sample_rate=sr)
        if self.kind == "clap":
            return ClapGeometry(c, hop_length=fe.hop_length, sample_rate=sr, max_samples=fe.nb_max_samples)
        return EncodecGeometry(c, sample_rate=sr)

    # ------------------------------------------------------------------ description
    def weights_hash(self) -> str:
        if self._weights_hash is None:
            self._weights_hash = module_hash(self.model)
        return self._weights_hash

    def info(self) -> dict[str, Any]:
        out = super().info()
        random = self.source == "random-init"
        out.update({
            "family": self.family, "kind": self.kind, "model_class": type(self.model).__name__, "source": self.source,
            "weights_hash": self.weights_hash(), "normalize": self.normalize, "n_special": self.n_special,
            "padding_invariant": self.padding_invariant, "config": self.config.to_diff_dict(),
            "frame_geometry": self.geometry.describe(), "preprocessing": self.preprocessing,
            "feature_extractor": type(self.feature_extractor).__name__ if self.feature_extractor is not None else None,
            "task": "none (random weights)" if random else _UNKNOWN,
            "training_data": "none (random weights)" if random else _UNKNOWN,
            "weights_source": self.source,
        })
        if self.kind == "encodec":
            out["layer_modules"] = {n: f"encoder.layers.{m}" for n, m in zip(self.layer_names, self._encodec_layers)}
        out.update(self.extra_info)
        return out

    # ------------------------------------------------------------------ inputs
    def _inputs(self, clips: list[np.ndarray]) -> tuple[dict[str, torch.Tensor], int]:
        """Model inputs and their length in samples (for the frame-count check)."""
        fe, sr = self.feature_extractor, self.sample_rate
        if self.max_samples is not None:
            too_long = [c.size for c in clips if c.size > self.max_samples]
            if too_long:
                raise ExtractionError(
                    f"{self.name}: a clip of {too_long[0] / sr:.2f} s exceeds the model's context of "
                    f"{self.max_samples / sr:.2f} s; extract with window_s (--window) instead")
        if self.kind in ("waveform", "encodec"):
            rows = [self._waveform(c) for c in clips]
            longest = max(r.shape[-1] for r in rows)
            x = np.zeros((len(rows), *rows[0].shape[:-1], longest), dtype=np.float32)
            mask = np.zeros((len(rows), longest), dtype=np.int64)
            for i, r in enumerate(rows):
                x[i, ..., :r.shape[-1]] = r
                mask[i, :r.shape[-1]] = 1
            inputs = {"input_values": torch.from_numpy(x)}
            if self.padding_invariant and not mask.all():
                inputs["attention_mask"] = torch.from_numpy(mask)
            return inputs, longest
        feats = fe(clips, sampling_rate=sr, return_tensors="np")
        if self.kind == "whisper":
            return {"input_features": torch.from_numpy(np.asarray(feats["input_features"], dtype=np.float32))}, fe.n_samples
        if self.kind == "ast":
            return {"input_values": torch.from_numpy(np.asarray(feats["input_values"], dtype=np.float32))}, self.max_samples
        mel = np.asarray(feats["input_features"], dtype=np.float32)
        if not getattr(self.config, "enable_fusion", False):
            mel = mel[:, :1]          # "fusion" truncation stacks 4 copies of a clip within the context
        return {"input_features": torch.from_numpy(mel),
                "is_longer": torch.zeros((len(clips), 1), dtype=torch.bool)}, self.max_samples

    def _waveform(self, clip: np.ndarray) -> np.ndarray:
        """One clip as the model's ``input_values`` row (``[n]``; EnCodec ``[channels, n]``)."""
        fe, sr = self.feature_extractor, self.sample_rate
        if self.kind == "waveform":
            if fe is None:
                return normalize_waveform(clip) if self.normalize else clip
            return np.asarray(fe(clip, sampling_rate=sr, return_tensors="np")["input_values"][0], dtype=np.float32)
        channels = int(self.config.audio_channels)
        if fe is None:
            x = np.repeat(clip[None], channels, axis=0)
        else:
            x = np.asarray(fe(clip if channels == 1 else [np.repeat(clip[None], channels, axis=0)], sampling_rate=sr,
                              return_tensors="np")["input_values"][0], dtype=np.float32)
        if getattr(self.config, "normalize", False):             # EnCodec's RMS scaling, over the clip itself
            x = x / (np.sqrt(np.mean(x[:, :clip.size].mean(axis=0) ** 2)) + 1e-8)
        return x.astype(np.float32)

    # ------------------------------------------------------------------ forward
    def _autocast(self) -> Any:
        import contextlib

        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=getattr(torch, self.dtype))

    def _run(self, inputs: Mapping[str, torch.Tensor], *, attentions: bool = False) -> Any:
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.inference_mode(), self._autocast():
            return self.model(**inputs, output_hidden_states=True, output_attentions=attentions)

    def _hidden(self, inputs: Mapping[str, torch.Tensor], layers: list[str]) -> dict[str, torch.Tensor]:
        """``{layer: [shape=(batch, n_special + tokens, dim)]}`` in the model's own token order."""
        if self.kind == "encodec":
            x = inputs["input_values"].to(self.device)
            targets = {n: f"layers.{self._encodec_layers[self.layer_names.index(n)]}" for n in layers}

            def run() -> None:
                with torch.inference_mode(), self._autocast():
                    self.model(x)

            raw = record_outputs(self.model, targets, run)
            return {n: to_frames(raw[n], "bct", layer=n) for n in layers}
        hidden = self._run(inputs).hidden_states
        if hidden is None or len(hidden) != len(self.layer_names):
            raise ExtractionError(f"{self.name}: model returned {0 if hidden is None else len(hidden)} hidden states, "
                                  f"expected {len(self.layer_names)}")
        out: dict[str, torch.Tensor] = {}
        for n in layers:
            h = hidden[self.layer_names.index(n)]
            if self.kind == "clap":                              # [B, C, H, W] -> [B, H * W, C], row-major
                li = self.layer_names.index(n)
                if tuple(h.shape[2:]) != self.geometry.grids[li]:
                    raise FrameGeometryError(f"{self.name}: layer {n} has a {tuple(h.shape[2:])} token grid, the "
                                             f"config implies {self.geometry.grids[li]}")
                h = h.flatten(2).transpose(1, 2)
            out[n] = h
        return out

    def _forward(self, clips: list[np.ndarray], layers: list[str]) -> dict[str, LayerBatch]:
        inputs, n_input = self._inputs(clips)
        hidden = self._hidden(inputs, layers)
        g, s = self.geometry, self.n_special
        result: dict[str, LayerBatch] = {}
        for name in layers:
            li = self.layer_names.index(name)
            h = hidden[name]
            g.check(li, h.shape[1] - s, n_input, name=self.name, layer_name=name)
            perm = g.order(li)
            if perm is not None:
                h = torch.cat([h[:, :s], h[:, s:][:, torch.as_tensor(perm, device=h.device)]], dim=1)
            valid = np.array([g.valid(li, c.size) for c in clips], dtype=np.int64)
            keep = s + int(valid.max())
            result[name] = LayerBatch(h[:, :keep].float().cpu().numpy(), valid, g.times(li, keep - s))
        return result

    def _times(self, n_frames: int) -> np.ndarray:
        """Times of ``layer_01``'s tokens (NaN for special ones); :mod:`musiclens.attention.maps` reads them."""
        return self.geometry.times(1, n_frames)

    def extract_attentions(self, clip: np.ndarray, *, layers: str | Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Attention maps of one clip, ``{layer: [shape=(heads, T, T)]}`` over its valid tokens.

        ``layer_01`` ... ``layer_L`` name the blocks whose output is that hidden state.  Special
        tokens come first (AST), sequence tokens in the same order as :meth:`extract`.
        """
        if self.kind in ("clap", "encodec"):
            raise ExtractionError(f"{self.name}: {'windowed (Swin) attention' if self.kind == 'clap' else 'no attention'}"
                                  " has no token-by-token map over the clip; attention maps need a transformer over "
                                  "all frames (wav2vec2-like, Whisper, AST)")
        names = resolve_layers(self.layer_names[1:], layers)
        clip = self.check_clips([clip], ["clip"])[0]
        previous = self.model.config._attn_implementation
        self.model.set_attn_implementation("eager")
        try:
            out = self._run(self._inputs([clip])[0], attentions=True)
        finally:
            self.model.set_attn_implementation(previous)
        if not out.attentions:
            raise ExtractionError(f"{self.name}: the model returned no attention maps")
        s = self.n_special
        n = s + self.geometry.valid(1, clip.size)
        perm = self.geometry.order(1)
        idx = None if perm is None else torch.cat([torch.arange(s), torch.as_tensor(perm) + s])
        result: dict[str, np.ndarray] = {}
        for name in names:
            a = out.attentions[self.layer_names.index(name) - 1][0].float().cpu()
            if idx is not None:
                a = a[:, idx][:, :, idx]
            result[name] = a[:, :n, :n].numpy()
        return result


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read {path} ({err}); the model directory is incomplete or corrupt") from err


def _do_normalize(path: Path | None, default: bool) -> bool:
    if path is not None and (path / "preprocessor_config.json").is_file():
        return bool(_read_json(path / "preprocessor_config.json").get("do_normalize", default))
    return default
