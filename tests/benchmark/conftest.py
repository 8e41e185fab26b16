"""Fixture datasets for the benchmark tests (built once per session; read-only afterwards)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmark import fixtures


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("marble-data")
    for make in fixtures.ALL.values():
        make(root)
    return root
