"""`probe_to_folder`: run probes on files and write a run folder with tables, figures and a manifest.

Writes, atomically: ``probe.csv``, ``probe.parquet``, ``probe_layer_weights.csv``,
``probe_splits.csv``, ``probe_grid.csv``, ``probe_config.json``, ``figures/*.png`` and
``manifest.json`` (command, config, seed, input hashes, outputs, timings, environment).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from musiclens.analysis_io import write_run_folder
from musiclens.fsutil import check_out
from musiclens.probe.datasets import load_probe_stimuli
from musiclens.probe.runner import ProbeResult, run_probes
from musiclens.provenance import Timer, hash_path

__all__ = ["probe_to_folder"]

logger = logging.getLogger(__name__)


def probe_to_folder(*, activations: str | Path, stimuli: str | Path, out: str | Path, figures: bool = True,
                    **kwargs: Any) -> ProbeResult:
    """Run :func:`~musiclens.probe.runner.run_probes` on files and write the run folder ``out``.

    Parameters
    ----------
    activations
        Feature-store folder or ``.npz`` (see :mod:`musiclens.probe.features`).
    stimuli
        Stimulus-set folder (metadata; music labels when made by
        :func:`~musiclens.probe.datasets.corpus_stimulus_set`) or corpus folder.
    out
        Output folder, written whole when the probes are done (an earlier probe output there is
        replaced; any other non-empty folder is refused before work starts).
    figures
        Write the layer-profile and layer-weight PNGs.
    **kwargs
        Passed to :func:`run_probes` (``tasks``, ``probe``, ``pooling``, ``layers``, ``seed``...).
    """
    timer = Timer()
    activations, stimuli, out = Path(activations), Path(stimuli), Path(out)
    check_out(out, "probe")   # before any work: never into a folder musiclens did not make
    with timer("load"):
        metadata, labels = load_probe_stimuli(stimuli)
    result = run_probes(str(activations), metadata=metadata, music_labels=labels, **kwargs)
    metadata_csv = metadata.drop(columns=["music_labels"], errors="ignore").to_csv(index=False, float_format="%.10g")
    write_run_folder(
        result, out, command="probe", timer=timer, figures_module="musiclens.probe.plots" if figures else None,
        extra={"seed": result.config["seed"]},
        inputs={"activations": str(activations), "activations_sha256": hash_path(activations, max_bytes=1 << 30),
                "stimuli": str(stimuli), "metadata_sha256": hashlib.sha256(metadata_csv.encode()).hexdigest()},
    )
    logger.info("probe results in %s", out)
    return result
