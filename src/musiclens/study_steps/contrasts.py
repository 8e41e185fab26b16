"""The ``contrasts`` study step: paired tests between the conditions a study names.

Study section::

    contrasts:
      pairs: [[transcription, ssl], [transcription, asr]]   # network groups, A - B
      rsa: ["partial-tau-b:chroma", "tau-a:pitch_height"]  # RSA statistic:model RDM
      n_permutations: 10000
      n_bootstraps: 5000
      correction: holm

A *group* is a network of the study (a network trained with several seeds is one group of
``NAME-s<seed>`` networks, see :func:`musiclens.study.network_groups`).  For every pair and
statistic, from the per-instrument RSA values (``rsa/<network>/per_subject.csv``):

- one row per layer, when both groups have the same layers (same architecture): the paired
  contrast of the layer's values (:func:`musiclens.contrast.paired_contrast`), ``p_corrected``
  over the layers of that pair and statistic;
- one ``best-layer-cv`` row: each group's value at its own best layer chosen without the unit
  (:func:`musiclens.contrast.best_layer_values`), ``p_corrected`` over the pairs of that
  statistic.

Output: ``contrasts/contrasts.csv`` and ``.parquet`` (written as one folder, atomically).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musiclens.contrast import best_layer_values, holm, pair_seeds, paired_contrast
from musiclens.errors import ConfigError, InsufficientDataError
from musiclens.study import STEP_CHECKS, STEPS, network_groups

__all__ = ["rsa_contrasts", "probe_contrasts", "group_contrasts", "parse_statistic", "CONTRAST_COLUMNS", "BEST_LAYER"]

logger = logging.getLogger(__name__)

BEST_LAYER = "best-layer-cv"
CONTRAST_COLUMNS = ("contrast", "a", "b", "analysis", "task", "statistic", "model_rdm", "layer", "layer_a", "layer_b",
                    "mean_a", "mean_b", "difference", "ci_low", "ci_high", "p", "df", "p_corrected", "correction",
                    "p_sign_flip", "exact", "boot_ci_low", "boot_ci_high", "effect_size_dz", "n_units", "n_seeds",
                    "per_seed", "significant")


def parse_statistic(spec: str) -> tuple[str, str]:
    """``"partial-tau-b:chroma"`` -> ``("partial-tau-b", "chroma")``."""
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ConfigError(f"contrasts.rsa entries are 'STATISTIC:MODEL_RDM' (e.g. 'partial-tau-b:chroma'), got {spec!r}")
    stat, model = spec.split(":")
    return stat, model


def _group_array(long: pd.DataFrame, members: Sequence[tuple[str, int | None]], what: str
                 ) -> tuple[np.ndarray, list[str], list[str], list[int | None]]:
    """``[n_layers, n_units, n_seeds]`` values of one group's networks, with layers, units, seeds."""
    arrays, layers, units = [], None, None
    for network, _seed in members:
        rows = long[long["network"] == network]
        if rows.empty:
            raise InsufficientDataError(f"no per-unit {what} values for network {network!r}")
        wide = rows.pivot_table(index="layer", columns="unit", values="value", aggfunc="first", sort=True)
        if layers is None:
            layers, units = list(wide.index), list(wide.columns)
        elif list(wide.index) != layers or list(wide.columns) != units:
            raise InsufficientDataError(f"network {network!r} has other layers or units than the rest of its group")
        arrays.append(wide.to_numpy(float))
    return np.stack(arrays, axis=2), list(layers or []), list(units or []), [s for _, s in members]


