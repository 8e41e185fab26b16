"""Backbones musiclens trains: one family per file, a dataclass config each.

- ``vit1d`` (:mod:`.vit1d`): one token per mel frame, class token = learned vector + mean of tokens;
- ``mert`` (:mod:`.mert`): HuBERT-like convolutional front end + transformer (24 kHz/75 Hz or 16 kHz/50 Hz);
- ``wav2vec2`` and ``data2vec-audio`` (:mod:`.hf`): transformers' classes, random init or a local checkpoint.

Every family registers itself in :data:`musiclens.extract.checkpoint.MODELS` (importing this package
does it), so a saved backbone (:meth:`musiclens.train.base.Backbone.save`) loads as an extractor.

The ``model`` section of a training config::

    model:
      family: vit1d           # a registered family
      config: {...}           # the family's dataclass fields (unknown keys are errors), or a preset
                              # name (vit1d: test, vit_tiny, vit_tiny_updated; mert: tiny, mert_v1_95m...)
      init_from: PATH         # optional: a musiclens checkpoint folder, or (wav2vec2/data2vec-audio)
                              # a local Hugging Face model directory; its config wins over `config`
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from musiclens.errors import ConfigError
from musiclens.train.base import Backbone

__all__ = ["FAMILY_MODULES", "build_backbone", "family_presets", "register_all"]

#: Family name -> module that defines and registers it.
FAMILY_MODULES: dict[str, str] = {
    "vit1d": "musiclens.train.models.vit1d",
    "mert": "musiclens.train.models.mert",
    "wav2vec2": "musiclens.train.models.hf",
    "data2vec-audio": "musiclens.train.models.hf",
}


def register_all() -> None:
    """Import every family module (each registers itself in ``MODELS``)."""
    for mod in dict.fromkeys(FAMILY_MODULES.values()):
        importlib.import_module(mod)


def build_backbone(model: Mapping[str, Any], *, seed: int = 0) -> Backbone:
    """A backbone from a ``model`` config section (see the module docstring).

    Random initialisation draws from ``seed``.  ``init_from`` loads weights safely
    (safetensors or ``weights_only``); a checkpoint of another family is an error.
    """
    import torch

    from musiclens.extract.checkpoint import MODELS, is_musiclens_checkpoint, load_checkpoint

    allowed = {"family", "config", "init_from"}
    unknown = sorted(set(model) - allowed)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in the model section; valid keys: {sorted(allowed)}")
    family = model.get("family")
    if family not in FAMILY_MODULES:
        raise ConfigError(f"unknown model family {family!r}; choose one of {sorted(FAMILY_MODULES)}")
    register_all()
    init_from = model.get("init_from")
    if init_from:
        path = Path(init_from).expanduser()
        if not path.exists():
            raise ConfigError(f"model.init_from {path} does not exist; give a musiclens checkpoint folder "
                              "or a local Hugging Face model directory")
        if is_musiclens_checkpoint(path):
            module, cfg = load_checkpoint(path, seed=seed)
            if cfg["family"] != family:
                raise ConfigError(f"model.init_from {path} is a {cfg['family']!r} checkpoint, not {family!r}")
            return module  # type: ignore[return-value]
        loader = getattr(importlib.import_module(FAMILY_MODULES[family]), "from_pretrained_dir", None)
        if loader is None:
            raise ConfigError(f"{path} is not a musiclens checkpoint, and family {family!r} loads no other format")
        return loader(family, path, config=model.get("config") or {})
    config = model.get("config") or {}
    if isinstance(config, str):  # a preset name, e.g. "vit_tiny" or "mert_v1_95m"
        config = family_presets(family).get(config) or _unknown_preset(family, config)
    if not isinstance(config, Mapping):
        raise ConfigError(f"model.config must be a mapping of {family} fields or a preset name, got {config!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        try:
            return MODELS.get(family)(dict(config))  # type: ignore[return-value]
        except (TypeError, ValueError) as err:
            raise ConfigError(f"invalid model.config for family {family!r}: {err}") from err


def family_presets(family: str) -> dict[str, dict[str, Any]]:
    """Named configurations of a family (``VIT1D_PRESETS``, ``MERT_PRESETS``...; empty when none)."""
    module = importlib.import_module(FAMILY_MODULES[family])
    presets: dict[str, dict[str, Any]] = {}
    for name in dir(module):
        if name.endswith("_PRESETS") and isinstance(getattr(module, name), Mapping):
            presets.update(getattr(module, name))
    return presets


def _unknown_preset(family: str, name: str) -> dict[str, Any]:
    raise ConfigError(f"unknown {family} preset {name!r}; presets: {', '.join(family_presets(family)) or '(none)'}")
