from __future__ import annotations

import pandas as pd

from musiclens.report.sentences import chroma_answer, layer_ranges, rsa_findings


def _table(sig_a: list[bool], sig_b: list[bool]) -> pd.DataFrame:
    rows = []
    for net, sigs in (("tuned", sig_a), ("ssl", sig_b)):
        for i, s in enumerate(sigs):
            for stat in ("tau-a", "partial-tau-b"):
                rows.append(dict(network=net, layer=f"layer_{i:02d}", model_rdm="chroma", statistic=stat,
                                 value=0.1 * (i + 1) if s else 0.01, significant=s))
    return pd.DataFrame(rows)


def test_layer_ranges() -> None:
    order = [f"layer_{i:02d}" for i in range(10)]
    assert layer_ranges(["layer_04", "layer_05", "layer_06", "layer_07", "layer_09"], order) == \
        "layer_04–layer_07, layer_09"
    assert layer_ranges([], order) == ""


def test_sentences_follow_the_numbers() -> None:
    t = _table([False, False, False, False, True, True, True, True, False], [False] * 9)
    answer = chroma_answer(t)
    assert answer == ("Partial chroma tau-b (height partialled out) is significant in tuned (layer_04–layer_07) "
                      "and in no layer of ssl.")
    # change the numbers: the sentence changes with them
    t2 = _table([False] * 9, [False, True, True] + [False] * 6)
    assert chroma_answer(t2) == ("Partial chroma tau-b (height partialled out) is significant in ssl "
                                 "(layer_01–layer_02) and in no layer of tuned.")
    assert "significant in no layer of tuned, ssl" in chroma_answer(_table([False] * 3, [False] * 3))
    findings = rsa_findings(t, models=["chroma"])
    assert findings[1].startswith("tuned: partial chroma tau-b is significant in 4 of 9 layers (layer_04–layer_07)")
    assert "peak 0.800 at layer_07" in findings[1]
    assert findings[3].startswith("ssl: partial chroma tau-b is significant in no layer")


def test_left_out_layers_and_networks_reach_the_report(tmp_path) -> None:
    import json

    import yaml

    from musiclens.report.html import build_report

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"study": {"name": "t"}, "steps": {"run": ["rsa", "ssm"]}}))
    (run / "steps.json").write_text(json.dumps({
        "rsa": {"outputs": [], "skipped_layers": {"crepe": ["classifier"]}},
        "ssm": {"outputs": [], "networks": ["mfcc"], "skipped_networks": {"pesto": "one frame per clip"}}}))
    page = build_report(run).with_suffix(".md").read_text()
    assert "RSA left out 1 layer(s) of crepe (classifier)" in page
    assert "The SSM analysis left out pesto: one frame per clip" in page
