"""The ``train`` study step: run every training condition of the study, in dependency order.

A condition is a musiclens training config (see :mod:`musiclens.train.config`) plus two study
conveniences:

- ``data.train`` / ``data.val`` may name entries of the study's ``corpora`` section;
- ``from: OTHER`` starts from the backbone condition ``OTHER`` exported (fine-tuning), so
  ``ssl -> transcription`` and ``ssl -> ctc`` share one pretrained starting point.

Condition ``NAME`` trains in ``RUN_DIR/train/NAME`` (resumable: a killed run continues from
its last checkpoint; a finished one is not redone) and exports ``RUN_DIR/train/NAME/backbone``,
which networks reference with ``trained: NAME``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pandas as pd

from musiclens.errors import ConfigError
from musiclens.fsutil import atomic_write_bytes
from musiclens.study import STEP_CHECKS, STEPS
from musiclens.study_steps.corpora import corpus_dir

__all__ = ["condition_order", "condition_config", "conditions_table"]


def condition_order(training: dict[str, dict[str, Any]]) -> list[str]:
    """Condition names with every ``from`` before its dependants; cycles are an error."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise ConfigError(f"training conditions form a cycle through 'from': {' -> '.join((*chain, name))}")
        state[name] = "visiting"
        parent = training[name].get("from")
        if parent:
            visit(parent, (*chain, name))
        state[name] = "done"
        order.append(name)

    for name in training:
        visit(name, ())
    return order


def _resolve_corpora(value: Any, study: dict[str, Any], run_dir: Path) -> Any:
    if value is None or isinstance(value, int | float):  # a validation fraction
        return value
    if isinstance(value, str):
        return str(corpus_dir(study, run_dir, value))
    if isinstance(value, dict):
        return {str(corpus_dir(study, run_dir, k)): v for k, v in value.items()}
    return [str(corpus_dir(study, run_dir, v)) for v in value]


def condition_config(study: dict[str, Any], run_dir: Path, name: str) -> dict[str, Any]:
    """The training config of condition ``name`` with corpora and ``from`` resolved to paths."""
    cond = copy.deepcopy(study["training"][name])
    cfg: dict[str, Any] = {"objective": cond["objective"]}
    for key in ("options", "optim", "trainer"):
        if cond.get(key):
            cfg[key] = cond[key]
    model = dict(cond.get("model") or {})
    if cond.get("from"):
        parent = study["training"][cond["from"]]
        backbone = run_dir / "train" / cond["from"] / "backbone"
        model.setdefault("family", (parent.get("model") or {}).get("family"))
        model["init_from"] = str(backbone)
        model.pop("config", None)  # the checkpoint carries its architecture
    if model:
        cfg["model"] = model
    data = dict(cond.get("data") or {})
    for key in ("train", "val"):
        if key in data:
            data[key] = _resolve_corpora(data[key], study, run_dir)
    if data:
        cfg["data"] = data
    if cond.get("rsa_callback"):
        cb = dict(cond["rsa_callback"])
        stim = cb.get("stimuli")
        if stim in (None, "study"):  # the study's own note set, rendered by the stimuli step
            cb["stimuli"] = str(run_dir / "stimuli")
        cfg["rsa_callback"] = cb
    if cond.get("export") is not None:
        cfg["export"] = cond["export"]
    if cond.get("bar"):
        cfg["bar"] = dict(cond["bar"])
    cfg["seed"] = int(cond["seed"] if cond.get("seed") is not None else study["study"]["seed"])
    return cfg


def _train_step(study: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    from musiclens.train.engine import train

    if not study["training"]:
        raise ConfigError("step 'train' needs at least one entry under 'training'")
    record: dict[str, Any] = {"outputs": [], "conditions": {}}
    for name in condition_order(study["training"]):
        out = run_dir / "train" / name
        train(condition_config(study, run_dir, name), out=out, resume=True)
        if not (out / "backbone").is_dir():
            raise ConfigError(f"training condition {name!r} finished without exporting {out / 'backbone'}")
        record["outputs"].append(f"train/{name}/backbone")
        manifest = out / "manifest.json"
        if manifest.is_file():
            m = json.loads(manifest.read_text())
            record["conditions"][name] = {k: m[k] for k in ("global_step", "metrics", "finished", "bar") if k in m}
    table = conditions_table(study, run_dir)
    atomic_write_bytes(run_dir / "train" / "conditions.csv", table.to_csv(index=False).encode())
    record["outputs"].append("train/conditions.csv")
    record["n_missed_bar"] = int(table["passed"].eq(False).sum()) if len(table) else 0
    return record


def conditions_table(study: dict[str, Any], run_dir: Path) -> pd.DataFrame:
    """One row per trained condition (per seed): its group, seed, objective, steps and its learning
    bar's verdict (metric, value, value at initialisation, rule, passed), from each run's manifest."""
    rows = []
    for name, cond in study["training"].items():
        path = run_dir / "train" / name / "manifest.json"
        m = json.loads(path.read_text()) if path.is_file() else {}
        bar = m.get("bar") or {}
        rows.append({
            "condition": cond.get("group") or name, "seed": int(m.get("seeds", {}).get("seed", cond.get("seed") or 0)),
            "run": name, "objective": cond["objective"], "steps": m.get("global_step"),
            "bar_metric": bar.get("metric"), "bar_rule": bar.get("rule"), "value": bar.get("value"),
            "at_init": bar.get("at_init"), "gain": bar.get("gain"),
            "passed": bool(bar.get("passed")) if bar else None,
            "note": bar.get("reason") or ("" if bar else "no learning bar for this objective"),
        })
    return pd.DataFrame(rows)


def _check_train(study: dict[str, Any]) -> None:
    """Every condition's training config is valid (corpora and parents do not exist yet: their
    steps make them, so folders are not checked here)."""
    from musiclens.train.config import load_train_config

    if not study["training"]:
        raise ConfigError("step 'train' needs at least one entry under 'training'")
    condition_order(study["training"])   # no cycles through 'from'
    for name in study["training"]:
        try:
            load_train_config(condition_config(study, Path("RUN_DIR"), name), check_paths=False)
        except ConfigError as err:
            raise ConfigError(f"training.{name}: {err}") from None


STEP_CHECKS.register("train", _check_train)
STEPS.register("train", _train_step, help="run the training conditions into RUN_DIR/train/<name> (resumable)")
