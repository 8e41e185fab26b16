"""SSMs: cosine SSM vs scikit-learn, label SSMs, resampling rule, Foote novelty, the corpus check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from musiclens.attention.clips import Clip, corpus_clips
from musiclens.corpora.labels import MusicLabels, empty_notes
from musiclens.errors import AnalysisError, ConfigError
from musiclens.extract.base import Activations
from musiclens.ssm.frames import beat_positions, chord_changes, chord_frames, resample_frames
from musiclens.ssm.novelty import BOUNDARY_PICKER, boundary_times, foote_novelty, score_boundaries
from musiclens.ssm.pipeline import ssm_analysis
from musiclens.ssm.ssm import ReferenceContext, cosine_ssm, label_ssm, reference_ssms, ssm_correlation

SR = 16000
RATE = 50.0


def _labels(duration: float = 6.0, *, lead_in: bool = True) -> MusicLabels:
    chords = [(0.0, 0.25, "N")] if lead_in else []
    chords += [(0.25 if lead_in else 0.0, 2.0, "C:maj"), (2.0, 3.5, "G:maj"), (3.5, 5.0, "C"), (5.0, duration, "A:min")]
    beats = np.arange(0.25, duration, 0.5)
    return MusicLabels(notes=empty_notes(), duration_s=duration, beats=beats, downbeats=beats[::3], chords=chords)


def _times(duration: float) -> np.ndarray:
    return 0.5 / RATE + np.arange(int(duration * RATE)) / RATE


def test_cosine_ssm_matches_sklearn() -> None:
    from sklearn.metrics.pairwise import cosine_similarity

    x = np.random.default_rng(0).standard_normal((40, 7))
    x[5] = 0.0                                                     # a zero row
    np.testing.assert_allclose(cosine_ssm(x), cosine_similarity(x), atol=1e-12)


def test_labels_at_frames_known_answers() -> None:
    lab = _labels()
    t = np.array([0.1, 0.3, 1.99, 2.0, 3.6, 5.5])
    ids = chord_frames(lab, t)
    assert ids[0] == -1                                            # "N": no chord
    assert ids[1] == ids[2] == ids[4] and ids[3] != ids[1]         # "C" == "C:maj"
    np.testing.assert_allclose(chord_changes(lab), [2.0, 3.5, 5.0])    # N -> C:maj (0.25 s) is no chord change
    same = MusicLabels(notes=empty_notes(), duration_s=3.0,
                       chords=[(0.0, 1.0, "C:maj"), (1.0, 2.0, "C"), (2.0, 3.0, "N")])
    assert chord_changes(same).size == 0                               # C:maj -> C is the same chord
    pos = beat_positions(lab, np.array([0.1, 0.25, 0.8, 1.3, 1.8, 2.4]))
    assert np.isnan(pos[0])
    np.testing.assert_array_equal(pos[1:], [0, 1, 2, 0, 1])


def test_one_hot_chord_features_give_the_same_chord_ssm() -> None:
    lab = _labels(lead_in=False)
    t = _times(lab.duration_s)
    ids = chord_frames(lab, t, no_chord_as_class=True)
    onehot = np.eye(ids.max() + 1)[ids].astype(np.float32)         # [T, n_chords]
    ref = reference_ssms(ReferenceContext(audio=np.zeros(SR, np.float32), sample_rate=SR, labels=lab),
                         frame_times=t, references=["same_chord"])["same_chord"]
    sim = cosine_ssm(onehot)
    ok = np.isfinite(ref)
    np.testing.assert_array_equal(sim[ok], ref[ok])
    # through the pipeline, from precomputed activations (one class token that must be dropped)
    layer = np.concatenate([np.ones((1, 4)), np.pad(onehot, ((0, 0), (0, 4 - onehot.shape[1])))])[None]
    acts = Activations({"layer_01": layer.astype(np.float32)}, np.concatenate([[np.nan], t]), [t.size], ["c0"],
                       n_special=1)
    clip = Clip("c0", np.zeros(int(lab.duration_s * SR), np.float32), SR, lab)
    res = ssm_analysis(clips=[clip], activations=acts, references=["same_chord"], novelty_references=["same_chord"])
    vals = res.table.set_index("method")["value"]
    assert vals["pearson"] == pytest.approx(1.0, abs=1e-12) and vals["spearman"] == pytest.approx(1.0, abs=1e-12)
    nov = res.novelty.set_index("source")
    assert nov.loc["layer_01", "f_measure"] == 1.0                 # Foote novelty finds the 3 chord changes
    assert nov.loc["layer_01", "n_reference"] == 3


def test_correlation_masks_diagonal_band_and_nan() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((20, 20))
    a = a + a.T
    b = a.copy()
    b[np.abs(np.subtract.outer(np.arange(20), np.arange(20))) <= 2] = 99.0     # corrupt the near-diagonal band
    assert ssm_correlation(a, b, exclude_band=2)[0] == pytest.approx(1.0)
    assert ssm_correlation(a, b, exclude_band=0)[0] < 0.9
    r, n = ssm_correlation(a, b, exclude_band=2, method="spearman")
    assert r == pytest.approx(1.0) and n == (17 * 18) // 2
    c = a.copy()
    c[0, :] = np.nan
    assert ssm_correlation(a, c)[1] == 19 * 20 // 2 - 19
    from scipy.stats import spearmanr

    m = np.triu(np.ones((20, 20), bool), 1)
    d = rng.standard_normal((20, 20))
    assert ssm_correlation(a, d, method="spearman")[0] == pytest.approx(spearmanr(a[m], d[m])[0], abs=1e-12)


def test_foote_novelty_finds_block_boundaries_exactly() -> None:
    bounds = [0, 40, 80, 130, 170]
    lab = np.repeat(np.arange(4), np.diff(bounds)).astype(float)
    ssm = label_ssm(lab)
    nov = foote_novelty(ssm, half_width=10)
    assert nov.max() == pytest.approx(1.0)
    peaks = BOUNDARY_PICKER.pick(nov, frame_rate=RATE)
    np.testing.assert_array_equal(peaks, bounds[1:-1])
    t = _times(170 / RATE)
    est = boundary_times(peaks, t)
    np.testing.assert_allclose(est, np.array(bounds[1:-1]) / RATE)   # midway between frame centres
    assert score_boundaries(np.array(bounds[1:-1]) / RATE, est, window_s=0.02)["f_measure"] == 1.0
    # a homogeneous stretch is not novel, up to the edges
    assert np.abs(nov[:30]).max() < 1e-12 and np.abs(nov[-30:]).max() < 1e-12
    zero = foote_novelty(ssm, half_width=10, edge="zero")
    for lo, b, hi in zip(bounds[:-2], bounds[1:-1], bounds[2:]):
        assert lo + np.argmax(zero[lo + 5:hi - 5]) + 5 == b


def test_resampling_rule_nearest_centre_and_mismatch_error() -> None:
    src = np.arange(10) * 0.016                                    # 62.5 Hz feature frames
    vals = np.arange(10.0)[:, None]
    dst = np.array([0.0, 0.007, 0.009, 0.024, 0.1])
    # nearest centre; a tie (0.024 is 0.008 from 0.016 and 0.032) goes to the earlier frame
    np.testing.assert_array_equal(resample_frames(vals, source_times=src, target_times=dst)[:, 0], [0, 0, 1, 1, 6])
    np.testing.assert_allclose(resample_frames(vals, source_times=src, target_times=dst, rule="linear")[:, 0],
                               dst / 0.016)
    m = resample_frames(vals, source_times=src, target_times=np.array([0.04, 0.08]), rule="mean")[:, 0]
    np.testing.assert_allclose(m, [2.5, 5.0])                      # centres in [0.02, 0.06): 0.032, 0.048
    with pytest.raises(AnalysisError, match="frame-rate mismatch"):
        resample_frames(vals, source_times=src, target_times=np.array([0.5]))
    with pytest.raises(AnalysisError, match="source times"):
        resample_frames(vals, source_times=src[:5], target_times=dst)


def test_activations_longer_than_the_audio_are_a_clear_error() -> None:
    lab = _labels(3.0)
    t = _times(6.0)                                                # 6 s of frames, 3 s of audio
    acts = Activations({"layer_00": np.random.default_rng(0).standard_normal((1, t.size, 3)).astype(np.float32)},
                       t, [t.size], ["c0"])
    clip = Clip("c0", np.random.default_rng(0).standard_normal(3 * SR).astype(np.float32) * 0.1, SR, lab)
    with pytest.raises(AnalysisError, match="frame-rate mismatch"):
        ssm_analysis(clips=[clip], activations=acts, references=["chroma"], novelty_references=[])
    with pytest.raises(ConfigError, match="exactly one"):
        ssm_analysis(clips=[clip], references=["chroma"])


@pytest.fixture(scope="module")
def chord_corpus(tmp_path_factory):
    from musiclens.corpora import build_corpus, music_preset
    from musiclens.corpora.synthetic import GeneratedMusicSource

    out = tmp_path_factory.mktemp("ssm") / "corpus"
    cfg = music_preset("chord_tones", duration_s=6.0, tail_s=0.5, drums_prob=0.0)
    build_corpus(out, source=GeneratedMusicSource(n_pieces=3, seed=1, config=cfg), pieces_per_shard=8)
    return out


def test_chroma_ssm_matches_chord_labels_better_than_mfcc(chord_corpus) -> None:
    rows = []
    for clip in corpus_clips(chord_corpus):
        t = _times(clip.duration_s - 0.05)
        refs = reference_ssms(ReferenceContext(audio=clip.audio, sample_rate=clip.sample_rate, labels=clip.labels),
                              frame_times=t, references=["chroma", "mfcc", "same_chord"])
        for method in ("pearson", "spearman"):
            rows += [{"feature": f, "method": method, "r": ssm_correlation(refs[f], refs["same_chord"], method=method)[0]}
                     for f in ("chroma", "mfcc")]
    mean = pd.DataFrame(rows).groupby(["method", "feature"])["r"].mean()
    for method in ("pearson", "spearman"):
        assert mean[method, "chroma"] > mean[method, "mfcc"] + 0.05, mean


def test_ssm_cli_writes_tables_and_figures(chord_corpus, tmp_path) -> None:
    from typer.testing import CliRunner

    from musiclens.cli import app

    out = tmp_path / "ssm"
    res = CliRunner().invoke(app, ["ssm", "--model", "cqt", "--corpus", str(chord_corpus), "--out", str(out),
                                   "--clips", "1", "--references", "chroma,same_chord,same_beat_position"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "ssm.csv")
    assert set(table["reference"]) == {"chroma", "same_chord", "same_beat_position"}
    assert table["value"].between(-1, 1).all()
    assert (out / "ssm_profiles.png").stat().st_size > 0 and (out / "manifest.json").is_file()
    nov = pd.read_csv(out / "ssm_novelty.csv").set_index("source")
    assert nov.loc["reference:same_chord", "f_measure"] == 1.0


def test_ssm_study_step_records_only_the_networks_it_analysed(tmp_path, monkeypatch) -> None:
    """A network the SSM step leaves out is not recorded as done; steps.json says why (for the report)."""
    import musiclens.ssm.pipeline as pipeline
    import musiclens.ssm.plots as plots
    from musiclens.study_steps import analysis

    class _Result:
        table = pd.DataFrame({"network": ["good"], "value": [0.5]})
        summary = pd.DataFrame({"network": ["good"], "mean": [0.5]})
        novelty_summary = pd.DataFrame({"network": ["good"], "f": [0.4]})

        def save(self, folder) -> list:
            return []

    def fake_analysis(*, network: str, **_: object) -> _Result:
        if network == "bad":
            raise AnalysisError("one frame per clip; SSMs need frame-level activations")
        return _Result()

    monkeypatch.setattr(analysis, "_clips", lambda study, run_dir, section: ["clip"])
    monkeypatch.setattr(analysis, "_build", lambda study, run_dir, name: None)
    monkeypatch.setattr(pipeline, "ssm_analysis", fake_analysis)
    monkeypatch.setattr(plots, "save_figures", lambda result, out: [])
    study = {"ssm": {"networks": ["good", "bad"], "layers": None}}
    record = analysis._ssm_step(study, tmp_path)
    assert record["networks"] == ["good"]
    assert record["skipped_networks"] == {"bad": "one frame per clip; SSMs need frame-level activations"}
