from __future__ import annotations

import pytest

from musiclens.stimuli import StimulusSet, render_notes


@pytest.fixture(scope="session")
def paper_set() -> StimulusSet:
    """The default paper grid (1,080 notes), rendered once per session."""
    return render_notes(grid="paper", progress=False)


@pytest.fixture
def small_set() -> StimulusSet:
    return render_notes(instruments=["acoustic_grand_piano", "flute", "acoustic_guitar_nylon"],
                        midi=[60, 67, 72], duration_s=1.0, hold_s=0.7, progress=False)
