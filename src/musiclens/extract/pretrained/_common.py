"""Shared plumbing of the pretrained extractors: input checks, assembly, hashing, randomising."""

from __future__ import annotations

import abc

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from musiclens.audio import prepare
from musiclens.errors import AudioError, ConfigError, ExtractionError
from musiclens.extract.base import Activations, resolve_layers
from musiclens.extract.pretrained._imports import import_torch, package_version
from musiclens.provenance import hash_bytes

__all__ = [
    "prepare_clips",
    "assemble",
    "length_buckets",
    "state_dict_hash",
    "randomize_module",
    "FeatureHooks",
    "PretrainedExtractor",
    "run_batched",
    "run_equal_length",
    "info_head",
    "first_layer_frames",
    "layer_for_decode",
]

logger = logging.getLogger(__name__)


def prepare_clips(
    audio: Sequence[np.ndarray] | np.ndarray,
    *,
    stimulus_ids: Sequence[str] | None,
    sample_rate: int | None,
    target_sr: int,
    min_samples: int,
    extractor: str,
) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Validate, downmix and resample every clip for a network.

    Parameters
    ----------
    audio
        Clips: a sequence of ``[shape=(n_samples,)]`` (or ``(n_channels, n_samples)``) arrays, or a
        2-D array ``[shape=(n_clips, n_samples)]``.
    stimulus_ids
        One id per clip (default ``"0"``, ``"1"``...).
    sample_rate
        Rate of ``audio`` in Hz; ``None`` means it is already at ``target_sr``.
    target_sr
        The network's rate.
    min_samples
        Shortest clip the network accepts, at ``target_sr``.
    extractor
        Name used in error messages.

    Returns
    -------
    clips, ids, conversions
        Mono float32 clips at ``target_sr``, their ids, and the conversions applied (each once).
    """
    if isinstance(audio, np.ndarray) and audio.ndim == 1:
        raise AudioError(
            f"{extractor}: pass a list of clips (or a 2-D array [n_clips, n_samples]), not one 1-D clip; "
            "wrap it as [clip]"
        )
    clips_in = list(audio)
    if not clips_in:
        raise AudioError(f"{extractor}: no audio clips given")
    ids = [str(i) for i in range(len(clips_in))] if stimulus_ids is None else [str(s) for s in stimulus_ids]
    if len(ids) != len(clips_in):
        raise ConfigError(f"{extractor}: {len(clips_in)} clips but {len(ids)} stimulus ids")
    sr = target_sr if sample_rate is None else int(sample_rate)
    conversions: list[str] = []
    clips: list[np.ndarray] = []
    for clip, sid in zip(clips_in, ids):
        conv: list[str] = []
        out = prepare(np.asarray(clip), sample_rate=sr, target_sr=target_sr, name=f"{extractor} stimulus {sid!r}",
                      min_samples=min_samples, conversions=conv)
        for c in conv:
            if c not in conversions:
                conversions.append(c)
        clips.append(np.ascontiguousarray(out, dtype=np.float32))
    return clips, ids, conversions


def assemble(
    per_clip: Sequence[dict[str, np.ndarray]],
    *,
    layers: Sequence[str],
    ids: Sequence[str],
    valid_frames: Sequence[int],
    frame_times: Callable[[int], np.ndarray],
    info: dict[str, Any],
    conversions: Sequence[str],
) -> Activations:
    """Stack per-clip ``{layer: [n_frames_i, dim]}`` into :class:`Activations` (zero padding).

    ``frame_times(n)`` gives the times in seconds of the first ``n`` frames.
    """
    n_frames = max(int(next(iter(c.values())).shape[0]) for c in per_clip)
    out: dict[str, np.ndarray] = {}
    for name in layers:
        dim = per_clip[0][name].shape[1]
        arr = np.zeros((len(per_clip), n_frames, dim), dtype=np.float32)
        for i, c in enumerate(per_clip):
            a = c[name]
            if a.shape[1] != dim:
                raise ExtractionError(f"layer {name!r}: clip {ids[i]!r} has dim {a.shape[1]}, others {dim}")
            arr[i, : a.shape[0]] = a
        out[name] = arr
    meta = dict(info)
    if conversions:
        meta["conversions"] = list(conversions)
    return Activations(out, frame_times(n_frames), np.asarray(valid_frames, dtype=np.int64), list(ids), 0, meta)


def length_buckets(lengths: Sequence[int], *, max_batch: int) -> list[list[int]]:
    """Indices grouped by equal length (in first-appearance order), each group at most ``max_batch``.

    Used by networks that are not padding-invariant: clips are batched only with clips of the same
    length, so batched results equal one-at-a-time results.
    """
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(int(n), []).append(i)
    out: list[list[int]] = []
    for idx in groups.values():
        for start in range(0, len(idx), max(1, max_batch)):
            out.append(idx[start:start + max(1, max_batch)])
    return out


def check_layers(available: Sequence[str], layers: str | int | Sequence[str | int] | None) -> list[str]:
    """Resolve a layer selection (see :func:`resolve_layers`)."""
    return resolve_layers(available, layers)


def state_dict_hash(module: Any) -> str:
    """SHA-256 over a torch module's state dict (names, dtypes, shapes and bytes, sorted by name)."""
    chunks: list[bytes] = []
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        chunks += [name.encode(), str(t.dtype).encode(), str(tuple(t.shape)).encode(), t.numpy().tobytes()]
    return hash_bytes(*chunks)


