"""Objective ``ctc``: phoneme recognition with CTC, the speech control condition.

A linear head on one backbone layer (default the last) gives per-frame log-probabilities over
``blank`` (index 0) plus the phoneme vocabulary (index ``i + 1`` for ``vocabulary[i]``);
``torch.nn.functional.ctc_loss`` (blank 0, ``reduction="mean"``: each clip's loss divided by its
target length, then averaged; ``zero_infinity``) trains it against the phoneme sequences of the
synthetic speech corpus (:mod:`musiclens.corpora.speech`, word boundaries ``"|"`` included).
Clips are whole utterances padded to the longest in the batch; each clip's frame count is
``backbone.n_frames(lengths[i])``.

Vocabulary: :mod:`musiclens.corpora.speech` exposes no phoneme inventory (espeak-ng decides),
so the default :data:`ESPEAK_EN_PHONEMES` lists the ASCII (``-x``) phonemes espeak-ng speaks for
the corpus' English voices over its bundled sentences and grammar words (stress marks removed),
plus ``"|"``.  A phoneme outside the vocabulary is an error naming it; set ``vocabulary`` in the
options (e.g. for IPA output).

Validation metric: phoneme error rate, the Levenshtein distance between greedy decodings
(best class per frame, repeats merged, blanks dropped) and the references, summed over clips
and divided by the total reference length (:func:`edit_distance`, :func:`greedy_decode`).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from musiclens.errors import ConfigError, TrainingError
from musiclens.train.base import Backbone, DataSpec, Objective
from musiclens.train.objectives._common import batch_audio, build_objective, register_objective, check_layer, seeded_heads

__all__ = ["CTCOptions", "CTCObjective", "build_ctc", "edit_distance", "greedy_decode", "phoneme_error_rate",
           "ESPEAK_EN_PHONEMES", "BLANK"]

logger = logging.getLogger(__name__)

BLANK = 0

#: espeak-ng ASCII phonemes (``-x``, stress removed) of English voices, plus the word boundary ``"|"``.
ESPEAK_EN_PHONEMES: tuple[str, ...] = (
    "!", "0", "3", "3:", ":", ";", "@", "@2", "@5", "@L", "A:", "A@", "D", "E", "I", "I#", "I2", "IR", "N", "O2",
    "O:", "O@", "OI", "S", "T", "U", "V", "VR", "a", "a#", "aI", "aI2", "aI3", "aI@", "aU", "aa", "b", "d", "dZ",
    "e@", "eI", "f", "g", "h", "i", "i:", "i@3", "j", "k", "l", "m", "n", "o@", "oU", "p", "r", "r-", "s", "t",
    "t#", "t2", "tS", "t[", "u:", "v", "w", "w#", "z", "|",
)


def edit_distance(ref: Sequence[Hashable], hyp: Sequence[Hashable]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions, each cost 1) between two sequences."""
    ref, hyp = list(ref), list(hyp)
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def greedy_decode(log_probs: torch.Tensor, lengths: Sequence[int] | torch.Tensor | None = None) -> list[list[int]]:
    """Best path of ``[batch, n_frames, n_classes]`` scores: argmax per frame, repeats merged, blanks (0) dropped."""
    best = log_probs.argmax(dim=-1).cpu()
    out: list[list[int]] = []
    for i in range(best.shape[0]):
        n = best.shape[1] if lengths is None else int(lengths[i])
        seq, last = [], None
        for c in best[i, :n].tolist():
            if c != last and c != BLANK:
                seq.append(int(c))
            last = c
        out.append(seq)
    return out


def phoneme_error_rate(refs: Sequence[Sequence[Hashable]], hyps: Sequence[Sequence[Hashable]]) -> float:
    """Summed edit distance over summed reference length."""
    if len(refs) != len(hyps):
        raise ConfigError(f"{len(refs)} references but {len(hyps)} hypotheses")
    total = sum(len(r) for r in refs)
    if total == 0:
        raise ConfigError("references are all empty: the phoneme error rate is undefined")
    return sum(edit_distance(r, h) for r, h in zip(refs, hyps)) / total


@dataclass
class CTCOptions:
    """Options of the ``ctc`` objective.

    Attributes
    ----------
    vocabulary
        Phoneme symbols (default :data:`ESPEAK_EN_PHONEMES`); class ``i + 1`` is ``vocabulary[i]``.
    layer
        Backbone layer the head reads (index into ``hidden_states``; -1: last).
    """

    vocabulary: tuple[str, ...] = ESPEAK_EN_PHONEMES
    layer: int = -1

    def __post_init__(self) -> None:
        self.vocabulary = tuple(str(v) for v in self.vocabulary)
        if not self.vocabulary:
            raise ConfigError("options.vocabulary is empty; list the CTC output symbols (phonemes)")
        dup = sorted({v for v in self.vocabulary if self.vocabulary.count(v) > 1})
        if dup:
            raise ConfigError(f"options.vocabulary lists {dup} more than once; list each symbol once")


