"""Batches for an objective's :class:`~musiclens.train.base.DataSpec`, from one or more corpora.

Every training batch is a pure function of ``(seed, micro-batch index)``: the sampler maps the
global sample index ``g`` to a corpus (weighted mixture, drawn in blocks from
``default_rng([seed, 7, block])``), to the ``n``-th draw from that corpus (an epoch-wise
permutation from ``default_rng([seed, 11, corpus, epoch])``) and to crop positions
(``default_rng([seed, 13, corpus, epoch, piece])``).  The sampler starts at any micro-batch, so a
resumed run reads exactly the batches an uninterrupted run reads, with any number of workers,
without Lightning's mid-epoch data-loader restore.  With several processes (DDP) rank ``r`` of
``w`` reads samples ``[(b * w + r) * B, (b * w + r + 1) * B)`` of micro-batch ``b``: together the
``w B`` samples one process with batch ``w B`` reads, in the same order
(:mod:`musiclens.train.distributed`).

Batch layout (see :mod:`musiclens.train.base`): ``audio`` ``[B, N]`` float32 (``[B, V, N]`` with
``views > 1``), ``lengths`` ``[B]`` int64 (valid samples, N when every item is a full crop),
``piano_roll``/``onset_roll`` ``[B, T, 88]`` (``[B, V, T, 88]``) float32 at ``frame_rate`` when the
spec has one (zeros for speech items), ``phonemes`` and ``text`` (speech), ``kind`` and ``id``
lists.  Speech items are whole utterances (padded) when the objective asks for phonemes or has no
crop length; otherwise they are cropped like music.

The validation set is fixed: the ``val`` corpora's pieces (or a seeded fraction of the training
pieces, held out from training), at most ``val_max_items``, with fixed crops.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from musiclens.audio import resample
from musiclens.corpora.dataset import Corpus, CropDataset
from musiclens.errors import ConfigError
from musiclens.train.base import DataSpec

__all__ = ["ItemRef", "MixtureIndex", "CorpusItems", "StepBatchSampler", "collate_items", "TrainDataModule",
           "split_pieces"]

logger = logging.getLogger(__name__)

#: ``(corpus index, piece index, epoch, tag)``: everything an example is a function of (tag -1: validation).
ItemRef = tuple[int, int, int, int]

_BLOCK = 4096


def split_pieces(n_pieces: int, *, fraction: float, seed: int, corpus: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` piece indices: a seeded ``fraction`` of ``n_pieces`` held out for validation."""
    perm = np.random.default_rng([seed, 19, corpus]).permutation(n_pieces)
    n_val = max(1, int(round(fraction * n_pieces)))
    if n_val >= n_pieces:
        raise ConfigError(f"data.val={fraction} leaves no training pieces in a corpus of {n_pieces}; "
                          "use a smaller fraction or separate validation corpora")
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class MixtureIndex:
    """Global sample index -> ``(corpus, piece, epoch)``, a pure function of the seed.

    Parameters
    ----------
    pieces
        Per corpus, the piece indices available for training.
    weights
        Mixing weights (normalised here); ``None``: proportional to the number of pieces.
    seed
        Data seed.
    """

    def __init__(self, pieces: Sequence[np.ndarray], *, weights: Sequence[float] | None, seed: int) -> None:
        self.pieces = [np.asarray(p, dtype=np.int64) for p in pieces]
        if any(p.size == 0 for p in self.pieces):
            raise ConfigError("a training corpus has no pieces left for training")
        w = np.asarray(weights if weights is not None else [p.size for p in self.pieces], dtype=np.float64)
        self.p = w / w.sum()
        self.seed = int(seed)
        self._counts: list[np.ndarray] = [np.zeros(len(self.pieces), dtype=np.int64)]  # draws before block k
        self._choices: OrderedDict[int, np.ndarray] = OrderedDict()
        self._perms: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()

    def _block(self, k: int) -> np.ndarray:
        if k not in self._choices:
            rng = np.random.default_rng([self.seed, 7, k])
            self._choices[k] = rng.choice(len(self.pieces), size=_BLOCK, p=self.p).astype(np.int64)
            if len(self._choices) > 8:
                self._choices.popitem(last=False)
        return self._choices[k]

    def _draws_before(self, k: int) -> np.ndarray:
        while len(self._counts) <= k:
            j = len(self._counts) - 1
            self._counts.append(self._counts[j] + np.bincount(self._block(j), minlength=len(self.pieces)))
        return self._counts[k]

    def _perm(self, c: int, epoch: int) -> np.ndarray:
        key = (c, epoch)
        if key not in self._perms:
            self._perms[key] = np.random.default_rng([self.seed, 11, c, epoch]).permutation(self.pieces[c].size)
            if len(self._perms) > 16:
                self._perms.popitem(last=False)
        return self._perms[key]

    def __call__(self, g: int) -> ItemRef:
        """The reference of global sample ``g``."""
        if len(self.pieces) == 1:
            c, n = 0, int(g)
        else:
            k, r = divmod(int(g), _BLOCK)
            block = self._block(k)
            c = int(block[r])
            n = int(self._draws_before(k)[c]) + int(np.count_nonzero(block[:r] == c))
        epoch, pos = divmod(n, self.pieces[c].size)
        return c, int(self.pieces[c][self._perm(c, epoch)[pos]]), int(epoch), 0


