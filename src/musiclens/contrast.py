"""Paired contrasts between training conditions: is A's statistic larger than B's?

The studies' claims are comparisons ("transcription training raises partial chroma above SSL
training").  A contrast compares two conditions on the same *units* (instruments for RSA, test
items for probes), each condition trained with one or more *seeds*, through the matrix of paired
differences ``d[unit, seed] = A[unit, seed] - B[unit, seed]`` (seed ``s`` of A paired with seed
``s`` of B: a fine-tuned seed-``s`` network with the seed-``s`` network it started from; a
condition trained once is paired with every seed of the other).

:func:`paired_contrast` reports, for one matrix:

``difference``
    mean of ``d`` over units and seeds.
``p``
    two-sided sign-flip permutation test of the mean of the per-unit differences
    ``u = mean over seeds of d`` against 0: under H0 (no difference) each unit's difference is
    symmetric about 0, so its sign is exchangeable.  Exact (all ``2**n`` sign patterns) for
    ``n <= exact_max_units`` units, else ``n_permutations`` random patterns with
    ``p = (1 + #{|T*| >= |T|}) / (1 + n_permutations)``.  The unit (instrument, item) is the
    random effect; seeds are averaged within a unit so that they are not counted as independent
    observations (three seeds × twelve instruments is twelve paired observations, not 36).
``ci_low``, ``ci_high``
    percentile interval of the mean difference under a two-way bootstrap that resamples units
    *and* seeds with replacement (so the interval widens with seed-to-seed variability).
``effect_size_dz``
    Cohen's d_z of the per-unit differences: ``mean(u) / sd(u, ddof=1)``.
``per_seed``
    the mean difference per seed (the spread a reader should see).

:func:`best_layer_values` gives, per unit and seed, a condition's value at its best layer chosen
without that unit (leave-one-unit-out on the seed-averaged profile,
:func:`musiclens.rsa.inference.best_layer_cv`), so a best-layer contrast is not inflated by
choosing the maximum on the data it reports.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from musiclens.errors import ConfigError, InsufficientDataError

__all__ = ["ContrastResult", "paired_contrast", "sign_flip_p", "two_way_bootstrap", "best_layer_values",
           "holm", "pair_seeds"]


@dataclass
class ContrastResult:
    """One paired contrast (see the module docstring for each field)."""

    difference: float
    ci_low: float
    ci_high: float
    p: float
    effect_size_dz: float
    n_units: int
    n_seeds: int
    exact: bool
    per_seed: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["per_seed"] = ";".join(f"{v:.6g}" for v in self.per_seed)
        return out


def sign_flip_p(unit_diffs: np.ndarray, *, n_permutations: int = 10000, seed: int = 0,
                exact_max_units: int = 16) -> tuple[float, bool]:
    """Two-sided sign-flip permutation p of ``mean(unit_diffs) == 0``; returns ``(p, exact)``."""
    u = np.asarray(unit_diffs, dtype=float)
    if u.ndim != 1 or u.size < 2:
        raise InsufficientDataError(f"a paired sign-flip test needs at least 2 units, got {u.size}")
    if not np.all(np.isfinite(u)):
        raise InsufficientDataError("paired differences contain NaN or inf; the units must have finite scores")
    observed = abs(u.mean())
    tol = 1e-12 * max(1.0, float(np.abs(u).max()))
    if u.size <= exact_max_units:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=u.size)))      # [2^n, n]
        null = np.abs(signs @ u) / u.size
        return float(np.mean(null >= observed - tol)), True
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(int(n_permutations), u.size))
    null = np.abs(signs @ u) / u.size
    return float((1 + np.sum(null >= observed - tol)) / (1 + int(n_permutations))), False


def two_way_bootstrap(diffs: np.ndarray, *, n_bootstraps: int = 10000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of ``mean(diffs)`` resampling rows (units) and columns (seeds) with replacement."""
    d = np.asarray(diffs, dtype=float)
    if d.ndim != 2:
        raise ConfigError(f"diffs must be [n_units, n_seeds], got shape {d.shape}")
    rng = np.random.default_rng(seed)
    n_u, n_s = d.shape
    rows = rng.integers(0, n_u, size=(int(n_bootstraps), n_u))
    cols = rng.integers(0, n_s, size=(int(n_bootstraps), n_s))
    # mean over the resampled grid = mean over (row counts x column counts) weights
    row_w = np.zeros((int(n_bootstraps), n_u))
    col_w = np.zeros((int(n_bootstraps), n_s))
    np.add.at(row_w, (np.arange(int(n_bootstraps))[:, None], rows), 1.0)
    np.add.at(col_w, (np.arange(int(n_bootstraps))[:, None], cols), 1.0)
    means = np.einsum("bu,us,bs->b", row_w, d, col_w) / (n_u * n_s)
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def paired_contrast(diffs: np.ndarray, *, n_permutations: int = 10000, n_bootstraps: int = 10000, seed: int = 0,
                    level: float = 0.95) -> ContrastResult:
    """The contrast of a matrix of paired differences ``[n_units, n_seeds]`` (module docstring)."""
    d = np.asarray(diffs, dtype=float)
    if d.ndim == 1:
        d = d[:, None]
    if d.ndim != 2 or d.shape[0] < 2 or d.shape[1] < 1:
        raise InsufficientDataError(f"a contrast needs paired differences [n_units >= 2, n_seeds >= 1], got {d.shape}")
    u = d.mean(axis=1)
    p, exact = sign_flip_p(u, n_permutations=n_permutations, seed=seed)
    lo, hi = two_way_bootstrap(d, n_bootstraps=n_bootstraps, seed=seed + 1, level=level)
    sd = float(u.std(ddof=1))
    dz = float(u.mean() / sd) if sd > 0 else (math.copysign(math.inf, u.mean()) if u.mean() != 0 else 0.0)
    return ContrastResult(difference=float(d.mean()), ci_low=lo, ci_high=hi, p=p, effect_size_dz=dz,
                          n_units=int(d.shape[0]), n_seeds=int(d.shape[1]), exact=exact,
                          per_seed=[float(v) for v in d.mean(axis=0)])


