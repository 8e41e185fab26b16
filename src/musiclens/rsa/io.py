"""Reading pooled activations and writing an RSA run folder.

Activations are read from an ``.npz`` (one key per layer ``[shape=(n_stimuli, dim)]``, optional
key ``stimulus_id``) or from a feature-store folder through
``musiclens.extract.store.load_pooled(path) -> (dict[layer, array], list[stimulus_id])``.

:func:`rsa_to_folder` runs :func:`~musiclens.rsa.pipeline.run_rsa` and writes, atomically:
``rsa.csv``, ``rsa.parquet``, ``rsa_tests.csv``, ``per_subject.csv``, ``rdms.npz``,
``conditions.csv``, the PNG figures and ``manifest.json`` (versions, seed, input hashes, timings);
with measured RDMs (``targets``) also ``targets.csv``, ``targets_pairwise.csv`` and their figures
(:mod:`musiclens.rsa.target_analysis`).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from musiclens.errors import AnalysisError, DatasetError, MissingDependencyError
from musiclens.fsutil import atomic_dir, atomic_write_json, check_out
from musiclens.provenance import Timer, environment, hash_array, hash_path
from musiclens.rsa.pipeline import RSAResult, run_rsa

if TYPE_CHECKING:
    from musiclens.rsa.target_analysis import TargetResults

__all__ = ["load_activations", "rsa_to_folder"]

logger = logging.getLogger(__name__)


def load_activations(path: str | Path) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """Pooled activations and their stimulus ids (``None`` when the file has none).

    Parameters
    ----------
    path
        An ``.npz`` file or a feature-store folder.
    """
    path = Path(path)
    if path.is_dir():
        try:
            store = importlib.import_module("musiclens.extract.store")
            load_pooled = store.load_pooled
        except (ImportError, AttributeError) as err:
            raise MissingDependencyError(
                f"{path} is a folder, read as a feature store, but musiclens.extract.store.load_pooled is "
                f"not available ({err}); export the pooled activations to an .npz (one key per layer, "
                "plus 'stimulus_id') instead"
            ) from err
        layers, ids = load_pooled(path)
        return {str(k): np.asarray(v) for k, v in layers.items()}, [str(s) for s in ids]
    if not path.is_file():
        raise DatasetError(f"activations {path} do not exist; give an .npz file or a feature-store folder")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as err:   # not a zip, an empty or truncated file, pickled objects: several types
        raise DatasetError(
            f"cannot read {path} as an .npz of numeric arrays ({type(err).__name__}: {err}); save stimulus ids as a string "
            "array (np.array(ids, dtype=str)), never as Python objects"
        ) from err
    ids = arrays.pop("stimulus_id", None)
    if not arrays:
        raise AnalysisError(f"{path} holds no layer arrays (only {list(arrays) or 'nothing'})")
    return arrays, (None if ids is None else [str(s) for s in ids.tolist()])


def rsa_to_folder(
    *,
    activations: str | Path,
    stimuli: str | Path,
    out: str | Path,
    figures: bool = True,
    assume_order: bool = False,
    targets: Sequence[str | Path] = (),
    target_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> RSAResult | None:
    """Run RSA on files and write the run folder ``out``.

    Parameters
    ----------
    activations
        ``.npz`` or feature-store folder (see :func:`load_activations`).
    stimuli
        Stimulus-set folder (its metadata is read with ``StimulusSet.read_metadata``).
    out
        Output folder, written whole when the analysis is done (built as a temporary sibling and
        renamed): an earlier RSA output there is replaced; any other non-empty folder is refused
        before work starts.
    figures
        Write the PNG figures.
    assume_order
        Allow an ``.npz`` without a ``stimulus_id`` key, taking its rows to be in the metadata's
        order (recorded in the manifest).  Without it such a file is refused: shuffled rows would
        give wrong numbers without any sign.
    targets
        Measured-RDM files (:func:`~musiclens.rsa.targets.load_targets`; ``NAME=PATH`` names one):
        every layer and every model RDM in ``models`` is evaluated against each
        (:func:`~musiclens.rsa.target_analysis.run_targets`), written as ``targets.csv``,
        ``targets_pairwise.csv`` and figures.  With targets, ``models`` may be empty (no model-RDM RSA).
    target_options
        Passed to :func:`~musiclens.rsa.target_analysis.run_targets` (``method``, ``bootstrap``,
        ``n_bootstraps``, ``correction``, ``noise_ceiling``...).
    **kwargs
        Passed to :func:`~musiclens.rsa.pipeline.run_rsa` (``network``, ``models``, ``method``...).

    Returns the RSA result, or ``None`` when only targets were analysed.
    """
    from musiclens.stimuli.stimulus_set import StimulusSet

    timer = Timer()
    activations, stimuli, out = Path(activations), Path(stimuli), Path(out)
    check_out(out, "rsa")   # before any work: never into a folder musiclens did not make
    with timer("load"):
        layers, ids = load_activations(activations)
        metadata: pd.DataFrame = StimulusSet.read_metadata(stimuli)
    if ids is None and not assume_order:
        raise AnalysisError(
            f"{activations} has no 'stimulus_id' array, so nothing says which row is which stimulus; save the ids "
            "with the layers (np.savez(..., stimulus_id=np.array(ids, dtype=str))), or, if the rows are in the "
            "stimulus set's metadata order, pass assume_order=True (--assume-order on the command line)")
    if ids is None:
        logger.warning("%s has no stimulus ids: its rows are taken to be in the metadata's order (assume_order)",
                       activations)
    loaded = []
    if targets:
        from musiclens.rsa.target_analysis import check_target_options
        from musiclens.rsa.targets import load_targets

        check_target_options(alpha=float(kwargs.get("alpha", 0.05)), **(target_options or {}))
        order = ids if ids is not None else metadata["stimulus_id"].astype(str).tolist()
        with timer("load_targets"):   # every file checked before any analysis
            loaded = [load_targets(t, stimulus_ids=order if assume_order else None) for t in targets]
    models = list(kwargs.get("models") or [])
    if not models and not loaded:
        from musiclens.errors import ConfigError

        raise ConfigError("nothing to compare: give model RDM names (models=[...], --models) and/or measured RDM "
                          "files (targets=[...], --targets)")
    result = run_rsa(layers, metadata, stimulus_ids=ids, **kwargs) if models else None
    target_results = None
    if loaded:
        from musiclens.rsa.target_analysis import run_targets

        network = str(kwargs.get("network", "network"))
        with timer("targets"):
            target_results = run_targets(
                loaded, {network: (layers, ids if ids is not None else metadata["stimulus_id"].astype(str).tolist())},
                metadata=metadata, models=models, distance=str(kwargs.get("distance", "correlation")),
                seed=int(kwargs.get("seed", 0)), alpha=float(kwargs.get("alpha", 0.05)), **(target_options or {}))
    with atomic_dir(out, overwrite=True, kind="rsa") as tmp:   # appears whole, or not at all
        _write_rsa_folder(tmp, result, timer, figures=figures, activations=activations, layers=layers,
                          stimuli=stimuli, metadata=metadata, row_order="stimulus_id" if ids is not None
                          else "assumed: the metadata's order (assume_order)", targets=target_results)
    logger.info("RSA results in %s", out)
    return result


def _write_rsa_folder(out: Path, result: RSAResult | None, timer: Timer, *, figures: bool, activations: Path,
                      layers: dict[str, np.ndarray], stimuli: Path, metadata: pd.DataFrame, row_order: str,
                      targets: TargetResults | None = None) -> None:
    written: list[Path] = []
    if result is not None:
        with timer("write_tables"):
            written += result.save(out)
        if figures:
            from musiclens.rsa.plots import save_figures

            with timer("figures"):
                written += save_figures(result, out, seed=int(result.config["seed"]))
    if targets is not None:
        with timer("write_targets"):
            written += targets.save(out, figures=figures)
    timings = {**(result.timings if result is not None else {}), **timer.seconds}
    config = dict(result.config) if result is not None else {}
    manifest = {
        "command": "rsa",
        "config": config,
        "seed": config.get("seed", targets.config["seed"] if targets is not None else None),
        "targets": None if targets is None else {"config": targets.config, "files": targets.targets,
                                                 "omitted": targets.omitted},
        "inputs": {
            "activations": str(activations),
            "activations_sha256": hash_path(activations),
            "layer_hashes": {k: hash_array(np.asarray(v)) for k, v in layers.items()},
            "stimuli": str(stimuli),
            "row_order": row_order,
            "metadata_sha256": hashlib.sha256(
                metadata.to_csv(index=False, float_format="%.10g").encode()).hexdigest(),
        },
        "outputs": sorted(p.name for p in written),
        "timings_s": timings,
        "environment": environment(),
    }
    atomic_write_json(out / "manifest.json", manifest)
