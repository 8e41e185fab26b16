"""Shared matplotlib plumbing of the analysis figures (attention, SSM, RSA).

- :func:`pyplot`: ``matplotlib.pyplot`` on the non-interactive Agg backend (imported lazily, so
  the analysis packages load without matplotlib);
- :func:`kept_clip`: which kept clip a per-clip figure shows, with a clear error otherwise;
- :func:`time_extent`: the ``imshow`` extent of a time × time matrix, in seconds;
- :func:`label_layer_axes`: layer names as the x tick labels of layer-profile panels;
- :func:`file_safe`: a clip id made safe for a file name;
- :func:`per_clip_figures`: ``<prefix>_<clip>.png`` figures for every kept clip;
- :func:`save_pngs`: write named figures as PNGs atomically and close them.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from musiclens.errors import ConfigError
from musiclens.fsutil import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["pyplot", "kept_clip", "time_extent", "label_layer_axes", "file_safe", "per_clip_figures", "save_pngs"]

logger = logging.getLogger(__name__)


def pyplot():  # matplotlib.pyplot (a module)
    """``matplotlib.pyplot``, the Agg backend selected unless a backend is already in use."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def kept_clip(kept: Mapping[str, Any], clip: str | None, *, what: str) -> str:
    """The clip a per-clip figure shows: ``clip``, or the first kept one when None.

    Parameters
    ----------
    kept
        The result's per-clip store (keys: clip ids kept for figures).
    clip
        A clip id, or None for the first kept clip.
    what
        What the figure plots, for the error message (e.g. ``"SSMs"``).

    Raises
    ------
    ConfigError
        Nothing was kept (``keep=0``), or ``clip`` was not kept.
    """
    if not kept:
        raise ConfigError(f"the result kept no clips (keep=0); rerun with keep >= 1 to plot {what}")
    if clip is None:
        return next(iter(kept))
    if clip not in kept:
        raise ConfigError(f"clip {clip!r} was not kept; kept clips: {list(kept)}")
    return clip


def time_extent(times: np.ndarray) -> tuple[float, float, float, float]:
    """``imshow`` extent ``(left, right, bottom, top)`` of a ``[T, T]`` matrix over frame times.

    ``times`` ``[shape=(T,)]`` are frame centres in seconds; each cell spans the median hop (1 s
    for a single frame), and the first frame is at the top (query time grows downwards).
    """
    hop = float(np.median(np.diff(times))) if times.size > 1 else 1.0
    return (times[0] - hop / 2, times[-1] + hop / 2, times[-1] + hop / 2, times[0] - hop / 2)


def label_layer_axes(axes: Iterable[Axes], layers: Sequence[str]) -> None:
    """On each panel plotted at ``x = 0..len(layers)-1``: layer names as rotated x ticks, a legend."""
    x = np.arange(len(layers))
    for ax in axes:
        ax.set_xticks(x)
        ax.set_xticklabels(layers, rotation=60, fontsize=7)
        ax.legend(fontsize=7)


def file_safe(name: str) -> str:
    """``name`` with every character other than letters, digits, ``-``, ``_`` and ``.`` replaced by ``_``."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def per_clip_figures(clips: Iterable[str], plots: Mapping[str, Callable[[str], Figure]]) -> dict[str, Figure]:
    """``{"<prefix>_<file_safe(clip)>.png": plot(clip)}`` for every clip, then every ``prefix: plot``."""
    return {f"{prefix}_{file_safe(clip)}.png": plot(clip) for clip in clips for prefix, plot in plots.items()}


def save_pngs(figures: Mapping[str, Figure], folder: str | os.PathLike[str], *, dpi: int) -> list[Path]:
    """Write every ``{file name: figure}`` as ``folder/<file name>`` (PNG, ``dpi``) atomically.

    Each figure is closed after writing.  Returns the written paths, in ``figures`` order.
    """
    plt = pyplot()
    folder = Path(folder)
    paths = []
    for name, fig in figures.items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        plt.close(fig)
        paths.append(atomic_write_bytes(folder / name, buf.getvalue()))
    logger.info("wrote %d figures to %s", len(paths), folder)
    return paths
