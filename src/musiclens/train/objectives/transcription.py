"""Objective ``transcription``: frame-level 88-key music transcription on a backbone layer.

A head on one backbone layer (default the last) predicts, per frame at the backbone's frame
rate, which of the 88 piano keys (MIDI 21-108) sound: sigmoid outputs trained with binary
cross-entropy against the piano roll (PAPERS §1.8; MARBLE's MAESTRO probe uses a 512-unit MLP,
``head="mlp"``).  An optional second head predicts onsets (``onset_roll``).

Targets come at ``DataSpec.frame_rate = backbone.frame_rate_hz``; a roll of ``ceil(d * rate)``
frames and the backbone's ``n_frames`` may differ by a frame or two (receptive field): both are
cut to the shorter, and a difference above ``max_frame_mismatch`` is an error naming both
lengths.  Frames past a clip's ``lengths`` are left out of the loss and the metrics.

Metrics (``validation_metrics``), with keys as roll column ``k`` -> MIDI ``21 + k`` -> Hz
(``440 * 2 ** ((m - 69) / 12)``) only at the mir_eval boundary:

- :func:`frame_scores`: ``mir_eval.multipitch.metrics`` Precision / Recall / Accuracy and the
  frame F1 ``2PR / (P + R)``;
- :func:`note_scores`: notes decoded from the binarised rolls (:func:`roll_to_notes`: each run of
  consecutive active frames of a key is a note from its first frame's start to its last
  frame's end), scored by ``mir_eval.transcription.precision_recall_f1_overlap``
  (onset tolerance 50 ms, ``offset_ratio=None``: onsets only, by default).

Validation clips are laid end to end (with a 1 s gap between clips) before scoring, so the
scores count frames and notes over the whole validation set.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from musiclens.errors import ConfigError, TrainingError
from musiclens.train.base import Backbone, DataSpec, Objective
from musiclens.train.distributed import batch_denominator
from musiclens.train.objectives._common import build_objective, register_objective, check_layer, seeded_heads

__all__ = ["TranscriptionOptions", "TranscriptionObjective", "build_transcription", "roll_to_notes",
           "frame_scores", "note_scores", "key_to_hz", "align_frames", "N_KEYS", "LOWEST_MIDI"]

logger = logging.getLogger(__name__)

N_KEYS = 88
LOWEST_MIDI = 21
_HEADS = ("linear", "mlp")


def key_to_hz(keys: np.ndarray | Sequence[int]) -> np.ndarray:
    """Frequency (Hz) of piano-roll columns: key ``k`` is MIDI ``21 + k``, A4 = MIDI 69 = 440 Hz."""
    return 440.0 * 2.0 ** ((np.asarray(keys, dtype=np.float64) + LOWEST_MIDI - 69.0) / 12.0)


def _binary(roll: np.ndarray | torch.Tensor, threshold: float, name: str) -> np.ndarray:
    arr = roll.detach().cpu().numpy() if isinstance(roll, torch.Tensor) else np.asarray(roll)
    if arr.ndim != 2 or arr.shape[1] != N_KEYS:
        raise ConfigError(f"{name} must be [n_frames, {N_KEYS}], got shape {arr.shape}")
    return arr > threshold if arr.dtype != bool else arr


def roll_to_notes(roll: np.ndarray, *, frame_rate: float, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Notes of a piano roll: each run of consecutive active frames of a key is one note.

    Parameters
    ----------
    roll
        ``[shape=(n_frames, 88)]`` bool, or probabilities binarised with ``> threshold``.
    frame_rate
        Frames per second, Hz; frame ``j`` spans ``[j / rate, (j + 1) / rate)``.
    threshold
        Binarisation threshold for non-bool rolls.

    Returns
    -------
    intervals
        ``[shape=(n_notes, 2)]`` onset and offset times, s, sorted by onset then pitch.
    pitches
        ``[shape=(n_notes,)]`` Hz.
    """
    if frame_rate <= 0:
        raise ConfigError(f"frame_rate must be positive, got {frame_rate}")
    on = _binary(roll, threshold, "roll")
    padded = np.zeros((on.shape[0] + 2, N_KEYS), dtype=np.int8)
    padded[1:-1] = on
    diff = np.diff(padded, axis=0)
    starts_f, starts_k = np.nonzero(diff == 1)
    ends_f, ends_k = np.nonzero(diff == -1)
    order_s = np.lexsort((starts_f, starts_k))
    order_e = np.lexsort((ends_f, ends_k))
    starts_f, keys = starts_f[order_s], starts_k[order_s]
    ends_f = ends_f[order_e]
    order = np.lexsort((keys, starts_f))
    intervals = np.stack([starts_f[order], ends_f[order]], axis=1).astype(np.float64) / float(frame_rate)
    return intervals.reshape(-1, 2), key_to_hz(keys[order])


