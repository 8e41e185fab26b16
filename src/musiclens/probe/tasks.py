"""Probe tasks: what is predicted, from which labels, scored how, split by what.

:data:`TASKS` maps a task name to a :class:`TaskSpec`.  Built-in tasks:

========== ======= =========== ============================ ====================== ==============
task       level   type        labels                       metrics (primary first) split groups
========== ======= =========== ============================ ====================== ==============
pitch      global  multiclass  metadata ``midi``            accuracy, chroma_acc   instrument
pitch_class global multiclass  metadata ``pitch_class``     accuracy               instrument
octave     global  multiclass  metadata ``octave``          accuracy               instrument
instrument global  multiclass  metadata ``instrument``      accuracy               midi
family     global  multiclass  metadata ``family``          accuracy               instrument
genre      global  multiclass  metadata ``genre``           accuracy               stimulus
label      global  multiclass  metadata ``label``           accuracy               ``group`` column
key        global  multiclass  24 keys of the piece         key.weighted_score,    piece
                                                            accuracy
chords     local   multiclass  25 classes per frame         chord.majmin, accuracy piece
onsets     local   multilabel  1 output per frame           onset.f_measure, mAP   piece
beats      local   multilabel  1 output per frame           beat.f_measure, mAP    piece
notes      local   multilabel  88 keys per frame            multipitch.f_measure,  piece
                                                            transcription.f_...
========== ======= =========== ============================ ====================== ==============

Grouping: notes of one instrument never appear on both sides of a split (a probe must generalise
to unseen instruments); the instrument task is split by pitch instead (its label *is* the
instrument), so it generalises to unseen pitches.  Music tasks keep pieces together.

Label conventions [default, stated here]:

- **Chords** (25 classes = 12 major + 12 minor triads + ``N``): a mir_eval label is encoded
  with ``mir_eval.chord.encode``; a quality with a major third (maj, 7, maj7, aug, 9...) maps to
  ``<root>:maj``, one with a minor third and no major third (min, min7, dim, hdim7...) to
  ``<root>:min``; chords without a third (sus2, sus4, power chord ``5``, ``1``) map to the
  major chord of their root (their nearest maj/min reduction); ``N`` and ``X`` map to ``N``.
  Scoring compares against the *original* reference labels with ``mir_eval.chord.majmin``.
- **Key** (24 classes ``"C major"`` ... ``"B minor"``): the piece's key, or, when it modulates,
  the key segment covering most of the clip.  Modes other than major/minor map to major
  (ionian, lydian, mixolydian) or minor (dorian, phrygian, aeolian, locrian).
- **Frames**: labels are read at the activation frame centres (nearest frame centre rule): a
  chord or sounding note is the one at the centre time; an onset or beat is assigned to the
  frame whose centre is nearest to it; a note shorter than a frame marks the frame nearest its
  onset.  See :func:`check_frame_count` for the frame-rate check.

This module imports without torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from musiclens.corpora.labels import MusicLabels
from musiclens.errors import AnalysisError, ConfigError
from musiclens.registry import Registry
from musiclens.stimuli.stimulus_set import NOTE_NAMES

__all__ = [
    "TaskSpec", "TASKS", "CHORD_CLASSES", "KEY_CLASSES", "chord_class", "key_class", "piece_key",
    "event_frames", "check_frame_count", "LEVELS", "KINDS", "frame_times_for", "frame_rate_of", "describe_tasks",
]

LEVELS = ("global", "local")
KINDS = ("multiclass", "multilabel")

#: The 25 chord classes: ``C:maj`` ... ``B:maj``, ``C:min`` ... ``B:min``, ``N``.
CHORD_CLASSES: tuple[str, ...] = tuple(f"{n}:maj" for n in NOTE_NAMES) + tuple(f"{n}:min" for n in NOTE_NAMES) + ("N",)
#: The 24 key classes: ``C major`` ... ``B major``, ``C minor`` ... ``B minor`` (mir_eval syntax).
KEY_CLASSES: tuple[str, ...] = tuple(f"{n} major" for n in NOTE_NAMES) + tuple(f"{n} minor" for n in NOTE_NAMES)
_MINOR_MODES = {"minor", "dorian", "phrygian", "aeolian", "locrian"}
_MAJOR_MODES = {"major", "ionian", "lydian", "mixolydian"}


@dataclass(frozen=True)
class TaskSpec:
    """One probe task.

    Attributes
    ----------
    name
        Registry name.
    level
        ``"global"`` (one example per stimulus, pooled features) or ``"local"`` (one example
        per frame, no pooling).
    kind
        ``"multiclass"`` (softmax, cross-entropy) or ``"multilabel"`` (sigmoid, BCE).
    source
        ``"metadata"`` (labels from the stimulus metadata table) or ``"music"`` (from each
        stimulus' :class:`~musiclens.corpora.labels.MusicLabels`).
    labels
        ``metadata`` source: ``f(metadata) -> values [shape=(n,)]``.  ``music`` global:
        ``f(MusicLabels) -> value``.  Local: ``f(MusicLabels, times [shape=(n_frames,)] s,
        frame_rate) -> (targets, reference)`` with targets ``[shape=(n_frames,)]`` class indices
        or ``[shape=(n_frames, n_outputs)]`` 0/1, and the reference events for the metrics.
    metrics
        Metric names (:data:`~musiclens.probe.metrics.METRICS`), primary first.
    group
        Default split grouping: a metadata column, ``"piece"`` or ``"stimulus"``.
    classes
        Fixed output classes (chords, keys, 88 keys); ``None``: the values found in the data.
    encode
        For global tasks with fixed ``classes``: label value -> class index (e.g. :func:`key_class`).
    chance
        Nominal chance level, in words (the table reports the measured permutation chance).
    """

    name: str
    level: str
    kind: str
    source: str
    labels: Callable[..., Any]
    metrics: tuple[str, ...]
    group: str
    classes: tuple[Any, ...] | None = None
    encode: Callable[[Any], int] | None = None
    chance: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if self.level not in LEVELS or self.kind not in KINDS or self.source not in ("metadata", "music"):
            raise ConfigError(f"task {self.name!r}: level must be one of {LEVELS}, kind one of {KINDS}, "
                              "source 'metadata' or 'music'")
        if not self.metrics:
            raise ConfigError(f"task {self.name!r} needs at least one metric")

    @property
    def primary(self) -> str:
        """The primary metric (the first)."""
        return self.metrics[0]


#: Probe tasks by name.
TASKS: Registry[TaskSpec] = Registry("probe task")


def _column(name: str) -> Callable[[pd.DataFrame], np.ndarray]:
    def get(metadata: pd.DataFrame) -> np.ndarray:
        if name not in metadata.columns:
            raise ConfigError(
                f"the stimulus metadata has no {name!r} column (columns: {list(metadata.columns)}); "
                "choose a task whose labels the stimuli carry"
            )
        values = metadata[name]
        missing = values.isna() | (values.astype(str) == "")
        if missing.any():
            ids = metadata.loc[missing, "stimulus_id"].tolist()[:5] if "stimulus_id" in metadata else []
            raise AnalysisError(
                f"{int(missing.sum())} stimuli have no {name!r} label (e.g. {ids}); "
                "subset the stimulus set to labelled stimuli first"
            )
        if pd.api.types.is_numeric_dtype(values):
            return values.to_numpy().astype(np.int64)
        return values.astype(str).to_numpy()
    get.__doc__ = f"metadata column {name!r}"
    return get


# ------------------------------------------------------------------------------- music labels
def chord_class(label: str) -> int:
    """Index in :data:`CHORD_CLASSES` of a mir_eval chord label (see the module docstring)."""
    import mir_eval

    try:
        root, bitmap, _ = mir_eval.chord.encode(str(label))
    except mir_eval.chord.InvalidChordException as err:
        raise AnalysisError(f"invalid chord label {label!r} ({err}); labels must be in mir_eval syntax") from err
    if root < 0:
        return 24
    major, minor = bool(bitmap[4]), bool(bitmap[3])
    return int(root) % 12 + (12 if (minor and not major) else 0)


def key_class(label: str) -> int:
    """Index in :data:`KEY_CLASSES` of a mir_eval key label (``"Eb major"``)."""
    import mir_eval

    try:
        tonic, mode = mir_eval.key.split_key_string(str(label))
    except (KeyError, ValueError) as err:
        raise AnalysisError(f"invalid key label {label!r}; use mir_eval syntax like 'Eb major'") from err
    if tonic is None or mode is None:
        raise AnalysisError(f"key label {label!r} names no key; drop such stimuli from the key task")
    mode = mode.lower()
    if mode not in _MINOR_MODES | _MAJOR_MODES:
        raise AnalysisError(f"key mode {mode!r} of {label!r} cannot be mapped to major/minor")
    return int(tonic) % 12 + (12 if mode in _MINOR_MODES else 0)


def piece_key(labels: MusicLabels) -> str:
    """The key of a piece or clip: the longest key segment, else ``labels.key``."""
    if labels.key_segments:
        s, e, k = max(labels.key_segments, key=lambda seg: seg[1] - seg[0])
        return str(k)
    if labels.key is None:
        raise AnalysisError("a stimulus has no key label; the key task needs pieces with known keys")
    return str(labels.key)


def event_frames(events: np.ndarray, times: np.ndarray, *, frame_rate: float) -> np.ndarray:
    """Binary frame targets: each event marks the frame whose centre is nearest to it.

    Events more than half a hop outside the frames' span are ignored.

    Returns
    -------
    np.ndarray
        ``[shape=(n_frames,)]`` float32 0/1.
    """
    t = np.asarray(times, dtype=np.float64)
    out = np.zeros(t.size, dtype=np.float32)
    e = np.asarray(events, dtype=np.float64)
    if t.size == 0 or e.size == 0:
        return out
    half = 0.5 / frame_rate
    e = e[(e >= t[0] - half) & (e < t[-1] + half)]
    idx = np.clip(np.searchsorted(t, e), 1, t.size - 1) if t.size > 1 else np.zeros(e.size, dtype=int)
    if t.size > 1:
        idx = np.where(np.abs(t[idx - 1] - e) <= np.abs(t[idx] - e), idx - 1, idx)
    out[idx] = 1.0
    return out


def check_frame_count(*, n_frames: int, duration_s: float, frame_rate: float, stimulus: str) -> None:
    """Raise unless activation frames and label duration agree within one frame.

    ``duration_s * frame_rate`` frames are expected; a difference of more than one frame means
    the activations' frame rate (or frame times) is not the labels' clock.
    """
    expected = duration_s * frame_rate
    if abs(n_frames - expected) > 1.0 + 1e-6:
        implied = n_frames / duration_s if duration_s > 0 else float("nan")
        raise AnalysisError(
            f"frame-rate mismatch for stimulus {stimulus!r}: the activations have {n_frames} frames at "
            f"{frame_rate:g} Hz ({n_frames / frame_rate:.3f} s) but its labels last {duration_s:.3f} s "
            f"(expected about {expected:.1f} frames; the activations imply {implied:.2f} frames/s). "
            "Give the activations' true frame times (a feature store extracted with --pooling none carries "
            "them) or the right --frame-rate, and check the clips are the labelled pieces"
        )


def _chord_frames(labels: MusicLabels, times: np.ndarray, frame_rate: float) -> tuple[np.ndarray, dict[str, Any]]:
    if labels.chords is None:
        raise AnalysisError("a stimulus has no chord labels; the chords task needs pieces with chords")
    starts = np.array([s for s, _, _ in labels.chords])
    ends = np.array([e for _, e, _ in labels.chords])
    cls = np.array([chord_class(lab) for _, _, lab in labels.chords], dtype=np.int64)
    seg = np.searchsorted(starts, times, side="right") - 1
    inside = (seg >= 0) & (times < ends[np.clip(seg, 0, len(ends) - 1)])
    targets = np.where(inside, cls[np.clip(seg, 0, len(cls) - 1)], 24).astype(np.int64)
    return targets, {"chords": labels.chord_intervals()}


def _onset_frames(labels: MusicLabels, times: np.ndarray, frame_rate: float) -> tuple[np.ndarray, dict[str, Any]]:
    ev = labels.onsets()
    return event_frames(ev, times, frame_rate=frame_rate)[:, None], {"events": ev}


def _beat_frames(labels: MusicLabels, times: np.ndarray, frame_rate: float) -> tuple[np.ndarray, dict[str, Any]]:
    return event_frames(labels.beats, times, frame_rate=frame_rate)[:, None], {"events": labels.beats}


def _note_frames(labels: MusicLabels, times: np.ndarray, frame_rate: float) -> tuple[np.ndarray, dict[str, Any]]:
    roll = np.zeros((times.size, 88), dtype=np.float32)
    n = labels.notes[~labels.notes["is_drum"]]
    for on, off, pitch in zip(n["onset"].to_numpy(), n["offset"].to_numpy(), n["pitch"].to_numpy()):
        k = int(pitch) - 21
        if not 0 <= k < 88:
            continue
        active = (times >= on) & (times < off)
        if active.any():
            roll[active, k] = 1.0
        elif times.size:
            roll[int(np.argmin(np.abs(times - on))), k] = 1.0
    return roll, {"notes": labels.mir_eval_notes()}


def _register_builtin() -> None:
    note = "chance: the most frequent class / 1 over the classes when balanced"
    for name, col, group in (("pitch", "midi", "instrument"), ("pitch_class", "pitch_class", "instrument"),
                             ("octave", "octave", "instrument"), ("instrument", "instrument", "midi"),
                             ("family", "family", "instrument"), ("genre", "genre", "stimulus"),
                             ("label", "label", "group")):
        metrics = ("accuracy", "chroma_acc") if name == "pitch" else ("accuracy",)
        TASKS.register(name, TaskSpec(
            name=name, level="global", kind="multiclass", source="metadata", labels=_column(col),
            metrics=metrics, group=group, chance=note,
            description=f"{col} from the stimulus metadata (split by {group})"),
            help=f"global multiclass: metadata column {col!r}; metrics {', '.join(metrics)}; split by {group}")
    TASKS.register("key", TaskSpec(
        name="key", level="global", kind="multiclass", source="music", labels=piece_key,
        metrics=("key.weighted_score", "accuracy"), group="piece", classes=KEY_CLASSES, encode=key_class,
        chance="1/24 accuracy when keys are balanced", description="24 major/minor keys"),
        help="global 24-class key of each piece; metrics key.weighted_score, accuracy")
    TASKS.register("chords", TaskSpec(
        name="chords", level="local", kind="multiclass", source="music", labels=_chord_frames,
        metrics=("chord.majmin", "accuracy"), group="piece", classes=CHORD_CLASSES,
        chance="the frequency of the most common chord", description="25 chord classes per frame"),
        help="per-frame 25 chords (24 maj/min + N); metrics chord.majmin, accuracy")
    TASKS.register("onsets", TaskSpec(
        name="onsets", level="local", kind="multilabel", source="music", labels=_onset_frames,
        metrics=("onset.f_measure", "mAP"), group="piece", classes=("onset",),
        chance="F of randomly placed peaks", description="note onsets per frame"),
        help="per-frame onset activation; metrics onset.f_measure (50 ms), mAP")
    TASKS.register("beats", TaskSpec(
        name="beats", level="local", kind="multilabel", source="music", labels=_beat_frames,
        metrics=("beat.f_measure", "mAP"), group="piece", classes=("beat",),
        chance="F of randomly placed peaks", description="beats per frame"),
        help="per-frame beat activation; metrics beat.f_measure (70 ms), mAP")
    TASKS.register("notes", TaskSpec(
        name="notes", level="local", kind="multilabel", source="music", labels=_note_frames,
        metrics=("multipitch.f_measure", "transcription.f_measure_no_offset"), group="piece",
        classes=tuple(range(21, 109)), chance="F of a roll unrelated to the music",
        description="88-key piano roll per frame"),
        help="per-frame 88-key roll; metrics multipitch.f_measure, transcription.f_measure_no_offset")


_register_builtin()


def frame_times_for(n_frames: int, frame_rate: float) -> np.ndarray:
    """Frame centres ``(i + 0.5) / frame_rate`` s, for activations that carry no frame times."""
    return (np.arange(n_frames) + 0.5) / float(frame_rate)


def describe_tasks(names: Sequence[str] | None = None) -> str:
    """One line per task, for ``--help`` texts and error messages."""
    d = TASKS.describe()
    return "\n".join(f"{n}: {d[n]}" for n in (names or d))


def frame_rate_of(times: np.ndarray) -> float:
    """Frame rate (Hz) from frame-centre times (the median spacing of the finite times)."""
    t = np.asarray(times, dtype=np.float64)
    t = t[np.isfinite(t)]
    if t.size < 2:
        raise AnalysisError("cannot infer a frame rate from fewer than two frame times; pass frame_rate_hz")
    step = float(np.median(np.diff(t)))
    if not step > 0 or not math.isfinite(step):
        raise AnalysisError("frame times are not increasing; the activations' frame times are corrupt")
    return 1.0 / step
