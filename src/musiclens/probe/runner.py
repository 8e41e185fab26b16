"""`run_probes`: activations + labels -> a tidy table of probe scores per layer and task.

For every task, the examples are built once (one per stimulus for global tasks, one per valid
sequence frame for local tasks), split into train / valid / test by groups (no instrument or
piece on two sides; :mod:`musiclens.probe.splits`), and a probe is trained per layer and, with
``weighted_sum=True``, on the softmax-weighted sum of all chosen layers
(:mod:`musiclens.probe.models`).  The test split is scored with every metric of the task.

Table (:data:`TABLE_COLUMNS`), one row per (task, layer, metric, split):

- ``split="test"``: ``value`` with a percentile bootstrap interval ``ci_low``/``ci_high``
  (``bootstrap_over``: test examples for global tasks, pieces for local tasks, by default) and
  ``chance``, the permutation chance of the same predictions
  (:func:`~musiclens.probe.metrics.permutation_chance`); ``n_boot_undefined`` counts the
  resamples on which the metric is undefined (left out of the interval, and logged);
- ``split="valid"``: the primary metric of the kept checkpoint (what chose it).

``layer`` is the layer name or ``"weighted_sum"``; ``pooling`` is the pooling of global tasks
and ``"frames"`` for local ones; ``lr`` the chosen learning rate.  The assignment of every
stimulus to a split, with its group, is in :attr:`ProbeResult.splits`.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musiclens.corpora.labels import MusicLabels
from musiclens.errors import AnalysisError, ConfigError, InsufficientDataError
from musiclens.extract.base import resolve_layers
from musiclens.fsutil import atomic_write_bytes, atomic_write_text
from musiclens.probe.features import FeatureSource, as_feature_source
from musiclens.probe.metrics import (METRICS, Predictions, bootstrap_interval, permutation_chance, score,
                                     unit_scores)
from musiclens.probe.splits import SPLITS, grouped_split, split_from_column
from musiclens.probe.tasks import TASKS, TaskSpec, check_frame_count, frame_rate_of
from musiclens.provenance import Timer

__all__ = ["run_probes", "ProbeResult", "TaskData", "prepare_task", "TABLE_COLUMNS", "WEIGHTED_SUM"]

logger = logging.getLogger(__name__)

#: Columns of the tidy table, in order.
TABLE_COLUMNS: tuple[str, ...] = (
    "network", "layer", "task", "pooling", "probe", "metric", "primary", "value", "split", "lr", "n_train",
    "n_val", "n_test", "chance", "ci_low", "ci_high", "n_boot_undefined", "seed", "best_epoch",
)
#: Columns of :attr:`ProbeResult.units`.
UNIT_COLUMNS: tuple[str, ...] = ("network", "task", "layer", "pooling", "probe", "metric", "unit", "value", "seed")
#: ``layer`` value of the weighted-layer-sum probe.
WEIGHTED_SUM = "weighted_sum"


@dataclass
class ProbeResult:
    """Everything one :func:`run_probes` call computed.

    Attributes
    ----------
    table
        The tidy table (:data:`TABLE_COLUMNS`).
    layer_weights
        Softmax weights of the weighted-sum probes: network, task, pooling, probe, layer, weight, seed.
    splits
        One row per (task, stimulus): ``task``, ``stimulus_id``, ``group``, ``split``.
    grid
        The learning-rate grid per (task, layer): ``lr``, ``val_score``, ``best_epoch``, ``epochs``.
    units
        The primary test metric per evaluation unit (piece or stimulus group; see
        :func:`~musiclens.probe.metrics.unit_scores`): network, task, layer, pooling, probe,
        metric, unit, value, seed -- what paired contrasts between networks compare.
    config
        The arguments of the run (JSON-serialisable).
    timings
        Seconds per stage.
    """

    table: pd.DataFrame
    layer_weights: pd.DataFrame
    splits: pd.DataFrame
    grid: pd.DataFrame
    config: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    units: pd.DataFrame = field(default_factory=pd.DataFrame)

    FILES = {"table": "probe", "layer_weights": "probe_layer_weights", "splits": "probe_splits", "grid": "probe_grid",
             "units": "probe_units"}

    def save(self, folder: str | Path) -> list[Path]:
        """Write ``probe.csv``, ``probe.parquet``, ``probe_layer_weights.csv``, ``probe_splits.csv``,
        ``probe_grid.csv`` and ``probe_config.json`` atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for attr, stem in self.FILES.items():
            df: pd.DataFrame = getattr(self, attr)
            paths.append(atomic_write_text(folder / f"{stem}.csv", df.to_csv(index=False, float_format="%.10g")))
        buf = io.BytesIO()
        try:
            self.table.to_parquet(buf, index=False)
            paths.append(atomic_write_bytes(folder / "probe.parquet", buf.getvalue()))
        except ImportError:
            logger.warning("pyarrow is not installed: probe.parquet not written (pip install pyarrow)")
        paths.append(atomic_write_text(folder / "probe_config.json",
                                       json.dumps(self.config, indent=2, sort_keys=True, default=str) + "\n"))
        return paths

    @classmethod
    def load(cls, folder: str | Path) -> ProbeResult:
        """Read a folder written by :meth:`save` (for figures and reports)."""
        folder = Path(folder)
        if not (folder / "probe.csv").is_file():
            raise AnalysisError(f"{folder} holds no probe.csv; run `musiclens probe` first")
        frames = {attr: pd.read_csv(folder / f"{stem}.csv") for attr, stem in cls.FILES.items()
                  if (folder / f"{stem}.csv").is_file()}
        for attr in cls.FILES:
            frames.setdefault(attr, pd.DataFrame())
        cfg = folder / "probe_config.json"
        config = json.loads(cfg.read_text()) if cfg.is_file() else {}
        return cls(config=config, **frames)


