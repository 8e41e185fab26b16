"""Probes end to end: known answers (labels as features, noise), leakage, bad inputs, frame tasks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from musiclens.errors import AnalysisError, ConfigError, InsufficientDataError
from musiclens.probe.runner import TABLE_COLUMNS, WEIGHTED_SUM, ProbeResult, run_probes
from musiclens.probe.tasks import CHORD_CLASSES, TASKS

from .conftest import FRAME_RATE, frame_activations, make_piece, note_grid

FAST = dict(lrs=(1e-2,), max_epochs=40, patience=5, n_bootstraps=200)


def _row(result: ProbeResult, *, task: str, layer: str, metric: str | None = None) -> pd.Series:
    t = result.table
    t = t[(t.task == task) & (t.layer == layer) & (t.split == "test")]
    t = t[t.primary] if metric is None else t[t.metric == metric]
    assert len(t) == 1
    return t.iloc[0]


@pytest.fixture(scope="module")
def grid_result() -> tuple[pd.DataFrame, ProbeResult]:
    meta = note_grid(20)
    rng = np.random.default_rng(0)
    onehot = np.eye(24, dtype=np.float32)[meta["midi"].to_numpy() - 48]
    feats = {"layer_00": onehot, "layer_01": rng.normal(size=(len(meta), 16)).astype(np.float32)}
    res = run_probes(feats, tasks=["pitch", "pitch_class", "octave"], metadata=meta, seed=0, **FAST)
    return meta, res


def test_labels_as_features_score_perfectly(grid_result) -> None:
    _, res = grid_result
    assert list(res.table.columns) == list(TABLE_COLUMNS)
    for task in ("pitch", "pitch_class", "octave"):
        assert _row(res, task=task, layer="layer_00")["value"] == 1.0
    assert _row(res, task="pitch", layer="layer_00", metric="chroma_acc")["value"] == 1.0
    assert _row(res, task="pitch", layer=WEIGHTED_SUM)["value"] == 1.0


def test_noise_features_score_at_chance_within_ci(grid_result) -> None:
    _, res = grid_result
    for task, nominal in (("pitch_class", 1 / 12), ("octave", 1 / 2)):
        row = _row(res, task=task, layer="layer_01")
        assert row["ci_low"] <= row["chance"] <= row["ci_high"], row.to_dict()
        assert row["chance"] == pytest.approx(nominal, abs=0.1)
        assert row["value"] < _row(res, task=task, layer="layer_00")["value"]


def test_splits_keep_instruments_apart_and_weights_favour_the_informative_layer(grid_result) -> None:
    meta, res = grid_result
    sp = res.splits[res.splits.task == "pitch"]
    assert len(sp) == len(meta) and set(sp["split"]) == {"train", "valid", "test"}
    assert (sp.groupby("group")["split"].nunique() == 1).all()
    assert set(sp["group"]) == set(meta["instrument"])
    w = res.layer_weights[res.layer_weights.task == "pitch"].set_index("layer")["weight"]
    assert w.sum() == pytest.approx(1.0) and w["layer_00"] > w["layer_01"]
    valid = res.table[(res.table.split == "valid")]
    assert len(valid) == 3 * 3 and valid["primary"].all()


def test_grouped_split_defeats_leakage_that_an_ungrouped_split_exploits() -> None:
    """Labels depend only on the instrument (a random label per instrument), features identify it.

    A probe can beat chance only by seeing an instrument on both sides of the split: the grouped
    split must give chance, the leaky (per-stimulus) split a near-perfect score.
    """
    rng = np.random.default_rng(1)
    meta = note_grid(60, midi=range(60, 70))
    label_of = {inst: int(rng.integers(0, 4)) for inst in meta["instrument"].unique()}
    meta["label"] = meta["instrument"].map(label_of)
    code = {inst: k for k, inst in enumerate(label_of)}  # features: which instrument played (+ noise)
    x = np.eye(60)[meta["instrument"].map(code)] + 0.02 * rng.normal(size=(len(meta), 60))
    feats = {"layer_00": x.astype(np.float32)}
    kw = dict(tasks=["label"], metadata=meta, weighted_sum=False, bootstrap_over="groups", **FAST)
    grouped = _row(run_probes(feats, group="instrument", **kw), task="label", layer="layer_00")
    leaky = _row(run_probes(feats, group="stimulus", **kw), task="label", layer="layer_00")
    assert leaky["value"] > 0.9
    assert grouped["value"] < 0.55
    assert grouped["ci_low"] <= grouped["chance"] <= grouped["ci_high"]


def test_same_seed_same_table(grid_result) -> None:
    meta, _ = grid_result
    rng = np.random.default_rng(3)
    feats = {"layer_00": rng.normal(size=(len(meta), 8)).astype(np.float32)}
    a = run_probes(feats, tasks=["octave"], metadata=meta, seed=5, **FAST).table
    b = run_probes(feats, tasks=["octave"], metadata=meta, seed=5, **FAST).table
    pd.testing.assert_frame_equal(a, b)


# ------------------------------------------------------------------------------------- bad input
def test_single_class_and_rare_classes_raise_clear_errors() -> None:
    meta = note_grid(6)
    feats = {"layer_00": np.random.default_rng(0).normal(size=(len(meta), 4)).astype(np.float32)}
    one = meta.assign(family="strings")
    with pytest.raises(InsufficientDataError, match="single class"):
        run_probes(feats, tasks=["family"], metadata=one, **FAST)
    rare = meta.copy()
    rare.loc[0, "family"] = "unique_family"
    with pytest.raises(InsufficientDataError, match=r"fewer than 2 examples.*'unique_family': 1.*drop_rare"):
        run_probes(feats, tasks=["family"], metadata=rare, **FAST)
    res = run_probes(feats, tasks=["family"], metadata=rare, drop_rare=True, weighted_sum=False, **FAST)
    assert "unique_family" not in set(res.splits["stimulus_id"].map(dict(zip(rare.stimulus_id, rare.family))))
    with pytest.raises(InsufficientDataError, match="at least 3 groups"):
        run_probes(feats, tasks=["pitch"], metadata=meta[meta.instrument.isin(["inst00", "inst01"])], **FAST)


def test_nan_features_raise() -> None:
    meta = note_grid(6)
    x = np.random.default_rng(0).normal(size=(len(meta), 4)).astype(np.float32)
    x[3, 1] = np.nan
    with pytest.raises(AnalysisError, match=r"NaN.*'inst00-051'"):
        run_probes({"layer_00": x}, tasks=["pitch"], metadata=meta, **FAST)


def test_frame_rate_mismatch_raises(pieces) -> None:
    act = frame_activations(pieces, lambda lab, t: np.zeros((t.size, 2)), dim=2)
    # the same frames claimed to be at 20 Hz: 60 frames would last 3 s, the labels last 6 s
    act.frame_times = act.frame_times / 2
    meta = pd.DataFrame({"stimulus_id": list(pieces)})
    with pytest.raises(AnalysisError, match=r"frame-rate mismatch.*60 frames at 20 Hz"):
        run_probes(act, tasks=["chords"], metadata=meta, music_labels=pieces, **FAST)
    pooled = {"layer_00": np.zeros((len(pieces), 2), np.float32)}
    with pytest.raises(ConfigError, match="--pooling none"):
        run_probes(pooled, tasks=["chords"], metadata=meta, music_labels=pieces, **FAST)


# ------------------------------------------------------------------------------------- frame tasks
def test_frame_tasks_on_their_own_labels_score_perfectly(pieces) -> None:
    meta = pd.DataFrame({"stimulus_id": list(pieces)})
    for task, dim in (("chords", 25), ("onsets", 1), ("beats", 1), ("notes", 88)):
        spec = TASKS.get(task)

        def features(lab, t, _spec=spec, _dim=dim):
            y = _spec.labels(lab, t, FRAME_RATE)[0]
            return np.eye(_dim)[y] if _spec.kind == "multiclass" else y

        act = frame_activations(pieces, features, dim=dim, n_special=1)
        res = run_probes(act, tasks=[task], metadata=meta, music_labels=pieces, lrs=(3e-2,), max_epochs=60,
                         patience=10, n_bootstraps=50, weighted_sum=False)
        row = _row(res, task=task, layer="layer_00")
        assert row["value"] == pytest.approx(1.0), (task, row.to_dict())
        assert row["pooling"] == "frames" and row["n_test"] == 2 * 60
        assert _row(res, task=task, layer="layer_01")["value"] < 0.6
        sp = res.splits
        assert sp["group"].nunique() == 10 and (sp.groupby("group")["split"].nunique() == 1).all()
        if task == "notes":
            assert _row(res, task=task, layer="layer_00", metric="transcription.f_measure_no_offset")["value"] == 1.0


def test_key_task_from_music_labels() -> None:
    labels = {}
    keys = ["C major", "A minor", "Eb major", "F# minor"]
    for i in range(16):
        lab = make_piece(i, duration_s=2.0)
        lab.key = keys[i % 4]
        labels[f"p{i:02d}"] = lab
    ids = list(labels)
    x = np.eye(24, dtype=np.float32)[[TASKS.get("key").encode(labels[s].key) for s in ids]]
    meta = pd.DataFrame({"stimulus_id": ids})
    res = run_probes({"layer_00": x}, tasks=["key"], metadata=meta, music_labels=labels, **FAST)
    row = _row(res, task="key", layer="layer_00")
    assert row["metric"] == "key.weighted_score" and row["value"] == 1.0
    assert CHORD_CLASSES[24] == "N"


def test_save_load_and_figures(tmp_path, grid_result) -> None:
    from musiclens.probe.plots import save_figures

    _, res = grid_result
    paths = res.save(tmp_path)
    assert (tmp_path / "probe.parquet").is_file() and (tmp_path / "probe.csv") in paths
    back = ProbeResult.load(tmp_path)
    pd.testing.assert_frame_equal(back.table, res.table, check_dtype=False)
    figs = save_figures(back, tmp_path)
    names = {p.name for p in figs}
    assert {"probe_profile_pitch.png", "probe_weights_pitch.png"} <= names
    assert all(p.stat().st_size > 1000 for p in figs)
