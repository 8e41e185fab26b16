"""Metrics agree with direct scikit-learn / mir_eval calls; chroma forgives octaves; CIs and chance."""

from __future__ import annotations

import mir_eval
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from musiclens.probe.metrics import (Predictions, bootstrap_interval, chord_majmin, chroma_accuracy,
                                     frames_to_intervals, peak_pick, permutation_chance, roll_to_notes, score)
from musiclens.probe.tasks import CHORD_CLASSES, KEY_CLASSES

from .conftest import FRAME_RATE, make_piece


def _onehot_scores(idx: np.ndarray, n: int) -> np.ndarray:
    s = np.full((len(idx), n), 0.01)
    s[np.arange(len(idx)), idx] = 0.9
    return s


def test_chroma_accuracy_forgives_octave_errors_and_accuracy_does_not() -> None:
    classes = list(range(48, 84))
    true = np.array([48, 50, 60, 71, 83])
    pred_midi = true + np.array([12, -0, 12, -12, -24])  # octave errors except one exact hit
    pred = Predictions(targets=np.array([classes.index(t) for t in true]),
                       scores=_onehot_scores(np.array([classes.index(p) for p in pred_midi]), len(classes)),
                       classes=classes, groups=np.arange(5))
    assert score("chroma_acc", pred) == 1.0
    assert score("accuracy", pred) == pytest.approx(1 / 5)
    assert chroma_accuracy(true, pred_midi) == 1.0
    assert chroma_accuracy(true, true + 1) == 0.0


def test_map_and_roc_auc_equal_sklearn_macro() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((80, 6)) < 0.3).astype(int)
    y[0] = 1
    y[1] = 0
    s = np.clip(y * 0.3 + rng.random((80, 6)), 0, 1)
    pred = Predictions(targets=y, scores=s, classes=list(range(6)), groups=np.arange(80))
    assert score("mAP", pred) == pytest.approx(average_precision_score(y, s, average="macro"), abs=1e-12)
    assert score("roc_auc", pred) == pytest.approx(roc_auc_score(y, s, average="macro"), abs=1e-12)
    # multiclass: one-vs-rest on one-hot targets
    t = rng.integers(0, 4, 50)
    p = rng.dirichlet(np.ones(4), 50)
    mc = Predictions(targets=t, scores=p, classes=list("abcd"), groups=np.arange(50))
    assert score("mAP", mc) == pytest.approx(average_precision_score(np.eye(4)[t], p, average="macro"), abs=1e-12)


def test_key_weighted_score_equals_mir_eval() -> None:
    rng = np.random.default_rng(1)
    t, p = rng.integers(0, 24, 40), rng.integers(0, 24, 40)
    pred = Predictions(targets=t, scores=_onehot_scores(p, 24), classes=list(KEY_CLASSES), groups=np.arange(40))
    direct = np.mean([mir_eval.key.weighted_score(KEY_CLASSES[a], KEY_CLASSES[b]) for a, b in zip(t, p)])
    assert score("key.weighted_score", pred) == pytest.approx(direct, abs=1e-12)
    assert 0 < direct < 1


def test_chord_majmin_equals_mir_eval_evaluate() -> None:
    piece = make_piece(3)
    ref_iv, ref_lab = piece.chord_intervals()
    times = (np.arange(60) + 0.5) / FRAME_RATE
    rng = np.random.default_rng(2)
    est_idx = rng.integers(0, 25, 60)
    est_iv, est_lab = frames_to_intervals(times, [CHORD_CLASSES[i] for i in est_idx], frame_rate=FRAME_RATE)
    direct = mir_eval.chord.evaluate(ref_iv, ref_lab, est_iv, est_lab)["majmin"]
    assert chord_majmin(ref_iv, ref_lab, est_iv, est_lab)[0] == pytest.approx(direct, abs=1e-12)
    pred = Predictions(targets=np.zeros(60, int), scores=_onehot_scores(est_idx, 25), classes=list(CHORD_CLASSES),
                       groups=np.full(60, "p"), times=times, frame_rate=FRAME_RATE,
                       references={"p": {"chords": (ref_iv, ref_lab)}})
    assert score("chord.majmin", pred) == pytest.approx(direct, abs=1e-12)


def test_peak_picking_known_answer() -> None:
    a = np.array([0.1, 0.7, 0.3, 0.6, 0.6, 0.2, 0.4, 0.9, 0.95])
    assert peak_pick(a, threshold=0.5).tolist() == [1, 3, 8]
    assert peak_pick(a, threshold=0.65).tolist() == [1, 8]


