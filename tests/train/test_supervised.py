"""Supervised objectives: ``transcription`` (88-key frames, mir_eval scores) and ``ctc`` (phonemes)."""

from __future__ import annotations

import shutil

import mir_eval
import numpy as np
import pytest
import torch

from musiclens.errors import ConfigError, TrainingError
from musiclens.train.bar import evaluate_bar, resolve_bar
from musiclens.train.base import OBJECTIVES
from musiclens.train.objectives.ctc import ESPEAK_EN_PHONEMES, edit_distance, greedy_decode, phoneme_error_rate
from musiclens.train.objectives.transcription import (align_frames, frame_scores, key_to_hz, note_scores,
                                                      roll_to_notes)
from tests.train._util import objectives_on_one_thread  # noqa: F401  (autouse: objectives registered, one thread)

SR = 16000


def _train(obj, make_batch, steps: int, lr: float) -> list[float]:
    opt = torch.optim.Adam(obj.trainable_parameters(), lr=lr)
    obj.train()
    losses = []
    for step in range(steps):
        torch.manual_seed(step)
        out = obj.training_loss(make_batch(step))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    return losses


# ---------------------------------------------------------------------- scoring functions
def test_key_to_hz():
    np.testing.assert_allclose(key_to_hz([0, 48, 87]), [27.5, 440.0, mir_eval.util.midi_to_hz(108)])


def test_roll_to_notes_by_hand():
    roll = np.zeros((10, 88), dtype=bool)
    roll[2:5, 39] = True          # C4 (MIDI 60): frames 2-4
    roll[7:9, 39] = True          # C4 again: frames 7-8
    roll[0:10, 0] = True          # A0 all along
    iv, hz = roll_to_notes(roll, frame_rate=10.0)
    np.testing.assert_allclose(iv, [[0.0, 1.0], [0.2, 0.5], [0.7, 0.9]])
    np.testing.assert_allclose(hz, [27.5, 261.6255653, 261.6255653])
    iv, hz = roll_to_notes(np.where(roll, 0.7, 0.2), frame_rate=10.0)   # probabilities, threshold 0.5
    assert len(hz) == 3


