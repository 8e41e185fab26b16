"""The pretrained-networks section: counts by training domain, computed from the RSA table."""

from __future__ import annotations

import pandas as pd

from musiclens.report.pretrained import pretrained_sentence, pretrained_table

CFG = {"rsa": {"method": "tau-a"},
       "networks": {"crepe": {"model": "crepe-tiny"}, "pesto": {"model": "pesto"}, "vad": {"model": "silero-vad"},
                    "spk": {"model": "resemblyzer"}, "cqt": {"model": "cqt"}, "ssl": {"trained": "ssl"}}}


def _rows(network: str, sig: list[bool], values: list[float]) -> list[dict]:
    return [{"network": network, "layer": f"l{i}", "model_rdm": "chroma", "statistic": "partial-tau-b", "value": v,
             "significant": s} for i, (s, v) in enumerate(zip(sig, values))]


def test_counts_by_domain_and_task():
    rsa = pd.DataFrame(_rows("crepe", [False, True], [0.1, 0.3]) + _rows("pesto", [False, False], [0.05, 0.02])
                       + _rows("vad", [False, False], [0.01, 0.0]) + _rows("spk", [True, False], [0.2, 0.1])
                       + _rows("cqt", [True], [0.4]) + _rows("ssl", [True], [0.5])
                       + [{"network": "crepe", "layer": "l0", "model_rdm": "chroma", "statistic": "tau-a",
                           "value": 0.9, "significant": True}])
    table = pretrained_table(rsa, CFG)
    assert table["network"].tolist() == ["crepe", "pesto", "vad", "spk"]   # no hand-crafted, no trained-here
    crepe = table.set_index("network").loc["crepe"]
    assert crepe["best layer"] == "l1" and crepe["value"] == 0.3 and crepe["significant layers"] == 1
    s = pretrained_sentence(table)
    assert "significant in 1 of 2 music-trained (pitch 1/2) and 1 of 2 speech-trained" in s
    assert "speech activity 0/1, speaker identity 1/1" in s
    # the numbers change, the sentence changes
    rsa.loc[(rsa.network == "pesto") & (rsa.layer == "l0") & (rsa.statistic == "partial-tau-b"), "significant"] = True
    assert "2 of 2 music-trained (pitch 2/2)" in pretrained_sentence(pretrained_table(rsa, CFG))
    assert pretrained_sentence(pretrained_table(rsa, {"networks": {"cqt": {"model": "cqt"}}})) is None
