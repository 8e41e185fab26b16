"""`musiclens rsa` command, run folder outputs (tables, figures, manifest) and rsatoolbox interop."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from musiclens.commands.rsa import register
from musiclens.errors import MissingDependencyError
from musiclens.rsa.io import load_activations
from musiclens.stimuli.stimulus_set import StimulusSet


@pytest.fixture
def inputs(tmp_path, note_grid, mixed_code):  # noqa: ANN001, ANN201
    meta = note_grid(["a", "b", "c"], midi=np.arange(60, 84))
    StimulusSet([np.zeros(16, np.float32) + 0.1] * len(meta), meta, sample_rate=16000).save(tmp_path / "stim")
    layers = {f"layer_{k:02d}": mixed_code(meta, chroma=c, height=1.0, noise=0.7, dim=12, seed=k)
              for k, c in enumerate([0.0, 1.0, 2.0])}
    np.savez(tmp_path / "acts.npz", stimulus_id=meta["stimulus_id"].to_numpy(dtype=str), **layers)
    return tmp_path, meta, layers


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test root"""

    register(app)
    return app


def test_cli_writes_tables_figures_and_manifest(inputs) -> None:
    tmp, meta, _ = inputs
    out = tmp / "out"
    result = CliRunner().invoke(_app(), [
        "rsa", "--activations", str(tmp / "acts.npz"), "--stimuli", str(tmp / "stim"), "--out", str(out),
        "--models", "pitch_height,chroma", "--network", "toy", "--permutations", "30", "--bootstraps", "20",
        "--seed", "3", "--method", "tau-a", "--distance", "correlation"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "rsa.csv")
    parquet = pd.read_parquet(out / "rsa.parquet")
    pd.testing.assert_frame_equal(table.drop(columns="note"), parquet.drop(columns="note"), check_exact=False, atol=1e-9)
    assert table["note"].isna().all() and (parquet["note"] == "").all()   # 3 instruments: nothing to note
    assert set(table["network"]) == {"toy"} and table["value"].notna().all()
    for name in ("profile_tau-a.png", "profile_partial-tau-a.png", "profile_partial-tau-b.png", "rdms.png", "mds.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["config"]["n_permutations"] == 30
    assert len(manifest["inputs"]["activations_sha256"]) == 64
    assert set(manifest["inputs"]["layer_hashes"]) == {"layer_00", "layer_01", "layer_02"}
    assert "permutations" in manifest["timings_s"] and manifest["environment"]["packages"]["numpy"]


def test_cli_reports_order_mismatch(inputs) -> None:
    tmp, meta, layers = inputs
    ids = meta["stimulus_id"].to_numpy(dtype=str)[::-1]
    np.savez(tmp / "rev.npz", stimulus_id=ids, **layers)
    result = CliRunner().invoke(_app(), ["rsa", "--activations", str(tmp / "rev.npz"), "--stimuli",
                                         str(tmp / "stim"), "--out", str(tmp / "o2")])
    assert result.exit_code != 0
    assert "order differs" in str(result.exception)


def test_feature_store_without_loader_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "musiclens.extract.store", None)
    with pytest.raises(MissingDependencyError, match="load_pooled"):
        load_activations(tmp_path)


def test_rsatoolbox_round_trip(inputs) -> None:
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from musiclens.rsa import compare, run_rsa
    from musiclens.rsa.interop import from_rsatoolbox, to_rsatoolbox

    _, meta, layers = inputs
    res = run_rsa(layers, meta, n_permutations=0, n_bootstraps=0)
    stack = res.rdms["layer_01"]
    rdms = to_rsatoolbox(stack)
    assert rdms.n_rdm == 3 and rdms.n_cond == 24
    assert list(rdms.rdm_descriptors["subject"]) == ["a", "b", "c"]
    assert list(rdms.pattern_descriptors["midi"]) == list(range(60, 84))
    back = from_rsatoolbox(rdms)
    np.testing.assert_array_equal(back.vectors, stack.vectors)
    assert back.subjects == stack.subjects and back.distance == "correlation"
    chroma = rsatoolbox.rdm.RDMs(res.model_rdms["chroma"][None])
    np.testing.assert_allclose(rsatoolbox.rdm.compare(rdms, chroma, method="tau-a"),
                               compare(stack.vectors, res.model_rdms["chroma"]), atol=1e-15)


def test_rsa_folder_appears_whole_or_not_at_all(inputs, monkeypatch) -> None:
    """A failure after the table is written (here: in the figures) leaves no folder and no table."""
    from musiclens.rsa import io as rsa_io
    from musiclens.rsa import plots

    tmp, _, _ = inputs
    out = tmp / "out"

    def broken_figures(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        assert any(p.name == "rsa.csv" for p in tmp.glob(".out.*.partial/*"))   # the table exists, hidden
        raise RuntimeError("killed while drawing")

    monkeypatch.setattr(plots, "save_figures", broken_figures)
    with pytest.raises(RuntimeError, match="killed while drawing"):
        rsa_io.rsa_to_folder(activations=tmp / "acts.npz", stimuli=tmp / "stim", out=out, n_permutations=0,
                             n_bootstraps=0, models=["pitch_height"])
    assert not out.exists() and not list(tmp.glob(".out.*"))
    monkeypatch.undo()
    rsa_io.rsa_to_folder(activations=tmp / "acts.npz", stimuli=tmp / "stim", out=out, n_permutations=0,
                         n_bootstraps=0, models=["pitch_height"], figures=False)
    first = (out / "rsa.csv").read_text()
    assert json.loads((out / "manifest.json").read_text())["command"] == "rsa"
    (out / "stale.png").write_bytes(b"old figure")   # an earlier run's file: the rerun replaces the folder whole
    rsa_io.rsa_to_folder(activations=tmp / "acts.npz", stimuli=tmp / "stim", out=out, n_permutations=0,
                         n_bootstraps=0, models=["pitch_height"], figures=False)
    assert (out / "rsa.csv").read_text() == first and not (out / "stale.png").exists()


def test_npz_without_ids_is_refused_unless_the_order_is_assumed(inputs, monkeypatch, capsys) -> None:
    """Rows without ids could be in any order (shuffled rows silently destroy the result)."""
    from musiclens.cli import main

    tmp, meta, layers = inputs
    np.savez(tmp / "no_ids.npz", **layers)
    base = ["musiclens", "rsa", "-a", str(tmp / "no_ids.npz"), "-s", str(tmp / "stim"), "--permutations", "0",
            "--bootstraps", "0", "--no-figures"]
    monkeypatch.setattr(sys, "argv", [*base, "--out", str(tmp / "refused")])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "has no 'stimulus_id'" in err and "--assume-order" in err
    assert not (tmp / "refused").exists()
    monkeypatch.setattr(sys, "argv", [*base, "--out", str(tmp / "assumed"), "--assume-order"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code in (0, None)
    manifest = json.loads((tmp / "assumed" / "manifest.json").read_text())
    assert manifest["inputs"]["row_order"].startswith("assumed")


def test_one_subject_says_why_the_noise_ceiling_is_empty(inputs, caplog) -> None:
    from musiclens.rsa.pipeline import run_rsa

    _, meta, layers = inputs
    one = meta["instrument"] == "a"
    with caplog.at_level("WARNING"):
        t = run_rsa({k: v[one.to_numpy()] for k, v in layers.items()}, meta[one].reset_index(drop=True),
                    test="permutation", n_permutations=20, n_bootstraps=20, bootstrap_over="pitches").table
    main = t[t["statistic"] == "tau-a"]
    assert main["noise_ceiling_low"].isna().all()
    assert main["note"].str.contains("noise ceiling not computed: 1 subject").all()
    assert (t.loc[t["statistic"] != "tau-a", "note"] == "").all()
    assert "noise ceiling" in caplog.text


def test_profile_figure_draws_an_interval_that_excludes_the_value(inputs) -> None:
    """A percentile bootstrap interval need not contain the point estimate; the figure must still draw."""
    from musiclens.rsa.pipeline import run_rsa
    from musiclens.rsa.plots import plot_layer_profiles

    _, meta, layers = inputs
    res = run_rsa(layers, meta, n_permutations=0, n_bootstraps=20)
    main = res.table["statistic"] == "tau-a"
    res.table.loc[main, "ci_low"] = res.table.loc[main, "value"] + 0.01     # interval above the value
    res.table.loc[main, "ci_high"] = res.table.loc[main, "value"] + 0.02
    fig = plot_layer_profiles(res)
    assert fig.axes