def group_contrasts(long: pd.DataFrame, groups: Mapping[str, Sequence[tuple[str, int | None]]],
                    pairs: Sequence[Sequence[str]], *, base: Mapping[str, Any], layer_order: Sequence[str] | None = None,
                    n_permutations: int = 10000, n_bootstraps: int = 5000, seed: int = 0
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-layer and best-layer contrast rows of one measure (``long``: network, layer, unit,
    value), for every pair; ``p_corrected`` (Holm) set over the layers of each pair, not yet over
    the best-layer rows (the caller corrects those over its family)."""
    what = ", ".join(f"{k}={v}" for k, v in base.items())
    layer_rows: list[dict[str, Any]] = []
    best_rows: list[dict[str, Any]] = []
    for a, b in pairs:
        va, la, ua, sa = _group_array(long, groups[a], what)
        vb, lb, ub, sb = _group_array(long, groups[b], what)
        if ua != ub:
            common = sorted(set(ua) & set(ub))
            if len(common) < 2:
                raise InsufficientDataError(f"groups {a!r} and {b!r} share fewer than 2 units for {what}")
            va, vb = va[:, [ua.index(u) for u in common]], vb[:, [ub.index(u) for u in common]]
        cols = pair_seeds(sa, sb)
        ia, ib = [i for i, _ in cols], [j for _, j in cols]
        head = {"contrast": f"{a} - {b}", "a": a, "b": b, **base, "correction": "holm"}
        rows = []
        if la == lb:
            order = [layer for layer in (layer_order or la) if layer in la]
            for layer in order:
                li = la.index(layer)
                d = va[li][:, ia] - vb[li][:, ib]
                res = paired_contrast(d, n_permutations=n_permutations, n_bootstraps=n_bootstraps, seed=seed)
                rows.append({**head, "layer": layer, "layer_a": layer, "layer_b": layer,
                             "mean_a": float(va[li][:, ia].mean()), "mean_b": float(vb[li][:, ib].mean()),
                             **res.as_dict()})
            for r, pc in zip(rows, holm([r["p"] for r in rows])):
                r["p_corrected"] = pc
        ha, ca = best_layer_values(va)
        hb, cb = best_layer_values(vb)
        res = paired_contrast(ha[:, ia] - hb[:, ib], n_permutations=n_permutations, n_bootstraps=n_bootstraps, seed=seed)
        best_rows.append({**head, "layer": BEST_LAYER, "layer_a": la[int(np.bincount(ca).argmax())],
                          "layer_b": lb[int(np.bincount(cb).argmax())], "mean_a": float(ha[:, ia].mean()),
                          "mean_b": float(hb[:, ib].mean()), **res.as_dict()})
        layer_rows.extend(rows)
    return layer_rows, best_rows


def _finish(rows: list[dict[str, Any]], alpha: float) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=[c for c in CONTRAST_COLUMNS if c != "significant"])
    table["significant"] = table["p_corrected"] < alpha
    return table[list(CONTRAST_COLUMNS)]


def rsa_contrasts(per_subject: pd.DataFrame, groups: Mapping[str, Sequence[tuple[str, int | None]]],
                  pairs: Sequence[Sequence[str]], statistics: Sequence[str], *, n_permutations: int = 10000,
                  n_bootstraps: int = 5000, seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """Paired contrasts of RSA statistics between network groups (see the module docstring).

    Parameters
    ----------
    per_subject
        Long table (network, layer, subject, model_rdm, statistic, value) of every network.
    groups
        ``{group: [(network, seed), ...]}``.
    pairs
        ``[(A, B), ...]``: contrasts ``A - B``.
    statistics
        ``"STATISTIC:MODEL_RDM"`` strings.
    """
    rows: list[dict[str, Any]] = []
    for spec in statistics:
        stat, model = parse_statistic(spec)
        sel = per_subject[(per_subject["statistic"] == stat) & (per_subject["model_rdm"] == model)]
        if sel.empty:
            raise InsufficientDataError(f"no per-instrument {stat} / {model} values (is the statistic computed by the "
                                        "rsa step, and the model RDM among rsa.models?)")
        layer_rows, best_rows = group_contrasts(
            sel.rename(columns={"subject": "unit"}), groups, pairs,
            base={"analysis": "rsa", "task": "", "statistic": stat, "model_rdm": model},
            n_permutations=n_permutations, n_bootstraps=n_bootstraps, seed=seed)
        for r, pc in zip(best_rows, holm([r["p"] for r in best_rows])):
            r["p_corrected"] = pc
        rows += layer_rows + best_rows
    return _finish(rows, alpha)


def probe_contrasts(units: pd.DataFrame, groups: Mapping[str, Sequence[tuple[str, int | None]]],
                    pairs: Sequence[Sequence[str]], *, tasks: Sequence[str] | None = None, n_permutations: int = 10000,
                    n_bootstraps: int = 5000, seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """Paired contrasts of probe test scores between network groups, per task and pooling, with
    the evaluation units (test pieces or stimulus groups) as units; the weighted-sum probe is a
    layer of its own.  ``p_corrected`` of the best-layer rows: Holm over pairs x tasks."""
    sel = units if tasks is None else units[units["task"].isin(list(tasks))]
    sel = sel[sel["network"].isin({n for a, b in pairs for n, _ in (*groups[a], *groups[b])})]
    if sel.empty:
        raise InsufficientDataError(f"no per-unit probe scores for tasks {list(tasks or [])} of the contrasted networks")
    rows, best = [], []
    skipped: list[str] = []
    for (task, pooling, metric), part in sel.groupby(["task", "pooling", "metric"], sort=False):
        present = set(part["network"])
        usable = [(a, b) for a, b in pairs if all(n in present for n, _ in (*groups[a], *groups[b]))]
        if not usable:
            continue
        try:
            layer_rows, best_rows = group_contrasts(
                part, groups, usable, base={"analysis": "probe", "task": task, "statistic": f"{metric} ({pooling})",
                                            "model_rdm": ""},
                n_permutations=n_permutations, n_bootstraps=n_bootstraps, seed=seed)
        except InsufficientDataError as err:   # e.g. one test piece: no paired test is possible; say so
            logger.warning("contrasts: probe task %s (%s) left out: %s", task, pooling, err)
            skipped.append(f"{task} ({pooling}): {err}")
            continue
        rows += layer_rows
        best += best_rows
    for r, pc in zip(best, holm([r["p"] for r in best])):
        r["p_corrected"] = pc
    table = _finish(rows + best, alpha)
    table.attrs["skipped"] = skipped
    return table


def _validate(study: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[str], dict[str, list[tuple[str, int | None]]]]:
    cfg = study["contrasts"]
    groups: dict[str, list[tuple[str, int | None]]] = {}
    for network, (group, seed) in network_groups(study).items():
        groups.setdefault(group, []).append((network, seed))
    pairs = []
    for pair in cfg.get("pairs") or []:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ConfigError(f"contrasts.pairs entries are [A, B] pairs of networks, got {pair!r}")
        for name in pair:
            if name not in groups:
                raise ConfigError(f"contrasts.pairs names {name!r}, which is not a network of the study "
                                  f"({', '.join(groups)})")
        pairs.append((str(pair[0]), str(pair[1])))
    stats = [str(s) for s in cfg.get("rsa") or []]
    for s in stats:
        _, model = parse_statistic(s)
        if model not in study["rsa"]["models"]:
            raise ConfigError(f"contrasts.rsa names model RDM {model!r}, which is not in rsa.models "
                              f"({', '.join(study['rsa']['models'])})")
    return pairs, stats, groups


def _check(study: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str], dict[str, list[tuple[str, int | None]]]]:
    pairs, stats, groups = _validate(study)
    probe_tasks = study["contrasts"].get("probe_tasks")
    if not pairs or not (stats or probe_tasks):
        raise ConfigError("step 'contrasts' needs contrasts.pairs and contrasts.rsa and/or contrasts.probe_tasks")
    if probe_tasks and probe_tasks != "all":
        known = set(study["probes"]["note_tasks"] or []) | set(study["probes"]["corpus_tasks"] or [])
        unknown = [t for t in probe_tasks if t not in known]
        if unknown:
            raise ConfigError(f"contrasts.probe_tasks names {unknown}, which the probes section does not run "
                              f"({', '.join(sorted(known)) or 'none'}); use a task of probes.note_tasks/corpus_tasks "
                              "or 'all'")
    return pairs, stats, groups


def _contrasts_step(study: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    from musiclens.analysis_io import write_table
    from musiclens.fsutil import atomic_dir

    pairs, stats, groups = _check(study)
    cfg = study["contrasts"]
    kw = dict(n_permutations=int(cfg["n_permutations"]), n_bootstraps=int(cfg["n_bootstraps"]),
              seed=int(study["study"]["seed"]), alpha=float(study["rsa"]["alpha"]))
    tables = []
    if stats:
        needed = sorted({n for a, b in pairs for n, _ in (*groups[a], *groups[b])})
        frames = []
        for network in needed:
            path = run_dir / "rsa" / network / "per_subject.csv"
            if not path.is_file():
                raise ConfigError(f"contrasts: {path} is missing; run the 'rsa' step first (before 'contrasts')")
            frames.append(pd.read_csv(path))
        tables.append(rsa_contrasts(pd.concat(frames, ignore_index=True), groups, pairs, stats, **kw))
    if cfg.get("probe_tasks"):
        path = run_dir / "probe" / "probe_units.csv"
        if not path.is_file():
            raise ConfigError(f"contrasts: {path} is missing; run the 'probe' step first (before 'contrasts')")
        tasks = None if cfg["probe_tasks"] == "all" else list(cfg["probe_tasks"])
        probes = probe_contrasts(pd.read_csv(path), groups, pairs, tasks=tasks, **kw)
        skipped = probes.attrs.get("skipped", [])
        tables.append(probes)
    else:
        skipped = []
    table = pd.concat(tables, ignore_index=True)
    with atomic_dir(run_dir / "contrasts", overwrite=True) as tmp:   # the run's own folder: a rerun replaces it
        write_table(tmp, "contrasts", table)
    return {"outputs": ["contrasts/contrasts.csv"], "n_rows": len(table),
            "n_significant": int(table["significant"].sum()), "skipped": skipped}


STEP_CHECKS.register("contrasts", _check)
STEPS.register("contrasts", _contrasts_step,
               help="paired tests between the study's named conditions (contrasts.pairs) into RUN_DIR/contrasts")
