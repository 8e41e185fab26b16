"""Features of a benchmark dataset: extracted once per item into a resumable `FeatureStore`.

MARBLE's constrained protocol (PAPERS.md §4.3): the backbone is frozen, every layer's activations
are averaged over time, and long audio is cut into sliding windows whose features are averaged.
Here audio is decoded lazily, chunk by chunk (a dataset never sits in memory); items longer than
the dataset's window are extracted with :func:`musiclens.extract.windowing.extract_windowed` in
non-overlapping windows (``hop = window``, as MARBLE), and the mean over all stitched frames is
stored, which is the frame-weighted mean of the window means.  A tail shorter than
:data:`MIN_TAIL_S` after the last full window is dropped (GTZAN's 30.01 s clips would otherwise
give a 10 ms window that convolutional front ends cannot take); the manifest records it.

The store (``<run>/features/<model>/<dataset>/``) is keyed by the model (name, or path and the
SHA-256 of its weights), its options, the layers, the window and the content hash of the item
table, so features are shared by all tasks of a dataset and never reused after any of these
change.  Chunks are committed atomically; a killed extraction resumes at the first missing chunk
(:class:`~musiclens.extract.store.StoreWriter`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from musiclens.benchmark.dataset import BenchmarkDataset, dataset_hash
from musiclens.errors import DatasetError
from musiclens.provenance import Timer

__all__ = ["load_item", "extract_dataset", "MIN_TAIL_S"]

logger = logging.getLogger(__name__)

#: Tails shorter than this after the last full window are dropped (s).
MIN_TAIL_S = 1.0


def load_item(path: str | Path, *, offset_s: float = 0.0, duration_s: float | None = None) -> tuple[np.ndarray, int]:
    """``(samples [shape=(n_channels, n_samples)] float32, sample_rate)`` of one item (a file or a segment)."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as fh:
            sr = int(fh.samplerate)
            start = int(round(float(offset_s or 0.0) * sr))
            if start:
                fh.seek(start)
            frames = -1 if duration_s is None or not np.isfinite(duration_s) else int(round(float(duration_s) * sr))
            data = fh.read(frames, dtype="float32", always_2d=True)
    except Exception as err:   # noqa: BLE001 - any decoder error names the file
        raise DatasetError(f"cannot decode {path} ({err}); restore the file, or remove it and rerun with --skip-bad")\
            from err
    if data.shape[0] == 0:
        raise DatasetError(f"{path} has no audio at offset {offset_s} s; restore the file or rerun with --skip-bad")
    return np.ascontiguousarray(data.T), sr


def _trim_tail(clip: np.ndarray, *, sr: int, window_s: float | None) -> tuple[np.ndarray, bool]:
    if window_s is None:
        return clip, False
    w = int(round(window_s * sr))
    n = clip.shape[-1]
    rest = n % w
    if n > w and 0 < rest < MIN_TAIL_S * sr:
        return clip[..., : n - rest], True
    return clip, False


