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
``p``, ``df``, ``ci_low``, ``ci_high``
    two-sided t-test of the mean difference with units *and* seeds as crossed random effects
    (:func:`crossed_t_test`): the claim generalises over instruments and over training runs.
    From the two-way ANOVA mean squares of ``d`` (units ``MS_U``, seeds ``MS_S``, residual
    ``MS_E``), ``Var(mean) = (MS_U + MS_S - MS_E) / (n_units * n_seeds)`` with Satterthwaite's
    degrees of freedom (the quasi-F of Clark 1973's "language-as-fixed-effect" problem), negative
    variance components set to zero; with one seed it is the one-sample t-test across units.  With three seeds the degrees of freedom are
    few and the test is conservative: that is the price of generalising over training runs.
    ``ci_*`` is the matching t interval.
``p_sign_flip``
    the exact (``2**n``) two-sided sign-flip permutation test of the per-unit differences
    averaged over seeds, ``u = mean over seeds of d`` (random ``n_permutations`` patterns above
    ``exact_max_units`` units): the nonparametric test with the units as the random effect and
    these seeds held fixed.  It ignores seed-to-seed variability, so it is not the verdict.
``boot_ci_low``, ``boot_ci_high``
    percentile interval of the mean difference under a two-way bootstrap that resamples units
    and seeds with replacement (few seeds make it too narrow; shown beside the t interval).
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

__all__ = ["ContrastResult", "paired_contrast", "crossed_t_test", "sign_flip_p", "two_way_bootstrap", "best_layer_values",
           "holm", "pair_seeds"]


@dataclass
class ContrastResult:
    """One paired contrast (see the module docstring for each field)."""

    difference: float
    ci_low: float
    ci_high: float
    p: float
    df: float
    p_sign_flip: float
    boot_ci_low: float
    boot_ci_high: float
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


def crossed_t_test(diffs: np.ndarray, *, level: float = 0.95) -> tuple[float, float, float, float, float]:
    """t-test of ``mean(diffs) == 0`` with rows (units) and columns (seeds) as crossed random effects.

    Returns ``(t, df, p_two_sided, ci_low, ci_high)``.  With ``MS_U``, ``MS_S``, ``MS_E`` the two-way
    mean squares, the variance components are ``(MS_U - MS_E) / n_seeds`` (units),
    ``(MS_S - MS_E) / n_units`` (seeds) and ``MS_E``; a negative component is set to zero, as usual:

    - both positive: ``Var(mean) = (MS_U + MS_S - MS_E) / (n_units * n_seeds)``, Satterthwaite df;
    - no seed component: ``MS_U / (n_units * n_seeds)``, ``n_units - 1`` df (the t-test across units
      of the seed-averaged differences);
    - no unit component: ``MS_S / (n_units * n_seeds)``, ``n_seeds - 1`` df;
    - neither: ``MS_E / (n_units * n_seeds)``, ``(n_units - 1)(n_seeds - 1)`` df.

    With one seed it is the one-sample t-test across units.  Simulated with 12 units x 3 seeds
    (tests/test_contrast.py), the false-positive rate stays within 0.01-0.08 at alpha 0.05
    whether or not units and seeds carry effects of their own.
    """
    from scipy import stats

    d = np.asarray(diffs, dtype=float)
    if d.ndim != 2 or d.shape[0] < 2:
        raise InsufficientDataError(f"a crossed t-test needs [n_units >= 2, n_seeds] differences, got {d.shape}")
    n_u, n_s = d.shape
    m = float(d.mean())
    rows, cols = d.mean(axis=1), d.mean(axis=0)
    ms_u = n_s * float(((rows - m) ** 2).sum()) / (n_u - 1)
    if n_s == 1:
        num, df = ms_u, float(n_u - 1)
    else:
        ms_s = n_u * float(((cols - m) ** 2).sum()) / (n_s - 1)
        ms_e = float(((d - rows[:, None] - cols[None, :] + m) ** 2).sum()) / ((n_u - 1) * (n_s - 1))
        unit_part, seed_part = ms_u > ms_e, ms_s > ms_e
        if unit_part and seed_part:
            num = ms_u + ms_s - ms_e
            df = num ** 2 / (ms_u ** 2 / (n_u - 1) + ms_s ** 2 / (n_s - 1) + ms_e ** 2 / ((n_u - 1) * (n_s - 1)))
        elif unit_part:
            num, df = ms_u, float(n_u - 1)
        elif seed_part:
            num, df = ms_s, float(n_s - 1)
        else:
            num, df = ms_e, float((n_u - 1) * (n_s - 1))
    se = math.sqrt(num / (n_u * n_s))
    if se == 0:
        t = math.copysign(math.inf, m) if m != 0 else 0.0
        return t, df, (0.0 if m != 0 else 1.0), m, m
    t = m / se
    half = float(stats.t.ppf(0.5 + level / 2.0, df)) * se
    return t, df, float(2.0 * stats.t.sf(abs(t), df)), m - half, m + half


def paired_contrast(diffs: np.ndarray, *, n_permutations: int = 10000, n_bootstraps: int = 10000, seed: int = 0,
                    level: float = 0.95) -> ContrastResult:
    """The contrast of a matrix of paired differences ``[n_units, n_seeds]`` (module docstring)."""
    d = np.asarray(diffs, dtype=float)
    if d.ndim == 1:
        d = d[:, None]
    if d.ndim != 2 or d.shape[0] < 2 or d.shape[1] < 1:
        raise InsufficientDataError(f"a contrast needs paired differences [n_units >= 2, n_seeds >= 1], got {d.shape}")
    if not np.all(np.isfinite(d)):
        raise InsufficientDataError("paired differences contain NaN or inf; every unit needs a finite score")
    u = d.mean(axis=1)
    _, df, p, lo, hi = crossed_t_test(d, level=level)
    p_flip, exact = sign_flip_p(u, n_permutations=n_permutations, seed=seed)
    blo, bhi = two_way_bootstrap(d, n_bootstraps=n_bootstraps, seed=seed + 1, level=level)
    sd = float(u.std(ddof=1))
    dz = float(u.mean() / sd) if sd > 0 else (math.copysign(math.inf, u.mean()) if u.mean() != 0 else 0.0)
    return ContrastResult(difference=float(d.mean()), ci_low=lo, ci_high=hi, p=p, df=df, p_sign_flip=p_flip,
                          boot_ci_low=blo, boot_ci_high=bhi, effect_size_dz=dz, n_units=int(d.shape[0]),
                          n_seeds=int(d.shape[1]), exact=exact, per_seed=[float(v) for v in d.mean(axis=0)])


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