def test_onset_and_beat_f_measure_equal_mir_eval() -> None:
    rng = np.random.default_rng(3)
    times = (np.arange(50) + 0.5) / FRAME_RATE
    act = rng.random(50)
    ref = np.sort(rng.uniform(0, 5, 8))
    est = times[peak_pick(act, threshold=0.5)]
    pred = Predictions(targets=np.zeros((50, 1)), scores=act[:, None], classes=["x"], groups=np.full(50, "p"),
                       times=times, frame_rate=FRAME_RATE, references={"p": {"events": ref}})
    assert score("onset.f_measure", pred) == pytest.approx(mir_eval.onset.f_measure(ref, est, window=0.05)[0])
    assert score("beat.f_measure", pred) == pytest.approx(mir_eval.beat.f_measure(ref, est, f_measure_threshold=0.07))


def test_multipitch_and_note_f_equal_mir_eval() -> None:
    piece = make_piece(4)
    times = (np.arange(60) + 0.5) / FRAME_RATE
    from musiclens.probe.tasks import TASKS

    roll, ref = TASKS.get("notes").labels(piece, times, FRAME_RATE)
    rng = np.random.default_rng(5)
    noisy = np.clip(roll * 0.8 + 0.3 * rng.random(roll.shape), 0, 1)
    pred = Predictions(targets=roll, scores=noisy, classes=list(range(21, 109)), groups=np.full(60, "p"), times=times,
                       frame_rate=FRAME_RATE, references={"p": ref})

    def freqs(r):
        return [440.0 * 2 ** ((21 + np.flatnonzero(row) - 69) / 12) for row in r]

    m = mir_eval.multipitch.evaluate(times, freqs(roll), times, freqs(noisy >= 0.5))
    f = 2 * m["Precision"] * m["Recall"] / (m["Precision"] + m["Recall"])
    assert score("multipitch.f_measure", pred) == pytest.approx(f, abs=1e-12)
    est_iv, est_hz = roll_to_notes(times, noisy >= 0.5, frame_rate=FRAME_RATE)
    direct = mir_eval.transcription.evaluate(*ref["notes"], est_iv, est_hz)["F-measure_no_offset"]
    assert score("transcription.f_measure_no_offset", pred) == pytest.approx(direct, abs=1e-12)
    # the exact roll decodes to the reference notes
    perfect = Predictions(targets=roll, scores=roll.astype(float), classes=list(range(21, 109)),
                          groups=np.full(60, "p"), times=times, frame_rate=FRAME_RATE, references={"p": ref})
    assert score("transcription.f_measure_no_offset", perfect) == 1.0
    assert score("multipitch.f_measure", perfect) == 1.0


def test_bootstrap_interval_and_permutation_chance() -> None:
    rng = np.random.default_rng(6)
    t = rng.integers(0, 4, 400)
    p = rng.dirichlet(np.ones(4), 400)
    pred = Predictions(targets=t, scores=p, classes=list(range(4)), groups=np.repeat(np.arange(40), 10))
    value = score("accuracy", pred)
    lo, hi = bootstrap_interval("accuracy", pred, n_bootstraps=300, seed=0)
    assert lo < value < hi and hi - lo < 0.15
    glo, ghi = bootstrap_interval("accuracy", pred, over="groups", n_bootstraps=300, seed=0)
    assert glo < value < ghi
    # chance of a prediction unrelated to the targets: sum over classes of p_pred(c) p_true(c)
    pp = np.bincount(p.argmax(1), minlength=4) / 400
    pt = np.bincount(t, minlength=4) / 400
    assert permutation_chance("accuracy", pred, n_permutations=400, seed=0) == pytest.approx(pp @ pt, abs=0.01)


def test_bootstrap_counts_the_resamples_where_the_metric_is_undefined() -> None:
    """A set metric undefined on some resamples: those are left out and counted, not dropped silently."""
    from musiclens.probe.metrics import Metric

    t = np.array([0] * 9 + [1])                       # one positive example
    pred = Predictions(targets=t, scores=np.eye(2)[t] * 0.8 + 0.1, classes=[0, 1], groups=np.arange(10))

    def recall_of_1(p: Predictions) -> float:
        pos = p.targets == 1
        return float((p.scores[pos].argmax(1) == 1).mean()) if pos.any() else float("nan")

    metric = Metric(name="recall_1", kind="set", fn=recall_of_1, reference="hand")
    lo, hi, n_undefined = bootstrap_interval(metric, pred, n_bootstraps=400, seed=0, count_undefined=True)
    # P(no positive in a resample of 10) = 0.9 ** 10 = 0.349: about 140 of 400 resamples
    assert 100 < n_undefined < 180 and lo == hi == 1.0
    assert bootstrap_interval(metric, pred, n_bootstraps=400, seed=0) == (lo, hi)
