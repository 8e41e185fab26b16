"""`ssm_analysis`: clips + a network -> layer SSMs, their correlation with reference SSMs, and
Foote novelty scored against chord changes, as tidy tables.

Per clip and layer (frame tokens, see :mod:`musiclens.ssm.ssm`):

- ``table`` (one row per network × clip × layer × reference × method): the correlation of the
  layer SSM's upper triangle with the reference SSM's (``value``) and the pairs used (``n_pairs``);
- ``novelty`` (one row per network × clip × source): Foote novelty of the layer SSM
  (``source`` = layer name, ``kind = "layer"``) or of a reference SSM (``kind = "reference"``,
  a baseline), peak-picked and scored against the clip's chord changes with
  ``mir_eval.onset.f_measure`` at ``novelty.window_s`` (:mod:`musiclens.ssm.novelty`);
- ``summary`` / ``novelty_summary``: the mean (and standard deviation) over clips.

:func:`ssm_to_folder` runs it on the first clips of a corpus and writes tables, figures and a
manifest (the ``musiclens ssm`` command).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from musiclens.analysis_io import clips_to_folder, npz_bytes, write_table
from musiclens.errors import AnalysisError, ConfigError, InsufficientDataError
from musiclens.fsutil import atomic_write_bytes
from musiclens.provenance import Timer
from musiclens.ssm.frames import chord_changes, frame_hop
from musiclens.ssm.novelty import NoveltyConfig, boundary_times, foote_novelty, score_boundaries
from musiclens.ssm.ssm import (CORRELATIONS, REFERENCE_SSMS, ReferenceContext, cosine_ssm, layer_frames,
                               reference_ssms, ssm_correlation)

if TYPE_CHECKING:
    from musiclens.attention.clips import Clip
    from musiclens.extract.base import Activations

__all__ = ["SSMResult", "ssm_analysis", "ssm_to_folder", "TABLE_COLUMNS", "NOVELTY_COLUMNS", "DEFAULT_REFERENCES"]

logger = logging.getLogger(__name__)

TABLE_COLUMNS: tuple[str, ...] = ("network", "clip", "layer", "reference", "method", "value", "n_pairs")
NOVELTY_COLUMNS: tuple[str, ...] = ("network", "clip", "source", "kind", "f_measure", "precision", "recall",
                                    "n_reference", "n_estimated")
DEFAULT_REFERENCES: tuple[str, ...] = ("chroma", "mfcc", "onset_strength", "tempogram", "same_chord",
                                       "same_beat_position")


@dataclass
class SSMResult:
    """Everything one :func:`ssm_analysis` call computed.

    Attributes
    ----------
    table
        Correlations (:data:`TABLE_COLUMNS`).
    novelty
        Boundary scores (:data:`NOVELTY_COLUMNS`).
    summary, novelty_summary
        Means over clips (``value`` / scores) with ``*_std`` and ``n_clips``.
    ssms
        For the first ``keep`` clips: ``{clip: {"layer/<name>" | "reference/<name>": [T, T]}}``.
    novelty_curves
        For the same clips: ``{clip: {source: [T]}}``.
    frame_times
        For the same clips: ``{clip: [T]}`` seconds (the first analysed layer's frame axis).
    chord_changes
        ``{clip: [n]}`` reference boundary times, seconds.
    config
        The arguments (JSON-serialisable).
    timings
        Seconds per stage.
    """

    table: pd.DataFrame
    novelty: pd.DataFrame
    summary: pd.DataFrame
    novelty_summary: pd.DataFrame
    ssms: dict[str, dict[str, np.ndarray]]
    novelty_curves: dict[str, dict[str, np.ndarray]]
    frame_times: dict[str, np.ndarray]
    chord_changes: dict[str, np.ndarray]
    config: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    def save(self, folder: str | os.PathLike[str]) -> list[Path]:
        """Write ``ssm.csv``/``.parquet``, ``ssm_summary.csv``, ``ssm_novelty.csv``/``.parquet``,
        ``ssm_novelty_summary.csv`` and ``ssm_matrices.npz`` (kept clips) atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = write_table(folder, "ssm", self.table)
        paths += write_table(folder, "ssm_novelty", self.novelty)
        paths += write_table(folder, "ssm_summary", self.summary, parquet=False)
        paths += write_table(folder, "ssm_novelty_summary", self.novelty_summary, parquet=False)
        arrays: dict[str, np.ndarray] = {}
        for clip, mats in self.ssms.items():
            arrays.update({f"{clip}/ssm/{k}": v.astype(np.float32) for k, v in mats.items()})
            arrays.update({f"{clip}/novelty/{k}": v for k, v in self.novelty_curves.get(clip, {}).items()})
            arrays[f"{clip}/frame_times"] = self.frame_times[clip]
            arrays[f"{clip}/chord_changes"] = self.chord_changes.get(clip, np.zeros(0))
        paths.append(atomic_write_bytes(folder / "ssm_matrices.npz", npz_bytes(arrays)))
        return paths


def _summaries(table: pd.DataFrame, novelty: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    keys = ["network", "layer", "reference", "method"]
    g = table.groupby(keys, sort=False)["value"]
    summary = g.mean().rename("value").to_frame().join(g.std(ddof=1).rename("value_std")).join(
        g.count().rename("n_clips")).reset_index()
    nkeys = ["network", "source", "kind"]
    scores = ["f_measure", "precision", "recall"]
    if novelty.empty:
        return summary, pd.DataFrame(columns=nkeys + scores + ["f_measure_std", "n_clips"])
    ng = novelty.groupby(nkeys, sort=False)
    nsum = ng[scores].mean().join(ng["f_measure"].std(ddof=1).rename("f_measure_std")).join(
        ng["f_measure"].count().rename("n_clips")).reset_index()
    return summary, nsum


def _extract_one(model: Any, clip: Clip, layers: Any, options: Mapping[str, Any]) -> Activations:
    from musiclens.extract.runner import extract_activations

    return extract_activations(model, [clip.audio], sample_rate=clip.sample_rate, layers=layers,
                               stimulus_ids=[clip.id], **dict(options))


def ssm_analysis(
    *,
    clips: Sequence[Clip],
    model: Any = None,
    activations: Activations | None = None,
    layers: str | int | Sequence[str | int] | None = None,
    references: Sequence[str] = DEFAULT_REFERENCES,
    methods: Sequence[str] = ("pearson", "spearman"),
    exclude_band: int = 0,
    resample: str = "nearest",
    feature_hop: int = 256,
    novelty: NoveltyConfig | None = None,
    novelty_references: Sequence[str] = ("chroma", "same_chord"),
    network: str | None = None,
    keep: int = 1,
    build_options: Mapping[str, Any] | None = None,
) -> SSMResult:
    """Layer SSMs of ``clips`` compared with reference SSMs, plus chord-change novelty.

    Parameters
    ----------
    clips
        :class:`~musiclens.attention.clips.Clip` objects (audio, rate, labels).
    model
        Anything :func:`~musiclens.extract.runner.build_extractor` accepts (a registry name, a
        Hugging Face directory, a musiclens checkpoint, an extractor).  Built once.
    activations
        Precomputed activations instead of ``model``: one stimulus per clip, in clip order
        (``stimulus_ids`` must equal the clip ids).
    layers
        Layer selection (see :func:`~musiclens.extract.base.resolve_layers`); default all.
    references
        Names in :data:`~musiclens.ssm.ssm.REFERENCE_SSMS`.
    methods
        Correlations: ``"pearson"``, ``"spearman"``.
    exclude_band
        Near-diagonal pairs ``|i - j| <= exclude_band`` left out of every correlation.
    resample
        Rule reading audio-feature frames at token times (``"nearest"``, ``"mean"``, ``"linear"``).
    feature_hop
        Hop of the reference audio features, samples at the clip's rate.
    novelty
        Foote novelty settings (default :class:`~musiclens.ssm.novelty.NoveltyConfig`).
    novelty_references
        Reference SSMs whose novelty is scored too (baselines); must be in ``references``.
    network
        Name in the tables (default: the extractor's name).
    keep
        Clips whose matrices and novelty curves are kept for figures.
    build_options
        Passed to :func:`~musiclens.extract.runner.build_extractor` (``device``, ``config``...).

    Raises
    ------
    ConfigError
        Neither or both of ``model`` and ``activations``, unknown references or methods.
    InsufficientDataError
        No clips, or a clip with fewer than 3 valid frames in a layer.
    """
    timer = Timer()
    novelty = novelty or NoveltyConfig()
    if (model is None) == (activations is None):
        raise ConfigError("give exactly one of model= (a network to run) or activations= (precomputed)")
    if not clips:
        raise InsufficientDataError("ssm_analysis needs at least one clip")
    for r in list(references) + list(novelty_references):
        REFERENCE_SSMS.get(r)
    for m in methods:
        CORRELATIONS.get(m)
    missing = sorted(set(novelty_references) - set(references))
    if missing:
        raise ConfigError(f"novelty_references {missing} must also be in references {list(references)}")
    ids = [c.id for c in clips]
    if activations is not None:
        if list(activations.stimulus_ids) != ids:
            raise ConfigError(f"activations hold stimuli {activations.stimulus_ids[:5]}..., not the clips {ids[:5]}...; "
                              "extract them in clip order")
        acts_all = activations.select(layers)
        net = network or str(activations.extractor.get("name", "network"))
    else:
        from musiclens.extract.runner import build_extractor

        with timer("build"):
            model = build_extractor(model, **dict(build_options or {}))
        net = network or str(model.name)
    rows: list[dict[str, Any]] = []
    nrows: list[dict[str, Any]] = []
    kept_ssms: dict[str, dict[str, np.ndarray]] = {}
    kept_curves: dict[str, dict[str, np.ndarray]] = {}
    kept_times: dict[str, np.ndarray] = {}
    truths: dict[str, np.ndarray] = {}
    for i, clip in enumerate(clips):
        if activations is None:
            with timer("extract"):
                acts, index = _extract_one(model, clip, layers, {}), 0
        else:
            acts, index = acts_all, i
        ctx = ReferenceContext(audio=np.asarray(clip.audio, dtype=np.float32), sample_rate=int(clip.sample_rate),
                               labels=clip.labels, feature_hop=int(feature_hop), resample=resample)
        truth = None
        if clip.labels is not None and clip.labels.chords is not None:
            ch = chord_changes(clip.labels)
            truth = ch[(ch > 0) & (ch < clip.duration_s)]
            truths[clip.id] = truth
        refs_by_axis: dict[bytes, dict[str, np.ndarray]] = {}
        keep_this = i < keep
        for layer in acts.layer_names:
            times_all, _ = acts.frames_of(layer)
            seq = acts.sequence(layer, index)
            t = times_all[acts.n_special:acts.n_special + seq.shape[0]]
            frames, times = layer_frames(seq, t)
            if times.size < 3:
                raise InsufficientDataError(f"clip {clip.id} has {times.size} frames in {layer}; an SSM needs >= 3")
            with timer("ssm"):
                s = cosine_ssm(frames)
            key = times.tobytes()
            if key not in refs_by_axis:
                with timer("references"):
                    refs_by_axis[key] = reference_ssms(ctx, frame_times=times, references=references)
            refs = refs_by_axis[key]
            with timer("correlate"):
                for rname, rm in refs.items():
                    for method in methods:
                        value, n_pairs = ssm_correlation(s, rm, method=method, exclude_band=exclude_band)
                        rows.append({"network": net, "clip": clip.id, "layer": layer, "reference": rname,
                                     "method": method, "value": value, "n_pairs": n_pairs})
            rate = 1.0 / frame_hop(times)
            sources: list[tuple[str, str, np.ndarray]] = [(layer, "layer", s)]
            if len(refs_by_axis) == 1 and layer == acts.layer_names[0]:
                sources += [(f"reference:{r}", "reference", refs[r]) for r in novelty_references if r in refs]
            with timer("novelty"):
                for source, kind, mat in sources:
                    curve = foote_novelty(mat, half_width=novelty.half_width(rate), taper=novelty.taper,
                                          edge=novelty.edge)
                    if keep_this:
                        kept_curves.setdefault(clip.id, {})[source] = curve
                    if truth is None:
                        continue
                    est = boundary_times(novelty.picker.pick(curve, frame_rate=rate), times)
                    sc = score_boundaries(truth, est, window_s=novelty.window_s)
                    nrows.append({"network": net, "clip": clip.id, "source": source, "kind": kind, **sc,
                                  "n_reference": int(truth.size), "n_estimated": int(est.size)})
            if keep_this:
                kept_ssms.setdefault(clip.id, {})[f"layer/{layer}"] = s.astype(np.float32)
                if clip.id not in kept_times:
                    kept_times[clip.id] = times
                    kept_ssms[clip.id].update({f"reference/{r}": m.astype(np.float32) for r, m in refs.items()})
        if truth is None:
            logger.info("clip %s has no chord labels: novelty not scored", clip.id)
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    nov = pd.DataFrame(nrows, columns=list(NOVELTY_COLUMNS))
    if table.empty:
        raise AnalysisError("no SSM correlations were computed; check the layers and references")
    summary, nsum = _summaries(table, nov)
    config = {
        "network": net, "layers": list(dict.fromkeys(table["layer"])), "references": list(references),
        "methods": list(methods), "exclude_band": int(exclude_band), "resample": resample,
        "feature_hop": int(feature_hop), "novelty": novelty.to_dict(), "novelty_references": list(novelty_references),
        "clips": ids, "keep": int(keep),
    }
    return SSMResult(table, nov, summary, nsum, kept_ssms, kept_curves, kept_times, truths, config, dict(timer.seconds))


def ssm_to_folder(
    *,
    model: Any,
    corpus: str | os.PathLike[str],
    out: str | os.PathLike[str],
    n_clips: int | None = 4,
    crop_s: float | None = None,
    start_s: float = 0.0,
    figures: bool = True,
    **kwargs: Any,
) -> SSMResult:
    """Run :func:`ssm_analysis` on the first ``n_clips`` of a corpus; write tables, figures, manifest
    (:func:`~musiclens.analysis_io.clips_to_folder`).

    ``kwargs`` go to :func:`ssm_analysis` (``layers``, ``references``, ``novelty``...).
    """
    return clips_to_folder(ssm_analysis, command="ssm", figures_module="musiclens.ssm.plots", model=model,
                           corpus=corpus, out=out, n_clips=n_clips, crop_s=crop_s, start_s=start_s, figures=figures,
                           **kwargs)