def best_layer_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per unit and seed, the value at the layer chosen without that unit.

    Parameters
    ----------
    values
        ``[n_layers, n_units, n_seeds]``.

    Returns
    -------
    held, chosen
        ``[n_units, n_seeds]`` values and ``[n_units]`` chosen layer indices.
    """
    from musiclens.rsa.inference import best_layer_cv

    v = np.asarray(values, dtype=float)
    if v.ndim != 3:
        raise ConfigError(f"values must be [n_layers, n_units, n_seeds], got shape {v.shape}")
    chosen = best_layer_cv(v.mean(axis=2)).chosen
    return v[chosen, np.arange(v.shape[1]), :], chosen


def holm(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down correction (family-wise error), NaNs left out of the family."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = ok.size
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


def pair_seeds(seeds_a: Sequence[int | None], seeds_b: Sequence[int | None]) -> list[tuple[int, int]]:
    """Column pairs ``(i, j)`` of A's and B's seeds: equal seeds together when both are seeded;
    a condition trained once (one column) pairs with every column of the other."""
    if len(seeds_a) == 1 or len(seeds_b) == 1:
        return [(i if len(seeds_a) > 1 else 0, j if len(seeds_b) > 1 else 0)
                for i, j in zip(range(max(len(seeds_a), len(seeds_b))), range(max(len(seeds_a), len(seeds_b))))]
    common = [s for s in seeds_a if s in seeds_b]
    if not common:
        raise InsufficientDataError(f"conditions share no seed to pair (seeds {list(seeds_a)} vs {list(seeds_b)})")
    return [(list(seeds_a).index(s), list(seeds_b).index(s)) for s in common]
