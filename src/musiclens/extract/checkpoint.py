"""Networks trained by musiclens, from a checkpoint path: the contract and the loader.

A **musiclens checkpoint** is a weights file plus a JSON config naming a model family that
:data:`MODELS` can build:

- a folder with ``config.json`` and ``model.safetensors``, or
- ``<name>.safetensors`` with ``<name>.json`` beside it.

The JSON::

    {
      "format": "musiclens.checkpoint", "format_version": 1,
      "family": "vit1d",                 # a name in MODELS
      "config": {...},                   # passed to MODELS.get(family)(config)
      "sample_rate": 16000,
      "layers": {"layer_00": "embed", "layer_01": "blocks.0", ...},   # layer -> submodule
      "to_frames": "btd",                # or {layer: layout}, see musiclens.extract.hooks
      "frame_rate_hz": 50.0,             # optional, or {layer: rate}
      "frame_offset_s": 0.0,             # optional time of frame 0's centre (default half a frame)
      "n_special": 0,                    # optional leading special tokens
      "state_dict_prefix": "model."      # optional prefix to strip (Lightning checkpoints)
    }

``layers`` may be omitted when the built module has a ``musiclens_layers`` attribute (a
``{layer: submodule}`` mapping).  When the module defines ``extract_forward(waveforms)``, it is
called instead of ``forward`` with a ``[batch, n_samples]`` float32 tensor.

Loading is always safe: safetensors, or ``torch.load(weights_only=True)`` for ``.pt`` / ``.ckpt``;
a pickle that needs code to unpickle is refused unless ``trust_remote_code=True``.  Weights that
do not fit the architecture raise :class:`CheckpointError` listing missing and unexpected keys.
Use :func:`save_checkpoint` to write one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from musiclens.errors import CheckpointError, ConfigError
from musiclens.extract.hooks import TorchHookExtractor
from musiclens.fsutil import atomic_write_json
from musiclens.registry import Registry

__all__ = ["MODELS", "save_checkpoint", "load_checkpoint", "load_weights", "checkpoint_extractor",
           "is_musiclens_checkpoint", "checkpoint_files"]

logger = logging.getLogger(__name__)

FORMAT = "musiclens.checkpoint"

#: Model families musiclens can build from a config dict: ``MODELS.get(family)(config) -> nn.Module``.
MODELS: Registry[Callable[[Mapping[str, Any]], nn.Module]] = Registry("model family")

_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def checkpoint_files(path: str | Path) -> tuple[Path, Path]:
    """``(weights_file, config_json)`` of a checkpoint folder or weights file."""
    path = Path(path)
    if path.is_dir():
        cfg = path / "config.json"
        candidates = [path / "model.safetensors"] + [path / f"model{s}" for s in _PICKLE_SUFFIXES]
        weights = next((c for c in candidates if c.is_file()), None)
        if weights is None:
            raise CheckpointError(f"{path} has no model.safetensors (or model.pt/.ckpt); it is not a complete checkpoint")
        return weights, cfg
    return path, path.with_suffix(".json")


def is_musiclens_checkpoint(path: str | Path) -> bool:
    """True when ``path`` is a checkpoint folder or weights file with a musiclens JSON config."""
    path = Path(path)
    cfg = path / "config.json" if path.is_dir() else path.with_suffix(".json")
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text()).get("format") == FORMAT
    except (OSError, json.JSONDecodeError):
        return False


def save_checkpoint(
    module: nn.Module,
    path: str | Path,
    *,
    family: str,
    config: Mapping[str, Any],
    sample_rate: int,
    layers: Mapping[str, str] | None = None,
    to_frames: str | Mapping[str, str] = "btd",
    frame_rate_hz: float | Mapping[str, float] | None = None,
    frame_offset_s: float | Mapping[str, float] | None = None,
    n_special: int = 0,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``path/model.safetensors`` + ``path/config.json`` (the folder form); returns ``path``."""
    from safetensors.torch import save_file

    if family not in MODELS:
        raise ConfigError(f"model family {family!r} is not registered in musiclens.extract.checkpoint.MODELS")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    tmp = path / ".model.safetensors.tmp"
    save_file(state, str(tmp))
    tmp.replace(path / "model.safetensors")
    atomic_write_json(path / "config.json", {
        "format": FORMAT, "format_version": 1, "family": family, "config": dict(config),
        "sample_rate": int(sample_rate), "layers": dict(layers) if layers else None, "to_frames": to_frames,
        "frame_rate_hz": frame_rate_hz, "frame_offset_s": frame_offset_s, "n_special": int(n_special),
        **dict(extra or {}),
    })
    return path


