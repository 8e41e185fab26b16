"""Sharded on-disk corpora: resumable, atomic, content-hashed.

Layout of a corpus folder::

    build.json                 what is being built (source fingerprint, shard size); written first
    shards/shard-00000.npy     float32 audio of the shard's pieces, concatenated
    shards/shard-00000.json    the shard's pieces (id, offset, n_samples, labels, meta), skipped
                               items, and the SHA-256 of the .npy; written last = shard done
    corpus.json                manifest: shards and their hashes, content hash, skipped items,
                               timings, environment; written when every shard is done

Shard ``k`` holds pieces ``[k * pieces_per_shard, (k + 1) * pieces_per_shard)``.  Every file is
written atomically (temporary file + rename), and a shard counts as done only once its JSON
exists, so a build killed at any point resumes by redoing the unfinished shards: no duplicates,
no gaps.  Pieces are pure functions of the source and their index, so a resumed or parallel build
has the same content hash as an uninterrupted serial one.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from musiclens.corpora.base import PieceSource
from musiclens.errors import ConfigError, MusicLensError, StoreError
from musiclens.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text, check_out, mark_output
from musiclens.provenance import environment, hash_array, hash_bytes

__all__ = ["FORMAT", "build_corpus", "shard_paths", "read_shard_index", "corpus_content_hash"]

logger = logging.getLogger(__name__)

FORMAT = "musiclens-corpus/1"


def shard_paths(root: str | Path, shard: int) -> tuple[Path, Path]:
    """``(audio .npy, index .json)`` paths of shard number ``shard``."""
    base = Path(root) / "shards" / f"shard-{shard:05d}"
    return base.with_suffix(".npy"), base.with_suffix(".json")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to a corpus index; give JSON-ready labels and meta")


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_json_default)


def read_shard_index(root: str | Path, shard: int) -> dict[str, Any]:
    """The JSON index of a finished shard."""
    _, jpath = shard_paths(root, shard)
    try:
        return json.loads(jpath.read_text())
    except FileNotFoundError:
        raise StoreError(f"shard {shard} of {root} is not finished ({jpath} missing); resume the build") from None
    except json.JSONDecodeError as err:
        raise StoreError(f"{jpath} is corrupt ({err}); delete it and resume the build") from err


def _build_shard(root: str, source: PieceSource, shard: int, start: int, stop: int, skip_bad: bool,
                 on_piece: Callable[[int], None] | None) -> dict[str, Any]:
    pieces: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    chunks: list[np.ndarray] = []
    offset = 0
    for index in range(start, stop):
        try:
            piece = source.make(index)
        except MusicLensError as err:
            if not skip_bad:
                raise
            logger.warning("skipping item %d (%s): %s", index, source.describe(index), err)
            skipped.append({"index": index, "source": source.describe(index), "error": str(err)})
            continue
        if piece.sample_rate != source.sample_rate:
            raise StoreError(f"piece {piece.id} has sample rate {piece.sample_rate}, the corpus {source.sample_rate}")
        chunks.append(piece.audio)
        pieces.append({"index": index, "id": piece.id, "offset": offset, "n_samples": int(piece.audio.size),
                       "labels": piece.labels, "meta": piece.meta})
        offset += int(piece.audio.size)
        if on_piece is not None:
            on_piece(index)
    audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    npy, jpath = shard_paths(root, shard)
    buf = io.BytesIO()
    np.save(buf, audio.astype(np.float32, copy=False))
    atomic_write_bytes(npy, buf.getvalue())
    index_obj = {"format": FORMAT, "shard": shard, "start": start, "stop": stop, "n_samples": int(audio.size),
                 "audio_sha256": hash_array(audio), "pieces": pieces, "skipped": skipped}
    text = _canonical(index_obj)
    atomic_write_text(jpath, text)
    return {"shard": shard, "n_pieces": len(pieces), "n_skipped": len(skipped), "sha256": hash_bytes(text.encode()),
            "seconds": float(audio.size) / source.sample_rate}


def _shard_done(root: Path, shard: int, *, verify: bool) -> bool:
    npy, jpath = shard_paths(root, shard)
    if not (jpath.is_file() and npy.is_file()):
        return False
    try:
        idx = json.loads(jpath.read_text())
        audio = np.load(npy, mmap_mode="r")
    except (json.JSONDecodeError, ValueError, OSError):
        logger.warning("shard %d of %s is damaged; rebuilding it", shard, root)
        return False
    if audio.shape != (idx["n_samples"],):
        return False
    return not verify or hash_array(np.asarray(audio)) == idx["audio_sha256"]


def corpus_content_hash(shard_hashes: list[str]) -> str:
    """Content hash of a corpus: SHA-256 over its shards' index hashes, in shard order."""
    return hash_bytes(FORMAT.encode(), *(h.encode() for h in shard_hashes))


