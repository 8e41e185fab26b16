"""Measured RDM files: every format, id reconciliation, and each refusal naming the file and the fix."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from musiclens.errors import AnalysisError, DatasetError, InsufficientDataError
from musiclens.rsa.rdm import matrix_to_vector, vector_to_matrix
from musiclens.rsa.targets import align_to, load_targets
from musiclens.stimuli.stimulus_set import StimulusSet

IDS = [f"st{i}" for i in range(6)]


def _mats(n_subj: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return vector_to_matrix(rng.random((n_subj, 15)))


def test_formats_agree(tmp_path):
    mats = _mats()
    np.savez(tmp_path / "t.npz", rdms=mats, stimulus_id=np.array(IDS), subject=np.array(list("abcd")))
    np.save(tmp_path / "t.npy", mats)
    iu, ju = np.triu_indices(6, 1)
    rows = [{"subject": s, "stim_i": IDS[j], "stim_j": IDS[i], "dissimilarity": mats[k, i, j]}   # (j, i) order on purpose
            for k, s in enumerate("abcd") for i, j in zip(iu, ju)]
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    rsatoolbox = pytest.importorskip("rsatoolbox")
    rsatoolbox.rdm.RDMs(matrix_to_vector(mats), pattern_descriptors={"stimulus_id": IDS},
                        rdm_descriptors={"subject": list("abcd")}).save(str(tmp_path / "t.hdf5"), file_type="hdf5")
    ref = load_targets(tmp_path / "t.npz")
    assert ref.subjects == list("abcd") and ref.stimulus_ids == IDS and ref.name == "t"
    for other in (load_targets(tmp_path / "t.csv"), load_targets(tmp_path / "t.hdf5"),
                  load_targets(tmp_path / "t.npy", stimulus_ids=IDS)):
        other = other.reorder(IDS)
        np.testing.assert_allclose(other.vectors, ref.vectors)
    named = load_targets(f"meg={tmp_path / 't.npz'}")
    assert named.name == "meg"


def test_long_csv_missing_pairs_and_reorder(tmp_path):
    rows = [{"subject": s, "stim_i": a, "stim_j": b, "dissimilarity": d}
            for s in ("x", "y", "z") for a, b, d in [("c", "a", 1.0), ("a", "b", 2.0), ("b", "c", 3.0), ("a", "d", 4.0),
                                                     ("b", "d", 5.0)]]   # (c, d) never measured
    pd.DataFrame(rows).to_csv(tmp_path / "long.csv", index=False)
    t = load_targets(tmp_path / "long.csv")
    assert t.stimulus_ids == ["a", "b", "c", "d"]
    assert int(t.complete_pairs().sum()) == 5
    r = t.reorder(["d", "c", "b", "a"])
    m = vector_to_matrix(np.nan_to_num(r.vectors[0], nan=-1))
    assert m[0, 1] == -1 and m[3, 2] == 2.0 and m[0, 3] == 4.0   # (d, c) missing; (a, b) = 2; (d, a) = 4
    aligned, pos = align_to(t, ["q", "d", "a", "b", "c"])
    assert aligned.stimulus_ids == ["d", "a", "b", "c"] and pos.tolist() == [1, 2, 3, 4]
    assert "not in this target" in aligned.notes[0]


@pytest.mark.parametrize("mutate, message", [
    (lambda m: m + np.eye(6)[None], "non-zero diagonal"),
    (lambda m: m + np.triu(np.ones((6, 6)), 1)[None] * 0.5, "not symmetric"),
    (lambda m: np.where((m > 0.9) & ~np.eye(6, dtype=bool)[None], np.inf, m), "inf"),
    (lambda m: m[:, :, :5], "not square"),
])
def test_bad_matrices(tmp_path, mutate, message):
    np.savez(tmp_path / "bad.npz", rdms=mutate(_mats()), stimulus_id=np.array(IDS))
    with pytest.raises(AnalysisError, match=message) as err:
        load_targets(tmp_path / "bad.npz")
    assert "bad.npz" in str(err.value)


def test_refusals(tmp_path):
    mats = _mats()
    np.savez(tmp_path / "noids.npz", rdms=mats)
    with pytest.raises(AnalysisError, match="stimulus ids"):
        load_targets(tmp_path / "noids.npz")
    np.savez(tmp_path / "wrongn.npz", rdms=mats, stimulus_id=np.array(IDS[:5]))
    with pytest.raises(AnalysisError, match="5 stimulus ids for RDMs over 6"):
        load_targets(tmp_path / "wrongn.npz")
    np.savez(tmp_path / "dup.npz", rdms=mats, stimulus_id=np.array(IDS[:5] + ["st0"]))
    with pytest.raises(AnalysisError, match="repeat"):
        load_targets(tmp_path / "dup.npz")
    np.save(tmp_path / "bare.npy", mats)
    with pytest.raises(AnalysisError, match="assume_order"):
        load_targets(tmp_path / "bare.npy")
    (tmp_path / "x.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(AnalysisError, match="pickle"):
        load_targets(tmp_path / "x.pkl")
    with pytest.raises(DatasetError, match="does not exist"):
        load_targets(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="cannot read"):
        load_targets(tmp_path / "junk.npz")
    pd.DataFrame({"subject": ["a"], "stim_i": ["x"], "stim_j": ["y"]}).to_csv(tmp_path / "cols.csv", index=False)
    with pytest.raises(AnalysisError, match="missing \\['dissimilarity'\\]"):
        load_targets(tmp_path / "cols.csv")
    pd.DataFrame({"subject": ["a", "a", "a", "a"], "stim_i": ["x", "y", "x", "x"], "stim_j": ["y", "x", "z", "w"],
                  "dissimilarity": [1, 2, 3, 4]}).to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(AnalysisError, match="more than once"):
        load_targets(tmp_path / "twice.csv")
    np.savez(tmp_path / "ok.npz", rdms=mats, stimulus_id=np.array(IDS))
    with pytest.raises(AnalysisError, match="not in the stimulus set"):
        align_to(load_targets(tmp_path / "ok.npz"), IDS[:4])
    np.savez(tmp_path / "tiny.npz", rdms=np.zeros((2, 1)), stimulus_id=np.array(["a", "b"]))
    with pytest.raises((InsufficientDataError, AnalysisError)):
        load_targets(tmp_path / "tiny.npz")


@pytest.fixture
def cli_inputs(tmp_path, note_grid, mixed_code):  # noqa: ANN001, ANN201
    meta = note_grid(["a", "b", "c"], midi=np.arange(60, 72))
    StimulusSet([np.zeros(16, np.float32) + 0.1] * len(meta), meta, sample_rate=16000).save(tmp_path / "stim")
    layers = {f"layer_{k:02d}": mixed_code(meta, chroma=c, height=1.0, noise=0.7, dim=12, seed=k)
              for k, c in enumerate([0.0, 2.0])}
    ids = meta["stimulus_id"].astype(str).tolist()
    np.savez(tmp_path / "acts.npz", stimulus_id=np.array(ids), **layers)
    # listeners who hear chroma: dissimilarity = circular pitch-class distance + noise; rows shuffled
    rng = np.random.default_rng(0)
    pc = meta["midi"].to_numpy() % 12
    d = np.abs(pc[:, None] - pc[None])
    truth = np.minimum(d, 12 - d).astype(float)
    perm = rng.permutation(len(ids))
    stack = []
    for _ in range(5):
        noisy = truth + rng.normal(0, 0.5, truth.shape)
        noisy = (noisy + noisy.T) / 2
        np.fill_diagonal(noisy, 0)
        stack.append(noisy[perm][:, perm])
    np.savez(tmp_path / "listeners.npz", rdms=np.array(stack), stimulus_id=np.array(ids)[perm])
    return tmp_path


def test_rsa_command_with_targets(cli_inputs):
    from musiclens.cli import app

    tmp = cli_inputs
    args = ["rsa", "-a", str(tmp / "acts.npz"), "-s", str(tmp / "stim"), "-o", str(tmp / "out"), "--models",
            "pitch_height,chroma_circular", "--subject", "instrument", "--permutations", "0", "--bootstraps", "50",
            "--targets", f"listeners={tmp / 'listeners.npz'}", "--target-bootstraps", "100", "--no-figures"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    t = pd.read_csv(tmp / "out" / "targets.csv")
    assert set(t["candidate"]) == {"network/layer_00", "network/layer_01", "model/pitch_height",
                                   "model/chroma_circular"}
    assert t.loc[t["best"], "candidate"].item() == "model/chroma_circular"
    by = t.set_index("candidate")["value"]
    assert by["network/layer_01"] > by["network/layer_00"]      # the chroma-coded layer explains more
    assert "listeners: best model/chroma_circular" in res.output
    manifest = json.loads((tmp / "out" / "manifest.json").read_text())
    assert manifest["targets"]["files"][0]["n_subjects"] == 5
    assert len(manifest["targets"]["files"][0]["sha256"]) == 64
    assert (tmp / "out" / "rsa.csv").is_file() and (tmp / "out" / "targets_pairwise.csv").is_file()
    # measured RDMs only (no model-RDM RSA), figures on
    res = CliRunner().invoke(app, args[:7] + ["--models", "none", "--targets", str(tmp / "listeners.npz"),
                                              "--target-bootstraps", "20", "-o", str(tmp / "only")])
    assert res.exit_code == 0, res.output
    assert not (tmp / "only" / "rsa.csv").exists()
    assert (tmp / "only" / "targets_listeners_comparison.png").is_file()


def _fails(args: list[str], *needles: str) -> None:
    from musiclens.cli import app
    from musiclens.errors import MusicLensError

    res = CliRunner().invoke(app, args)
    assert res.exit_code != 0
    assert isinstance(res.exception, MusicLensError), res.output   # main() prints it as `error: ...`, exit 2
    for needle in needles:
        assert needle in str(res.exception)


def test_rsa_command_target_refusals(cli_inputs):
    from musiclens.cli import app

    tmp = cli_inputs
    base = ["rsa", "-a", str(tmp / "acts.npz"), "-s", str(tmp / "stim"), "-o", str(tmp / "out"), "--models", "none"]
    _fails(base, "nothing to compare")
    _fails(base + ["--targets", str(tmp / "listeners.npz"), "--target-bootstrap", "twice"], "bootstrap")
    _fails(base + ["--targets", str(tmp / "listeners.npz"), "--target-method", "pearson"], "pearson")
    two = np.load(tmp / "listeners.npz")
    np.savez(tmp / "two.npz", rdms=two["rdms"][:2], stimulus_id=two["stimulus_id"])
    _fails(base + ["--targets", str(tmp / "two.npz")], "at least 3", "--no-noise-ceiling")
    np.savez(tmp / "other_ids.npz", rdms=two["rdms"], stimulus_id=np.char.add(two["stimulus_id"], "_x"))
    _fails(base + ["--targets", str(tmp / "other_ids.npz")], "not in the stimulus set", "other_ids.npz")
    assert not (tmp / "out").exists()
    res = CliRunner().invoke(app, base + ["--targets", str(tmp / "two.npz"), "--no-noise-ceiling",
                                          "--target-bootstrap", "stimuli", "--target-bootstraps", "20"])
    assert res.exit_code == 0, res.output
    assert not (tmp / "out" / "rsa.csv").exists()


def test_rsa_command_flexible(cli_inputs):
    from musiclens.cli import app

    tmp = cli_inputs
    base = ["rsa", "-a", str(tmp / "acts.npz"), "-s", str(tmp / "stim"), "-o", str(tmp / "flex"), "--models",
            "none", "--targets", str(tmp / "listeners.npz"), "--target-bootstraps", "20", "--no-figures"]
    _fails(base + ["--flexible", "--target-method", "spearman"], "corr or cosine")
    res = CliRunner().invoke(app, base + ["--flexible"])
    assert res.exit_code == 0, res.output
    flex = pd.read_csv(tmp / "flex" / "targets_flexible.csv")
    assert set(flex["candidate"]) == {"network/layer_00", "network/layer_01", "network/weighted"}
    assert flex.set_index("candidate").loc["network/weighted", "n_components"] == 2