def load_weights(file: str | Path, *, trust_remote_code: bool = False) -> dict[str, torch.Tensor]:
    """Tensors of a weights file, loaded safely.

    ``.safetensors`` always; ``.pt``/``.pth``/``.bin``/``.ckpt`` with ``weights_only=True`` (a
    Lightning checkpoint's ``state_dict`` entry is used).  ``trust_remote_code=True`` allows a
    full unpickle, which can execute code stored in the file.
    """
    file = Path(file)
    if not file.is_file():
        raise CheckpointError(f"checkpoint weights {file} do not exist")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(file))
        except Exception as err:  # safetensors raises its own error types
            raise CheckpointError(f"{file} is not a valid safetensors file ({err})") from err
    if file.suffix not in _PICKLE_SUFFIXES:
        raise CheckpointError(f"unknown weights format {file.suffix!r}; use .safetensors (or .pt/.ckpt)")
    try:
        obj = torch.load(file, map_location="cpu", weights_only=not trust_remote_code)
    except Exception as err:  # UnpicklingError, RuntimeError...
        raise CheckpointError(
            f"{file} refused by torch.load(weights_only=True): it contains pickled objects that could run code "
            f"({type(err).__name__}). Convert it to safetensors, or pass trust_remote_code=True "
            "(--trust-remote-code) only if you trust its origin"
        ) from err
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{file} does not hold a state dict of tensors")
    return dict(obj)


def _strip_prefix(state: dict[str, torch.Tensor], prefix: str | None, model_keys: set[str]) -> dict[str, torch.Tensor]:
    if prefix:
        return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}
    if state and not (set(state) & model_keys) and all(k.startswith("model.") for k in state):
        return {k[len("model."):]: v for k, v in state.items()}
    return state


def _register_training_families() -> None:
    """Import musiclens's own backbone families (they register themselves in ``MODELS``)."""
    try:
        from musiclens.train.models import register_all
    except ImportError:  # pragma: no cover - the training extras are missing
        return
    register_all()


def load_checkpoint(
    path: str | Path,
    *,
    randomize: bool = False,
    seed: int = 0,
    trust_remote_code: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """``(module, config_json)`` of a musiclens checkpoint; random weights with ``randomize``.

    Raises
    ------
    CheckpointError
        Missing files, an unknown family, unsafe pickles, or weights that do not fit the
        architecture (missing / unexpected keys and shape mismatches are listed).
    """
    weights, cfg_path = checkpoint_files(path)
    if not cfg_path.is_file():
        raise CheckpointError(f"checkpoint config {cfg_path} is missing; musiclens checkpoints carry their config")
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_path} is not a musiclens checkpoint config (format != {FORMAT!r})")
    family = cfg.get("family")
    if family not in MODELS:
        _register_training_families()
    if family not in MODELS:
        raise CheckpointError(
            f"checkpoint family {family!r} is not registered; known families: {', '.join(MODELS.names()) or '(none)'}. "
            "Import the module that registers it (musiclens.extract.checkpoint.MODELS.register)"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        module = MODELS.get(family)(dict(cfg.get("config") or {}))
    if randomize:
        return module, cfg
    model_keys = set(module.state_dict())
    state = _strip_prefix(load_weights(weights, trust_remote_code=trust_remote_code),
                          cfg.get("state_dict_prefix"), model_keys)
    missing = sorted(model_keys - set(state))
    unexpected = sorted(set(state) - model_keys)
    wrong = sorted(k for k in model_keys & set(state) if tuple(state[k].shape) != tuple(module.state_dict()[k].shape))
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"checkpoint {weights} does not match family {family!r} built from its config: "
            f"missing keys {missing[:10]}, unexpected keys {unexpected[:10]}, shape mismatches {wrong[:10]}"
        )
    module.load_state_dict(state, strict=True)
    return module, cfg


def checkpoint_extractor(
    path: str | Path,
    *,
    randomize: bool = False,
    seed: int = 0,
    trust_remote_code: bool = False,
    device: str = "cpu",
    batch_size: int = 8,
    dtype: str | None = None,
) -> TorchHookExtractor:
    """A musiclens checkpoint as a :class:`~musiclens.extract.hooks.TorchHookExtractor`."""
    module, cfg = load_checkpoint(path, randomize=randomize, seed=seed, trust_remote_code=trust_remote_code)
    layers = cfg.get("layers") or getattr(module, "musiclens_layers", None)
    if not layers:
        raise CheckpointError(
            f"checkpoint {path} names no layers: add 'layers': {{layer: submodule}} to its JSON config "
            "or a musiclens_layers attribute to the model"
        )
    forward = None
    if callable(getattr(module, "extract_forward", None)):
        def forward(mod: nn.Module, x: torch.Tensor) -> Any:
            return mod.extract_forward(x)
    return TorchHookExtractor(
        module, layers=dict(layers), sample_rate=int(cfg["sample_rate"]), to_frames=cfg.get("to_frames") or "btd",
        forward=forward, frame_rate_hz=cfg.get("frame_rate_hz"), frame_offset_s=cfg.get("frame_offset_s"),
        n_special=int(cfg.get("n_special", 0)),
        batch_size=batch_size, device=device, dtype=dtype, name=f"checkpoint:{cfg['family']}",
        extra_info={"checkpoint": str(Path(path).resolve()), "family": cfg["family"], "randomized": randomize,
                    "seed": seed, "model_config": cfg.get("config")},
    )