@dataclass
class TaskData:
    """The examples of one task.

    Attributes
    ----------
    targets
        ``[shape=(n,)]`` class indices or ``[shape=(n, n_outputs)]`` 0/1.
    classes
        Label value of each output.
    stimulus
        ``[shape=(n,)]`` row of each example's stimulus in the activations.
    frame
        ``[shape=(n,)]`` sequence-frame index (local tasks), else ``None``.
    groups
        ``[shape=(n,)]`` split group of each example.
    eval_groups
        ``[shape=(n,)]`` evaluation group (stimulus id for local tasks, split group otherwise).
    split
        ``[shape=(n,)]`` ``train``/``valid``/``test``.
    times, frame_rate, references
        Frame-centre times (s), frame rate (Hz) and per-stimulus reference events (local tasks).
    """

    task: TaskSpec
    targets: np.ndarray
    classes: list[Any]
    stimulus: np.ndarray
    frame: np.ndarray | None
    groups: np.ndarray
    eval_groups: np.ndarray
    split: np.ndarray
    times: np.ndarray | None = None
    frame_rate: float | None = None
    references: dict[str, dict[str, Any]] = field(default_factory=dict)

    def features(self, source: FeatureSource, layer: str, pooling: str) -> np.ndarray:
        """``[shape=(n, dim)]`` float32 features of the examples in ``layer``; NaN is an error."""
        if self.frame is None:
            x = source.pooled(pooling, layer)[self.stimulus]
        else:
            arr, _, _ = source.frames(layer)
            x = np.asarray(arr[self.stimulus, source.n_special + self.frame], dtype=np.float32)
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            ids = sorted({source.stimulus_ids[i] for i in self.stimulus[bad]})
            raise AnalysisError(
                f"layer {layer!r} has NaN or inf features in {int(bad.sum())} example(s) of {len(ids)} stimuli "
                f"(e.g. {ids[:5]}); re-extract those stimuli or drop them before probing"
            )
        return np.asarray(x, dtype=np.float32)

    def predictions(self, mask: np.ndarray, scores: np.ndarray) -> Predictions:
        """:class:`Predictions` of the examples in ``mask``."""
        return Predictions(targets=self.targets[mask], scores=scores, classes=self.classes,
                           groups=self.eval_groups[mask], times=None if self.times is None else self.times[mask],
                           frame_rate=self.frame_rate, references=self.references)


