"""Train / validation / test splits that keep groups (instruments, pieces) on one side.

:func:`grouped_split` works like scikit-learn's ``GroupShuffleSplit`` extended to three parts:
the distinct groups are shuffled with a fixed seed and dealt out by largest-remainder counts
(every part gets at least one group), so no group ever appears in two parts.
:func:`split_from_column` takes a given assignment (e.g. NSynth's official splits).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from musiclens.errors import ConfigError, InsufficientDataError

__all__ = ["SPLITS", "grouped_split", "split_from_column", "check_disjoint"]

SPLITS = ("train", "valid", "test")
_ALIASES = {"train": "train", "training": "train", "valid": "valid", "validation": "valid", "val": "valid",
            "dev": "valid", "test": "test", "testing": "test", "eval": "test", "evaluation": "test"}


def grouped_split(
    groups: Sequence[object] | np.ndarray,
    *,
    fractions: Mapping[str, float] | Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
) -> np.ndarray:
    """Assign every example to ``train``/``valid``/``test`` so that groups stay together.

    Parameters
    ----------
    groups
        ``[shape=(n,)]`` group of each example.  Pass ``np.arange(n)`` for an ungrouped split.
    fractions
        Fractions of *groups* in train, valid and test (sum 1).
    seed
        Seed of the group shuffle.

    Returns
    -------
    np.ndarray
        ``[shape=(n,)]`` split names (``<U5``).

    Raises
    ------
    InsufficientDataError
        Fewer than three distinct groups.
    """
    frac = dict(fractions) if isinstance(fractions, Mapping) else dict(zip(SPLITS, fractions))
    if set(frac) != set(SPLITS):
        raise ConfigError(f"fractions must name train, valid and test; got {sorted(frac)}")
    vals = np.array([frac[s] for s in SPLITS], dtype=float)
    if (vals <= 0).any() or not math.isclose(vals.sum(), 1.0, abs_tol=1e-6):
        raise ConfigError(f"split fractions must be positive and sum to 1; got {frac}")
    g = np.asarray(groups).astype(str)
    unique = np.array(sorted(set(g.tolist())))
    if unique.size < 3:
        raise InsufficientDataError(
            f"a grouped train/valid/test split needs at least 3 groups, found {unique.size} "
            f"({', '.join(unique[:5])}); add stimuli from more groups (instruments, pieces), group by "
            "another column, or give a split column"
        )
    order = unique[np.random.default_rng(seed).permutation(unique.size)]
    raw = vals * unique.size
    counts = np.maximum(1, np.floor(raw).astype(int))
    while counts.sum() > unique.size:
        counts[np.argmax(counts)] -= 1
    while counts.sum() < unique.size:
        counts[np.argmax(raw - counts)] += 1
    out = np.empty(g.size, dtype="<U5")
    start = 0
    for name, k in zip(SPLITS, counts):
        out[np.isin(g, order[start:start + k])] = name
        start += k
    return out


def split_from_column(values: Sequence[object] | np.ndarray) -> np.ndarray:
    """Normalise a given split column to ``train``/``valid``/``test``.

    Values are matched case-insensitively to the names and their aliases (``validation``,
    ``val``, ``dev``, ``eval``...); a value containing one of them (``nsynth-train``) also
    matches.  Anything else is an error.
    """
    out = []
    bad: set[str] = set()
    for v in np.asarray(values).astype(str):
        key = v.strip().lower()
        name = _ALIASES.get(key)
        if name is None:
            hits = {_ALIASES[a] for a in _ALIASES if a in key.replace("_", "-").split("-")}
            name = hits.pop() if len(hits) == 1 else None
        if name is None:
            bad.add(v)
        out.append(name or "")
    if bad:
        raise ConfigError(f"split column values {sorted(bad)[:5]} are not train/valid/test (or validation, val, test...)")
    arr = np.asarray(out, dtype="<U5")
    missing = [s for s in SPLITS if not (arr == s).any()]
    if missing:
        raise InsufficientDataError(f"the split column has no {', '.join(missing)} examples; every split must be non-empty")
    return arr


def check_disjoint(groups: np.ndarray, splits: np.ndarray) -> None:
    """Raise :class:`ConfigError` if any group appears in more than one split."""
    g = np.asarray(groups).astype(str)
    seen: dict[str, str] = {}
    for grp, s in zip(g, np.asarray(splits)):
        if seen.setdefault(grp, s) != s:
            raise ConfigError(
                f"group {grp!r} appears in both {seen[grp]!r} and {s!r}: the given split leaks across groups; "
                "fix the split column or drop group=..."
            )