def randomize_module(module: Any, *, seed: int) -> int:
    """Re-initialise every sub-module that has ``reset_parameters`` with a seeded generator.

    Weight-normalised / parametrised sub-modules are first made plain, so the re-initialisation
    reaches the stored tensors.  Returns the number of sub-modules re-initialised.
    """
    import torch
    from torch.nn.utils import parametrize

    count = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        for sub in module.modules():
            if not hasattr(sub, "reset_parameters"):
                continue
            if parametrize.is_parametrized(sub):
                for pname in list(sub.parametrizations.keys()):
                    parametrize.remove_parametrizations(sub, pname, leave_parametrized=True)
            sub.reset_parameters()
            count += 1
    if count == 0:
        raise ExtractionError("randomize: the network has no sub-module with reset_parameters()")
    return count


class FeatureHooks:
    """Forward hooks that keep (a copy of) chosen sub-modules' outputs.

    Parameters
    ----------
    modules
        ``{layer_name: torch.nn.Module}``.
    transform
        Optional ``{layer_name: fn(tensor) -> tensor}`` applied to the raw output when captured.
    """

    def __init__(self, modules: dict[str, Any], *, transform: dict[str, Callable[[Any], Any]] | None = None) -> None:
        self.modules = modules
        self.transform = transform or {}
        self.outputs: dict[str, Any] = {}
        self._handles: list[Any] = []

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            t = output[0] if isinstance(output, (tuple, list)) else output
            t = t.detach().clone()
            fn = self.transform.get(name)
            self.outputs[name] = fn(t) if fn is not None else t

        return hook

    def __enter__(self) -> FeatureHooks:
        self.outputs = {}
        for name, mod in self.modules.items():
            self._handles.append(mod.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def iter_progress(items: Iterable[Any], *, total: int, desc: str, enabled: bool) -> Iterable[Any]:
    """``tqdm`` over ``items`` when ``enabled`` (and tqdm is installed)."""
    if not enabled:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return items
    return tqdm(items, total=total, desc=desc, leave=False)


def run_batched(
    inputs: Any,
    names: Sequence[str],
    forward: Callable[[Any, Sequence[str]], dict[str, np.ndarray]],
    *,
    batch_size: int,
    desc: str,
    progress: bool,
) -> dict[str, np.ndarray]:
    """``forward(inputs[s:s + batch_size], names)`` over consecutive batches, joined along axis 0."""
    parts: list[dict[str, np.ndarray]] = []
    starts = range(0, inputs.shape[0], batch_size)
    for s in iter_progress(starts, total=len(starts), desc=desc, enabled=progress):
        parts.append(forward(inputs[s:s + batch_size], names))
    return {n: np.concatenate([p[n] for p in parts]) for n in names}


def run_units(
    units: Sequence[Any],
    names: Sequence[str],
    forward: Callable[[Any, Sequence[str]], dict[str, np.ndarray]],
    *,
    batch_size: int,
    desc: str,
    progress: bool,
    join: Callable[[list[Any]], Any] = np.concatenate,
) -> tuple[list[dict[str, np.ndarray]], list[int]]:
    """Independent units (frames, windows, patches) of every clip, batched across clips.

    ``units[i]`` holds clip ``i``'s units along axis 0; they are joined (``join``: ``np.concatenate``
    or ``torch.cat``), run through :func:`run_batched` and split back: returns per-clip
    ``{layer: [n_units_i, ...]}`` and the unit counts.  Exact because units never see each other.
    """
    counts = [int(u.shape[0]) for u in units]
    joined = run_batched(join(list(units)), names, forward, batch_size=batch_size, desc=desc, progress=progress)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    per_clip = [{n: joined[n][a:b] for n in names} for a, b in zip(bounds[:-1], bounds[1:])]
    return per_clip, counts


def run_equal_length(
    clips: Sequence[np.ndarray],
    names: Sequence[str],
    forward: Callable[[Any, Sequence[str]], dict[str, np.ndarray]],
    *,
    batch_size: int,
    device: str,
    desc: str,
    progress: bool,
) -> list[dict[str, np.ndarray]]:
    """Per-clip ``{layer: [n_frames_i, dim]}``, batching (as torch tensors) only clips of equal length."""
    torch = import_torch()
    per_clip: list[dict[str, np.ndarray]] = [{} for _ in clips]
    buckets = length_buckets([c.shape[0] for c in clips], max_batch=batch_size)
    for idx in iter_progress(buckets, total=len(buckets), desc=desc, enabled=progress):
        x = torch.from_numpy(np.stack([clips[i] for i in idx])).to(device)
        res = forward(x, names)
        for k, i in enumerate(idx):
            per_clip[i] = {n: res[n][k] for n in names}
    return per_clip


def first_layer_frames(per_clip: Sequence[dict[str, np.ndarray]]) -> list[int]:
    """Frames of each clip's first layer."""
    return [next(iter(p.values())).shape[0] for p in per_clip]


def info_head(name: str, family: str, package: str) -> dict[str, Any]:
    """The keys every pretrained extractor's ``info()`` starts with."""
    return {"name": name, "family": family, "package": package, "package_version": package_version(package)}


def layer_for_decode(activations: Activations, layer: str) -> np.ndarray:
    """``activations.layers[layer]``, or a :class:`ConfigError` saying how to extract it."""
    if layer not in activations.layers:
        raise ConfigError(f"decode_hz needs the {layer!r} layer; extract it with layers=[{layer!r}]")
    return activations.layers[layer]


class PretrainedExtractor(abc.ABC):
    """Base of the pretrained extractors: :meth:`extract` = resolve layers → prepare clips →
    :meth:`_per_clip` (the network) → :func:`assemble`.

    Subclasses set ``name``, ``sample_rate``, ``layer_names`` (and ``min_samples`` if not 1) and
    define ``_per_clip``, ``frame_times`` and ``info``.
    """

    name: str
    sample_rate: int
    layer_names: list[str]
    min_samples: int = 1

    @abc.abstractmethod
    def _per_clip(
        self, clips: list[np.ndarray], ids: list[str], names: list[str]
    ) -> tuple[list[dict[str, np.ndarray]], list[int]]:
        """Per-clip ``{layer: [n_frames_i, dim]}`` and each clip's valid frame count."""

    @abc.abstractmethod
    def frame_times(self, n_frames: int) -> np.ndarray:
        """Centre time in seconds of each of ``n_frames`` frames."""

    @abc.abstractmethod
    def info(self) -> dict[str, Any]:
        """JSON-serialisable description for manifests."""

    def extract(
        self,
        audio: Sequence[np.ndarray] | np.ndarray,
        *,
        layers: str | int | Sequence[str | int] | None = None,
        stimulus_ids: Sequence[str] | None = None,
        sample_rate: int | None = None,
    ) -> Activations:
        """Activations of ``audio``.

        Parameters
        ----------
        audio
            Clips ``[shape=(n_samples,)]`` at ``sample_rate`` (default: the network's rate,
            :attr:`sample_rate`; other rates are resampled and the conversion recorded).
        layers
            Layer selection (names, indices, ranges; default all).
        stimulus_ids
            One id per clip.
        sample_rate
            Rate of ``audio`` in Hz.

        Returns
        -------
        Activations
            Each layer ``[shape=(n_clips, n_frames, dim)]`` at :meth:`frame_times` (see the
            module's docstring for the frame convention).
        """
        names = check_layers(self.layer_names, layers)
        clips, ids, conversions = prepare_clips(audio, stimulus_ids=stimulus_ids, sample_rate=sample_rate,
                                                target_sr=self.sample_rate, min_samples=self.min_samples,
                                                extractor=self.name)
        per_clip, valid = self._per_clip(clips, ids, names)
        return assemble(per_clip, layers=names, ids=ids, valid_frames=valid, frame_times=self.frame_times,
                        info=self.info(), conversions=conversions)