class CTCObjective(Objective):
    """CTC phoneme recognition (see the module docstring)."""

    name = "ctc"
    #: learned = phoneme error rate on held-out utterances of at most 0.5
    default_bar = {"metric": "val/per", "threshold": 0.5, "direction": "lower"}

    def __init__(self, backbone: Backbone, options: CTCOptions, *, seed: int = 0) -> None:
        super().__init__(backbone)
        self.options = options
        check_layer(backbone, options.layer)
        self.index = {p: i + 1 for i, p in enumerate(options.vocabulary)}
        with seeded_heads(seed):
            self.head = nn.Linear(backbone.hidden_size, len(options.vocabulary) + 1)

    def data_spec(self) -> DataSpec:
        return DataSpec(sample_rate=self.backbone.sample_rate, crop_s=None, targets=("phonemes",), kinds=("speech",))

    def encode(self, phonemes: Sequence[str]) -> list[int]:
        """Class indices of a phoneme sequence; unknown phonemes raise :class:`ConfigError`."""
        unknown = sorted({p for p in phonemes if p not in self.index})
        if unknown:
            raise ConfigError(f"phoneme(s) {unknown} are not in the CTC vocabulary ({len(self.index)} symbols); "
                              "add them to the 'ctc' objective's vocabulary option")
        return [self.index[p] for p in phonemes]

    def decode(self, indices: Sequence[int]) -> list[str]:
        """Phonemes of class indices (blank excluded)."""
        return [self.options.vocabulary[i - 1] for i in indices if i != BLANK]

    def _forward(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        audio = batch_audio(batch, objective="ctc")
        h = self.backbone(audio).frames(self.options.layer)
        log_probs = F.log_softmax(self.head(h).float(), dim=-1)
        n = log_probs.shape[1]
        lengths = batch.get("lengths")
        if lengths is None:
            frames = torch.full((audio.shape[0],), n, dtype=torch.long)
        else:
            frames = torch.tensor([min(n, self.backbone.n_frames(int(x))) for x in lengths], dtype=torch.long)
        return log_probs, frames

    def training_loss(self, batch: Mapping[str, Any], *, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        if "phonemes" not in batch:
            raise TrainingError("the batch has no 'phonemes': objective 'ctc' needs the speech corpus")
        log_probs, frames = self._forward(batch)
        targets = [self.encode(p) for p in batch["phonemes"]]
        if len(targets) != log_probs.shape[0]:
            raise TrainingError(f"{len(targets)} phoneme sequences for {log_probs.shape[0]} clips")
        target_lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
        if int(target_lengths.min()) == 0:
            raise TrainingError("a clip has an empty phoneme sequence")
        flat = torch.tensor([i for t in targets for i in t], dtype=torch.long)
        loss = F.ctc_loss(log_probs.transpose(0, 1), flat.to(log_probs.device), frames.to(log_probs.device),
                          target_lengths.to(log_probs.device), blank=BLANK, reduction="mean", zero_infinity=True)
        too_short = (frames < target_lengths).float().mean()
        return {"loss": loss, "frames_shorter_than_targets": too_short}

    @torch.no_grad()
    def validation_outputs(self, batch: Mapping[str, Any]) -> list[tuple[list[str], list[str]]]:
        """Per clip ``(reference phonemes, greedy decoding)``."""
        log_probs, frames = self._forward(batch)
        hyps = greedy_decode(log_probs, frames)
        return [(list(ref), self.decode(h)) for ref, h in zip(batch["phonemes"], hyps)]

    def validation_metrics(self, outputs: Sequence[Any]) -> dict[str, float]:
        """``{"per": phoneme error rate}`` over all collected clips."""
        pairs = [p for batch in outputs if batch for p in batch]
        if not pairs:
            return {}
        return {"per": phoneme_error_rate([r for r, _ in pairs], [h for _, h in pairs])}


def build_ctc(options: Mapping[str, Any], model: Mapping[str, Any], *,
              seed: int = 0) -> CTCObjective:
    """The ``ctc`` objective from its options and the ``model`` section (default: tiny wav2vec2;
    see :func:`~musiclens.train.objectives._common.build_objective`)."""
    return build_objective(CTCObjective, CTCOptions, options, model, seed=seed)


register_objective("ctc", build_ctc, help="CTC phoneme recognition (speech control)")
