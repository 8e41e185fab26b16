"""`FeatureStore`: per-layer activations on disk, written in chunks, resumable, finished atomically.

Layout of a finished store ``<out>/``::

    manifest.json              extractor, weights hash, stimulus-set hash, pooling, versions, timings
    stimulus_ids.json          ids in row order
    layers/<layer>.npy         pooled [n_stimuli, dim] or full [n_stimuli, n_frames, dim], float32
    layers/<layer>.valid.npy   [n_stimuli] valid sequence frames (int64)
    layers/<layer>.times.npy   [n_frames] frame-centre times in s, NaN for special tokens (full only)

While it is being written everything lives in ``<out>.partial/``: each chunk (a contiguous range
of stimuli) is written to a temporary folder, renamed to ``chunks/c<index>`` and then recorded in
``progress.json`` (written atomically).  After a kill, the next run with the same request trusts
exactly the chunks named in ``progress.json`` and recomputes the others, so the final arrays are
byte-identical to an uninterrupted run.  :meth:`StoreWriter.finalize` copies the chunks into one
memory-mapped ``.npy`` per layer (peak memory: one chunk), writes the manifest, and renames
``<out>.partial`` to ``<out>``: a store exists complete or not at all.

This module imports without torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musiclens.errors import ConfigError, StoreError
from musiclens.extract.base import POOLINGS, Activations
from musiclens.fsutil import atomic_write_json, check_out, mark_output, remove_dead_temporaries
from musiclens.provenance import environment

__all__ = ["FeatureStore", "StoreWriter", "load_pooled", "merge_stores", "request_key", "partial_path"]

logger = logging.getLogger(__name__)

FORMAT = "musiclens.FeatureStore"
FORMAT_VERSION = 1
MODES = ("pooled", "full")


def request_key(request: Mapping[str, Any]) -> str:
    """SHA-256 of a request (JSON with sorted keys): what identifies an extraction."""
    text = json.dumps(request, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def partial_path(out: str | os.PathLike[str]) -> Path:
    """The working folder of an unfinished store: ``<out>.partial``."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def _check_layer_name(name: str) -> str:
    if not name or "/" in name or "\\" in name or name.startswith(".") or not re.fullmatch(r"[\w.\-+:]+", name):
        raise ConfigError(f"layer name {name!r} cannot be used as a file name; rename the layer")
    return name


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FeatureStore:
    """A finished store, opened for reading (arrays memory-mapped).

    Parameters
    ----------
    path
        The store folder (``<out>``).

    Raises
    ------
    StoreError
        The folder is missing, unfinished (only ``<out>.partial`` exists) or corrupt.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        mpath = self.path / "manifest.json"
        if not mpath.is_file():
            hint = (
                f"; {partial_path(self.path)} exists, so the extraction was interrupted: run the same "
                "`musiclens extract` command again to resume"
                if partial_path(self.path).exists() else "; run `musiclens extract` first"
            )
            raise StoreError(f"{self.path} is not a finished feature store (no manifest.json){hint}")
        try:
            self.manifest: dict[str, Any] = json.loads(mpath.read_text())
        except json.JSONDecodeError as err:
            raise StoreError(f"{mpath} is not valid JSON ({err}); extract again with --overwrite") from err
        if self.manifest.get("format") != FORMAT or not self.manifest.get("complete"):
            raise StoreError(f"{self.path} is not a complete musiclens feature store")
        self.stimulus_ids: list[str] = json.loads((self.path / "stimulus_ids.json").read_text())

    @staticmethod
    def is_complete(path: str | os.PathLike[str], *, key: str | None = None) -> bool:
        """True if ``path`` is a finished store (made by the request ``key``, when given)."""
        mpath = Path(path) / "manifest.json"
        if not mpath.is_file():
            return False
        try:
            manifest = json.loads(mpath.read_text())
        except (OSError, json.JSONDecodeError):
            return False
        ok = manifest.get("format") == FORMAT and bool(manifest.get("complete"))
        return ok and (key is None or manifest.get("key") == key)

    @property
    def layer_names(self) -> list[str]:
        return list(self.manifest["layers"])

    @property
    def mode(self) -> str:
        """``"pooled"`` ([n, dim] per layer) or ``"full"`` ([n, frames, dim])."""
        return str(self.manifest["mode"])

    @property
    def pooling(self) -> str | None:
        return self.manifest.get("pooling")

    @property
    def n_special(self) -> int:
        return int(self.manifest.get("n_special", 0))

    def __len__(self) -> int:
        return len(self.stimulus_ids)

    def _file(self, layer: str, suffix: str) -> Path:
        if layer not in self.layer_names:
            raise ConfigError(f"store {self.path} has no layer {layer!r}; layers are {', '.join(self.layer_names)}")
        return self.path / "layers" / f"{layer}{suffix}"

    def layer(self, name: str, *, mmap: bool = True) -> np.ndarray:
        """One layer's array (memory-mapped read-only unless ``mmap=False``)."""
        return np.load(self._file(name, ".npy"), mmap_mode="r" if mmap else None)

    def valid_frames(self, name: str) -> np.ndarray:
        """``[shape=(n_stimuli,)]`` valid sequence frames of one layer."""
        return np.load(self._file(name, ".valid.npy"))

    def frame_times(self, name: str) -> np.ndarray:
        """``[shape=(n_frames,)]`` frame-centre times of one layer (full stores only)."""
        if self.mode != "full":
            raise StoreError(f"store {self.path} holds pooled features; frame times exist only with pooling='none'")
        return np.load(self._file(name, ".times.npy"))

    def pooled(self, *, pooling: str = "mean", layers: Sequence[str] | None = None,
               chunk_size: int = 256) -> dict[str, np.ndarray]:
        """``{layer: [shape=(n_stimuli, dim)]}`` float32.

        A pooled store returns its arrays when ``pooling`` is the pooling it was written with; a
        full store is pooled on the fly, ``chunk_size`` stimuli at a time.
        """
        names = list(layers) if layers is not None else self.layer_names
        out: dict[str, np.ndarray] = {}
        if self.mode == "pooled":
            if pooling != self.pooling:
                raise StoreError(
                    f"store {self.path} was written with pooling={self.pooling!r}; pooling={pooling!r} "
                    "needs a store extracted with --pooling none (or that pooling)"
                )
            for name in names:
                out[name] = np.array(self.layer(name), dtype=np.float32)
            return out
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        for name in names:
            arr = self.layer(name)
            valid = self.valid_frames(name)
            times = self.frame_times(name)
            parts = []
            for lo in range(0, len(self), chunk_size):
                hi = min(lo + chunk_size, len(self))
                act = Activations({name: np.asarray(arr[lo:hi])}, times, valid[lo:hi],
                                  self.stimulus_ids[lo:hi], self.n_special)
                parts.append(act.pool(pooling)[name])
            out[name] = np.concatenate(parts, axis=0)
        return out


