"""The ``contrasts`` study step: paired tests between the conditions a study names.

Study section::

    contrasts:
      pairs: [[transcription, ssl], [transcription, asr]]   # network groups, A - B
      rsa: ["partial-tau-a:chroma", "tau-a:pitch_height"]  # RSA statistic:model RDM
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

__all__ = ["rsa_contrasts", "parse_statistic", "CONTRAST_COLUMNS", "BEST_LAYER"]

logger = logging.getLogger(__name__)

BEST_LAYER = "best-layer-cv"
CONTRAST_COLUMNS = ("contrast", "a", "b", "analysis", "statistic", "model_rdm", "layer", "layer_a", "layer_b",
                    "mean_a", "mean_b", "difference", "ci_low", "ci_high", "p", "p_corrected", "correction",
                    "effect_size_dz", "n_units", "n_seeds", "exact", "per_seed", "significant")


def parse_statistic(spec: str) -> tuple[str, str]:
    """``"partial-tau-a:chroma"`` -> ``("partial-tau-a", "chroma")``."""
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ConfigError(f"contrasts.rsa entries are 'STATISTIC:MODEL_RDM' (e.g. 'partial-tau-a:chroma'), got {spec!r}")
    stat, model = spec.split(":")
    return stat, model


def _group_array(per_subject: pd.DataFrame, members: Sequence[tuple[str, int | None]], stat: str,
                 model: str) -> tuple[np.ndarray, list[str], list[str], list[int | None]]:
    """``[n_layers, n_units, n_seeds]`` values of one group's networks, with layers, units, seeds."""
    arrays, layers, units = [], None, None
    for network, _seed in members:
        rows = per_subject[(per_subject["network"] == network) & (per_subject["statistic"] == stat)
                           & (per_subject["model_rdm"] == model)]
        if rows.empty:
            raise InsufficientDataError(f"no per-instrument {stat} / {model} values for network {network!r} "
                                        "(is the statistic computed by the rsa step, and the model RDM among rsa.models?)")
        wide = rows.pivot_table(index="layer", columns="subject", values="value", aggfunc="first", sort=True)
        if layers is None:
            layers, units = list(wide.index), list(wide.columns)
        elif list(wide.index) != layers or list(wide.columns) != units:
            raise InsufficientDataError(f"network {network!r} has other layers or instruments than the rest of its group")
        arrays.append(wide.to_numpy(float))
    return np.stack(arrays, axis=2), list(layers or []), list(units or []), [s for _, s in members]


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
        best_rows: list[dict[str, Any]] = []
        for a, b in pairs:
            va, la, ua, sa = _group_array(per_subject, groups[a], stat, model)
            vb, lb, ub, sb = _group_array(per_subject, groups[b], stat, model)
            if ua != ub:
                raise InsufficientDataError(f"groups {a!r} and {b!r} were measured on different instruments")
            cols = pair_seeds(sa, sb)
            ia, ib = [i for i, _ in cols], [j for _, j in cols]
            base = {"contrast": f"{a} - {b}", "a": a, "b": b, "analysis": "rsa", "statistic": stat,
                    "model_rdm": model, "correction": "holm"}
            layer_rows = []
            if la == lb:
                for li, layer in enumerate(la):
                    d = va[li][:, ia] - vb[li][:, ib]
                    res = paired_contrast(d, n_permutations=n_permutations, n_bootstraps=n_bootstraps, seed=seed)
                    layer_rows.append({**base, "layer": layer, "layer_a": layer, "layer_b": layer,
                                       "mean_a": float(va[li][:, ia].mean()), "mean_b": float(vb[li][:, ib].mean()),
                                       **res.as_dict()})
                for r, pc in zip(layer_rows, holm([r["p"] for r in layer_rows])):
                    r["p_corrected"] = pc
            ha, ca = best_layer_values(va)
            hb, cb = best_layer_values(vb)
            res = paired_contrast(ha[:, ia] - hb[:, ib], n_permutations=n_permutations, n_bootstraps=n_bootstraps,
                                  seed=seed)
            best_rows.append({**base, "layer": BEST_LAYER, "layer_a": la[int(np.bincount(ca).argmax())],
                              "layer_b": lb[int(np.bincount(cb).argmax())], "mean_a": float(ha[:, ia].mean()),
                              "mean_b": float(hb[:, ib].mean()), **res.as_dict()})
            rows.extend(layer_rows)
        for r, pc in zip(best_rows, holm([r["p"] for r in best_rows])):
            r["p_corrected"] = pc
        rows.extend(best_rows)
    table = pd.DataFrame(rows, columns=[c for c in CONTRAST_COLUMNS if c != "significant"])
    table["significant"] = table["p_corrected"] < alpha
    return table[list(CONTRAST_COLUMNS)]


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


def _check(study: dict[str, Any]) -> None:
    pairs, stats, _ = _validate(study)
    if not pairs or not stats:
        raise ConfigError("step 'contrasts' needs contrasts.pairs and contrasts.rsa in the study")


def _contrasts_step(study: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    from musiclens.analysis_io import write_table
    from musiclens.fsutil import atomic_dir

    _check(study)
    pairs, stats, groups = _validate(study)
    cfg = study["contrasts"]
    needed = sorted({n for a, b in pairs for n, _ in (*groups[a], *groups[b])})
    frames = []
    for network in needed:
        path = run_dir / "rsa" / network / "per_subject.csv"
        if not path.is_file():
            raise ConfigError(f"contrasts: {path} is missing; run the 'rsa' step first (it must come before 'contrasts')")
        frames.append(pd.read_csv(path))
    table = rsa_contrasts(pd.concat(frames, ignore_index=True), groups, pairs, stats,
                          n_permutations=int(cfg["n_permutations"]), n_bootstraps=int(cfg["n_bootstraps"]),
                          seed=int(study["study"]["seed"]), alpha=float(study["rsa"]["alpha"]))
    with atomic_dir(run_dir / "contrasts", overwrite=True) as tmp:   # the run's own folder: a rerun replaces it
        write_table(tmp, "contrasts", table)
    return {"outputs": ["contrasts/contrasts.csv"], "n_rows": len(table),
            "n_significant": int(table["significant"].sum())}


STEP_CHECKS.register("contrasts", _check)
STEPS.register("contrasts", _contrasts_step,
               help="paired tests between the study's named conditions (contrasts.pairs) into RUN_DIR/contrasts")