def extract_dataset(
    model: Any,
    ds: BenchmarkDataset,
    out: str | Path,
    *,
    layers: str | int | Sequence[str | int] | None = None,
    batch_size: int = 8,
    chunk_size: int = 32,
    device: str = "cpu",
    randomize: bool = False,
    seed: int = 0,
    trust_remote_code: bool = False,
    options: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> Path:
    """Mean-pooled features of every item of ``ds``, one row per item, in a finished store at ``out``.

    Parameters
    ----------
    model
        Anything :func:`~musiclens.extract.runner.build_extractor` accepts.
    ds
        The dataset (its item table gives the rows, in order).
    out
        Store folder (inside a benchmark run folder).
    layers
        Layer selection; default all.
    batch_size
        Items per forward pass (windows of one item may add to a batch).
    chunk_size
        Items per committed chunk.
    device, randomize, seed, trust_remote_code, options
        See :func:`~musiclens.extract.runner.build_extractor`.

    Returns
    -------
    Path
        ``out``; nothing is computed when it already holds a finished store of this request.
    """
    from tqdm.auto import tqdm

    from musiclens.audio import prepare
    from musiclens.extract.base import Activations, resolve_layers
    from musiclens.extract.runner import build_extractor, extraction_request
    from musiclens.extract.store import FeatureStore, StoreWriter, request_key
    from musiclens.extract.windowing import extract_windowed

    timer = Timer()
    out = Path(out)
    items = ds.items
    ids = items["item_id"].astype(str).tolist()
    set_hash = dataset_hash(ds)["items_sha256"]
    request = extraction_request(model, options=options, randomize=randomize, seed=seed, layers=layers,
                                 pooling="mean", window_s=ds.window_s, hop_s=ds.window_s, lo=0, hi=len(ids),
                                 set_hash=set_hash, batch_size=batch_size, chunk_size=chunk_size)
    request["benchmark"] = {"dataset": ds.name, "min_tail_s": MIN_TAIL_S, "reduction": "mean over time"}
    key = request_key(request)
    if FeatureStore.is_complete(out, key=key):
        logger.info("%s: features already extracted in %s", ds.name, out)
        return out
    with timer("build"):
        extractor = build_extractor(model, randomize=randomize, seed=seed, device=device, batch_size=batch_size,
                                    trust_remote_code=trust_remote_code, **dict(options or {}))
        names = resolve_layers(extractor.layer_names, layers)
    writer = StoreWriter(out, key=key, stimulus_ids=ids, chunk_size=chunk_size, mode="pooled", overwrite=True)
    min_samples = int(getattr(extractor, "min_samples", 1))
    paths = items["path"].tolist()
    offsets = items["offset_s"].astype(float).tolist()
    durations = items["duration_s"].astype(float).tolist()
    trimmed = 0
    info: dict[str, Any] = {}
    pending = writer.pending()
    done_rows = len(ids) - sum(writer.chunk_range(i)[1] - writer.chunk_range(i)[0] for i in pending)
    with tqdm(total=len(ids), initial=done_rows, desc=f"extract {ds.name}", unit="item", disable=not progress,
              dynamic_ncols=True) as bar:
        for index in pending:
            lo, hi = writer.chunk_range(index)
            pooled: dict[str, list[np.ndarray]] = {n: [] for n in names}
            counts: dict[str, int] = {}
            for b in range(lo, hi, batch_size):
                rows = range(b, min(b + batch_size, hi))
                clips = []
                with timer("load"):
                    for r in rows:
                        raw, sr = load_item(paths[r], offset_s=offsets[r], duration_s=durations[r])
                        conv: list[str] = []
                        clip = prepare(raw, sample_rate=sr, target_sr=extractor.sample_rate, name=ids[r],
                                       min_samples=min_samples, conversions=conv)
                        clip, cut = _trim_tail(clip, sr=extractor.sample_rate, window_s=ds.window_s)
                        trimmed += int(cut)
                        for c in conv:
                            counts[c] = counts.get(c, 0) + 1
                        clips.append(clip)
                batch_ids = [ids[r] for r in rows]
                with timer("extract"):
                    long = ds.window_s is not None and max(c.shape[-1] for c in clips) > ds.window_s * \
                        extractor.sample_rate
                    if long:
                        acts = extract_windowed(extractor, clips, window_s=float(ds.window_s),
                                                hop_s=float(ds.window_s), layers=names, stimulus_ids=batch_ids)
                    else:
                        acts = extractor.extract(clips, layers=names, stimulus_ids=batch_ids)
                    means = acts.pool("mean")
                info = acts.extractor
                for n in names:
                    pooled[n].append(np.asarray(means[n], dtype=np.float32))
            chunk = Activations({n: np.concatenate(pooled[n])[:, None, :] for n in names}, np.zeros(1),
                                np.ones(hi - lo, dtype=np.int64), ids[lo:hi], 0, dict(info))
            with timer("write"):
                writer.write_chunk(index, chunk, pooling="mean", conversions=counts)
            bar.update(hi - lo)
    manifest = {
        "extractor": extractor.info(), "weights_hash": extractor.info().get("weights_hash"),
        "stimulus_set_hash": set_hash, "pooling": "mean", "request": request, "range": [0, len(ids)],
        "shard_of": len(ids), "sample_rate": extractor.sample_rate, "input_sample_rate": None,
        "windowing": None if ds.window_s is None else {"window_s": ds.window_s, "hop_s": ds.window_s,
                                                       "min_tail_s": MIN_TAIL_S, "tails_dropped_this_run": trimmed},
        "dataset": ds.name, "timings": timer.seconds,
    }
    writer.finalize(manifest)
    return out