def _multipitch(on: np.ndarray, frame_rate: float) -> tuple[np.ndarray, list[np.ndarray]]:
    times = np.arange(on.shape[0], dtype=np.float64) / float(frame_rate)
    hz = key_to_hz(np.arange(N_KEYS))
    return times, [hz[row] for row in on]


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r <= 0 else 2.0 * p * r / (p + r)


def frame_scores(pred_roll: np.ndarray, true_roll: np.ndarray, *, frame_rate: float,
                 threshold: float = 0.5) -> dict[str, float]:
    """Frame-level multi-pitch scores (``mir_eval.multipitch.metrics``).

    Parameters
    ----------
    pred_roll, true_roll
        ``[shape=(n_frames, 88)]`` bool or probabilities (``> threshold``), same length.
    frame_rate
        Hz.

    Returns
    -------
    dict
        ``frame_precision``, ``frame_recall``, ``frame_accuracy`` (TP / (TP + FP + FN), mir_eval)
        and ``frame_f1`` (``2PR / (P + R)``, 0 when both are 0).
    """
    import warnings

    import mir_eval

    est, ref = _binary(pred_roll, threshold, "pred_roll"), _binary(true_roll, threshold, "true_roll")
    if est.shape != ref.shape:
        raise ConfigError(f"pred_roll has {est.shape[0]} frames but true_roll has {ref.shape[0]}")
    ref_t, ref_f = _multipitch(ref, frame_rate)
    est_t, est_f = _multipitch(est, frame_rate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # mir_eval warns on empty references / estimates
        m = mir_eval.multipitch.metrics(ref_t, ref_f, est_t, est_f)
    p, r, acc = float(m[0]), float(m[1]), float(m[2])   # Precision, Recall, Accuracy
    return {"frame_precision": p, "frame_recall": r, "frame_accuracy": acc, "frame_f1": _f1(p, r)}


def note_scores(pred_roll: np.ndarray, true_roll: np.ndarray, *, frame_rate: float, threshold: float = 0.5,
                onset_tolerance: float = 0.05, offset_ratio: float | None = None) -> dict[str, float]:
    """Note-level scores of rolls decoded with :func:`roll_to_notes`.

    ``mir_eval.transcription.precision_recall_f1_overlap`` with ``onset_tolerance`` (s),
    ``offset_ratio`` (None: onsets only) and ``pitch_tolerance`` 50 cents.

    Returns
    -------
    dict
        ``note_precision``, ``note_recall``, ``note_f1``, ``note_overlap``; all 0 when either
        side has no notes (1 when both have none).
    """
    import mir_eval

    ref_iv, ref_hz = roll_to_notes(true_roll, frame_rate=frame_rate, threshold=threshold)
    est_iv, est_hz = roll_to_notes(pred_roll, frame_rate=frame_rate, threshold=threshold)
    if len(ref_hz) == 0 or len(est_hz) == 0:
        v = 1.0 if len(ref_hz) == len(est_hz) == 0 else 0.0
        return {"note_precision": v, "note_recall": v, "note_f1": v, "note_overlap": v}
    p, r, f, o = mir_eval.transcription.precision_recall_f1_overlap(
        ref_iv, ref_hz, est_iv, est_hz, onset_tolerance=onset_tolerance, offset_ratio=offset_ratio)
    return {"note_precision": float(p), "note_recall": float(r), "note_f1": float(f), "note_overlap": float(o)}


def align_frames(n_model: int, n_target: int, *, max_mismatch: int) -> int:
    """Frames scored when the model gives ``n_model`` and the roll ``n_target``: the shorter of the two.

    Raises
    ------
    TrainingError
        When they differ by more than ``max_mismatch`` frames.
    """
    if abs(n_model - n_target) > max_mismatch:
        raise TrainingError(
            f"the backbone gives {n_model} frames but the target roll has {n_target} (more than "
            f"max_frame_mismatch={max_mismatch} apart): the targets' frame rate must be the backbone's "
            "(DataSpec.frame_rate) and the crops as long as the audio")
    return min(n_model, n_target)


@dataclass
class TranscriptionOptions:
    """Options of the ``transcription`` objective.

    Attributes
    ----------
    layer
        Backbone layer the heads read (index into ``hidden_states``; -1: last).
    head
        ``"linear"`` or ``"mlp"`` (``Linear(dim, mlp_hidden)``, ReLU, dropout, ``Linear(mlp_hidden, 88)``).
    mlp_hidden, dropout
        MLP width and dropout.
    onset_head, onset_weight
        Add an onset head (BCE vs ``onset_roll``) weighted by ``onset_weight``.
    prior_prob
        Initial output bias ``log(p / (1 - p))``: the head starts predicting this key probability
        (few keys sound at once), which speeds up early training.
    threshold, onset_tolerance, offset_ratio
        Decoding threshold and note-scoring settings (see :func:`note_scores`).
    max_frame_mismatch
        Largest accepted difference between backbone and roll frame counts.
    crop_s
        Training crop, s.
    """

    layer: int = -1
    head: str = "linear"
    mlp_hidden: int = 512
    dropout: float = 0.1
    onset_head: bool = False
    onset_weight: float = 1.0
    prior_prob: float = 0.05
    threshold: float = 0.5
    onset_tolerance: float = 0.05
    offset_ratio: float | None = None
    max_frame_mismatch: int = 2
    crop_s: float = 4.0

    def __post_init__(self) -> None:
        if self.head not in _HEADS:
            raise ConfigError(f"head must be one of {_HEADS}, got {self.head!r}")
        if self.mlp_hidden < 1 or not 0.0 <= self.dropout < 1.0:
            raise ConfigError("mlp_hidden must be >= 1 and dropout in [0, 1)")
        if not 0.0 < self.prior_prob < 1.0 or not 0.0 < self.threshold < 1.0:
            raise ConfigError("prior_prob and threshold must lie in (0, 1)")
        if self.onset_weight < 0 or self.onset_tolerance <= 0 or self.max_frame_mismatch < 0 or self.crop_s <= 0:
            raise ConfigError("onset_weight and max_frame_mismatch must be >= 0, onset_tolerance and crop_s positive")
        if self.offset_ratio is not None and self.offset_ratio <= 0:
            raise ConfigError(f"offset_ratio must be positive or None, got {self.offset_ratio}")


def _head(dim: int, o: TranscriptionOptions) -> nn.Module:
    bias = math.log(o.prior_prob / (1.0 - o.prior_prob))
    if o.head == "linear":
        out = nn.Linear(dim, N_KEYS)
        head: nn.Module = out
    else:
        out = nn.Linear(o.mlp_hidden, N_KEYS)
        head = nn.Sequential(nn.Linear(dim, o.mlp_hidden), nn.ReLU(), nn.Dropout(o.dropout), out)
    nn.init.constant_(out.bias, bias)
    return head


class TranscriptionObjective(Objective):
    """Frame-level piano-roll transcription (see the module docstring)."""

    name = "transcription"
    #: learned = mir_eval frame F1 on held-out music of at least 0.5
    default_bar = {"metric": "val/frame_f1", "threshold": 0.5, "direction": "higher"}

    def __init__(self, backbone: Backbone, options: TranscriptionOptions, *, seed: int = 0) -> None:
        super().__init__(backbone)
        self.options = options
        check_layer(backbone, options.layer)
        with seeded_heads(seed):
            self.frame_head = _head(backbone.hidden_size, options)
            self.onset_head = _head(backbone.hidden_size, options) if options.onset_head else None

    def data_spec(self) -> DataSpec:
        targets = ("piano_roll", "onset_roll") if self.options.onset_head else ("piano_roll",)
        return DataSpec(sample_rate=self.backbone.sample_rate, crop_s=self.options.crop_s,
                        frame_rate=self.backbone.frame_rate_hz, targets=targets, kinds=("music",))

    def logits(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Frame and onset logits ``[batch, n_frames, 88]`` (onsets ``None`` without the onset head)."""
        h = self.backbone(audio).frames(self.options.layer)
        return self.frame_head(h), (self.onset_head(h) if self.onset_head is not None else None)

    def _valid(self, batch: Mapping[str, Any], n: int, device: torch.device) -> torch.Tensor:
        lengths = batch.get("lengths")
        if lengths is None:
            return torch.ones(batch["audio"].shape[0], n, dtype=torch.bool, device=device)
        counts = torch.tensor([min(n, self.backbone.n_frames(int(x))) for x in lengths], device=device)
        return torch.arange(n, device=device)[None, :] < counts[:, None]

    def _prepare(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor,
                                                          torch.Tensor | None, torch.Tensor]:
        audio = batch["audio"]
        if audio.ndim != 2:
            raise TrainingError(f"objective 'transcription' takes audio [batch, n_samples], got {tuple(audio.shape)}")
        if "piano_roll" not in batch:
            raise TrainingError("the batch has no 'piano_roll': transcription needs music with note labels")
        frame_logits, onset_logits = self.logits(audio)
        roll = torch.as_tensor(batch["piano_roll"], device=frame_logits.device).float()
        n = align_frames(frame_logits.shape[1], roll.shape[1], max_mismatch=self.options.max_frame_mismatch)
        onset = None
        if onset_logits is not None:
            if "onset_roll" not in batch:
                raise TrainingError("onset_head is on but the batch has no 'onset_roll'")
            onset = torch.as_tensor(batch["onset_roll"], device=frame_logits.device).float()[:, :n]
            onset_logits = onset_logits[:, :n]
        valid = self._valid(batch, n, frame_logits.device)
        return frame_logits[:, :n], onset_logits, roll[:, :n], onset, valid

    def training_loss(self, batch: Mapping[str, Any], *, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        frame_logits, onset_logits, roll, onset, valid = self._prepare(batch)
        w = valid[..., None].float().expand_as(roll)
        denom = batch_denominator(w.sum().clamp_min(1.0))   # several processes: the global batch's frames
        frame_loss = (F.binary_cross_entropy_with_logits(frame_logits, roll, reduction="none") * w).sum() / denom
        out = {"frame_loss": frame_loss}
        loss = frame_loss
        if onset_logits is not None and onset is not None:
            onset_loss = (F.binary_cross_entropy_with_logits(onset_logits, onset, reduction="none") * w).sum() / denom
            out["onset_loss"] = onset_loss
            loss = loss + self.options.onset_weight * onset_loss
        out["loss"] = loss
        return out

    @torch.no_grad()
    def validation_outputs(self, batch: Mapping[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per clip ``(probabilities, roll)`` ``[n_valid_frames, 88]`` float32 / bool."""
        frame_logits, _, roll, _, valid = self._prepare(batch)
        probs = torch.sigmoid(frame_logits).float().cpu().numpy()
        roll_np = roll.cpu().numpy() > 0.5
        counts = valid.sum(dim=1).cpu().numpy()
        return [(probs[i, :c], roll_np[i, :c]) for i, c in enumerate(counts)]

    def validation_metrics(self, outputs: Sequence[Any]) -> dict[str, float]:
        """Frame and note scores over all collected clips (laid end to end, 1 s apart)."""
        clips = [c for batch in outputs if batch for c in batch]
        if not clips:
            return {}
        rate = float(self.backbone.frame_rate_hz)
        gap = int(math.ceil(rate))
        total = sum(p.shape[0] for p, _ in clips) + gap * (len(clips) - 1)
        pred = np.zeros((total, N_KEYS), dtype=bool)
        true = np.zeros((total, N_KEYS), dtype=bool)
        at = 0
        for p, r in clips:
            pred[at:at + p.shape[0]] = p > self.options.threshold
            true[at:at + r.shape[0]] = r
            at += p.shape[0] + gap
        scores = frame_scores(pred, true, frame_rate=rate)
        scores.update(note_scores(pred, true, frame_rate=rate, onset_tolerance=self.options.onset_tolerance,
                                  offset_ratio=self.options.offset_ratio))
        return scores


def build_transcription(options: Mapping[str, Any], model: Mapping[str, Any], *,
                        seed: int = 0) -> TranscriptionObjective:
    """The ``transcription`` objective from its options and the ``model`` section (default: tiny wav2vec2;
    fine-tuning sets ``model.init_from`` to a saved backbone;
    see :func:`~musiclens.train.objectives._common.build_objective`)."""
    return build_objective(TranscriptionObjective, TranscriptionOptions, options, model, seed=seed)


register_objective("transcription", build_transcription, help="frame-level 88-key transcription (BCE)")
