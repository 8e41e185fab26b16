"""Layer-wise activations from any audio network (see :mod:`musiclens.extract.base`).

Public entry points:

- :func:`extract_to_store` — a stimulus set into a resumable on-disk :class:`FeatureStore`;
- :func:`extract_activations` — clips into in-memory :class:`Activations`;
- :func:`build_extractor` — a name / directory / checkpoint into an extractor;
- :func:`load_pooled` — ``({layer: [n_stimuli, dim]}, stimulus_ids)`` of a finished store.

Built-in extractors are registered in :data:`EXTRACTORS` (``musiclens models`` lists them).
Importing this package does not import torch; the torch-based modules (``hooks``, ``hf``,
``mert``, ``checkpoint``) load when an extractor is built or when their names are accessed.
"""

from __future__ import annotations

import importlib
from typing import Any

from musiclens.extract import baselines as _baselines  # noqa: F401  (registers cqt, chroma, logmel, mfcc)
from musiclens.extract import pretrained as _pretrained  # noqa: F401  (registers crepe-*, pesto, fcpe, basic-pitch, madmom-*)
from musiclens.extract.base import EXTRACTORS, Activations, Extractor, layer_name, resolve_layers
from musiclens.extract.batching import BatchedExtractor, LayerBatch, plan_batches
from musiclens.extract.runner import build_extractor, extract_activations, extract_to_store
from musiclens.extract.store import FeatureStore, load_pooled, merge_stores
from musiclens.extract.windowing import extract_windowed, window_bounds

__all__ = [
    "EXTRACTORS", "Activations", "Extractor", "layer_name", "resolve_layers", "BatchedExtractor", "LayerBatch",
    "plan_batches", "build_extractor", "extract_activations", "extract_to_store", "FeatureStore", "load_pooled",
    "merge_stores", "extract_windowed", "window_bounds", "TorchHookExtractor", "HFExtractor", "MODELS",
]

_LAZY = {"TorchHookExtractor": "musiclens.extract.hooks", "HFExtractor": "musiclens.extract.hf",
         "MODELS": "musiclens.extract.checkpoint"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'musiclens.extract' has no attribute {name!r}")


def _hf_builder(family: str, doc: str) -> Any:
    def build(**options: Any) -> Any:
        from musiclens.extract.hf_loading import build_hf

        return build_hf(family, **options)

    build.__doc__ = doc
    return build


for _family, _doc in {
    "wav2vec2": "wav2vec 2.0 (Hugging Face): path=DIR, or config={...} for random weights.",
    "data2vec-audio": "data2vec-audio (Hugging Face): path=DIR, or config={...} for random weights.",
    "hubert": "HuBERT (Hugging Face): path=DIR, or config={...} for random weights.",
    "whisper": "Whisper encoder (Hugging Face), 30 s padding trimmed: path=DIR or config={...}.",
    "ast": "Audio Spectrogram Transformer (Hugging Face), 2 special tokens: path=DIR or config={...}.",
    "mert": "MERT without remote code (as HuBERT): path=DIR, or config={...} for random weights.",
    "hf": ("Any Hugging Face audio model folder transformers implements (WavLM, HuBERT, SEW, Whisper, AST, CLAP, "
           "EnCodec, ...): path=DIR; model_type picks the family; no remote code unless trust_remote_code."),
}.items():
    EXTRACTORS.register(_family, _hf_builder(_family, _doc), overwrite=True)


def _torch_builder(**options: Any) -> Any:
    """Any torch.nn.Module via forward hooks: module=..., layers=[submodule names], sample_rate=..."""
    import copy

    from musiclens.extract.hooks import TorchHookExtractor, randomize_module

    randomize = options.pop("randomize", False)
    seed = options.pop("seed", 0)
    options.pop("trust_remote_code", None)
    module = options.pop("module", None)
    if module is None:
        from musiclens.errors import ConfigError

        raise ConfigError("the 'torch' extractor needs module=<torch.nn.Module> and layers=[submodule names]")
    if randomize:
        module = randomize_module(copy.deepcopy(module), seed=seed)
    return TorchHookExtractor(module, **options)


def _checkpoint_builder(**options: Any) -> Any:
    """A network trained by musiclens: path=CHECKPOINT (.safetensors + JSON config)."""
    from musiclens.extract.checkpoint import checkpoint_extractor

    return checkpoint_extractor(**options)


EXTRACTORS.register("torch", _torch_builder, overwrite=True)
EXTRACTORS.register("checkpoint", _checkpoint_builder, overwrite=True)
