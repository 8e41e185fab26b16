"""Any ``torch.nn.Module`` as an extractor: named submodules become layers via forward hooks.

>>> ext = TorchHookExtractor(net, layers=["conv1", "conv2", "fc"], sample_rate=16000,   # doctest: +SKIP
...                          to_frames={"conv1": "bct", "conv2": "bct", "fc": "bd"})
>>> acts = ext.extract([clip_a, clip_b])                                                  # doctest: +SKIP

A forward hook records each chosen submodule's output; a per-layer *frame layout* turns that
output into ``[batch, n_frames, dim]``:

=========  =========================================================================
``btd``    ``[B, T, D]`` as is (transformer blocks, RNN outputs)
``bct``    ``[B, C, T]`` -> ``[B, T, C]`` (1-D convolutions)
``bd``     ``[B, D]`` -> ``[B, 1, D]`` (one vector per clip)
``bt``     ``[B, T]`` -> ``[B, T, 1]``
``bcft``   ``[B, C, F, T]`` -> ``[B, T, C*F]`` (2-D convolutions over frequency x time)
``bctf``   ``[B, C, T, F]`` -> ``[B, T, C*F]``
``tbd``    ``[T, B, D]`` -> ``[B, T, D]``
=========  =========================================================================

or any callable ``output -> Tensor[B, T, D]`` (it receives the raw hooked output, so it can
pick an element of a tuple).  With a string layout, a tuple/list output contributes its first
tensor.  Frame times are ``offset + j / frame_rate`` (frame centres); without a declared frame
rate a layer's rate is inferred as ``n_frames / clip_duration`` and the centre of frame ``j`` is
``(j + 0.5) / rate``.

The module is put in ``eval()`` mode and run under ``torch.inference_mode()``.  Torch is
imported when this module is imported; :mod:`musiclens.extract` imports it lazily.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from musiclens.errors import ConfigError, ExtractionError
from musiclens.extract.batching import BatchedExtractor, LayerBatch

__all__ = [
    "TorchHookExtractor", "FRAME_LAYOUTS", "to_frames", "module_hash", "randomize_module", "resolve_device",
    "record_outputs",
]

logger = logging.getLogger(__name__)


def _first_tensor(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    raise ExtractionError(
        f"hooked output of type {type(output).__name__} holds no tensor; pass a to_frames callable that picks one"
    )


FRAME_LAYOUTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "btd": lambda x: x,
    "bct": lambda x: x.transpose(1, 2),
    "bd": lambda x: x.unsqueeze(1),
    "bt": lambda x: x.unsqueeze(-1),
    "bcft": lambda x: x.permute(0, 3, 1, 2).reshape(x.shape[0], x.shape[3], x.shape[1] * x.shape[2]),
    "bctf": lambda x: x.permute(0, 2, 1, 3).reshape(x.shape[0], x.shape[2], x.shape[1] * x.shape[3]),
    "tbd": lambda x: x.transpose(0, 1),
}
_NDIM = {"btd": 3, "bct": 3, "bd": 2, "bt": 2, "bcft": 4, "bctf": 4, "tbd": 3}


def to_frames(output: Any, layout: str | Callable[[Any], torch.Tensor], *, layer: str = "?") -> torch.Tensor:
    """Turn a hooked output into ``[shape=(batch, n_frames, dim)]`` with ``layout``."""
    if callable(layout):
        x = layout(output)
    else:
        if layout not in FRAME_LAYOUTS:
            raise ConfigError(f"unknown frame layout {layout!r} for layer {layer!r}; choose one of {sorted(FRAME_LAYOUTS)}")
        t = _first_tensor(output)
        if t.ndim != _NDIM[layout]:
            raise ExtractionError(
                f"layer {layer!r} output has shape {tuple(t.shape)}, which does not fit layout {layout!r} "
                f"({_NDIM[layout]}-D); pass to_frames={{'{layer}': <layout or callable>}}"
            )
        x = FRAME_LAYOUTS[layout](t)
    if not isinstance(x, torch.Tensor) or x.ndim != 3:
        raise ExtractionError(f"to_frames for layer {layer!r} must return a 3-D tensor [B, T, D], got {getattr(x, 'shape', x)}")
    return x


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None → CUDA when available else CPU; otherwise the named device."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return dev


def module_hash(module: nn.Module) -> str:
    """SHA-256 over a module's state dict (names, dtypes, shapes, bytes), in name order."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def randomize_module(module: nn.Module, *, seed: int) -> nn.Module:
    """Re-initialise every parameter in place with a seed (the "random weights" control).

    Modules with ``reset_parameters`` use their own initialiser; parameters owned directly by
    modules without one are drawn from N(0, 0.02²).  The global RNG state is restored afterwards.
    Every parameter is re-initialised; normalisation layers get their initial scale 1 and shift 0,
    so a released network whose LayerNorms never moved from 1 / 0 (FCPE's 12 encoder LayerNorm
    tensors) compares equal there — those are the only tensors the control shares with it.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        for sub in module.modules():
            if callable(getattr(sub, "reset_parameters", None)):
                sub.reset_parameters()
            else:
                for p in sub.parameters(recurse=False):
                    with torch.no_grad():
                        p.normal_(0.0, 0.02)
    return module


class TorchHookExtractor(BatchedExtractor):
    """Layers of any ``torch.nn.Module``, recorded with forward hooks.

    Parameters
    ----------
    module
        The network; it is moved to ``device`` and put in ``eval()`` mode.
    layers
        Submodule names (as in ``module.named_modules()``), input to output; or a mapping
        ``{layer_name: submodule_name}`` to rename them.
    sample_rate
        Rate in Hz the network expects.
    to_frames
        A frame layout (see the module docstring) or callable for every layer, or a mapping
        ``{layer_name: layout}`` (unlisted layers use ``"btd"``).
    forward
        ``forward(module, waveforms) -> Any`` runs the network on a ``[B, n_samples]`` float32
        tensor on ``device``; default ``module(waveforms)``.
    frame_rate_hz
        Frames per second, one value or ``{layer: value}``; missing rates are inferred.
    frame_offset_s
        Time of frame 0's centre, one value or ``{layer: value}``; default half a frame.
    n_frames
        ``n_frames(n_samples, layer) -> int`` valid frames of a clip; needed with
        ``padding_invariant=True`` (default: every frame of an equal-length batch is valid).
    padding_invariant
        Whether zero-padding a clip leaves its valid frames unchanged.  Only then are clips of
        different lengths batched together.
    min_samples
        Shortest accepted clip in samples (the receptive field).
    n_special
        Leading special tokens per layer.
    batch_size
        Clips per forward pass.
    device
        ``"cpu"``, ``"cuda"``, ``"auto"``.
    dtype
        ``"bfloat16"`` / ``"float16"`` run under autocast; None keeps float32.
    name
        Identifier recorded in manifests.
    extra_info
        Merged into :meth:`info` (e.g. checkpoint path, family).
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        layers: Sequence[str] | Mapping[str, str],
        sample_rate: int,
        to_frames: str | Callable[[Any], torch.Tensor] | Mapping[str, str | Callable[[Any], torch.Tensor]] = "btd",
        forward: Callable[[nn.Module, torch.Tensor], Any] | None = None,
        frame_rate_hz: float | Mapping[str, float] | None = None,
        frame_offset_s: float | Mapping[str, float] | None = None,
        n_frames: Callable[[int, str], int] | None = None,
        padding_invariant: bool = False,
        min_samples: int = 1,
        n_special: int = 0,
        batch_size: int = 8,
        device: str | torch.device | None = "cpu",
        dtype: str | None = None,
        name: str | None = None,
        extra_info: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(module, nn.Module):
            raise ConfigError(f"TorchHookExtractor needs a torch.nn.Module, got {type(module).__name__}")
        mapping = dict(layers) if isinstance(layers, Mapping) else {str(m) or "output": str(m) for m in layers}
        if not mapping:
            raise ConfigError("TorchHookExtractor needs at least one layer (a submodule name)")
        available = dict(module.named_modules())
        unknown = [m for m in mapping.values() if m not in available]
        if unknown:
            names = [n for n in available if n]
            shown = ", ".join(names[:40]) + (f", ... ({len(names)} in all)" if len(names) > 40 else "")
            raise ConfigError(f"unknown submodule(s) {unknown}; valid submodule names: {shown}")
        if padding_invariant and n_frames is None:
            raise ConfigError("padding_invariant=True needs n_frames(n_samples, layer) to know each clip's valid frames")
        self.device = resolve_device(device)
        self.module = module.to(self.device).eval()
        self.modules_by_layer = mapping
        self.layer_names = list(mapping)
        self.sample_rate = int(sample_rate)
        self._to_frames = to_frames
        self._forward_fn = forward
        self._rates = frame_rate_hz
        self._offsets = frame_offset_s
        self._n_frames = n_frames
        self.padding_invariant = bool(padding_invariant)
        self.min_samples = int(min_samples)
        self.n_special = int(n_special)
        self.batch_size = int(batch_size)
        self.dtype = dtype
        self.name = name or f"torch:{type(module).__name__}"
        self.extra_info = dict(extra_info or {})
        rate = frame_rate_hz if isinstance(frame_rate_hz, (int, float)) else (
            next(iter(frame_rate_hz.values())) if isinstance(frame_rate_hz, Mapping) and frame_rate_hz else math.nan)
        self.frame_rate_hz = float(rate)
        self._weights_hash: str | None = None

    # ------------------------------------------------------------------ helpers
    def _per_layer(self, value: Any, layer: str, default: Any) -> Any:
        if isinstance(value, Mapping):
            return value.get(layer, default)
        return default if value is None else value

    def _layout(self, layer: str) -> str | Callable[[Any], torch.Tensor]:
        return self._per_layer(self._to_frames, layer, "btd")

    def weights_hash(self) -> str:
        """SHA-256 of the module's state dict (computed once)."""
        if self._weights_hash is None:
            self._weights_hash = module_hash(self.module)
        return self._weights_hash

    def info(self) -> dict[str, Any]:
        out = super().info()
        out.update({
            "module": type(self.module).__name__, "submodules": dict(self.modules_by_layer),
            "weights_hash": self.weights_hash(), "n_special": self.n_special,
            "padding_invariant": self.padding_invariant,
        })
        out.update(self.extra_info)
        return out

    def _run(self, x: torch.Tensor) -> Any:
        if self._forward_fn is not None:
            return self._forward_fn(self.module, x)
        return self.module(x)

    # ------------------------------------------------------------------ forward
    def capture(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, Any]:
        """Run the network on a ``[B, n_samples]`` tensor; raw hooked outputs per layer."""
        captured: dict[str, Any] = {}
        handles = []
        for layer in layers:
            sub = self.modules_by_layer[layer]
            target = self.module.get_submodule(sub) if sub else self.module

            def hook(_mod: nn.Module, _inp: Any, out: Any, _layer: str = layer) -> None:
                captured[_layer] = out

            handles.append(target.register_forward_hook(hook))
        try:
            with torch.inference_mode():
                if self.dtype is not None:
                    with torch.autocast(self.device.type, dtype=getattr(torch, self.dtype)):
                        self._run(x)
                else:
                    self._run(x)
        finally:
            for h in handles:
                h.remove()
        return captured

    def _forward(self, clips: list[np.ndarray], layers: list[str]) -> dict[str, LayerBatch]:
        longest = max(c.size for c in clips)
        batch = np.zeros((len(clips), longest), dtype=np.float32)
        for i, c in enumerate(clips):
            batch[i, :c.size] = c
        x = torch.from_numpy(batch).to(self.device)
        raw = self.capture(x, layers)
        out: dict[str, LayerBatch] = {}
        duration = longest / self.sample_rate
        for layer in layers:
            if layer not in raw:
                raise ExtractionError(
                    f"submodule {self.modules_by_layer[layer]!r} (layer {layer!r}) did not run in the forward pass"
                )
            frames = to_frames(raw[layer], self._layout(layer), layer=layer)
            values = frames.detach().float().cpu().numpy()
            n_total = values.shape[1]
            n_seq = n_total - self.n_special
            if self._n_frames is not None:
                valid = np.array([min(n_seq, int(self._n_frames(c.size, layer))) for c in clips], dtype=np.int64)
            else:
                valid = np.full(len(clips), n_seq, dtype=np.int64)
            rate = self._per_layer(self._rates, layer, None)
            if rate is None:
                rate = n_seq / duration if n_seq > 0 else math.nan
            offset = self._per_layer(self._offsets, layer, None)
            if offset is None:
                offset = 0.5 / rate
            times = offset + np.arange(n_seq, dtype=np.float64) / rate
            if self.n_special:
                times = np.concatenate([np.full(self.n_special, np.nan), times])
            out[layer] = LayerBatch(values, valid, times)
        return out


