"""``torch.utils.data.Dataset`` over :class:`~musiclens.corpora.dataset.CropDataset` (imports torch).

Arrays become float32 tensors (``audio`` ``[B, n_samples]``, ``piano_roll``/``onset_roll``
``[B, n_frames, 88]``, ``beat_frames``/``downbeat_frames`` ``[B, n_frames]``); strings and
variable-length label lists (``key``, ``chords``, ``onsets``, ``phonemes``...) stay Python
lists in the batch.  Call ``dataset.set_epoch(e)`` each epoch for fresh crops.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from musiclens.corpora.dataset import CropDataset

__all__ = ["TorchCropDataset", "collate"]

_TENSOR_KEYS = ("audio", "piano_roll", "onset_roll", "beat_frames", "downbeat_frames")


class TorchCropDataset(Dataset):
    """Torch view of a :class:`CropDataset` (same indexing, same crops)."""

    def __init__(self, crops: CropDataset) -> None:
        self.crops = crops

    def __len__(self) -> int:
        return len(self.crops)

    def set_epoch(self, epoch: int) -> None:
        self.crops.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        ex = self.crops[index]
        out = {k: v for k, v in ex.items() if k != "labels"}
        for k in _TENSOR_KEYS:
            if k in out:
                out[k] = torch.from_numpy(np.asarray(out[k], dtype=np.float32))
        return out


def collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors of equal shape; keep everything else as lists."""
    batch: dict[str, Any] = {}
    for key in examples[0]:
        values = [ex[key] for ex in examples]
        if key in _TENSOR_KEYS:
            batch[key] = torch.stack(values)
        else:
            batch[key] = values
    return batch