def test_frame_scores_by_hand():
    true = np.zeros((4, 88), dtype=bool)
    true[:, 40] = True                       # one key in all 4 frames
    pred = true.copy()
    pred[:2, 50] = True                      # 2 false positives
    pred[3, 40] = False                      # 1 miss
    s = frame_scores(pred, true, frame_rate=50.0)
    # TP = 3, FP = 2, FN = 1
    assert s["frame_precision"] == pytest.approx(3 / 5)
    assert s["frame_recall"] == pytest.approx(3 / 4)
    assert s["frame_accuracy"] == pytest.approx(3 / 6)
    assert s["frame_f1"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert frame_scores(true, true, frame_rate=50.0)["frame_f1"] == 1.0
    with pytest.raises(ConfigError, match="frames"):
        frame_scores(true[:3], true, frame_rate=50.0)


def test_note_scores_by_hand():
    rate = 50.0
    true = np.zeros((100, 88), dtype=bool)
    true[10:30, 40] = True                  # note at 0.2 s
    true[50:70, 45] = True                  # note at 1.0 s
    pred = np.zeros_like(true)
    pred[11:40, 40] = True                  # onset 20 ms late: a hit (offsets ignored by default)
    pred[55:70, 45] = True                  # onset 100 ms late: a miss
    pred[80:90, 60] = True                  # an extra note
    s = note_scores(pred, true, frame_rate=rate)
    assert s["note_precision"] == pytest.approx(1 / 3)
    assert s["note_recall"] == pytest.approx(1 / 2)
    assert s["note_f1"] == pytest.approx(0.4)
    strict = note_scores(pred, true, frame_rate=rate, offset_ratio=0.2)   # the hit's offset is 0.2 s late
    assert strict["note_recall"] == 0.0
    assert note_scores(np.zeros_like(true), true, frame_rate=rate)["note_f1"] == 0.0


def test_align_frames():
    assert align_frames(49, 50, max_mismatch=2) == 49
    assert align_frames(50, 49, max_mismatch=2) == 49
    with pytest.raises(TrainingError, match="45 frames but the target roll has 50"):
        align_frames(45, 50, max_mismatch=2)


# ---------------------------------------------------------------------- transcription
PITCHES = (48, 55, 60, 67, 72, 79)


def _notes_batch(rng: np.random.Generator, n: int, n_frames: int, *, dur_s: float = 0.5) -> dict:
    t = np.arange(int(dur_s * SR)) / SR
    ps = rng.choice(PITCHES, size=n)
    x = np.stack([0.5 * np.sin(2 * np.pi * 440 * 2 ** ((p - 69) / 12) * t + rng.uniform(0, 6)) for p in ps])
    roll = np.zeros((n, n_frames, 88), np.float32)
    onset = np.zeros_like(roll)
    for i, p in enumerate(ps):
        roll[i, :, p - 21] = 1
        onset[i, 0, p - 21] = 1
    return {"audio": torch.from_numpy(x.astype(np.float32)), "piano_roll": torch.from_numpy(roll),
            "onset_roll": torch.from_numpy(onset), "lengths": torch.full((n,), t.size)}


def test_transcription_learns_isolated_notes():
    obj = OBJECTIVES.get("transcription")({"crop_s": 0.5}, {})
    spec = obj.data_spec()
    assert (spec.frame_rate, spec.targets, spec.kinds, spec.crop_s) == (50.0, ("piano_roll",), ("music",), 0.5)
    n_frames = int(np.ceil(0.5 * spec.frame_rate))             # 25 roll frames vs 24 backbone frames
    bar = resolve_bar(None, obj.learning_bar())
    val = _notes_batch(np.random.default_rng(1), 12, n_frames)
    obj.eval()
    untrained = {f"val/{k}": v for k, v in obj.validation_metrics([obj.validation_outputs(val)]).items()}
    assert not evaluate_bar(bar, untrained, None)["passed"]    # the untrained network misses the bar
    rng = np.random.default_rng(0)
    losses = _train(obj, lambda step: _notes_batch(rng, 8, n_frames), 35, lr=2e-3)
    assert np.mean(losses[-3:]) < 0.5 * losses[0]
    obj.eval()
    val = _notes_batch(np.random.default_rng(1), 12, n_frames)
    outs = obj.validation_outputs(val)
    assert len(outs) == 12 and outs[0][0].shape == (24, 88)
    m = obj.validation_metrics([outs[:6], outs[6:]])
    assert m["frame_f1"] > 0.9, m
    verdict = evaluate_bar(bar, {f"val/{k}": v for k, v in m.items()}, untrained)
    assert verdict["passed"] and verdict["rule"] == "val/frame_f1 >= 0.5"
    # the same frames scored directly
    pred = np.concatenate([p for p, _ in outs]) > 0.5
    true = np.concatenate([r for _, r in outs])
    direct = frame_scores(pred, true, frame_rate=50.0)
    assert direct["frame_f1"] == pytest.approx(m["frame_f1"])


def test_transcription_mlp_and_onset_head_and_padding():
    obj = OBJECTIVES.get("transcription")({"head": "mlp", "mlp_hidden": 32, "onset_head": True, "layer": 1}, {})
    assert obj.data_spec().targets == ("piano_roll", "onset_roll")
    batch = _notes_batch(np.random.default_rng(0), 2, 25)
    out = obj.training_loss(batch)
    assert set(out) == {"loss", "frame_loss", "onset_loss"}
    torch.testing.assert_close(out["loss"], out["frame_loss"] + out["onset_loss"])
    # a short clip in the batch: frames past its length are not scored
    batch["lengths"] = torch.tensor([8000, 4000])
    obj.eval()
    outs = obj.validation_outputs(batch)
    assert [p.shape[0] for p, _ in outs] == [24, 12]
    batch["piano_roll"] = batch["piano_roll"][:, :20]
    with pytest.raises(TrainingError, match="24 frames but the target roll has 20"):
        obj.training_loss(batch)


@pytest.mark.parametrize("options,match", [
    ({"head": "conv"}, "head"),
    ({"threshold": 1.5}, "threshold"),
    ({"layer": 7}, "layer 7"),
    ({"learning_rate": 1e-3}, "unknown key"),
])
def test_transcription_bad_options(options, match):
    with pytest.raises(ConfigError, match=match):
        OBJECTIVES.get("transcription")(options, {})


# ---------------------------------------------------------------------- CTC
def test_edit_distance_known_answers():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("flaw", "lawn") == 2
    assert edit_distance("", "abc") == 3
    assert edit_distance(["aI", "|", "k"], ["aI", "|", "k"]) == 0
    assert phoneme_error_rate([["a", "b", "c", "d"], ["e"]], [["a", "c", "d"], ["f", "e"]]) == pytest.approx(2 / 5)


def test_greedy_decode_by_hand():
    path = torch.tensor([[0, 1, 1, 0, 1, 2, 2, 0]])           # blank a a blank a b b blank
    scores = torch.nn.functional.one_hot(path, 3).float()
    assert greedy_decode(scores) == [[1, 1, 2]]
    assert greedy_decode(scores, [3]) == [[1]]


def _toy_speech(rng: np.random.Generator, n: int) -> dict:
    """Sequences of 2-4 symbols, each a 0.16 s tone (a: 300 Hz, b: 700 Hz, c: 1500 Hz), padded."""
    freqs = {"a": 300.0, "b": 700.0, "c": 1500.0}
    t = np.arange(int(0.16 * SR)) / SR
    seqs, clips = [], []
    for _ in range(n):
        s = [str(rng.choice(list("abc")))]
        while len(s) < int(rng.integers(2, 5)):
            s.append(str(rng.choice([c for c in "abc" if c != s[-1]])))
        clips.append(np.concatenate([0.5 * np.sin(2 * np.pi * freqs[c] * t) for c in s]).astype(np.float32))
        seqs.append(s)
    x = np.zeros((n, max(c.size for c in clips)), np.float32)
    for i, c in enumerate(clips):
        x[i, :c.size] = c
    return {"audio": torch.from_numpy(x), "lengths": torch.tensor([c.size for c in clips]), "phonemes": seqs}


def test_ctc_learns_tone_sequences():
    obj = OBJECTIVES.get("ctc")({"vocabulary": ["a", "b", "c"]}, {})
    spec = obj.data_spec()
    assert (spec.crop_s, spec.targets, spec.kinds) == (None, ("phonemes",), ("speech",))
    bar = resolve_bar(None, obj.learning_bar())
    val = _toy_speech(np.random.default_rng(1), 12)
    obj.eval()
    assert not evaluate_bar(bar, {"val/per": obj.validation_metrics([obj.validation_outputs(val)])["per"]},
                            None)["passed"]
    rng = np.random.default_rng(0)
    losses = _train(obj, lambda step: _toy_speech(rng, 8), 60, lr=3e-3)
    assert np.mean(losses[-3:]) < 0.3 * np.mean(losses[:2]), losses
    obj.eval()
    outs = obj.validation_outputs(val)
    per = obj.validation_metrics([outs])["per"]
    assert per == pytest.approx(phoneme_error_rate([r for r, _ in outs], [h for _, h in outs]))
    assert per < 0.25
    assert evaluate_bar(bar, {"val/per": per}, None)["passed"]


def test_ctc_unknown_phoneme_and_bad_options():
    obj = OBJECTIVES.get("ctc")({"vocabulary": ["a", "b"]}, {})
    batch = _toy_speech(np.random.default_rng(0), 2)
    batch["phonemes"] = [["a", "x"], ["b"]]
    with pytest.raises(ConfigError, match=r"\['x'\] are not in the CTC vocabulary"):
        obj.training_loss(batch)
    with pytest.raises(ConfigError, match="more than once"):
        OBJECTIVES.get("ctc")({"vocabulary": ["a", "a"]}, {})
    with pytest.raises(ConfigError, match="unknown key"):
        OBJECTIVES.get("ctc")({"vocab": ["a"]}, {})


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_default_vocabulary_covers_espeak_output():
    from musiclens.corpora.speech import SENTENCES, synthesize

    for voice, text in (("en-us", SENTENCES[0]), ("en-gb-scotland+f3", SENTENCES[5])):
        _, phonemes = synthesize(text, voice=voice)
        assert set(phonemes) <= set(ESPEAK_EN_PHONEMES), set(phonemes) - set(ESPEAK_EN_PHONEMES)


@pytest.mark.parametrize("name", ["transcription", "ctc", "wav2vec2", "data2vec"])
def test_builders_take_the_run_seed(name):
    def first_weights(seed: int) -> list[torch.Tensor]:
        obj = OBJECTIVES.get(name)({}, {}, seed=seed)
        return [p.detach().clone() for p in obj.trainable_parameters()]

    a, b, c = first_weights(1), first_weights(1), first_weights(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])         # the backbone's init
    assert not torch.equal(a[-2], c[-2])       # a head's weight
