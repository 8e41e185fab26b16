"""Study step ``targets``: every network (and chosen model RDMs) against measured RDMs.

The study section::

    targets:
      files: [listeners=data/listeners.csv, meg=data/meg_rdms.hdf5]   # NAME=PATH or PATH
      networks: null          # default: every network of the study
      models: [chroma_circular, pitch_height]   # model RDMs evaluated beside the layers
      method: corr            # corr, cosine, spearman, rho-a, tau-a
      bootstrap: dual         # dual, both, subjects, stimuli, none
      n_bootstraps: 1000
      correction: fdr_bh
      alpha: 0.05
      noise_ceiling: true
      flexible: false         # also cross-validate each network's fitted weighted layer sum (corr/cosine)

reads the pooled features the ``extract`` step stored (``RUN_DIR/features/<network>``) and writes
``RUN_DIR/targets/`` (``targets.csv``, ``targets_pairwise.csv``, figures, ``targets.json``) whole.
Relative file paths are taken from the working directory.  Each file is read and checked before
the study's first step (format, symmetry, diagonal, ids); its ids are checked against the stimulus
set when the step runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from musiclens.errors import ConfigError
from musiclens.study import STEP_CHECKS, STEPS, check_count

__all__: list[str] = []

logger = logging.getLogger(__name__)


def _files(cfg: dict[str, Any]) -> list[str]:
    files = cfg["files"]
    if isinstance(files, str):
        files = [files]
    if isinstance(files, dict):
        files = [f"{k}={v}" for k, v in files.items()]
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise ConfigError("targets.files needs one or more measured-RDM files: a list of PATH or NAME=PATH strings "
                          "(or a mapping NAME: PATH)")
    return files


def _networks(study: dict[str, Any]) -> list[str]:
    chosen = study["targets"]["networks"]
    names = list(study["networks"])
    if chosen is None:
        return names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        raise ConfigError(f"targets.networks names {unknown}, which are not networks of this study ({names})")
    return list(chosen)


def _options(cfg: dict[str, Any]) -> dict[str, Any]:
    return {"method": str(cfg["method"]), "bootstrap": str(cfg["bootstrap"]),
            "n_bootstraps": check_count("targets.n_bootstraps", cfg["n_bootstraps"]),
            "correction": str(cfg["correction"]), "alpha": float(cfg["alpha"]),
            "noise_ceiling": bool(cfg["noise_ceiling"]), "flexible": bool(cfg["flexible"])}


def _check_targets(study: dict[str, Any]) -> None:
    from musiclens.rsa.models import MODEL_RDMS
    from musiclens.rsa.target_analysis import check_target_options
    from musiclens.rsa.targets import load_targets

    cfg = study["targets"]
    check_target_options(**_options(cfg))
    for m in cfg["models"] or []:
        MODEL_RDMS.get(str(m))
    if not study["networks"] and not cfg["models"]:
        raise ConfigError("step 'targets' needs networks (an 'extract' step) or targets.models to evaluate")
    _networks(study)
    for f in _files(cfg):
        target = load_targets(f, stimulus_ids=None) if not str(f).endswith(".npy") else None
        if target is None:
            raise ConfigError(f"targets.files: {f} is a bare .npy, which names no stimuli; a study needs ids in the "
                              "file (.npz with stimulus_id, rsatoolbox HDF5 or long CSV)")
        if cfg["noise_ceiling"] and target.n_subjects < 3:
            raise ConfigError(f"targets.files: {f} holds {target.n_subjects} subject RDM(s); a noise ceiling needs at "
                              "least 3 (set targets.noise_ceiling: false to go on without one)")


def _targets_step(study: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    from musiclens.extract.store import load_pooled
    from musiclens.fsutil import atomic_dir, atomic_write_json
    from musiclens.rsa.target_analysis import run_targets
    from musiclens.rsa.targets import load_targets
    from musiclens.stimuli.stimulus_set import StimulusSet

    cfg = study["targets"]
    metadata = StimulusSet.read_metadata(run_dir / "stimuli")
    targets = [load_targets(f) for f in _files(cfg)]
    networks = {}
    for name in _networks(study):
        store = run_dir / "features" / name
        if not store.is_dir():
            raise ConfigError(f"step 'targets' needs the pooled features of {name!r} ({store}); run the 'extract' "
                              "step first (list it before 'targets' in steps.run)")
        layers, ids = load_pooled(store)
        networks[name] = (layers, [str(s) for s in ids])
    results = run_targets(targets, networks, metadata=metadata, models=[str(m) for m in cfg["models"] or []],
                          distance=str(study["rsa"]["distance"]), seed=int(study["study"]["seed"]), **_options(cfg))
    with atomic_dir(run_dir / "targets", overwrite=True) as tmp:
        written = results.save(tmp)
        atomic_write_json(tmp / "targets.json", {"config": results.config, "files": results.targets,
                                                 "omitted": results.omitted})
    best = {name: ev.table.loc[ev.table["best"], "candidate"].item() for name, ev in results.evaluations.items()}
    return {"outputs": ["targets/" + p.name for p in written] + ["targets/targets.json"], "best": best,
            "files": results.targets}


STEP_CHECKS.register("targets", _check_targets)
STEPS.register("targets", _targets_step,
               help="every network's layers (and targets.models) against measured RDMs (noise ceiling, bootstrap, "
                    "pairwise tests) into RUN_DIR/targets")
