"""Model cards agree with the extractors they describe, and every fixed pip network has one."""

from __future__ import annotations

import pytest

from musiclens.extract import EXTRACTORS, build_extractor
from musiclens.extract.cards import CARDS, DOMAINS, card_for

#: Registry entries that are families or loaders (their card depends on the folder), not networks.
LOADERS = {"hf", "wav2vec2", "data2vec-audio", "hubert", "whisper", "ast", "mert", "checkpoint", "torch", "vit1d"}


def test_every_fixed_network_has_a_card() -> None:
    fixed = set(EXTRACTORS.names()) - LOADERS
    assert fixed <= set(CARDS.names()), sorted(fixed - set(CARDS.names()))
    assert card_for("/some/folder").task.startswith("unknown")


@pytest.mark.parametrize("name", CARDS.names())
def test_card_matches_the_extractor(name: str) -> None:
    card, ext = CARDS.get(name), build_extractor(name)
    assert card.sample_rate == ext.sample_rate
    head = card.frame_rate.split()[0]
    if head != "clip":
        assert float(head) == pytest.approx(ext.frame_rate_hz, rel=1e-3)
    assert card.domain in DOMAINS
    assert card.task_group and card.training_data and card.weights
    listed = card.layers.replace("..", ",").replace(" ", "")
    assert ext.layer_names[-1].split("/")[-1] in listed or card.task_group == "hand-crafted" \
        or name.startswith("madmom"), (ext.layer_names, card.layers)


def test_models_command_shows_cards() -> None:
    from typer.testing import CliRunner

    from musiclens.cli import app

    res = CliRunner().invoke(app, ["models"])
    assert res.exit_code == 0, res.output
    block = res.output.split("resemblyzer  [")[1].split("\n\n")[0]
    assert block.startswith("speech: speaker identity]") and "LibriSpeech" in block and "resemblyzer 0.1.4" in block
    assert "loaders (a folder or config names the network)" in res.output and "  hf " in res.output
    res = CliRunner().invoke(app, ["models", "--model", "musicnn-mtt"])
    assert res.exit_code == 0, res.output
    assert "MagnaTagATune" in res.output and "10 layers" in res.output and res.output.strip().endswith("taggram")


@pytest.mark.parametrize("name", [n for n in CARDS.names() if CARDS.get(n).input_layers])
def test_input_layers_are_layers_of_the_extractor(name: str) -> None:
    assert set(CARDS.get(name).input_layers) <= set(build_extractor(name).layer_names)