def _align_metadata(metadata: pd.DataFrame, ids: Sequence[str]) -> pd.DataFrame:
    if "stimulus_id" not in metadata.columns:
        raise AnalysisError("the metadata needs a 'stimulus_id' column matching the activations' stimulus ids")
    meta = metadata.copy()
    meta["stimulus_id"] = meta["stimulus_id"].astype(str)
    missing = sorted(set(ids) - set(meta["stimulus_id"]))
    if missing:
        raise AnalysisError(
            f"{len(missing)} stimuli of the activations have no metadata row (e.g. {missing[:5]}); probe the "
            "activations with the stimulus set they were extracted from"
        )
    return meta.set_index("stimulus_id").loc[list(ids)].reset_index()


def _groups(task: TaskSpec, meta: pd.DataFrame, group: str | None) -> np.ndarray:
    col = group or task.group
    ids = meta["stimulus_id"].to_numpy().astype(str)
    if col == "stimulus":
        return ids
    if col == "piece":
        return meta["piece_id"].astype(str).to_numpy() if "piece_id" in meta.columns else ids
    if col == "group" and "group" not in meta.columns and group is None:
        return ids
    if col not in meta.columns:
        raise ConfigError(
            f"cannot group task {task.name!r} by {col!r}: no such metadata column (columns: {list(meta.columns)}); "
            "pass group=... naming a column, 'stimulus' or 'piece'"
        )
    return meta[col].astype(str).to_numpy()


def _music_labels(meta: pd.DataFrame, music_labels: Mapping[str, MusicLabels] | None, task: TaskSpec) -> list[MusicLabels]:
    ids = meta["stimulus_id"].astype(str).tolist()
    if music_labels is not None:
        missing = [i for i in ids if i not in music_labels]
        if missing:
            raise AnalysisError(f"task {task.name!r}: {len(missing)} stimuli have no music labels (e.g. {missing[:5]})")
        return [music_labels[i] for i in ids]
    if "music_labels" in meta.columns:
        return [MusicLabels.from_dict(json.loads(s)) for s in meta["music_labels"]]
    raise ConfigError(
        f"task {task.name!r} needs music labels (a corpus, or a stimulus set made from one with "
        "musiclens.probe.datasets.corpus_stimulus_set); these stimuli have none"
    )


def _check_classes(task: TaskSpec, targets: np.ndarray, classes: list[Any], *, min_per_class: int) -> None:
    if task.kind == "multilabel":
        if targets.size == 0 or targets.max() == targets.min():
            raise InsufficientDataError(
                f"task {task.name!r}: every target is {targets.flat[0] if targets.size else 'absent'}; a probe needs "
                "positive and negative examples (check the labels and the frame rate)"
            )
        return
    counts = np.bincount(targets, minlength=len(classes))
    present = np.flatnonzero(counts)
    if present.size < 2:
        only = classes[present[0]] if present.size else "none"
        raise InsufficientDataError(
            f"task {task.name!r} has a single class ({only!r}) in {len(targets)} examples; a probe needs at least two "
            "classes: use stimuli that differ in this label"
        )
    if task.level == "global":
        rare = {str(classes[c]): int(counts[c]) for c in present if counts[c] < min_per_class}
        if rare:
            raise InsufficientDataError(
                f"task {task.name!r}: {len(rare)} classes have fewer than {min_per_class} examples "
                f"(counts: {dict(list(rare.items())[:10])}); add stimuli of these classes, pass drop_rare=True "
                "(--drop-rare) to leave them out, or lower min_examples_per_class"
            )


