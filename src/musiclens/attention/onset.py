"""Onset evidence in attention maps (PAPERS §2.9): curves, peak picking, scores, a flux baseline.

Recipes (:data:`ONSET_RECIPES`), each turning one attention matrix ``A`` (``[N, N]``, rows =
queries; the first ``n_special`` tokens special) into a curve over the ``T`` sequence frames:

``received``
    (a) attention each sequence token **receives** from the sequence tokens: the column sums
    ``c[j] = sum_i A[s + i, s + j]``;
``cls``
    (b) the first special token's row ``A[0, s + j]`` (only when ``n_special > 0``);
``row_change``
    (c) change along the diagonal band: ``c[j] = 1 - cos(A[s + j, B_j], A[s + j - 1, B_j])``, the
    cosine distance between consecutive query rows over the key columns ``B_j`` within
    ``band_s`` seconds of the diagonal (all columns when ``band_s`` is None); ``c[0] = 0``.

Per layer the curve is computed on the **head-averaged** map (``head = "mean"``); with
``per_head`` also on every head (``head = "0"``, ``"1"``...).  Curves are min-max normalised to
``[0, 1]`` (a constant curve becomes zeros).

Scoring: :class:`~musiclens.ssm.frames.PeakPicker` (librosa's onset-detection defaults, in
seconds) picks peaks; peak times are the tokens' centre times; ``mir_eval.onset.f_measure``
with ``window_s`` (default 0.05 s) scores them against the clip's note onsets.

Baseline: the spectral-flux envelope ``librosa.onset.onset_strength`` of the clip audio with
``hop = round(sr / token_frame_rate)`` samples (librosa's centred frames), peak-picked by the same
picker and scored the same way (``layer = "audio"``, ``recipe = "spectral_flux"``, ``head = "-"``);
with the default picker this equals ``librosa.onset.onset_detect``.  ``corr_flux`` is the Pearson
correlation of a curve with that envelope read at the token times by linear interpolation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from musiclens.analysis_io import clips_to_folder, npz_bytes, write_table
from musiclens.errors import AnalysisError, ConfigError, InsufficientDataError
from musiclens.fsutil import atomic_write_bytes
from musiclens.provenance import Timer
from musiclens.registry import Registry
from musiclens.ssm.frames import PeakPicker
from musiclens.ssm.novelty import score_boundaries

if TYPE_CHECKING:
    from musiclens.attention.clips import Clip
    from musiclens.attention.maps import AttentionMaps

__all__ = ["ONSET_RECIPES", "onset_curve", "normalize_curve", "spectral_flux", "score_onsets",
           "AttentionOnsetResult", "attention_onset_analysis", "attention_to_folder", "TABLE_COLUMNS"]

logger = logging.getLogger(__name__)

TABLE_COLUMNS: tuple[str, ...] = ("network", "clip", "layer", "head", "recipe", "f_measure", "precision", "recall",
                                  "corr_flux", "n_reference", "n_estimated")


def _received(att: np.ndarray, n_special: int, frame_rate: float, band_s: float | None) -> np.ndarray | None:
    s = n_special
    return att[s:, s:].sum(axis=0)


def _cls(att: np.ndarray, n_special: int, frame_rate: float, band_s: float | None) -> np.ndarray | None:
    return None if n_special == 0 else att[0, n_special:]


def _row_change(att: np.ndarray, n_special: int, frame_rate: float, band_s: float | None) -> np.ndarray | None:
    seq = np.asarray(att[n_special:, n_special:], dtype=np.float64)
    t = seq.shape[0]
    out = np.zeros(t)
    if t < 2:
        return out
    cur, prev = seq[1:], seq[:-1]
    if band_s is not None:
        w = max(1, int(round(band_s * frame_rate)))
        j = np.arange(1, t)[:, None]
        k = np.arange(t)[None, :]
        band = np.abs(k - j) <= w
        cur, prev = cur * band, prev * band
    num = (cur * prev).sum(axis=1)
    den = np.linalg.norm(cur, axis=1) * np.linalg.norm(prev, axis=1)
    out[1:] = 1.0 - np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
    return out


#: Onset-evidence recipes: ``recipe(att [N, N], n_special, frame_rate_hz, band_s) -> curve [T] | None``
#: (None: not applicable, e.g. ``cls`` without a class token).
ONSET_RECIPES: Registry[Callable[[np.ndarray, int, float, float | None], np.ndarray | None]] = Registry("onset recipe")
ONSET_RECIPES.register("received", _received, help="(a) attention received per token: column sums")
ONSET_RECIPES.register("cls", _cls, help="(b) the class token's row (needs a special token)")
ONSET_RECIPES.register("row_change", _row_change, help="(c) 1 - cosine of consecutive attention rows (diagonal band)")


def normalize_curve(curve: np.ndarray) -> np.ndarray:
    """Min-max normalisation to ``[0, 1]``; a constant curve becomes zeros."""
    c = np.asarray(curve, dtype=np.float64)
    span = c.max() - c.min() if c.size else 0.0
    return (c - c.min()) / span if span > 0 else np.zeros_like(c)


def onset_curve(att: np.ndarray, *, recipe: str, n_special: int, frame_rate: float,
                band_s: float | None = None) -> np.ndarray | None:
    """Normalised onset-evidence curve ``[shape=(T,)]`` of one attention matrix ``[N, N]`` (None if n/a)."""
    curve = ONSET_RECIPES.get(recipe)(np.asarray(att, dtype=np.float64), int(n_special), float(frame_rate), band_s)
    return None if curve is None else normalize_curve(curve)


def spectral_flux(audio: np.ndarray, *, sample_rate: int, frame_rate: float) -> tuple[np.ndarray, np.ndarray, int]:
    """``(envelope [n], times [n] s, hop)``: ``librosa.onset.onset_strength`` at ``hop = round(sr / frame_rate)``."""
    import librosa

    hop = max(1, int(round(sample_rate / frame_rate)))
    env = librosa.onset.onset_strength(y=np.asarray(audio, dtype=np.float32), sr=sample_rate, hop_length=hop)
    return env, librosa.frames_to_time(np.arange(env.size), sr=sample_rate, hop_length=hop), hop


def score_onsets(reference: np.ndarray, estimated: np.ndarray, *, window_s: float = 0.05) -> dict[str, float]:
    """``mir_eval.onset.f_measure`` scores ``{"f_measure", "precision", "recall"}`` (empty side: 0)."""
    return score_boundaries(reference, estimated, window_s=window_s)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


@dataclass
class AttentionOnsetResult:
    """Everything one :func:`attention_onset_analysis` call computed.

    Attributes
    ----------
    table
        One row per network × clip × layer × head × recipe (:data:`TABLE_COLUMNS`), plus the
        spectral-flux baseline rows.
    summary
        Means over clips (scores, ``corr_flux``) with ``f_measure_std`` and ``n_clips``.
    curves
        First ``keep`` clips: ``{clip: {"<layer>/<head>/<recipe>" | "flux": [T]}}`` normalised.
    maps
        First ``keep`` clips: head-averaged maps ``{clip: [n_layers, N, N]}``.
    frame_times, onsets
        ``{clip: [T]}`` token times and ``{clip: [n]}`` true onsets, seconds (kept clips).
    n_special
        Special tokens of the network.
    config, timings
        Arguments and seconds per stage.
    """

    table: pd.DataFrame
    summary: pd.DataFrame
    curves: dict[str, dict[str, np.ndarray]]
    maps: dict[str, np.ndarray]
    frame_times: dict[str, np.ndarray]
    onsets: dict[str, np.ndarray]
    n_special: int
    config: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    def save(self, folder: str | os.PathLike[str]) -> list[Path]:
        """Write ``attention_onsets.csv``/``.parquet``, ``attention_summary.csv`` and
        ``attention_maps.npz`` (kept clips: maps, curves, times, onsets) atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = write_table(folder, "attention_onsets", self.table)
        paths += write_table(folder, "attention_summary", self.summary, parquet=False)
        arrays: dict[str, np.ndarray] = {"n_special": np.array(self.n_special)}
        for clip, m in self.maps.items():
            arrays[f"{clip}/maps_mean_heads"] = m.astype(np.float32)
            arrays[f"{clip}/frame_times"] = self.frame_times[clip]
            arrays[f"{clip}/onsets"] = self.onsets[clip]
            arrays.update({f"{clip}/curve/{k}": v for k, v in self.curves.get(clip, {}).items()})
        paths.append(atomic_write_bytes(folder / "attention_maps.npz", npz_bytes(arrays)))
        return paths


