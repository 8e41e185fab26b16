"""HEAR (Holistic Evaluation of Audio Representations) in both directions.

The HEAR API (hearbenchmark.com) is a Python module with

- ``load_model(model_file_path="") -> model``; the model has ``sample_rate``,
  ``scene_embedding_size`` and ``timestamp_embedding_size``;
- ``get_scene_embeddings(audio, model) -> Tensor [n_sounds, scene_embedding_size]``;
- ``get_timestamp_embeddings(audio, model) -> (Tensor [n_sounds, n_timestamps, dim],
  Tensor [n_sounds, n_timestamps])`` with timestamps in **milliseconds** (frame centres);

where ``audio`` is a float tensor ``[n_sounds, n_samples]`` at ``model.sample_rate``, all sounds of
one length.

:class:`HearExtractor` wraps any such module as a musiclens extractor; :func:`as_hear_module`
exposes any musiclens extractor as such a module.  Running a HEAR module means running its code:
pass the module object, or its import name, explicitly.
"""

from __future__ import annotations

import importlib
import logging
import types
from collections.abc import Sequence
from typing import Any

import numpy as np

from musiclens.errors import ConfigError, ExtractionError
from musiclens.extract.base import Activations, Extractor, resolve_layers

__all__ = ["HearExtractor", "as_hear_module", "HEAR_FUNCTIONS"]

logger = logging.getLogger(__name__)

#: What a HEAR module must provide.
HEAR_FUNCTIONS = ("load_model", "get_scene_embeddings", "get_timestamp_embeddings")


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float32)


