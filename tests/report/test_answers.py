from __future__ import annotations

import pandas as pd

from musiclens.report.answers import teachers_answer, trained_and_controls, vit1d_answer
from musiclens.report.frames import attention_sentences, ssm_sentences
from musiclens.report.probes import pooling_sentences, ranking_sentences

NETWORKS = {"vit": {"trained": "vit"}, "vit-random": {"trained": "vit", "randomize": True}, "cqt": {"model": "cqt"}}


def _probe(rows: list[tuple[str, str, str, str, float, float]]) -> pd.DataFrame:
    """(network, task, pooling, layer, value, ci_low) -> a probe table."""
    return pd.DataFrame([dict(network=n, task=t, pooling=p, layer=lay, value=v, ci_low=lo, ci_high=v + 0.05,
                              chance=0.05, split="test", primary=True, metric="m", probe="linear")
                         for n, t, p, lay, v, lo in rows])


def test_trained_and_controls() -> None:
    assert trained_and_controls(NETWORKS) == (["vit"], {"vit": "vit-random"})


def test_vit1d_answer_follows_the_numbers() -> None:
    probe = _probe([("vit", "chords", "frames", "layer_02", 0.40, 0.30), ("vit-random", "chords", "frames", "layer_01", 0.20, 0.1),
                    ("vit", "onsets", "frames", "layer_01", 0.06, 0.01),
                    ("vit", "pitch", "cls", "layer_02", 0.5, 0.4), ("vit", "pitch", "cls+mean", "layer_02", 0.7, 0.6)])
    s = vit1d_answer(probe, None, None, NETWORKS)
    assert s[0] == ("vit's frame tokens carry chords (m 0.400 at layer_02, chance 0.050, random weights 0.200); "
                    "not above chance: onsets (m 0.060 at layer_01, chance 0.050).")
    assert s[1] == "vit, global tasks: the best pooling is 'cls' on 0, 'cls+mean' on 1 of 1 tasks."
    probe.loc[probe.task == "chords", "ci_low"] = 0.01  # chords no longer clear of chance
    assert vit1d_answer(probe, None, None, NETWORKS)[0].startswith("vit's frame tokens carry no local task above chance")
    att = pd.DataFrame([dict(network="vit", layer="layer_03", head="mean", recipe="received", f_measure=0.8, n_clips=4),
                        dict(network="vit", layer="audio", head="-", recipe="spectral_flux", f_measure=0.7, n_clips=4),
                        dict(network="vit-random", layer="layer_01", head="mean", recipe="received", f_measure=0.3,
                             n_clips=4)])
    s = vit1d_answer(None, att, None, NETWORKS)
    assert s == ["Onsets in vit's attention: best onset F = 0.80 at layer_03 ('received') vs spectral flux 0.70 "
                 "and random weights 0.30."]
    assert "(attention beats it)" in attention_sentences(att)[0]
    att.loc[0, "f_measure"] = 0.5
    assert "(attention beats it)" not in attention_sentences(att)[0]


def test_ssm_sentence_says_whether_layers_differ() -> None:
    t = pd.DataFrame([dict(network="vit", layer=f"layer_0{i}", reference=r, method="pearson", value=v)
                      for r, vals in {"chroma": [0.1, 0.5], "mfcc": [0.6, 0.2]}.items() for i, v in enumerate(vals)])
    assert ssm_sentences(t) == ["vit: layer SSMs match chroma (harmony) at layer_01 (r = 0.50); MFCC (timbre) at "
                                "layer_00 (r = 0.60) — the best-matching layers differ (2 distinct layers for 2 "
                                "references)."]
    t.loc[(t.reference == "mfcc") & (t.layer == "layer_01"), "value"] = 0.9
    assert "one layer matches every reference best" in ssm_sentences(t)[0]


def test_teachers_answer_follows_the_numbers() -> None:
    networks = {"acoustic": {"trained": "acoustic"}, "cqt": {"trained": "cqt"}, "both": {"trained": "both"}}
    training = {"acoustic": {"options": {"cqt_weight": 0.0}}, "cqt": {"options": {"cqt_weight": 1.0}},
                "both": {"options": {}}}
    probe = _probe([("acoustic", "pitch", "mean", "layer_01", 0.50, 0.45), ("cqt", "pitch", "mean", "layer_02", 0.80, 0.7),
                    ("both", "pitch", "mean", "layer_02", 0.75, 0.7)])
    s = teachers_answer(probe, networks, training)
    assert s == ["pitch (m): with a CQT teacher best 0.800 (cqt, layer_02), without 0.500 (acoustic, layer_01); "
                 "difference +0.300: the CQT teacher helps."]
    probe.loc[probe.network == "acoustic", ["value", "ci_low"]] = [0.9, 0.85]
    assert teachers_answer(probe, networks, training)[0].endswith("the CQT teacher hurts.")
    probe.loc[probe.network == "acoustic", ["value", "ci_low"]] = [0.78, 0.6]
    assert teachers_answer(probe, networks, training)[0].endswith("no clear difference (the CIs overlap).")


def test_ranking_and_pooling_sentences() -> None:
    probe = _probe([("a", "pitch", "mean", "layer_01", 0.9, 0.85), ("b", "pitch", "mean", "layer_00", 0.6, 0.5)])
    assert ranking_sentences(probe) == ["pitch (m, test; chance 0.050): a 0.900 (layer_01), b 0.600 (layer_00). "
                                        "a leads; its 95% CI [0.850, 0.950] excludes b's score."]
    assert pooling_sentences(probe) == []


def test_training_caveat_follows_validation_scores(tmp_path) -> None:
    import json

    from musiclens.report.answers import training_caveats
    from musiclens.report.sections import ReportContext

    (tmp_path / "train" / "ft").mkdir(parents=True)
    cfg = {"training": {"ft": {"objective": "transcription"}, "ssl": {"objective": "wav2vec2"}}}
    ctx = ReportContext(run_dir=tmp_path, cfg=cfg, manifest={})
    path = tmp_path / "train" / "ft" / "manifest.json"
    path.write_text(json.dumps({"metrics": {"val/frame_f1": 0.12}}))
    assert training_caveats(ctx) == [
        "Caveat: ft reached validation frame_f1 = 0.12 (below 0.5), so it has not learned its task at this scale "
        "and its RSA does not test the effect of that training (run --scale full)."]
    path.write_text(json.dumps({"metrics": {"val/frame_f1": 0.81}}))
    assert training_caveats(ctx) == []
    path.write_text(json.dumps({"metrics": {}}))
    assert "no validation val/frame_f1" in training_caveats(ctx)[0]
