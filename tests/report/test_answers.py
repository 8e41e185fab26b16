from __future__ import annotations

import pandas as pd
import pytest

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


def test_training_caveats_follow_the_learning_bars(tmp_path) -> None:
    import json

    from musiclens.fsutil import atomic_write_bytes
    from musiclens.report.answers import training_caveats, unlearned_groups
    from musiclens.report.sections import ReportContext
    from musiclens.study_steps.training import conditions_table
    from musiclens.train.bar import Bar, evaluate_bar

    cfg = {"training": {f"ft-s{s}": {"objective": "transcription", "group": "ft", "seed": s} for s in (0, 1)},
           "networks": {f"ft-s{s}": {"trained": f"ft-s{s}", "group": "ft", "seed": s} for s in (0, 1)}}
    bar = Bar("val/frame_f1", 0.5)

    def write(values):
        for s, v in zip((0, 1), values):
            d = tmp_path / "train" / f"ft-s{s}"
            d.mkdir(parents=True, exist_ok=True)
            (d / "manifest.json").write_text(json.dumps({"global_step": 10, "seeds": {"seed": s},
                                                         "bar": evaluate_bar(bar, {"val/frame_f1": v}, None)}))
        table = conditions_table(cfg, tmp_path)
        atomic_write_bytes(tmp_path / "train" / "conditions.csv", table.to_csv(index=False).encode())
        return table

    ctx = ReportContext(run_dir=tmp_path, cfg=cfg, manifest={})
    table = write([0.12, 0.7])
    assert list(table["passed"]) == [False, True] and list(table["seed"]) == [0, 1]
    assert training_caveats(ctx) == [
        "Caveat: ft (runs ft-s0) missed the learning bar val/frame_f1 >= 0.5 in 1 of 2 run(s) (frame_f1 0.120), so "
        "those runs do not speak for transcription training at this scale; their numbers are shown but flagged."]
    assert unlearned_groups(ctx) == {"ft"}
    write([0.81, 0.7])
    assert training_caveats(ctx) == ["Every trained run reached its learning bar on held-out data (ft frame_f1 0.70–0.81)."]
    assert unlearned_groups(ctx) == set()


def test_contrast_sentences_state_the_numbers_and_flag_unlearned_groups() -> None:
    from musiclens.report.headline import contrast_sentences

    row = dict(contrast="t - s", a="t", b="s", analysis="rsa", statistic="partial-tau-b", model_rdm="chroma", layer="best-layer-cv",
               difference=0.12, ci_low=0.07, ci_high=0.18, p=0.002, p_corrected=0.004, effect_size_dz=1.5,
               n_seeds=3, n_units=12, per_seed="0.1;0.12;0.14")
    table = pd.DataFrame([row, {**row, "layer": "layer_01", "difference": 0.5}])
    (s,) = contrast_sentences(table, "partial-tau-b", "chroma")
    assert ("t − s = +0.120 [+0.070, +0.180], p = 0.002 (Holm 0.004; t is higher; d_z 1.50; 3 seeds × 12 instruments; "
            "per seed +0.100, +0.120, +0.140)") in s
    assert "0.500" not in s       # per-layer rows are not the headline
    (flagged,) = contrast_sentences(table, "partial-tau-b", "chroma", unlearned={"t"})
    assert "NOT a test of the training: t missed its learning bar" in flagged
    table.loc[0, "p_corrected"] = 0.2
    assert "no reliable difference" in contrast_sentences(table, "partial-tau-b", "chroma")[0]


def test_group_summary_shows_the_other_partial_tau_beside_the_headline() -> None:
    from musiclens.report.headline import _partial_definition, group_summary

    rows = []
    for net, cond, b, a in (("t-1", "t", 0.30, 0.10), ("t-2", "t", 0.20, 0.06), ("cqt", "cqt", 0.11, 0.04)):
        for stat, v in (("partial-tau-b", b), ("partial-tau-a", a)):
            rows.append(dict(network=net, condition=cond, layer="layer_01", model_rdm="chroma",
                             statistic=f"{stat}-best-layer-cv", value=v, ci_low=v - 0.1, ci_high=v + 0.1,
                             significant=True))
    rsa = pd.DataFrame(rows)
    cfg = {"contrasts": {"headline": "partial-tau-b:chroma"}, "networks": {"cqt": {"model": "cqt"}}}
    s = group_summary(rsa, cfg).set_index("group")
    assert list(s.columns[s.columns.get_loc("max_over_seeds") + 1:][:1]) == ["partial_tau_a"]
    assert s.loc["t", "value"] == pytest.approx(0.25) and s.loc["t", "partial_tau_a"] == pytest.approx(0.08)
    assert s.loc["cqt", "partial_tau_a"] == pytest.approx(0.04)
    cfg["contrasts"]["headline"] = "partial-tau-a:chroma"
    assert group_summary(rsa, cfg).set_index("group").loc["t", "partial_tau_b"] == pytest.approx(0.25)
    text = _partial_definition("partial-tau-b")
    assert "√((1 − τ_dh²)(1 − τ_ch²))" in text and "close but not identical" in text
    assert "no tied dissimilarities" in text


def test_report_refuses_a_tampered_config_without_constructing_it(tmp_path) -> None:
    """A `!!python` tag in a run's config.yaml is a ConfigError, and nothing runs."""
    import pytest

    from musiclens.errors import ConfigError
    from musiclens.fsutil import mark_output
    from musiclens.report.html import build_report

    run = tmp_path / "run"
    run.mkdir()
    mark_output(run, "run")
    (run / "config.yaml").write_text("study: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="not a plain YAML study config"):
        build_report(run)
    (run / "config.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="does not hold a study config"):
        build_report(run)
    assert not (tmp_path / "pwned").exists() and not (run / "report.html").exists()