class HearExtractor:
    """Any HEAR-API module as an :class:`~musiclens.extract.base.Extractor`.

    Parameters
    ----------
    module_or_name
        The module object, or its import name (imported, i.e. its code runs).
    model_file_path
        Passed to ``load_model`` (``""``: the module's default weights).
    embedding
        ``"timestamp"``: one layer ``"timestamp"`` with the module's frames (``frame_times`` from
        its millisecond timestamps); ``"scene"``: one layer ``"scene"`` with a single frame per
        clip at ``frame_times = [0.0]`` standing for the whole clip.
    batch_size
        Sounds per call; only sounds of equal length are batched (the API needs equal lengths).
    name
        Name recorded in manifests (default ``"hear:<module name>"``).
    """

    def __init__(
        self,
        module_or_name: types.ModuleType | Any | str,
        *,
        model_file_path: str = "",
        embedding: str = "timestamp",
        batch_size: int = 16,
        name: str | None = None,
    ) -> None:
        if embedding not in ("timestamp", "scene"):
            raise ConfigError(f"embedding must be 'timestamp' or 'scene', got {embedding!r}")
        if isinstance(module_or_name, str):
            try:
                module = importlib.import_module(module_or_name)
            except ImportError as err:
                raise ConfigError(f"cannot import HEAR module {module_or_name!r}: {err}") from err
        else:
            module = module_or_name
        missing = [f for f in HEAR_FUNCTIONS if not callable(getattr(module, f, None))]
        if missing:
            raise ConfigError(
                f"{getattr(module, '__name__', module)!r} is not a HEAR module: it lacks {', '.join(missing)} "
                f"(a HEAR module provides {', '.join(HEAR_FUNCTIONS)})"
            )
        self.module = module
        self.model = module.load_model(model_file_path) if model_file_path else module.load_model()
        for attr in ("sample_rate", "scene_embedding_size", "timestamp_embedding_size"):
            if getattr(self.model, attr, None) is None and getattr(module, attr, None) is None:
                raise ConfigError(f"HEAR model from {getattr(module, '__name__', module)!r} has no {attr!r}")
        self.sample_rate = int(self._attr("sample_rate"))
        self.embedding = embedding
        self.layer_names = [embedding]
        self.dim = int(self._attr(f"{embedding}_embedding_size"))
        self.batch_size = int(batch_size)
        self.model_file_path = model_file_path
        self.name = name or f"hear:{getattr(module, '__name__', type(module).__name__)}"
        self.frame_rate_hz = 0.0
        if embedding == "timestamp":
            # one call on a second of seeded noise tells the module's frame rate
            probe = np.random.default_rng(0).standard_normal((1, self.sample_rate)).astype(np.float32) * 0.1
            _, ts = self._call(probe)
            if ts is not None and ts.shape[1] > 1:
                self.frame_rate_hz = float(1000.0 / np.median(np.diff(ts[0])))

    def _attr(self, attr: str) -> Any:
        value = getattr(self.model, attr, None)
        return value if value is not None else getattr(self.module, attr)

    def _call(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        with torch.no_grad():
            if self.embedding == "scene":
                emb = _to_numpy(self.module.get_scene_embeddings(x, self.model))
                if emb.shape != (batch.shape[0], self.dim):
                    raise ExtractionError(f"{self.name}: scene embeddings have shape {emb.shape}, "
                                          f"expected ({batch.shape[0]}, {self.dim})")
                return emb[:, None, :], None
            emb_t, ts = self.module.get_timestamp_embeddings(x, self.model)
        emb, ts_ms = _to_numpy(emb_t), _to_numpy(ts).astype(np.float64)
        if emb.ndim != 3 or emb.shape[0] != batch.shape[0] or emb.shape[2] != self.dim:
            raise ExtractionError(f"{self.name}: timestamp embeddings have shape {emb.shape}, "
                                  f"expected ({batch.shape[0]}, n_timestamps, {self.dim})")
        if ts_ms.shape != emb.shape[:2]:
            raise ExtractionError(f"{self.name}: timestamps have shape {ts_ms.shape}, expected {emb.shape[:2]}")
        return emb, ts_ms

    def extract(
        self,
        audio: Sequence[np.ndarray] | np.ndarray,
        *,
        layers: str | int | Sequence[str | int] | None = None,
        stimulus_ids: Sequence[str] | None = None,
        sample_rate: int | None = None,
    ) -> Activations:
        """Embeddings of ``audio`` as :class:`Activations` (one layer).

        Returns
        -------
        Activations
            ``[shape=(n_clips, n_frames, dim)]``; ``frame_times`` are the module's timestamps
            (ms → s) of the longest clip, checked to be the same grid for every clip.
        """
        from musiclens.extract.pretrained._common import assemble, length_buckets, prepare_clips

        names = resolve_layers(self.layer_names, layers)
        clips, ids, conversions = prepare_clips(audio, stimulus_ids=stimulus_ids, sample_rate=sample_rate,
                                                target_sr=self.sample_rate, min_samples=1, extractor=self.name)
        per_clip: list[dict[str, np.ndarray]] = [{} for _ in clips]
        stamps: list[np.ndarray | None] = [None] * len(clips)
        for idx in length_buckets([c.shape[0] for c in clips], max_batch=self.batch_size):
            emb, ts = self._call(np.stack([clips[i] for i in idx]))
            for k, i in enumerate(idx):
                per_clip[i] = {self.embedding: emb[k]}
                stamps[i] = None if ts is None else ts[k]
        if self.embedding == "scene":
            times = np.zeros(1)
        else:
            longest = max(range(len(clips)), key=lambda i: per_clip[i][self.embedding].shape[0])
            times = np.asarray(stamps[longest], dtype=np.float64) / 1000.0
            for i, ts in enumerate(stamps):
                if ts is not None and not np.allclose(ts / 1000.0, times[: ts.shape[0]], atol=1e-6):
                    raise ExtractionError(
                        f"{self.name}: stimulus {ids[i]!r} has timestamps that are not on the frame grid of the "
                        "longest clip; extract clips of different lengths separately"
                    )
        valid = [p[self.embedding].shape[0] for p in per_clip]
        acts = assemble(per_clip, layers=names, ids=ids, valid_frames=valid,
                        frame_times=lambda n: times[:n], info=self.info(), conversions=conversions)
        return acts

    def info(self) -> dict[str, Any]:
        """What was wrapped."""
        return {
            "name": self.name,
            "family": "hear",
            "module": getattr(self.module, "__name__", type(self.module).__name__),
            "model_file_path": self.model_file_path,
            "embedding": self.embedding,
            "sample_rate": self.sample_rate,
            "embedding_size": self.dim,
            "layers": list(self.layer_names),
        }


def as_hear_module(
    extractor: Extractor,
    *,
    layer: str | int | None = None,
    pooling: str = "mean",
    probe_seconds: float = 1.0,
    seed: int = 0,
) -> types.ModuleType:
    """Expose a musiclens extractor as a HEAR-API module.

    Parameters
    ----------
    extractor
        Any :class:`~musiclens.extract.base.Extractor`.
    layer
        The layer whose frames are the embeddings (name or index; default the last layer).
    pooling
        How scene embeddings pool the frames (:meth:`Activations.pool`: ``"mean"``, ``"max"``...).
    probe_seconds
        Length of the seeded noise clip run once by ``load_model`` to learn the embedding size.
    seed
        Seed of that noise.

    Returns
    -------
    types.ModuleType
        A module with ``load_model``, ``get_scene_embeddings`` (``Tensor [n_sounds, dim]``) and
        ``get_timestamp_embeddings`` (``Tensor [n_sounds, n_frames, dim]`` and timestamps
        ``Tensor [n_sounds, n_frames]`` in ms: the extractor's frame centres), plus
        ``sample_rate`` and, after ``load_model``, the embedding sizes.  Frames past a shorter
        clip's end cannot occur: all sounds in one HEAR call have the same length.
    """
    import torch

    chosen = resolve_layers(extractor.layer_names, layer if layer is not None else -1)
    if len(chosen) != 1:
        raise ConfigError(f"as_hear_module needs exactly one layer, got {chosen}")
    layer_name = chosen[0]
    mod = types.ModuleType(f"musiclens_hear_{extractor.name.replace('-', '_').replace(':', '_')}")
    mod.__doc__ = f"HEAR module exposing musiclens extractor {extractor.name!r}, layer {layer_name!r}."

    class HearModel(torch.nn.Module):
        """The HEAR model object: holds the extractor and the embedding sizes."""

        def __init__(self) -> None:
            super().__init__()
            self.extractor = extractor
            self.layer = layer_name
            self.pooling = pooling
            self.sample_rate = int(extractor.sample_rate)
            n = max(int(round(probe_seconds * self.sample_rate)), int(getattr(extractor, "min_samples", 1)))
            probe = np.random.default_rng(seed).standard_normal(n).astype(np.float32) * 0.1
            dim = int(extractor.extract([probe], layers=[layer_name]).layers[layer_name].shape[2])
            self.scene_embedding_size = dim
            self.timestamp_embedding_size = dim

    def _check(audio: Any, model: Any) -> np.ndarray:
        if not isinstance(model, HearModel):
            raise ConfigError("pass the model returned by this module's load_model()")
        arr = _to_numpy(audio)
        if arr.ndim != 2:
            raise ConfigError(f"HEAR audio must be [n_sounds, n_samples], got shape {arr.shape}")
        return arr

    def load_model(model_file_path: str = "") -> HearModel:
        """Build the model (musiclens extractors carry their own weights; ``model_file_path`` must be empty)."""
        if model_file_path:
            raise ConfigError(f"{mod.__name__} carries its weights; load_model takes no file, got {model_file_path!r}")
        return HearModel()

    def get_timestamp_embeddings(audio: Any, model: HearModel) -> tuple[Any, Any]:
        """``(embeddings [n_sounds, n_frames, dim], timestamps [n_sounds, n_frames] in ms)``."""
        arr = _check(audio, model)
        acts = model.extractor.extract(list(arr), layers=[model.layer])
        emb = torch.from_numpy(np.ascontiguousarray(acts.layers[model.layer][:, acts.n_special:, :]))
        ts = np.tile(acts.frame_times[acts.n_special:] * 1000.0, (arr.shape[0], 1))
        return emb, torch.from_numpy(ts.astype(np.float32))

    def get_scene_embeddings(audio: Any, model: HearModel) -> Any:
        """``[n_sounds, dim]``: the layer pooled over frames with ``pooling``."""
        arr = _check(audio, model)
        acts = model.extractor.extract(list(arr), layers=[model.layer])
        return torch.from_numpy(np.ascontiguousarray(acts.pool(model.pooling)[model.layer]))

    mod.load_model = load_model  # type: ignore[attr-defined]
    mod.get_timestamp_embeddings = get_timestamp_embeddings  # type: ignore[attr-defined]
    mod.get_scene_embeddings = get_scene_embeddings  # type: ignore[attr-defined]
    mod.sample_rate = int(extractor.sample_rate)  # type: ignore[attr-defined]
    mod.HearModel = HearModel  # type: ignore[attr-defined]
    return mod
