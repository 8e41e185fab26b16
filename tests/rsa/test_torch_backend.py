"""The torch backend (here on CPU) gives the NumPy path's numbers on the whole RSA workload."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from musiclens.rsa import run_rsa

pytest.importorskip("torch")


@pytest.mark.parametrize("method,test", [("tau-a", "permutation"), ("spearman", "permutation"), ("corr", "t-test")])
def test_run_rsa_torch_backend_equals_numpy(note_grid, mixed_code, method, test) -> None:
    """Every statistic of run_rsa (layer values, t-test and permutation p-values, bootstrap intervals,
    noise ceilings, partial and regression rows, the cross-validated best layer) agrees to 1e-6."""
    meta = note_grid([f"i{k}" for k in range(4)], midi=np.arange(60, 84))
    layers = {f"layer_{i:02d}": mixed_code(meta, chroma=0.4 * i, height=1.0, noise=1.0, dim=24, seed=i)
              for i in range(3)}
    kw = dict(models=["pitch_height", "chroma"], method=method, test=test, n_permutations=60, n_bootstraps=40,
              bootstrap_over="both", seed=3)
    a = run_rsa(layers, meta, backend="numpy", **kw)
    b = run_rsa(layers, meta, backend="torch", **kw)
    assert a.table.shape == b.table.shape and list(a.table.columns) == list(b.table.columns)
    numeric = a.table.select_dtypes("number").columns
    assert len(numeric) > 5 and a.table["statistic"].nunique() > 2   # the partial and regression rows are there
    np.testing.assert_allclose(b.table[numeric].to_numpy(float), a.table[numeric].to_numpy(float), rtol=0, atol=1e-6,
                               equal_nan=True)
    pd.testing.assert_frame_equal(a.table.drop(columns=numeric), b.table.drop(columns=numeric))
    tests_a, tests_b = a.tests.select_dtypes("number"), b.tests.select_dtypes("number")
    np.testing.assert_allclose(tests_b.to_numpy(float), tests_a.to_numpy(float), rtol=0, atol=1e-6, equal_nan=True)