def prepare_task(
    task: TaskSpec | str,
    source: FeatureSource,
    *,
    metadata: pd.DataFrame,
    music_labels: Mapping[str, MusicLabels] | None = None,
    group: str | None = None,
    split_column: str | None = None,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    layer: str | None = None,
    frame_rate_hz: float | None = None,
    min_examples_per_class: int = 2,
    drop_rare: bool = False,
) -> TaskData:
    """Build the examples, targets, groups and splits of ``task`` (see :func:`run_probes`)."""
    task = TASKS.get(task) if isinstance(task, str) else task
    meta = _align_metadata(metadata, source.stimulus_ids)
    n = len(meta)
    groups_stim = _groups(task, meta, group)
    stim_ids = meta["stimulus_id"].astype(str).to_numpy()
    keep = np.ones(n, dtype=bool)
    frame = times = None
    fr: float | None = None
    refs: dict[str, dict[str, Any]] = {}
    if task.level == "global":
        if task.source == "metadata":
            values = np.asarray(task.labels(meta))
        else:
            values = np.asarray([task.labels(lab) for lab in _music_labels(meta, music_labels, task)], dtype=object)
        if task.classes is not None:
            classes = list(task.classes)
            encode = task.encode or (lambda v: classes.index(v))
            targets = np.asarray([encode(v) for v in values], dtype=np.int64)
        else:
            classes = sorted(set(values.tolist()), key=lambda v: (str(type(v)), v))
            index = {c: i for i, c in enumerate(classes)}
            targets = np.asarray([index[v] for v in values.tolist()], dtype=np.int64)
        if drop_rare:
            counts = np.bincount(targets, minlength=len(classes))
            keep = counts[targets] >= min_examples_per_class
            if not keep.all():
                logger.warning("task %s: dropping %d stimuli of %d classes with fewer than %d examples", task.name,
                               int((~keep).sum()), int(((counts > 0) & (counts < min_examples_per_class)).sum()),
                               min_examples_per_class)
        stimulus = np.flatnonzero(keep)
        targets = targets[keep]
        groups = groups_stim[keep]
        eval_groups = groups
    else:
        labels = _music_labels(meta, music_labels, task)
        ref_layer = layer or source.layer_names[0]
        _, t_all, valid = source.frames(ref_layer)
        seq_t = np.asarray(t_all, dtype=np.float64)[source.n_special:]
        parts_t, parts_s, parts_f, parts_y = [], [], [], []
        for i, lab in enumerate(labels):
            nv = int(valid[i])
            t = seq_t[:nv]
            if nv == 0:
                continue
            if np.isfinite(t).all() and nv >= 2:
                fr = frame_rate_of(t) if fr is None else fr
            elif fr is None and frame_rate_hz is not None:
                fr = float(frame_rate_hz)
            if fr is None:
                raise ConfigError("cannot tell the activations' frame rate; pass frame_rate_hz (--frame-rate)")
            check_frame_count(n_frames=nv, duration_s=float(lab.duration_s), frame_rate=fr, stimulus=stim_ids[i])
            y, ref = task.labels(lab, t, fr)
            refs[stim_ids[i]] = ref
            parts_t.append(t)
            parts_s.append(np.full(nv, i))
            parts_f.append(np.arange(nv))
            parts_y.append(y)
        if not parts_s:
            raise InsufficientDataError(f"task {task.name!r}: no stimulus has valid frames")
        stimulus = np.concatenate(parts_s)
        frame = np.concatenate(parts_f)
        times = np.concatenate(parts_t)
        targets = np.concatenate(parts_y, axis=0)
        classes = list(task.classes or range(targets.shape[1] if targets.ndim == 2 else int(targets.max()) + 1))
        groups = groups_stim[stimulus]
        eval_groups = stim_ids[stimulus]
    _check_classes(task, targets, classes, min_per_class=min_examples_per_class)
    if split_column is not None:
        if split_column not in meta.columns:
            raise ConfigError(f"split column {split_column!r} is not in the metadata (columns: {list(meta.columns)})")
        split_stim = split_from_column(meta[split_column].to_numpy()[np.unique(stimulus)])
        lookup = dict(zip(np.unique(stimulus), split_stim))
        split = np.asarray([lookup[s] for s in stimulus], dtype="<U5")
        leaky = {g for g in set(groups.tolist()) if len(set(split[groups == g].tolist())) > 1}
        if leaky:
            logger.warning("the given split puts %d group(s) on several sides (e.g. %s); scores may be inflated",
                           len(leaky), sorted(leaky)[:3])
    else:
        split = grouped_split(groups, fractions=fractions, seed=seed)
    for s in SPLITS:
        if not (split == s).any():
            raise InsufficientDataError(f"task {task.name!r}: the {s} split is empty; add stimuli or change the fractions")
    if task.kind == "multiclass" and np.unique(targets[split == "train"]).size < 2:
        raise InsufficientDataError(
            f"task {task.name!r}: the training split holds a single class; add groups or change the seed/fractions"
        )
    return TaskData(task=task, targets=targets, classes=classes, stimulus=stimulus, frame=frame, groups=groups,
                    eval_groups=eval_groups, split=split, times=times, frame_rate=fr, references=refs)