def record_outputs(module: nn.Module, targets: Mapping[str, str], run: Callable[[], Any]) -> dict[str, Any]:
    """Call ``run()`` with forward hooks on submodules of ``module``; their raw outputs by key.

    Parameters
    ----------
    module
        The network that ``run`` calls.
    targets
        ``{key: submodule name}`` (names as in ``module.named_modules()``; ``""`` is ``module``).
    run
        Runs the forward pass (with whatever no-grad / autocast context the caller wants).

    Raises
    ------
    ConfigError
        A submodule name that ``module`` does not have.
    ExtractionError
        A hooked submodule did not run during ``run()``.
    """
    captured: dict[str, Any] = {}
    handles = []
    try:
        for key, sub in targets.items():
            try:
                target = module.get_submodule(sub) if sub else module
            except AttributeError as err:
                raise ConfigError(f"{type(module).__name__} has no submodule {sub!r} (layer {key!r})") from err

            def hook(_mod: nn.Module, _inp: Any, out: Any, _key: str = key) -> None:
                captured[_key] = out

            handles.append(target.register_forward_hook(hook))
        run()
    finally:
        for h in handles:
            h.remove()
    missing = [k for k in targets if k not in captured]
    if missing:
        raise ExtractionError(f"submodule(s) {[targets[k] for k in missing]} did not run in the forward pass")
    return captured