def load_pooled(path: str | os.PathLike[str], *, pooling: str = "mean") -> tuple[dict[str, np.ndarray], list[str]]:
    """Pooled features of a finished store: ``({layer: [shape=(n_stimuli, dim)]}, stimulus_ids)``.

    Parameters
    ----------
    path
        A store written by :func:`musiclens.extract.extract_to_store`.
    pooling
        Pooling over frames; must match a pooled store's own, any for a full store.
    """
    store = FeatureStore(path)
    return store.pooled(pooling=pooling), list(store.stimulus_ids)


class StoreWriter:
    """Writes a store chunk by chunk into ``<out>.partial`` and finishes it by a rename.

    Parameters
    ----------
    out
        Final store folder.
    key
        Hash of the request (:func:`request_key`); a partial store made by another request is
        never resumed.
    stimulus_ids
        Ids of the stimuli this store holds, in row order.
    chunk_size
        Stimuli per chunk (peak memory is one chunk of activations).
    mode
        ``"pooled"`` or ``"full"``.
    overwrite
        Replace a finished store at ``out`` made by another request.
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        *,
        key: str,
        stimulus_ids: Sequence[str],
        chunk_size: int,
        mode: str,
        overwrite: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"store mode must be one of {MODES}, got {mode!r}")
        if chunk_size < 1:
            raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
        self.out = Path(out)
        self.key = key
        self.ids = [str(i) for i in stimulus_ids]
        self.chunk_size = int(chunk_size)
        self.mode = mode
        self.overwrite = overwrite
        self.work = partial_path(self.out)
        self.n_chunks = (len(self.ids) + self.chunk_size - 1) // self.chunk_size
        check_out(self.out, "features")      # a foreign folder is never written into or replaced
        check_out(self.work, "features")     # nor one that merely shares the working folder's name
        if self.out.exists() and not overwrite:
            raise StoreError(
                f"{self.out} already exists and was made by a different request (model, stimuli, layers, "
                "pooling or options differ); choose another --out or pass --overwrite"
            )
        self._open()

    def _open(self) -> None:
        progress = self.work / "progress.json"
        # a process killed inside an atomic write leaves its temporary beside the target: never
        # carry it into the finished store
        remove_dead_temporaries(self.work)
        remove_dead_temporaries(self.work / "chunks")
        if self.work.exists():
            record: dict[str, Any] | None = None
            if progress.is_file():
                try:
                    record = json.loads(progress.read_text())
                except json.JSONDecodeError:
                    record = None
            if record is None or record.get("key") != self.key:
                logger.warning("discarding %s: it was started by a different request", self.work)
                shutil.rmtree(self.work)
        if not self.work.exists():
            (self.work / "chunks").mkdir(parents=True)
            mark_output(self.work, "features")
            self.done: set[int] = set()
            self._save_progress()
        else:
            self.done = set(int(c) for c in json.loads(progress.read_text())["chunks"])
            for entry in (self.work / "chunks").iterdir():
                m = re.fullmatch(r"c(\d+)", entry.name)
                if m is None or int(m.group(1)) not in self.done:
                    shutil.rmtree(entry, ignore_errors=True)
            if self.done:
                logger.info("resuming %s: %d of %d chunks already done", self.out, len(self.done), self.n_chunks)

    def _save_progress(self) -> None:
        atomic_write_json(self.work / "progress.json", {
            "key": self.key, "chunks": sorted(self.done), "n_chunks": self.n_chunks,
            "chunk_size": self.chunk_size, "n_stimuli": len(self.ids),
        })

    def chunk_range(self, index: int) -> tuple[int, int]:
        """``(start, stop)`` rows of chunk ``index``."""
        lo = index * self.chunk_size
        return lo, min(lo + self.chunk_size, len(self.ids))

    def pending(self) -> list[int]:
        """Chunk indices not committed yet, in order."""
        return [i for i in range(self.n_chunks) if i not in self.done]

    def write_chunk(
        self, index: int, activations: Activations, *, pooling: str | None,
        conversions: Mapping[str, int] | None = None,
    ) -> None:
        """Commit chunk ``index`` (its :meth:`chunk_range` rows, in order) atomically.

        In ``"pooled"`` mode ``pooling`` is applied here; in ``"full"`` mode every frame is kept.
        ``conversions`` (``{description: n_clips}``) is kept with the chunk and summed into the
        manifest, so a resumed run still records what was done to every clip.
        """
        lo, hi = self.chunk_range(index)
        if activations.stimulus_ids != self.ids[lo:hi]:
            raise StoreError(f"chunk {index} holds stimuli {activations.stimulus_ids[:3]}..., expected rows {lo}:{hi}")
        tmp = self.work / "chunks" / f".c{index:06d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        pooled = activations.pool(pooling) if self.mode == "pooled" else None
        for name in activations.layer_names:
            _check_layer_name(name)
            times, valid = activations.frames_of(name)
            values = pooled[name] if pooled is not None else activations.layers[name]
            files = {f"{name}.npy": np.ascontiguousarray(values, dtype=np.float32),
                     f"{name}.valid.npy": np.asarray(valid, dtype=np.int64)}
            if self.mode == "full":
                files[f"{name}.times.npy"] = np.asarray(times, dtype=np.float64)
            for fname, arr in files.items():
                with open(tmp / fname, "wb") as fh:
                    np.save(fh, arr, allow_pickle=False)
                    fh.flush()
                    os.fsync(fh.fileno())
        (tmp / "meta.json").write_text(json.dumps({
            "layers": activations.layer_names, "n_special": activations.n_special,
            "extractor": activations.extractor, "conversions": dict(conversions or {}),
        }, sort_keys=True, default=str))
        os.replace(tmp, self.work / "chunks" / f"c{index:06d}")
        self.done.add(index)
        self._save_progress()

    def finalize(self, manifest: Mapping[str, Any]) -> Path:
        """Join the chunks into one array per layer, write the manifest, rename into place."""
        missing = self.pending()
        if missing:
            raise StoreError(f"cannot finish {self.out}: chunks {missing[:5]} were never written")
        chunk_dirs = [self.work / "chunks" / f"c{i:06d}" for i in range(self.n_chunks)]
        meta = json.loads((chunk_dirs[0] / "meta.json").read_text())
        layer_names: list[str] = meta["layers"]
        conversions: dict[str, int] = {}
        for d in chunk_dirs:
            for desc, count in json.loads((d / "meta.json").read_text()).get("conversions", {}).items():
                conversions[desc] = conversions.get(desc, 0) + int(count)
        (self.work / "layers").mkdir(exist_ok=True)
        shapes: dict[str, list[int]] = {}
        for name in layer_names:
            parts = [np.load(d / f"{name}.npy", mmap_mode="r") for d in chunk_dirs]
            shape = _joined_shape(name, parts, self.mode)
            target = np.lib.format.open_memmap(self.work / "layers" / f"{name}.npy", mode="w+",
                                               dtype=np.float32, shape=shape)
            row = 0
            for p in parts:
                if self.mode == "full":
                    target[row:row + p.shape[0], :p.shape[1]] = p
                    target[row:row + p.shape[0], p.shape[1]:] = 0.0
                else:
                    target[row:row + p.shape[0]] = p
                row += p.shape[0]
            target.flush()
            del target
            _fsync_file(self.work / "layers" / f"{name}.npy")
            valid = np.concatenate([np.load(d / f"{name}.valid.npy") for d in chunk_dirs])
            np.save(self.work / "layers" / f"{name}.valid.npy", valid, allow_pickle=False)
            if self.mode == "full":
                times = max((np.load(d / f"{name}.times.npy") for d in chunk_dirs), key=len)
                np.save(self.work / "layers" / f"{name}.times.npy", times, allow_pickle=False)
            shapes[name] = list(shape)
        (self.work / "stimulus_ids.json").write_text(json.dumps(self.ids) + "\n")
        full_manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "complete": True, "key": self.key,
            "mode": self.mode, "layers": layer_names, "layer_shapes": shapes, "n_stimuli": len(self.ids),
            "n_special": int(meta["n_special"]), "chunk_size": self.chunk_size,
            "conversions": conversions, "environment": environment(), **dict(manifest),
        }
        atomic_write_json(self.work / "manifest.json", full_manifest)
        shutil.rmtree(self.work / "chunks")
        (self.work / "progress.json").unlink()
        _replace_dir(self.work, self.out)
        logger.info("feature store finished: %s", self.out)
        return self.out


def _joined_shape(name: str, parts: Sequence[np.ndarray], mode: str) -> tuple[int, ...]:
    dims = {p.shape[-1] for p in parts}
    if len(dims) != 1:
        raise StoreError(f"layer {name!r} has different widths {sorted(dims)} in different chunks")
    n = sum(p.shape[0] for p in parts)
    if mode == "full":
        return (n, max(p.shape[1] for p in parts), dims.pop())
    return (n, dims.pop())


def _replace_dir(src: Path, dst: Path) -> None:
    if dst.exists():
        trash = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, trash)
        os.replace(src, dst)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(src, dst)


def _short(value: Any, limit: int = 80) -> str:
    """A value for an error message, cut to ``limit`` characters."""
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def merge_stores(
    shards: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    chunk_size: int = 256,
    manifest: Mapping[str, Any] | None = None,
) -> Path:
    """Join shard stores (contiguous stimulus ranges of one request) into one store.

    Parameters
    ----------
    shards
        Finished stores written with ``start``/``stop`` ranges that tile ``0..n_stimuli``.
    out
        The merged store.  Its arrays equal a single-process extraction row for row, and byte
        for byte when every shard boundary is a multiple of the extraction's ``chunk_size``
        (then every batch is the same).
    overwrite
        Replace an existing ``out``.
    chunk_size
        Rows copied at a time.
    manifest
        Entries that replace those of the merged manifest (a distributed extraction gives the
        merged store the key and request of the one-process extraction it equals).
    """
    stores = sorted((FeatureStore(s) for s in shards), key=lambda s: s.manifest["range"][0])
    if not stores:
        raise StoreError("no shard stores to merge")
    first = stores[0].manifest

    def _request(m: dict) -> dict:   # the request without the shard's own range
        return {k: v for k, v in (m.get("request") or {}).items() if k != "range"}

    def _extractor(m: dict) -> Any:
        return (m.get("extractor") or {}).get("name")

    checks = {"stimulus_set_hash": lambda m: m.get("stimulus_set_hash"), "layers": lambda m: m.get("layers"),
              "mode": lambda m: m.get("mode"), "pooling": lambda m: m.get("pooling"),
              "shard_of": lambda m: m.get("shard_of"), "extractor": _extractor,
              "weights_hash": lambda m: m.get("weights_hash"), "request": _request}

    def _differences(m: dict) -> list[str]:   # "field" or "request.<key>": the first shard's value vs this one's
        out = []
        for k, get in checks.items():
            mine, theirs = get(m), get(first)
            if mine == theirs:
                continue
            if k == "request":
                out += [f"request.{r}: {_short(theirs.get(r))} vs {_short(mine.get(r))}"
                        for r in sorted(set(mine) | set(theirs)) if mine.get(r) != theirs.get(r)]
            else:
                out.append(f"{k}: {_short(theirs)} vs {_short(mine)}")
        return out

    for st in stores[1:]:
        diff = _differences(st.manifest)
        if diff:
            raise StoreError(f"shard {st.path} differs from shard {stores[0].path} in {'; '.join(diff)} (the first "
                             f"value is {stores[0].path.name}'s, the second {st.path.name}'s): shards "
                             "must come from one request (same model and weights, stimuli, layers, pooling and "
                             "options); extract the odd shard again with the others' settings")
    expected = 0
    for st in stores:
        lo, hi = st.manifest["range"]
        if lo != expected:
            raise StoreError(f"shards do not tile the stimuli: {st.path} starts at {lo}, expected {expected}")
        expected = hi
    total = int(first["shard_of"])
    if expected != total:
        raise StoreError(f"shards cover stimuli 0..{expected} of {total}; extract the missing range first")
    out = Path(out)
    work = partial_path(out)
    check_out(out, "features")
    check_out(work, "features")
    if out.exists() and not overwrite:
        raise StoreError(f"{out} already exists; choose another path or pass overwrite=True (--overwrite)")
    shutil.rmtree(work, ignore_errors=True)
    (work / "layers").mkdir(parents=True)
    mark_output(work, "features")
    ids = [i for st in stores for i in st.stimulus_ids]
    shapes: dict[str, list[int]] = {}
    for name in stores[0].layer_names:
        arrays = [st.layer(name) for st in stores]
        shape = _joined_shape(name, arrays, stores[0].mode)
        target = np.lib.format.open_memmap(work / "layers" / f"{name}.npy", mode="w+", dtype=np.float32, shape=shape)
        row = 0
        for a in arrays:
            for lo in range(0, a.shape[0], chunk_size):
                block = np.asarray(a[lo:lo + chunk_size])
                if block.ndim == 3:
                    target[row + lo:row + lo + block.shape[0], :block.shape[1]] = block
                    target[row + lo:row + lo + block.shape[0], block.shape[1]:] = 0.0
                else:
                    target[row + lo:row + lo + block.shape[0]] = block
            row += a.shape[0]
        target.flush()
        del target
        np.save(work / "layers" / f"{name}.valid.npy", np.concatenate([st.valid_frames(name) for st in stores]))
        if stores[0].mode == "full":
            times = max((st.frame_times(name) for st in stores), key=len)
            np.save(work / "layers" / f"{name}.times.npy", times)
        shapes[name] = list(shape)
    (work / "stimulus_ids.json").write_text(json.dumps(ids) + "\n")
    merged = dict(first)
    merged.update({
        "layer_shapes": shapes, "n_stimuli": len(ids), "range": [0, total],
        "merged_from": [str(st.path) for st in stores],
        "key": request_key({"merged": [st.manifest["key"] for st in stores]}),
        "timings": {"shards": [st.manifest.get("timings", {}) for st in stores]},
    })
    merged.update(dict(manifest or {}))
    atomic_write_json(work / "manifest.json", merged)
    _replace_dir(work, out)
    return out