def run_probes(
    activations: Any,
    *,
    tasks: Sequence[str],
    metadata: pd.DataFrame,
    music_labels: Mapping[str, MusicLabels] | None = None,
    stimulus_ids: Sequence[str] | None = None,
    network: str = "network",
    layers: str | int | Sequence[str | int] | None = None,
    pooling: str = "mean",
    probe: str = "linear",
    weighted_sum: bool = True,
    lrs: Sequence[float] | None = None,
    max_epochs: int = 100,
    patience: int = 10,
    batch_size: int = 64,
    hidden: int = 512,
    dropout: float = 0.2,
    group: str | None = None,
    split_column: str | None = None,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    n_bootstraps: int = 200,
    ci_level: float = 0.95,
    bootstrap_over: str = "auto",
    min_examples_per_class: int = 2,
    drop_rare: bool = False,
    frame_rate_hz: float | None = None,
    max_weighted_sum_bytes: int = 2 << 30,
    progress: bool = False,
) -> ProbeResult:
    """Train and score probes for every task and layer.

    Parameters
    ----------
    activations
        Anything :func:`~musiclens.probe.features.as_feature_source` reads: ``Activations``, a
        feature-store folder, an ``.npz``, or ``{layer: [shape=(n, dim)]}`` pooled features.
    tasks
        Task names (:data:`~musiclens.probe.tasks.TASKS`).
    metadata
        One row per stimulus with ``stimulus_id`` (the stimulus set's table); rows are matched
        to the activations by id.
    music_labels
        ``{stimulus_id: MusicLabels}`` for music tasks (default: the metadata's ``music_labels``
        JSON column).
    stimulus_ids
        Ids of the rows of a mapping of pooled features (default: the metadata's order).
    network
        Name for the table's ``network`` column.
    layers
        Layer selection (names, indices, ranges; see :func:`~musiclens.extract.base.resolve_layers`).
    pooling
        Global tasks' pooling: ``mean``, ``cls``, ``cls+mean``, ``max``...  Local tasks use frames.
    probe
        ``"linear"`` or ``"mlp"`` (:data:`~musiclens.probe.models.PROBES`).
    weighted_sum
        Also train the softmax-weighted-layer-sum probe (when more than one layer).  Layers
        narrower than the widest are zero-padded (padding stays zero after standardisation).
    lrs, max_epochs, patience, batch_size, hidden, dropout
        Training (:func:`~musiclens.probe.models.fit_probe`).
    group
        Split groups: a metadata column, ``"piece"`` or ``"stimulus"``; default the task's own.
    split_column
        Metadata column with a given ``train``/``valid``/``test`` assignment (instead of a
        seeded grouped split).
    fractions
        Fractions of groups in train, valid, test.
    seed
        Seed of the split, the probe initialisation and order, bootstraps and permutations.
    n_bootstraps, ci_level, bootstrap_over
        Test-score intervals; ``bootstrap_over`` ``"examples"``, ``"groups"`` or ``"auto"``
        (examples for global tasks, pieces for local tasks).
    min_examples_per_class, drop_rare
        Global multiclass tasks: classes with fewer examples raise
        :class:`~musiclens.errors.InsufficientDataError`, or are dropped with ``drop_rare``.
    frame_rate_hz
        Frame rate of frame activations without frame times.
    max_weighted_sum_bytes
        Skip (with a warning) a weighted-sum probe whose stacked features would exceed this.
    progress
        Show a progress bar.

    Raises
    ------
    InsufficientDataError
        A single class, too few examples per class, fewer than three groups, an empty split.
    AnalysisError
        NaN features, ids that do not match, activations whose frame count disagrees with the
        labels' duration by more than one frame.
    """
    from tqdm.auto import tqdm

    from musiclens.probe.models import PROBES, fit_probe

    PROBES.get(probe)
    if bootstrap_over not in ("auto", "examples", "groups"):
        raise ConfigError(f"bootstrap_over must be 'auto', 'examples' or 'groups', got {bootstrap_over!r}")
    specs = [TASKS.get(t) for t in tasks]
    if not specs:
        raise ConfigError(f"no task given; choose from {', '.join(TASKS.names())}")
    timer = Timer()
    if stimulus_ids is None and isinstance(activations, Mapping) and "stimulus_id" in metadata.columns:
        stimulus_ids = metadata["stimulus_id"].astype(str).tolist()
    source = as_feature_source(activations, stimulus_ids=stimulus_ids, frame_rate_hz=frame_rate_hz)
    names = resolve_layers(source.layer_names, layers)
    rows: list[dict[str, Any]] = []
    weight_rows: list[dict[str, Any]] = []
    split_rows: list[pd.DataFrame] = []
    grid_rows: list[dict[str, Any]] = []
    unit_rows: list[dict[str, Any]] = []
    n_jobs = len(specs) * (len(names) + int(weighted_sum and len(names) > 1))
    bar = tqdm(total=n_jobs, desc="probe", unit="fit", disable=not progress, dynamic_ncols=True)
    for spec in specs:
        with timer(f"prepare:{spec.name}"):
            data = prepare_task(spec, source, metadata=metadata, music_labels=music_labels, group=group,
                                split_column=split_column, fractions=fractions, seed=seed, layer=names[0],
                                frame_rate_hz=frame_rate_hz, min_examples_per_class=min_examples_per_class,
                                drop_rare=drop_rare)
        if spec.level == "local":
            ref_times = source.frames(names[0])[1]
            for nm in names[1:]:
                if not np.array_equal(source.frames(nm)[1], ref_times, equal_nan=True):
                    raise ConfigError(
                        f"layers {names[0]!r} and {nm!r} have different frame times; probe frame tasks on layers "
                        "with one frame rate (choose them with layers=...)"
                    )
        pool_name = pooling if spec.level == "global" else "frames"
        over = bootstrap_over if bootstrap_over != "auto" else ("examples" if spec.level == "global" else "groups")
        stim_ids = np.asarray(source.stimulus_ids)
        first = pd.DataFrame({"stimulus_id": stim_ids[data.stimulus], "group": data.groups, "split": data.split})
        split_rows.append(first.drop_duplicates("stimulus_id").assign(task=spec.name)[
            ["task", "stimulus_id", "group", "split"]])
        masks = {s: data.split == s for s in SPLITS}
        n_out = len(data.classes)
        primary = METRICS.get(spec.primary)

        def val_score(probs: np.ndarray, _data: TaskData = data, _mask: np.ndarray = masks["valid"],
                      _m: str = spec.primary) -> float:
            return score(_m, _data.predictions(_mask, probs))

        def fit_and_score(layer_label: str, x: np.ndarray) -> Any:
            fitted = fit_probe(
                x[masks["train"]], data.targets[masks["train"]], x[masks["valid"]], data.targets[masks["valid"]],
                kind=spec.kind, n_outputs=n_out, probe=probe, lrs=lrs, max_epochs=max_epochs, patience=patience,
                batch_size=batch_size, hidden=hidden, dropout=dropout, val_score=val_score,
                score_every_epoch=primary.kind != "group", seed=seed)
            pred = data.predictions(masks["test"], fitted.predict(x[masks["test"]]))
            common = {"network": network, "layer": layer_label, "task": spec.name, "pooling": pool_name,
                      "probe": probe, "lr": fitted.lr, "n_train": int(masks["train"].sum()),
                      "n_val": int(masks["valid"].sum()), "n_test": int(masks["test"].sum()), "seed": seed,
                      "best_epoch": fitted.best_epoch}
            per_unit = unit_scores(spec.primary, pred)
            if per_unit is not None:
                unit_rows.extend({"network": network, "task": spec.name, "layer": layer_label, "pooling": pool_name,
                                  "probe": probe, "metric": spec.primary, "unit": u, "value": float(v), "seed": seed}
                                 for u, v in per_unit.items())
            for m in spec.metrics:
                lo, hi, n_undef = bootstrap_interval(m, pred, over=over, n_bootstraps=n_bootstraps, ci_level=ci_level,
                                                     seed=seed, count_undefined=True)
                if n_undef:
                    logger.warning("%s %s %s: %d of %d bootstrap resamples leave %s undefined; the interval comes from "
                                   "the other %d (column n_boot_undefined)", network, layer_label, spec.name, n_undef,
                                   n_bootstraps, m, n_bootstraps - n_undef)
                rows.append({**common, "metric": m, "primary": m == spec.primary, "value": score(m, pred),
                             "split": "test", "chance": permutation_chance(m, pred, seed=seed),
                             "ci_low": lo, "ci_high": hi, "n_boot_undefined": n_undef})
            rows.append({**common, "metric": spec.primary, "primary": True, "value": fitted.val_score,
                         "split": "valid", "chance": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                         "n_boot_undefined": 0})
            for g in fitted.grid:
                grid_rows.append({"network": network, "task": spec.name, "layer": layer_label, "pooling": pool_name,
                                  "probe": probe, **g})
            return fitted

        for name in names:
            with timer(f"fit:{spec.name}"):
                fit_and_score(name, data.features(source, name, pooling))
            bar.update(1)
        if weighted_sum and len(names) > 1:
            x0 = data.features(source, names[0], pooling)
            need = x0.nbytes * len(names)
            if need > max_weighted_sum_bytes:
                logger.warning("task %s: skipping the weighted-sum probe (%.1f GB of stacked features > %.1f GB); "
                               "choose fewer layers or raise max_weighted_sum_bytes", spec.name, need / 1e9,
                               max_weighted_sum_bytes / 1e9)
            else:
                with timer(f"fit:{spec.name}"):
                    xs = [x0] + [data.features(source, nm, pooling) for nm in names[1:]]
                    width = max(a.shape[1] for a in xs)  # layers of other widths are zero-padded
                    x = np.stack([np.pad(a, ((0, 0), (0, width - a.shape[1]))) for a in xs], axis=1)
                    del xs
                    fitted = fit_and_score(WEIGHTED_SUM, x)
                    del x
                for nm, w in zip(names, fitted.layer_weights()):
                    weight_rows.append({"network": network, "task": spec.name, "pooling": pool_name, "probe": probe,
                                        "layer": nm, "weight": float(w), "seed": seed})
            bar.update(1)
    bar.close()
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    config = {
        "network": network, "tasks": [s.name for s in specs], "layers": names, "pooling": pooling, "probe": probe,
        "weighted_sum": weighted_sum, "lrs": None if lrs is None else [float(v) for v in lrs],
        "max_epochs": max_epochs, "patience": patience, "batch_size": batch_size, "hidden": hidden,
        "dropout": dropout, "group": group, "split_column": split_column, "fractions": list(fractions), "seed": seed,
        "n_bootstraps": n_bootstraps, "ci_level": ci_level, "bootstrap_over": bootstrap_over,
        "min_examples_per_class": min_examples_per_class, "drop_rare": drop_rare, "frame_rate_hz": frame_rate_hz,
        "task_groups": {s.name: group or s.group for s in specs},
        "metrics": {m: METRICS.get(m).reference for s in specs for m in s.metrics},
    }
    return ProbeResult(table=table, layer_weights=pd.DataFrame(
        weight_rows, columns=["network", "task", "pooling", "probe", "layer", "weight", "seed"]),
        splits=pd.concat(split_rows, ignore_index=True), grid=pd.DataFrame(grid_rows), config=config,
        timings=timer.seconds, units=pd.DataFrame(unit_rows, columns=list(UNIT_COLUMNS)))