def build_corpus(
    out: str | Path,
    *,
    source: PieceSource,
    pieces_per_shard: int = 64,
    workers: int = 1,
    skip_bad: bool = False,
    verify: bool = False,
    progress: bool = False,
    on_piece: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Build (or resume building) a sharded corpus of ``source``'s pieces in ``out``.

    Parameters
    ----------
    out
        Corpus folder.  If it holds an unfinished build of the same source, finished shards are
        kept and the rest are built; a different source is an error.
    source
        The pieces (:class:`~musiclens.corpora.base.PieceSource`).
    pieces_per_shard
        Pieces per shard (the unit of resumption and of parallel work).
    workers
        Processes building shards in parallel (1 = in this process).
    skip_bad
        Record bad inputs (corrupt or empty MIDI, missing files) in the shard and corpus
        manifests and go on, instead of stopping at the first with its error.
    verify
        On resume, re-hash the audio of finished shards (otherwise sizes are checked).
    progress
        Show a tqdm progress bar over pieces.
    on_piece
        Called with each piece index after the piece is made (progress hooks; tests use it to
        simulate a crash).

    Returns
    -------
    dict
        The manifest written to ``out/corpus.json`` (``content_hash``, ``n_pieces``,
        ``skipped``, ``shards``, ``timings``...).
    """
    if pieces_per_shard < 1 or workers < 1:
        raise ConfigError("pieces_per_shard and workers must be >= 1")
    root = Path(out)
    n = len(source)
    if n < 1:
        raise ConfigError(f"the source for corpus {root} has no pieces; a corpus needs at least one "
                          "(--n on the command line, n= in Python)")
    build = {"format": FORMAT, "kind": source.kind, "sample_rate": int(source.sample_rate), "n_items": n,
             "pieces_per_shard": int(pieces_per_shard), "source": source.fingerprint()}
    check_out(root, "corpus")   # a folder musiclens did not make is never written into
    build_path = root / "build.json"
    if build_path.is_file():
        old = json.loads(build_path.read_text())
        if _canonical(old) != _canonical(json.loads(_canonical(build))):
            raise StoreError(
                f"{root} holds a corpus built with other settings ({build_path}); "
                "choose a new output folder or delete the old one"
            )
    elif root.exists() and any(root.iterdir()):
        raise StoreError(f"{root} exists and is not a musiclens corpus folder; choose an empty or new folder")
    else:
        mark_output(root, "corpus")
        atomic_write_json(build_path, build)
    n_shards = (n + pieces_per_shard - 1) // pieces_per_shard
    todo = [k for k in range(n_shards) if not _shard_done(root, k, verify=verify)]
    if len(todo) < n_shards:
        logger.info("resuming %s: %d of %d shards already done", root, n_shards - len(todo), n_shards)
    started = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, initial=n - sum(min(pieces_per_shard, n - k * pieces_per_shard) for k in todo),
                   unit="piece", desc=f"corpus {root.name}")

    def spans(k: int) -> tuple[int, int]:
        return k * pieces_per_shard, min((k + 1) * pieces_per_shard, n)

    try:
        if workers == 1 or len(todo) <= 1:
            def tick(i: int) -> None:
                if bar is not None:
                    bar.update(1)
                if on_piece is not None:
                    on_piece(i)

            for k in todo:
                _build_shard(str(root), source, k, *spans(k), skip_bad, tick)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futs = {pool.submit(_build_shard, str(root), source, k, *spans(k), skip_bad, on_piece): k for k in todo}
                for fut in as_completed(futs):
                    fut.result()
                    if bar is not None:
                        a, b = spans(futs[fut])
                        bar.update(b - a)
    finally:
        if bar is not None:
            bar.close()
    build_s = time.perf_counter() - started
    shards, skipped, n_pieces, total_samples = [], [], 0, 0
    for k in range(n_shards):
        _, jpath = shard_paths(root, k)
        text = jpath.read_text()
        idx = json.loads(text)
        shards.append({"shard": k, "file": jpath.name, "sha256": hash_bytes(text.encode()),
                       "n_pieces": len(idx["pieces"]), "n_samples": idx["n_samples"]})
        skipped += idx["skipped"]
        n_pieces += len(idx["pieces"])
        total_samples += idx["n_samples"]
    if n_pieces == 0:   # every item skipped: no corpus.json, so nothing looks finished
        reasons = "; ".join(f"{s['source']}: {s['error']}" for s in skipped[:3])
        raise StoreError(f"no piece of the corpus could be built ({len(skipped)} skipped: {reasons}); fix the "
                         f"source, then run the same command again (the shards in {root} are reused)")
    manifest = {
        **build,
        "n_pieces": n_pieces,
        "n_shards": n_shards,
        "audio_hours": total_samples / source.sample_rate / 3600.0,
        "shards": shards,
        "skipped": skipped,
        "content_hash": corpus_content_hash([s["sha256"] for s in shards]),
        "timings": {"build_s_this_run": build_s, "shards_built_this_run": len(todo), "workers": workers},
        "environment": environment(),
    }
    atomic_write_json(root / "corpus.json", manifest)
    logger.info("corpus %s: %d pieces in %d shards, %d skipped, content hash %s",
                root, n_pieces, n_shards, len(skipped), manifest["content_hash"][:16])
    return manifest