class _ForcedCrops(CropDataset):
    """A :class:`CropDataset` whose next crop start is set by the caller (labels cropped to match)."""

    forced_start = 0

    def crop_start(self, index: int) -> int:
        return int(self.forced_start)


class CorpusItems(Dataset):
    """Examples by :data:`ItemRef` from several corpora, shaped for a :class:`DataSpec`.

    Parameters
    ----------
    folders
        Corpus folders (refs index into this list).
    spec
        The objective's data spec.
    crop_s
        Crop length, s (``None``: whole pieces).
    seed
        Data seed (crop positions).
    """

    def __init__(self, folders: Sequence[str | Path], *, spec: DataSpec, crop_s: float | None, seed: int) -> None:
        self.folders = [str(f) for f in folders]
        self.spec = spec
        self.crop_s = crop_s
        self.seed = int(seed)
        self._corpora: dict[int, Corpus] = {}
        self._crops: dict[int, _ForcedCrops] = {}

    def corpus(self, c: int) -> Corpus:
        if c not in self._corpora:  # opened lazily: each worker process memory-maps its own
            self._corpora[c] = Corpus(self.folders[c])
        return self._corpora[c]

    def __len__(self) -> int:  # refs are not positional; present for DataLoader's sake
        return sum(len(self.corpus(c)) for c in range(len(self.folders)))

    def _whole(self, corpus: Corpus) -> bool:
        return self.crop_s is None or (corpus.kind == "speech" and "phonemes" in self.spec.targets)

    def crop_starts(self, ref: ItemRef) -> tuple[list[int], int]:
        """``(view starts, crop length)`` in samples at the corpus rate."""
        c, piece, epoch, tag = ref
        corpus = self.corpus(c)
        n = int(corpus.record(piece)["n_samples"])
        views = max(1, int(self.spec.views))
        if self._whole(corpus):
            return [0] * views, n
        sr = corpus.sample_rate
        crop_n = int(round(float(self.crop_s) * sr))
        max_start = max(0, n - crop_n)
        rng = np.random.default_rng([self.seed, 13, c, epoch, piece, tag + 1])
        gap = int(round(self.spec.max_view_gap_s * sr)) if views > 1 else 0
        w0 = int(rng.integers(0, max(0, max_start - gap) + 1))
        hi = min(w0 + gap, max_start)
        starts = [w0] + [int(rng.integers(w0, hi + 1)) for _ in range(views - 1)]
        return starts, crop_n

    def __getitem__(self, ref: ItemRef) -> dict[str, Any]:  # type: ignore[override]
        c, piece = int(ref[0]), int(ref[1])
        corpus = self.corpus(c)
        starts, crop_n = self.crop_starts(ref)
        sr_in, sr_out = corpus.sample_rate, int(self.spec.sample_rate)
        want = int(round(crop_n * sr_out / sr_in))
        n_valid = int(corpus.record(piece)["n_samples"])
        valid = min(crop_n, n_valid)
        rec = corpus.record(piece)
        out: dict[str, Any] = {"id": rec["id"], "kind": corpus.kind,
                               "length": int(round(valid * sr_out / sr_in))}
        frames = self.spec.frame_rate is not None and corpus.kind == "music"
        audios, rolls, onsets = [], [], []
        for s in starts:
            if frames:
                crops = self._crops.get(c)
                if crops is None:
                    crops = self._crops[c] = _ForcedCrops(corpus, crop_s=None if self._whole(corpus) else self.crop_s,
                                                          sample_rate=sr_out, frame_rate=float(self.spec.frame_rate),
                                                          seed=self.seed)
                crops.forced_start = s
                ex = crops[piece]
                audio = np.asarray(ex["audio"], dtype=np.float32)
                rolls.append(np.asarray(ex["piano_roll"], dtype=np.float32))
                onsets.append(np.asarray(ex["onset_roll"], dtype=np.float32))
            else:
                audio = corpus.audio(piece, start=s, stop=s + crop_n)
                if sr_out != sr_in:
                    audio = resample(audio, orig_sr=sr_in, target_sr=sr_out)
            audios.append(np.pad(audio, (0, max(0, want - audio.size)))[:want])
        out["audio"] = np.stack(audios)
        if frames:
            t = max(r.shape[0] for r in rolls)
            out["piano_roll"] = np.stack([np.pad(r, ((0, t - r.shape[0]), (0, 0))) for r in rolls])
            out["onset_roll"] = np.stack([np.pad(r, ((0, t - r.shape[0]), (0, 0))) for r in onsets])
        if corpus.kind == "speech":
            lab = corpus.labels(piece)
            out["phonemes"] = list(lab.get("phonemes", []))
            out["text"] = lab.get("text")
        return out


