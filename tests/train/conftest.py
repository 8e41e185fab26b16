"""Fixtures shared by the training tests."""

from tests.train._util import one_thread  # noqa: F401  (pytest fixture: one torch thread per test)