def _clip_onsets(clip: Clip) -> np.ndarray:
    if clip.labels is None:
        raise InsufficientDataError(f"clip {clip.id} has no labels; onset scoring needs its note onsets")
    on = clip.labels.onsets()
    return on[(on >= 0) & (on < clip.duration_s)]


def attention_onset_analysis(
    *,
    clips: Sequence[Clip],
    model: Any = None,
    maps: Sequence[AttentionMaps] | None = None,
    layers: str | int | Sequence[str | int] | None = None,
    recipes: Sequence[str] = ("received", "cls", "row_change"),
    per_head: bool = False,
    picker: PeakPicker | None = None,
    window_s: float = 0.05,
    band_s: float | None = None,
    network: str | None = None,
    keep: int = 1,
    build_options: Mapping[str, Any] | None = None,
) -> AttentionOnsetResult:
    """Onset evidence in the attention maps of ``clips``, scored against their note onsets.

    Parameters
    ----------
    clips
        :class:`~musiclens.attention.clips.Clip` objects with labels (note onsets).
    model
        A network exposing attention (see :func:`~musiclens.attention.maps.attention_source`):
        built once.
    maps
        Precomputed :class:`~musiclens.attention.maps.AttentionMaps`, one per clip in clip order,
        instead of ``model``.
    layers
        Block layers to analyse (default all).
    recipes
        Names in :data:`ONSET_RECIPES`; ``cls`` is skipped for networks without special tokens.
    per_head
        Also score every head's curve.
    picker
        Peak picker (default :class:`~musiclens.ssm.frames.PeakPicker`, librosa's onset defaults).
    window_s
        ``mir_eval.onset.f_measure`` tolerance, seconds.
    band_s
        Half-width of the diagonal band of ``row_change``, seconds (None: whole rows).
    network
        Name in the table (default: the source's).
    keep
        Clips whose maps and curves are kept for figures.
    build_options
        Passed to :func:`~musiclens.extract.runner.build_extractor` when ``model`` is a spec.
    """
    from musiclens.attention.maps import attention_maps, attention_source

    timer = Timer()
    picker = picker or PeakPicker()
    if (model is None) == (maps is None):
        raise ConfigError("give exactly one of model= (a network exposing attention) or maps= (precomputed)")
    if not clips:
        raise InsufficientDataError("attention_onset_analysis needs at least one clip")
    if not float(window_s) > 0:
        raise ConfigError(f"window_s={window_s!r}: the onset tolerance must be a positive number of seconds "
                          "(mir_eval's default is 0.05)")
    if maps is not None and len(maps) != len(clips):
        raise ConfigError(f"{len(maps)} attention maps for {len(clips)} clips; give one per clip, in clip order")
    for r in recipes:
        ONSET_RECIPES.get(r)
    source = None
    if model is not None:
        with timer("build"):
            source = attention_source(model, **dict(build_options or {}))
    rows: list[dict[str, Any]] = []
    kept_curves: dict[str, dict[str, np.ndarray]] = {}
    kept_maps: dict[str, np.ndarray] = {}
    kept_times: dict[str, np.ndarray] = {}
    kept_onsets: dict[str, np.ndarray] = {}
    n_special = 0
    net = network
    for i, clip in enumerate(clips):
        truth = _clip_onsets(clip)
        if maps is not None:
            am = maps[i].select(layers)
        else:
            with timer("attention"):
                am = attention_maps(source, clip.audio, sample_rate=clip.sample_rate, layers=layers, clip_id=clip.id)
        net = net or am.network
        n_special = am.n_special
        times = am.frame_times
        if times.size < 3:
            raise InsufficientDataError(f"clip {clip.id} has {times.size} frames; onset curves need >= 3")
        rate = am.frame_rate_hz
        with timer("flux"):
            flux, flux_t, hop = spectral_flux(clip.audio, sample_rate=clip.sample_rate, frame_rate=rate)
            flux_at = np.interp(times, flux_t, flux)
            est = flux_t[picker.pick(flux, frame_rate=clip.sample_rate / hop)]
            rows.append({"network": net, "clip": clip.id, "layer": "audio", "head": "-", "recipe": "spectral_flux",
                         **score_onsets(truth, est, window_s=window_s), "corr_flux": 1.0,
                         "n_reference": int(truth.size), "n_estimated": int(est.size)})
        keep_this = i < keep
        if keep_this:
            kept_maps[clip.id] = am.mean_heads()
            kept_times[clip.id] = times
            kept_onsets[clip.id] = truth
            kept_curves[clip.id] = {"flux": normalize_curve(flux_at)}
        mean = am.mean_heads()
        with timer("curves"):
            for li, layer in enumerate(am.layer_names):
                heads: list[tuple[str, np.ndarray]] = [("mean", mean[li])]
                if per_head:
                    heads += [(str(h), am.maps[li, h]) for h in range(am.n_heads)]
                for head, att in heads:
                    for recipe in recipes:
                        curve = onset_curve(att, recipe=recipe, n_special=am.n_special, frame_rate=rate, band_s=band_s)
                        if curve is None:
                            continue
                        est = times[picker.pick(curve, frame_rate=rate)]
                        rows.append({"network": net, "clip": clip.id, "layer": layer, "head": head, "recipe": recipe,
                                     **score_onsets(truth, est, window_s=window_s),
                                     "corr_flux": _pearson(curve, flux_at),
                                     "n_reference": int(truth.size), "n_estimated": int(est.size)})
                        if keep_this:
                            kept_curves[clip.id][f"{layer}/{head}/{recipe}"] = curve
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    if (table["layer"] != "audio").sum() == 0:
        raise AnalysisError(f"no onset curve was computed: recipes {list(recipes)} do not apply to this network "
                            f"(n_special={n_special}); use 'received' or 'row_change'")
    keys = ["network", "layer", "head", "recipe"]
    g = table.groupby(keys, sort=False)
    summary = g[["f_measure", "precision", "recall", "corr_flux"]].mean().join(
        g["f_measure"].std(ddof=1).rename("f_measure_std")).join(g["f_measure"].count().rename("n_clips")).reset_index()
    config = {"network": net, "layers": [x for x in dict.fromkeys(table["layer"]) if x != "audio"],
              "recipes": list(recipes), "per_head": bool(per_head), "picker": picker.to_dict(),
              "window_s": float(window_s), "band_s": band_s, "clips": [c.id for c in clips], "keep": int(keep),
              "n_special": int(n_special)}
    return AttentionOnsetResult(table, summary, kept_curves, kept_maps, kept_times, kept_onsets, int(n_special),
                                config, dict(timer.seconds))


def attention_to_folder(
    *,
    model: Any,
    corpus: str | os.PathLike[str],
    out: str | os.PathLike[str],
    n_clips: int | None = 4,
    crop_s: float | None = None,
    start_s: float = 0.0,
    figures: bool = True,
    **kwargs: Any,
) -> AttentionOnsetResult:
    """Run :func:`attention_onset_analysis` on the first ``n_clips`` of a corpus; write tables,
    figures and ``manifest.json`` to ``out`` (:func:`~musiclens.analysis_io.clips_to_folder`).
    ``kwargs`` go to the analysis."""
    return clips_to_folder(attention_onset_analysis, command="attention", figures_module="musiclens.attention.plots",
                           model=model, corpus=corpus, out=out, n_clips=n_clips, crop_s=crop_s, start_s=start_s,
                           figures=figures, **kwargs)
