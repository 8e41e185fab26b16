from __future__ import annotations

import pytest

from musiclens.corpora.generator import MusicConfig


@pytest.fixture(scope="session")
def short_config() -> MusicConfig:
    """Short pieces (about 4 s of music) keep the corpus tests fast."""
    return MusicConfig(duration_s=4.0, tail_s=0.5)