def collate_items(examples: list[dict[str, Any]], *, spec: DataSpec) -> dict[str, Any]:
    """Pad and stack examples into a batch (see the module docstring for the layout)."""
    views = max(1, int(spec.views))
    n = max(ex["audio"].shape[-1] for ex in examples)
    audio = np.zeros((len(examples), views, n), dtype=np.float32)
    for i, ex in enumerate(examples):
        audio[i, :, : ex["audio"].shape[-1]] = ex["audio"]
    batch: dict[str, Any] = {
        "audio": torch.from_numpy(audio if views > 1 else audio[:, 0]),
        "lengths": torch.tensor([min(ex["length"], n) for ex in examples], dtype=torch.int64),
        "kind": [ex["kind"] for ex in examples],
        "id": [ex["id"] for ex in examples],
    }
    if spec.frame_rate is not None:
        n_frames = int(np.ceil(n / spec.sample_rate * spec.frame_rate))
        t = max([n_frames] + [ex["piano_roll"].shape[1] for ex in examples if "piano_roll" in ex])
        for key in ("piano_roll", "onset_roll"):
            arr = np.zeros((len(examples), views, t, 88), dtype=np.float32)
            for i, ex in enumerate(examples):
                if key in ex:
                    arr[i, :, : ex[key].shape[1]] = ex[key]
            batch[key] = torch.from_numpy(arr if views > 1 else arr[:, 0])
    if any("phonemes" in ex for ex in examples) or "phonemes" in spec.targets:
        batch["phonemes"] = [ex.get("phonemes", []) for ex in examples]
        batch["text"] = [ex.get("text") for ex in examples]
    return batch


class _Collate:
    """Picklable collate function bound to a spec (for worker processes)."""

    def __init__(self, spec: DataSpec) -> None:
        self.spec = spec

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        return collate_items(examples, spec=self.spec)


