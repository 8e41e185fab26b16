"""From a model name and a stimulus set to activations: in memory, or into a `FeatureStore`.

:func:`build_extractor` turns a name (``"wav2vec2"``, ``"cqt"``...), a Hugging Face directory, or
a musiclens checkpoint into an extractor.  :func:`extract_activations` prepares clips (downmix,
resample: each conversion recorded) and extracts, optionally in windows.
:func:`extract_to_store` does the same for a whole stimulus set, chunk by chunk, into a
resumable on-disk store (:mod:`musiclens.extract.store`).

This module imports without torch; extractors import it when they are built.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musiclens.audio import prepare
from musiclens.errors import ConfigError
from musiclens.fsutil import check_out
from musiclens.extract.base import EXTRACTORS, POOLINGS, Activations, Extractor, resolve_layers
from musiclens.extract.store import FeatureStore, StoreWriter, request_key
from musiclens.extract.windowing import extract_windowed
from musiclens.provenance import Timer, hash_array, hash_bytes

__all__ = ["build_extractor", "extract_activations", "extract_to_store", "extraction_request", "prepare_clips"]

logger = logging.getLogger(__name__)


def _is_extractor(obj: Any) -> bool:
    return callable(getattr(obj, "extract", None)) and hasattr(obj, "layer_names") and hasattr(obj, "sample_rate")


def build_extractor(
    model: str | os.PathLike[str] | Extractor,
    *,
    randomize: bool = False,
    seed: int = 0,
    device: str = "cpu",
    batch_size: int = 8,
    trust_remote_code: bool = False,
    **options: Any,
) -> Extractor:
    """An extractor from a registered name, a directory / checkpoint path, or an extractor.

    Parameters
    ----------
    model
        A name in :data:`~musiclens.extract.base.EXTRACTORS` (``musiclens models`` lists them),
        a Hugging Face model directory (``config.json`` + weights, MERT included), a musiclens
        checkpoint (``.safetensors`` + JSON config, or its directory), or an extractor (returned
        as is).
    randomize
        Same architecture with freshly initialised weights (the untrained control).
    seed
        Seed of the random initialisation.
    device
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    batch_size
        Clips per forward pass.
    trust_remote_code
        Allow code shipped in a checkpoint directory (or pickled in a ``.pt`` file) to run.
        Off by default; never needed for the models musiclens supports natively.
    **options
        Passed to the builder (e.g. ``config={...}`` for random tiny models).
    """
    if _is_extractor(model) and not isinstance(model, (str, os.PathLike)):
        if randomize:
            raise ConfigError("randomize=True needs a model name or path, not an already built extractor")
        return model  # type: ignore[return-value]
    import musiclens.extract  # noqa: F401  (registers the built-in extractors)

    common = {"randomize": randomize, "seed": seed, "device": device, "batch_size": batch_size,
              "trust_remote_code": trust_remote_code}
    spec = str(model)
    if spec in EXTRACTORS:
        return EXTRACTORS.get(spec)(**common, **options)
    path = Path(spec).expanduser()
    if path.exists():
        from musiclens.extract.checkpoint import is_musiclens_checkpoint

        if is_musiclens_checkpoint(path):
            return EXTRACTORS.get("checkpoint")(path=path, **common, **options)
        if path.is_dir() and (path / "config.json").is_file():
            return EXTRACTORS.get("hf")(path=path, **common, **options)
        raise ConfigError(
            f"{path} is neither a Hugging Face model directory (config.json + weights) nor a musiclens "
            "checkpoint (.safetensors with a JSON config)"
        )
    return EXTRACTORS.get(spec)  # raises RegistryError listing the valid names


#: Files whose bytes are a model's weights or architecture (hashed into a store's request).
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".h5", ".npz", ".json")


def weights_hash(path: Path) -> str:
    """SHA-256 over the weight and config files of a model file or directory (names and bytes).

    A weights file counts with its ``<name>.json`` beside it (a musiclens checkpoint's config).
    """
    from musiclens.provenance import hash_files

    path = Path(path)
    if path.is_file():
        beside = path.with_suffix(".json")
        return hash_files([path] + ([beside] if beside != path and beside.is_file() else []))
    return hash_files(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES), root=path)


def prepare_clips(
    audio: Sequence[np.ndarray],
    *,
    sample_rate: int,
    target_sr: int,
    stimulus_ids: Sequence[str],
    min_samples: int = 1,
) -> tuple[list[np.ndarray], Counter[str]]:
    """Validate, downmix and resample clips; ``(clips, {conversion: n_clips})``."""
    clips: list[np.ndarray] = []
    counts: Counter[str] = Counter()
    for clip, sid in zip(audio, stimulus_ids):
        conv: list[str] = []
        clips.append(prepare(np.asarray(clip), sample_rate=sample_rate, target_sr=target_sr, name=str(sid),
                             min_samples=min_samples, conversions=conv))
        counts.update(conv)
    return clips, counts


def extract_activations(
    model: str | os.PathLike[str] | Extractor,
    audio: Sequence[np.ndarray],
    *,
    sample_rate: int,
    layers: str | int | Sequence[str | int] | None = None,
    stimulus_ids: Sequence[str] | None = None,
    window_s: float | None = None,
    hop_s: float | None = None,
    **build_options: Any,
) -> Activations:
    """Activations of clips given at any rate, mono or ``[channels, samples]``.

    Conversions (downmix, resampling) are listed in ``result.extractor["conversions"]``.

    Parameters
    ----------
    model
        Extractor or anything :func:`build_extractor` accepts.
    audio
        Clips ``[shape=(n_samples,)]`` or ``[shape=(n_channels, n_samples)]``.
    sample_rate
        Rate of ``audio`` in Hz; clips are resampled to the extractor's rate.
    layers, stimulus_ids
        As in :meth:`Extractor.extract`.
    window_s, hop_s
        Extract in windows (see :mod:`musiclens.extract.windowing`).
    """
    extractor = build_extractor(model, **build_options)
    ids = [str(i) for i in (stimulus_ids if stimulus_ids is not None else range(len(audio)))]
    clips, counts = prepare_clips(audio, sample_rate=sample_rate, target_sr=extractor.sample_rate,
                                  stimulus_ids=ids, min_samples=int(getattr(extractor, "min_samples", 1)))
    if window_s is not None:
        acts = extract_windowed(extractor, clips, window_s=window_s, hop_s=hop_s, layers=layers, stimulus_ids=ids)
    else:
        acts = extractor.extract(clips, layers=layers, stimulus_ids=ids)
    acts.extractor = {**acts.extractor, "conversions": dict(counts)}
    return acts


def _load_stimuli(
    stimuli: Any, sample_rate: int | None, stimulus_ids: Sequence[str] | None,
) -> tuple[Sequence[np.ndarray], int, list[str], str]:
    from musiclens.stimuli.stimulus_set import StimulusSet

    if isinstance(stimuli, (str, os.PathLike)):
        stimuli = StimulusSet.load(stimuli)
    if isinstance(stimuli, StimulusSet):
        return stimuli.audio, stimuli.sample_rate, stimuli.ids, stimuli.content_hash()
    if sample_rate is None:
        raise ConfigError("raw audio clips need sample_rate=...; or pass a StimulusSet / its folder")
    clips = list(stimuli)
    ids = [str(i) for i in (stimulus_ids if stimulus_ids is not None else range(len(clips)))]
    if len(ids) != len(clips) or len(set(ids)) != len(ids):
        raise ConfigError("stimulus_ids must be unique, one per clip")
    digest = hash_bytes(str(sample_rate).encode(), json.dumps(ids).encode(),
                        *(hash_array(np.asarray(c, dtype=np.float32)).encode() for c in clips))
    return clips, int(sample_rate), ids, digest


def extract_to_store(
    model: str | os.PathLike[str] | Extractor,
    stimuli: Any,
    out: str | os.PathLike[str],
    *,
    layers: str | int | Sequence[str | int] | None = None,
    pooling: str = "mean",
    batch_size: int = 8,
    chunk_size: int = 64,
    window_s: float | None = None,
    hop_s: float | None = None,
    start: int | None = None,
    stop: int | None = None,
    randomize: bool = False,
    seed: int = 0,
    trust_remote_code: bool = False,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool = True,
    sample_rate: int | None = None,
    stimulus_ids: Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
    devices: int | str = 1,
) -> Path:
    """Extract a stimulus set into a resumable on-disk :class:`FeatureStore`.

    Parameters
    ----------
    model
        Name, directory, checkpoint or extractor (see :func:`build_extractor`).
    stimuli
        A :class:`~musiclens.stimuli.stimulus_set.StimulusSet`, its folder, or a sequence of
        clips (then ``sample_rate`` and optionally ``stimulus_ids`` are required / used).
    out
        Store folder; written as ``<out>.partial`` and renamed when complete.
    layers
        Layer selection (names, indices, ranges); default all.
    pooling
        ``"mean"`` (default) or another :data:`~musiclens.extract.base.POOLINGS` entry stores
        ``[n, dim]`` per layer; ``"none"`` stores every frame ``[n, frames, dim]``.
    batch_size
        Clips per forward pass.
    chunk_size
        Stimuli per committed chunk; peak memory is one chunk of activations.
    window_s, hop_s
        Extract long clips in windows (see :mod:`musiclens.extract.windowing`).
    start, stop
        Extract only rows ``start:stop`` (a shard); join shards with
        :func:`~musiclens.extract.store.merge_stores`.
    randomize, seed, trust_remote_code, device
        See :func:`build_extractor`.
    overwrite
        Replace a finished store at ``out`` made by a different request.
    progress
        Show a tqdm progress bar.
    options
        Extra builder options (e.g. ``{"config": {...}}``).
    devices
        ``1`` (default): this process extracts everything.  ``N > 1``: ``N`` local processes
        split the stimuli (a gloo process group; each writes a row-range shard, rank 0 merges
        them); ``"env"``: this process is one rank of a group a launcher started (``torchrun``,
        ``srun``, or ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT`` set by hand);
        ``"auto"``: ``"env"`` under such a launcher, else 1.  The merged store is byte-identical
        to a one-process one (see :mod:`musiclens.extract.distributed`).

    Returns
    -------
    Path
        ``out``.  When ``out`` is already a finished store of the same request, nothing is built
        or computed.
    """
    if pooling != "none" and pooling not in POOLINGS:
        raise ConfigError(f"unknown pooling {pooling!r}; choose 'none' or one of {', '.join(POOLINGS)}")
    kwargs = dict(layers=layers, pooling=pooling, batch_size=batch_size, chunk_size=chunk_size, window_s=window_s,
                  hop_s=hop_s, randomize=randomize, seed=seed, trust_remote_code=trust_remote_code, device=device,
                  overwrite=overwrite, progress=progress, sample_rate=sample_rate, stimulus_ids=stimulus_ids,
                  options=options)
    from musiclens.extract.distributed import resolve_devices

    sharded = start is not None or stop is not None
    mode = 1 if sharded and devices == "auto" else resolve_devices(devices)   # a shard of its own: one process
    if mode != 1:
        if start is not None or stop is not None:
            raise ConfigError("start/stop (a shard) and devices (several processes) do not combine; "
                              "give one or the other")
        from musiclens.extract.distributed import extract_distributed

        return extract_distributed(model, stimuli, out, devices=mode, **kwargs)
    return _extract_range(model, stimuli, out, start=start, stop=stop, **kwargs)


def extraction_request(
    model: Any, *, options: Mapping[str, Any] | None, randomize: bool, seed: int,
    layers: str | int | Sequence[str | int] | None, pooling: str, window_s: float | None, hop_s: float | None,
    lo: int, hi: int, set_hash: str, batch_size: int, chunk_size: int,
) -> dict[str, Any]:
    """The request that identifies an extraction of rows ``lo:hi`` (its :func:`request_key` is the store's key)."""
    model_spec: Any
    if _is_extractor(model) and not isinstance(model, (str, os.PathLike)):
        model_spec = model.info()  # type: ignore[union-attr]
    elif Path(str(model)).expanduser().exists():
        # the path and the content of its weights: a store is never reused after the weights change
        model_spec = {"path": str(Path(str(model)).expanduser().resolve()),
                      "weights_sha256": weights_hash(Path(str(model)).expanduser())}
    else:
        model_spec = str(model)
    if isinstance((options or {}).get("path"), str | os.PathLike) and Path(str(options["path"])).exists():
        model_spec = {"model": model_spec, "weights_sha256": weights_hash(Path(str(options["path"])))}
    return {
        "model": model_spec, "options": dict(options or {}), "randomize": randomize, "seed": seed,
        "layers": layers if layers is None or isinstance(layers, (str, int)) else list(layers),
        "pooling": pooling, "window_s": window_s, "hop_s": hop_s, "range": [lo, hi],
        "stimulus_set_hash": set_hash, "batch_size": batch_size, "chunk_size": chunk_size,
    }


def _extract_range(
    model: str | os.PathLike[str] | Extractor, stimuli: Any, out: str | os.PathLike[str], *,
    layers: str | int | Sequence[str | int] | None, pooling: str, batch_size: int, chunk_size: int,
    window_s: float | None, hop_s: float | None, start: int | None, stop: int | None, randomize: bool, seed: int,
    trust_remote_code: bool, device: str, overwrite: bool, progress: bool, sample_rate: int | None,
    stimulus_ids: Sequence[str] | None, options: Mapping[str, Any] | None,
) -> Path:
    """:func:`extract_to_store` of rows ``start:stop`` in this process."""
    check_out(out, "features")   # before any work: never into a folder musiclens did not make
    timer = Timer()
    audio, sr, ids, set_hash = _load_stimuli(stimuli, sample_rate, stimulus_ids)
    n_all = len(ids)
    lo = 0 if start is None else int(start)
    hi = n_all if stop is None else min(int(stop), n_all)
    if not 0 <= lo < hi:
        raise ConfigError(f"shard range start={start}, stop={stop} is empty for {n_all} stimuli")
    request = extraction_request(model, options=options, randomize=randomize, seed=seed, layers=layers,
                                 pooling=pooling, window_s=window_s, hop_s=hop_s, lo=lo, hi=hi, set_hash=set_hash,
                                 batch_size=batch_size, chunk_size=chunk_size)
    key = request_key(request)
    out = Path(out)
    if FeatureStore.is_complete(out, key=key):
        logger.info("%s is already a finished store of this request; nothing to do", out)
        return out
    with timer("build"):
        extractor = build_extractor(model, randomize=randomize, seed=seed, device=device, batch_size=batch_size,
                                    trust_remote_code=trust_remote_code, **dict(options or {}))
        names = resolve_layers(extractor.layer_names, layers)
    writer = StoreWriter(out, key=key, stimulus_ids=ids[lo:hi], chunk_size=chunk_size,
                         mode="full" if pooling == "none" else "pooled", overwrite=overwrite)
    min_samples = int(getattr(extractor, "min_samples", 1))
    pending = writer.pending()
    from tqdm.auto import tqdm

    done_rows = (hi - lo) - sum(writer.chunk_range(i)[1] - writer.chunk_range(i)[0] for i in pending)
    with tqdm(total=hi - lo, initial=done_rows, desc=f"extract {extractor.name}", unit="clip",
              disable=not progress, dynamic_ncols=True) as bar:
        for index in pending:
            a, b = writer.chunk_range(index)
            rows = range(lo + a, lo + b)
            chunk_ids = [ids[r] for r in rows]
            with timer("prepare"):
                clips, counts = prepare_clips([audio[r] for r in rows], sample_rate=sr,
                                              target_sr=extractor.sample_rate, stimulus_ids=chunk_ids,
                                              min_samples=min_samples)
            with timer("extract"):
                if window_s is not None:
                    acts = extract_windowed(extractor, clips, window_s=window_s, hop_s=hop_s,
                                            layers=names, stimulus_ids=chunk_ids)
                else:
                    acts = extractor.extract(clips, layers=names, stimulus_ids=chunk_ids)
            with timer("write"):
                writer.write_chunk(index, acts, pooling=None if pooling == "none" else pooling,
                                   conversions=counts)
            bar.update(len(chunk_ids))
    info = extractor.info()
    manifest = {
        "extractor": info, "weights_hash": info.get("weights_hash"), "stimulus_set_hash": set_hash,
        "pooling": None if pooling == "none" else pooling, "request": request, "range": [lo, hi],
        "shard_of": n_all, "sample_rate": extractor.sample_rate, "input_sample_rate": sr,
        "windowing": None if window_s is None else {"window_s": window_s, "hop_s": hop_s or window_s / 2},
        "timings": timer.seconds,
    }
    with timer("finalize"):
        writer.finalize(manifest)
    return out
