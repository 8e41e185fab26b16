"""The pretrained-networks section: counts by training domain, computed from the RSA table."""

from __future__ import annotations

import pandas as pd

from musiclens.report.pretrained import pretrained_sentence, pretrained_table

CFG = {"rsa": {"method": "tau-a"},
       "networks": {"crepe": {"model": "crepe-tiny"}, "pesto": {"model": "pesto"}, "vad": {"model": "silero-vad"},
                    "spk": {"model": "resemblyzer"}, "cqt": {"model": "cqt"}, "ssl": {"trained": "ssl"}}}


def _rows(network: str, layers: list[str], sig: list[bool], values: list[float]) -> list[dict]:
    return [{"network": network, "layer": la, "model_rdm": "chroma", "statistic": "partial-tau-b", "value": v,
             "significant": s} for la, s, v in zip(layers, sig, values)]


def _rsa() -> pd.DataFrame:
    return pd.DataFrame(
        _rows("crepe", ["conv1", "conv2"], [False, True], [0.1, 0.3])
        + _rows("pesto", ["hcqt", "conv2"], [True, False], [0.3, 0.02])          # only the input: hcqt
        + _rows("vad", ["stft", "conv1"], [True, False], [0.2, 0.0])             # only the input: stft
        + _rows("spk", ["mel", "lstm1"], [False, True], [0.1, 0.2])
        + _rows("cqt", ["cqt"], [True], [0.4]) + _rows("ssl", ["layer_01"], [True], [0.5])
        + [{"network": "crepe", "layer": "conv1", "model_rdm": "chroma", "statistic": "tau-a", "value": 0.9,
            "significant": True}])


def test_counts_learned_layers_by_domain_and_task():
    table = pretrained_table(_rsa(), CFG)
    assert table["network"].tolist() == ["crepe", "pesto", "vad", "spk"]   # no hand-crafted, no trained-here
    crepe = table.set_index("network").loc["crepe"]
    assert crepe["best learned layer"] == "conv2" and crepe["learned value"] == 0.3
    pesto = table.set_index("network").loc["pesto"]
    assert pesto["significant layers"] == 1 and pesto["significant learned layers"] == 0
    s = pretrained_sentence(table)
    assert "in a learned layer of 1 of 2 music-trained (pitch 1/2) and 1 of 2 speech-trained" in s
    assert "speech activity 0/1, speaker identity 1/1" in s
    assert "in pesto (music-trained), vad (speech-trained) only the input representation (hcqt, stft)" in s


def test_the_sentence_follows_the_numbers():
    rsa = _rsa()
    rsa.loc[(rsa.network == "pesto") & (rsa.layer == "conv2"), "significant"] = True
    s = pretrained_sentence(pretrained_table(rsa, CFG))
    assert "2 of 2 music-trained (pitch 2/2)" in s and "pesto (music-trained)" not in s
    assert pretrained_sentence(pretrained_table(rsa, {"networks": {"cqt": {"model": "cqt"}}})) is None