class StepBatchSampler(Sampler[list[ItemRef]]):
    """Micro-batches ``start .. total - 1`` of the training stream; ``start`` is read when iteration begins.

    ``len()`` is ``total`` (the whole run) so that Lightning's epoch bookkeeping, restored from a
    checkpoint at micro-batch ``start``, ends exactly when the stream does.
    """

    def __init__(self, index: MixtureIndex, *, batch_size: int, total: int, start: Callable[[], int] | int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        self.index = index
        self.batch_size = int(batch_size)
        self.total = int(total)
        self._start = start
        self.rank, self.world_size = int(rank), int(world_size)

    def refs(self, b: int) -> list[ItemRef]:
        """The items of micro-batch ``b`` on this rank."""
        first = (b * self.world_size + self.rank) * self.batch_size
        return [self.index(g) for g in range(first, first + self.batch_size)]

    def __iter__(self) -> Iterator[list[ItemRef]]:
        start = self._start() if callable(self._start) else int(self._start)
        for b in range(start, self.total):
            yield self.refs(b)

    def __len__(self) -> int:
        return self.total


class _StepLoader(DataLoader):
    """A DataLoader Lightning treats as resumable: its position is the trainer's step, nothing to save."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


def _lightning_base() -> type:
    import lightning.pytorch as pl

    return pl.LightningDataModule


class TrainDataModule(_lightning_base()):  # type: ignore[misc]
    """The Lightning data module of a training run.

    Parameters
    ----------
    train
        Training corpus folders.
    val
        Validation corpus folders, a fraction of the training pieces, or ``None`` (no validation).
    spec
        The objective's data spec.
    crop_s
        Crop length (s) overriding ``spec.crop_s``; ``None`` keeps the spec's.
    batch_size, num_workers
        Per process.
    weights
        Mixing weights of the training corpora (``None``: proportional to their sizes).
    seed
        Data seed.
    max_steps, accumulate
        The stream holds ``max_steps * accumulate`` micro-batches.
    val_max_items
        Size of the fixed validation set.
    """

    def __init__(self, *, train: Sequence[str | Path], val: Sequence[str | Path] | float | None, spec: DataSpec,
                 crop_s: float | None = None, batch_size: int = 8, num_workers: int = 0,
                 weights: Sequence[float] | None = None, seed: int = 0, max_steps: int = 1000, accumulate: int = 1,
                 val_max_items: int = 64) -> None:
        super().__init__()
        self.spec = spec
        self.crop_s = spec.crop_s if crop_s is None else float(crop_s)
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.seed, self.max_steps, self.accumulate = int(seed), int(max_steps), int(accumulate)
        train = [str(p) for p in train]
        val_folders = [str(p) for p in val] if isinstance(val, list | tuple) else []
        self.items = CorpusItems(train + val_folders, spec=spec, crop_s=self.crop_s, seed=self.seed)
        pieces, val_refs = [], []
        for c in range(len(train)):
            n = len(self.items.corpus(c))
            if isinstance(val, float):
                tr, va = split_pieces(n, fraction=val, seed=self.seed, corpus=c)
                val_refs += [(c, int(p), 0, -1) for p in va]
            else:
                tr = np.arange(n)
            pieces.append(tr)
        for j in range(len(val_folders)):
            c = len(train) + j
            val_refs += [(c, p, 0, -1) for p in range(len(self.items.corpus(c)))]
        if len(val_refs) > val_max_items:  # a fixed, seeded subset spread over every validation corpus
            keep = np.sort(np.random.default_rng([self.seed, 23]).permutation(len(val_refs))[:val_max_items])
            val_refs = [val_refs[i] for i in keep]
        self.val_refs: list[ItemRef] = val_refs
        self.index = MixtureIndex(pieces, weights=weights, seed=self.seed)

    # ------------------------------------------------------------------ loaders
    def _loader(self, batch_sampler: Sampler[list[ItemRef]], *, cls: type = DataLoader) -> DataLoader:
        return cls(self.items, batch_sampler=batch_sampler, num_workers=self.num_workers,
                   collate_fn=_Collate(self.spec), persistent_workers=False,
                   pin_memory=False)

    def _start(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.global_step) * self.accumulate if trainer is not None else 0

    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (int(trainer.global_rank), int(trainer.world_size)) if trainer is not None else (0, 1)

    def train_sampler(self, *, start: Callable[[], int] | int = 0, whole_batches: bool = False) -> StepBatchSampler:
        """The training stream's batch sampler on this process's rank (``whole_batches``: the global
        micro-batches of every rank at once, the same on every rank)."""
        rank, world = self._world()
        if whole_batches:
            return StepBatchSampler(self.index, batch_size=self.batch_size * world,
                                    total=self.max_steps * self.accumulate, start=start)
        return StepBatchSampler(self.index, batch_size=self.batch_size, total=self.max_steps * self.accumulate,
                                start=start, rank=rank, world_size=world)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_sampler(start=self._start), cls=_StepLoader)

    def val_dataloader(self) -> DataLoader | list[Any]:
        if not self.val_refs:
            return []
        # balanced chunks (9 items, batch 8 -> 5 + 4): no trailing batch of one (contrastive losses need two).
        # Several processes: each runs all of it in the global batch size, as one process would.
        n_batches = -(-len(self.val_refs) // (self.batch_size * self._world()[1]))
        bounds = np.linspace(0, len(self.val_refs), n_batches + 1).round().astype(int)
        chunks = [self.val_refs[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        return self._loader(chunks)  # type: ignore[arg-type]

    def batch(self, b: int) -> dict[str, Any]:
        """Micro-batch ``b`` of the training stream (on this rank), built in this process."""
        refs = self.train_sampler().refs(b)
        return collate_items([self.items[r] for r in refs], spec=self.spec)

    def stream(self, *, start: int = 0, whole_batches: bool = False) -> Iterator[dict[str, Any]]:
        """The training stream from micro-batch ``start`` (``prepare`` reads it from 0, in ``whole_batches``:
        every rank sees the global batches, so what it fits is the same everywhere)."""
        return iter(self._loader(self.train_sampler(start=start, whole_batches=whole_batches)))
