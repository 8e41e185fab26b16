"""Summary of a stimulus set: a per-instrument table, a JSON digest and a figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musiclens.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text
from musiclens.stimuli.stimulus_set import StimulusSet

__all__ = ["summarize_stimuli", "stimulus_table"]


def stimulus_table(stimuli: StimulusSet) -> pd.DataFrame:
    """One row per instrument: family, notes, pitch range, and level statistics (dBFS)."""
    meta = stimuli.metadata.copy()
    rms = np.array([np.sqrt(np.mean(np.square(a, dtype=np.float64))) for a in stimuli.audio])
    peak = np.array([np.abs(a).max() for a in stimuli.audio], dtype=np.float64)
    meta["rms_dbfs"] = 20 * np.log10(np.maximum(rms, 1e-12))
    meta["peak_dbfs"] = 20 * np.log10(np.maximum(peak, 1e-12))
    table = (
        meta.groupby(["family", "instrument"], sort=True)
        .agg(n_notes=("stimulus_id", "size"), midi_min=("midi", "min"), midi_max=("midi", "max"),
             n_velocities=("velocity", "nunique"), rms_dbfs_mean=("rms_dbfs", "mean"),
             rms_dbfs_min=("rms_dbfs", "min"), peak_dbfs_max=("peak_dbfs", "max"))
        .reset_index()
    )
    return table.round(3)


def _figure(stimuli: StimulusSet, path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = stimuli.metadata
    sr = stimuli.sample_rate
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    ax = axes[0]
    for family, rows in meta.groupby("family", sort=True):
        target = rows.iloc[(rows["midi"] - 69).abs().argsort().iloc[0]]
        audio, _ = stimuli[str(target["stimulus_id"])]
        seg = audio[int(0.05 * sr): int(1.0 * sr)].astype(np.float64)
        spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size), n=1 << 15))
        freqs = np.fft.rfftfreq(1 << 15, 1 / sr)
        ax.plot(freqs[1:], 20 * np.log10(spec[1:] / spec.max() + 1e-9), lw=0.8,
                label=f"{family}: {target['instrument']} {target['note_name']}")
    ax.set_xscale("log")
    ax.set_xlim(100, sr / 2)
    ax.set_ylim(-90, 3)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("level (dB re peak)")
    ax.set_title("spectrum of one note per family (0.05-1 s)")
    ax.legend(fontsize=7)
    ax = axes[1]
    rms = np.array([np.sqrt(np.mean(np.square(a, dtype=np.float64))) for a in stimuli.audio])
    for family, rows in meta.groupby("family", sort=True):
        ax.scatter(rows["midi"], 20 * np.log10(np.maximum(rms[rows.index], 1e-12)), s=6, label=family, alpha=0.7)
    ax.set_xlabel("MIDI pitch")
    ax.set_ylabel("RMS level (dBFS)")
    ax.set_title(f"level of every note (n={len(stimuli)})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def summarize_stimuli(stimuli: StimulusSet, *, out_dir: str | Path) -> dict[str, Any]:
    """Write ``summary.csv``, ``summary.json`` and ``stimuli.png`` to ``out_dir``.

    Returns the digest written to ``summary.json``.
    """
    out_dir = Path(out_dir)
    table = stimulus_table(stimuli)
    atomic_write_text(out_dir / "summary.csv", table.to_csv(index=False))
    meta = stimuli.metadata
    digest: dict[str, Any] = {
        "n_stimuli": len(stimuli),
        "n_instruments": int(meta["instrument"].nunique()),
        "instruments_per_family": {str(k): int(v) for k, v in meta.groupby("family")["instrument"].nunique().items()},
        "midi_range": [int(meta["midi"].min()), int(meta["midi"].max())],
        "velocities": sorted(int(v) for v in meta["velocity"].unique()),
        "sample_rate": stimuli.sample_rate,
        "duration_s": float(meta["duration_s"].iloc[0]),
        "content_hash": stimuli.content_hash(),
        "skipped": len(stimuli.info.get("skipped") or []),
        "render_seconds": (stimuli.info.get("timings_s") or {}).get("render"),
    }
    atomic_write_json(out_dir / "summary.json", digest)
    _figure(stimuli, out_dir / "stimuli.png")
    return digest
