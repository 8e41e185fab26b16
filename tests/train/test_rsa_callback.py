"""The RSA callback: rows at the right steps, values equal to an independent extract + RSA, no duplicates after resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from musiclens.train.engine import train
from tests.train._engine_helpers import KillAt, Killed, corpora, one_thread, toy_config  # noqa: F401

RSA = {"every_n_steps": 1, "stimuli": "additive", "midi": list(range(60, 73)), "duration_s": 0.3, "hold_s": 0.2}


def _cfg(corpora):  # noqa: F811
    return toy_config(corpora, rsa_callback=RSA,
                      optim={"max_steps": 4, "warmup_steps": 0, "lr": 0.05},
                      trainer={"checkpoint_every_n_steps": 2, "val_every_n_steps": 0})


@pytest.fixture(scope="module")
def straight(corpora, tmp_path_factory):  # noqa: F811
    return train(_cfg(corpora), out=tmp_path_factory.mktemp("rsa") / "run")


def test_rows_at_every_step_and_values_match_an_independent_rsa(straight) -> None:
    curve = pd.read_csv(straight.run_dir / "rsa_curve.csv")
    assert list(curve.columns) == ["step", "layer", "statistic", "model_rdm", "value"]
    assert sorted(curve["step"].unique()) == [0, 1, 2, 3, 4]
    per_step = curve.groupby("step").size()
    assert (per_step == 3 * 2 * 2).all()   # 3 layers x {tau-a, partial-tau-b} x {pitch_height, chroma}
    assert not curve.duplicated(["step", "layer", "statistic", "model_rdm"]).any()
    assert curve["value"].between(-1, 1).all()
    # the values at the last step equal musiclens's own pipeline on the exported backbone
    from musiclens.extract.checkpoint import checkpoint_extractor
    from musiclens.rsa.pipeline import run_rsa
    from musiclens.stimuli.stimulus_set import StimulusSet

    s = StimulusSet.load(straight.run_dir / "rsa_stimuli")
    assert len(s) == 3 * 13 and s.metadata["instrument"].nunique() == 3
    acts = checkpoint_extractor(straight.backbone).extract(s.audio, stimulus_ids=s.ids).pool("mean")
    ref = run_rsa({k: np.asarray(v) for k, v in acts.items()}, s.metadata, stimulus_ids=s.ids,
                  n_permutations=0, n_bootstraps=0, regression=False, best_layer=False).table
    last = curve[curve["step"] == 4]
    for stat in ("tau-a", "partial-tau-b"):
        for model in ("pitch_height", "chroma"):
            got = last[(last.statistic == stat) & (last.model_rdm == model)].set_index("layer")["value"]
            want = ref[(ref.statistic == stat) & (ref.model_rdm == model)].set_index("layer")["value"]
            np.testing.assert_allclose(got.sort_index().to_numpy(), want.sort_index().to_numpy(), atol=1e-6)
    # logged under rsa/<model>[_partial]/<layer> at the right steps
    m = pd.read_csv(straight.run_dir / "logs" / "metrics.csv")
    col = "rsa/chroma_partial/layer_02"
    assert sorted(m.dropna(subset=[col])["step"].tolist()) == [0, 1, 2, 3, 4]
    row = curve[(curve.step == 2) & (curve.statistic == "partial-tau-b") & (curve.model_rdm == "chroma")
                & (curve.layer == "layer_02")]
    assert m.dropna(subset=[col]).set_index("step").loc[2, col] == pytest.approx(float(row["value"].iloc[0]), abs=1e-6)


def test_resume_leaves_no_duplicates_and_the_same_curve(corpora, straight, tmp_path) -> None:  # noqa: F811
    cfg = _cfg(corpora)
    with pytest.raises(Killed):
        train(cfg, out=tmp_path / "run", callbacks=[KillAt(3)])   # RSA rows of step 3 written, checkpoint at 2
    partial = pd.read_csv(tmp_path / "run" / "rsa_curve.csv")
    assert sorted(partial["step"].unique()) == [0, 1, 2, 3]
    res = train(cfg, out=tmp_path / "run")
    assert res.resumed_from == 2 and res.finished
    curve = pd.read_csv(tmp_path / "run" / "rsa_curve.csv")
    assert not curve.duplicated(["step", "layer", "statistic", "model_rdm"]).any()
    ref = pd.read_csv(straight.run_dir / "rsa_curve.csv")
    key = ["step", "statistic", "model_rdm", "layer"]
    pd.testing.assert_frame_equal(curve.sort_values(key).reset_index(drop=True)[key],
                                  ref.sort_values(key).reset_index(drop=True)[key])
    np.testing.assert_allclose(curve.sort_values(key)["value"].to_numpy(), ref.sort_values(key)["value"].to_numpy(),
                               atol=1e-6)
