from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from musiclens.report.html import build_report
from musiclens.report.training import curve_sentence


def _curve(values_by_step: dict[int, list[float]]) -> pd.DataFrame:
    rows = []
    for step, values in values_by_step.items():
        for i, v in enumerate(values):
            rows.append(dict(step=step, layer=f"layer_{i:02d}", statistic="partial-tau-b", model_rdm="chroma", value=v))
            rows.append(dict(step=step, layer=f"layer_{i:02d}", statistic="tau-a", model_rdm="pitch_height",
                             value=0.3))
    return pd.DataFrame(rows)


def test_curve_sentence_follows_the_numbers() -> None:
    s = curve_sentence(_curve({0: [0.01, 0.02], 50: [0.05, 0.11]}), condition="transcription")
    assert s == ("During transcription training, the largest partial tau-b for chroma over layers rose from 0.020 "
                 "at step 0 to 0.110 at step 50 (then at layer_01).")
    s2 = curve_sentence(_curve({0: [0.2, 0.02], 100: [0.05, 0.01]}), condition="asr")
    assert "fell from 0.200 at step 0 to 0.050 at step 100 (then at layer_00)" in s2
    assert curve_sentence(_curve({0: [0.1]}).query("model_rdm == 'pitch_height'"), condition="x") == ""


def test_training_section_in_report(tmp_path: Path) -> None:
    run = tmp_path / "run"
    d = run / "train" / "ft"
    (d / "logs").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"study": {"name": "t", "question": "q?"},
                                                    "training": {"ft": {"objective": "transcription"}}}))
    (d / "manifest.json").write_text(json.dumps({"global_step": 50, "finished": True, "metrics": {"val/frame_f1": 0.5}}))
    pd.DataFrame({"step": [10, 20, 30], "train/loss": [3.0, 2.0, 1.0]}).to_csv(d / "logs" / "metrics.csv", index=False)
    _curve({0: [0.0, 0.01], 50: [0.04, 0.2]}).to_csv(d / "rsa_curve.csv", index=False)
    page = build_report(run).read_text()
    assert "rose from 0.010 at step 0 to 0.200 at step 50" in page
    assert page.count("data:image/png;base64") == 2  # loss curve + RSA curve
    assert "val/frame_f1" in page
