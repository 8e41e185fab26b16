"""The engine end to end: data stream, schedule, logging, export through checkpoint_extractor, the CLI."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from musiclens.corpora.dataset import Corpus, CropDataset
from musiclens.train.base import DataSpec
from musiclens.train.data import MixtureIndex, TrainDataModule, split_pieces
from musiclens.train.engine import lr_factor, train
from tests.train._engine_helpers import ToyObjective, corpora, one_thread, toy_config  # noqa: F401


# ----------------------------------------------------------------------------------- schedule
def test_lr_factor_hand_values() -> None:
    kw = dict(warmup_steps=4, max_steps=14)
    assert [lr_factor(s, schedule="cosine", min_ratio=0.0, **kw) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, schedule="cosine", min_ratio=0.0, **kw) == 1.0
    assert lr_factor(9, schedule="cosine", min_ratio=0.0, **kw) == pytest.approx(0.5)   # half way: cos(pi/2)
    assert lr_factor(14, schedule="cosine", min_ratio=0.1, **kw) == pytest.approx(0.1)
    assert lr_factor(9, schedule="linear", min_ratio=0.2, **kw) == pytest.approx(0.2 + 0.8 * 0.5)
    assert lr_factor(11, schedule="cosine", min_ratio=0.0, **kw) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.7)))
    assert lr_factor(100, schedule="constant", min_ratio=0.0, **kw) == 1.0


# ----------------------------------------------------------------------------------- data
def test_mixture_is_a_pure_function_and_an_epoch_visits_every_piece_once() -> None:
    a = MixtureIndex([np.arange(5)], weights=None, seed=3)
    first = [a(g) for g in range(15)]
    for e in range(3):  # without replacement within each epoch
        assert sorted(r[1] for r in first[5 * e: 5 * e + 5]) == list(range(5))
        assert {r[2] for r in first[5 * e: 5 * e + 5]} == {e}
    b = MixtureIndex([np.arange(5)], weights=None, seed=3)
    assert [b(g) for g in reversed(range(15))][::-1] == first          # order of queries does not matter
    m = MixtureIndex([np.arange(7), np.arange(3)], weights=[3.0, 1.0], seed=0)
    refs = [m(g) for g in range(9000, 17000)]                          # crosses a block boundary, starts mid-stream
    share = np.mean([r[0] == 0 for r in refs])
    assert share == pytest.approx(0.75, abs=0.02)
    m2 = MixtureIndex([np.arange(7), np.arange(3)], weights=[3.0, 1.0], seed=0)
    assert [m2(g) for g in range(16999, 8999, -1)][::-1] == refs
    # the n-th draw of corpus 1 is its n-th stream element: counts per epoch are balanced
    ones = [r for r in [m(g) for g in range(3000)] if r[0] == 1]
    for e in range(len(ones) // 3):
        assert sorted(r[1] for r in ones[3 * e: 3 * e + 3]) == [0, 1, 2]


def test_split_pieces_is_disjoint_and_seeded() -> None:
    tr, va = split_pieces(10, fraction=0.3, seed=1, corpus=0)
    assert len(va) == 3 and len(tr) == 7 and not set(tr) & set(va)
    assert np.array_equal(split_pieces(10, fraction=0.3, seed=1, corpus=0)[1], va)


def _dm(corpora, spec, **kw):  # noqa: F811
    args = dict(train=[str(corpora["music"])], val=0.25, spec=spec, batch_size=3, seed=2, max_steps=50)
    args.update(kw)
    return TrainDataModule(**args)


def test_batches_follow_the_spec_and_depend_only_on_seed_and_step(corpora) -> None:  # noqa: F811
    spec = DataSpec(sample_rate=16000, crop_s=0.5, views=2, max_view_gap_s=0.3, frame_rate=50.0,
                    targets=("piano_roll",), kinds=("music",))
    dm = _dm(corpora, spec)
    b = dm.batch(4)
    assert b["audio"].shape == (3, 2, 8000) and b["audio"].dtype == torch.float32
    assert b["piano_roll"].shape == (3, 2, 25, 88) and b["onset_roll"].shape == (3, 2, 25, 88)
    assert b["kind"] == ["music"] * 3 and b["lengths"].tolist() == [8000] * 3
    again = _dm(corpora, spec).batch(4)
    assert torch.equal(again["audio"], b["audio"]) and torch.equal(again["piano_roll"], b["piano_roll"])
    assert not torch.equal(dm.batch(5)["audio"], b["audio"])
    # training never sees validation pieces; validation set is fixed
    val_pieces = {r[1] for r in dm.val_refs}
    assert val_pieces and not val_pieces & {dm.index(g)[1] for g in range(200)}
    # the views are crops of the same piece whose starts are at most max_view_gap_s apart, and the
    # frame targets are the corpus labels of exactly that window (reference: CropDataset at that start)
    corpus = Corpus(corpora["music"])
    for i, ref in enumerate(dm.train_sampler().refs(4)):
        starts, crop_n = dm.items.crop_starts(ref)
        assert crop_n == 8000 and abs(starts[1] - starts[0]) <= 0.3 * corpus.sample_rate
        for v, s in enumerate(starts):
            np.testing.assert_array_equal(b["audio"][i, v].numpy(), corpus.audio(ref[1], start=s, stop=s + crop_n))

            class At(CropDataset):
                def crop_start(self, index: int) -> int:
                    return s
            ref_ex = At(corpus, crop_s=0.5, frame_rate=50.0)[ref[1]]
            np.testing.assert_array_equal(b["piano_roll"][i, v].numpy(), ref_ex["piano_roll"].astype(np.float32))


def test_workers_give_the_same_stream_and_sampler_starts_anywhere(corpora) -> None:  # noqa: F811
    spec = DataSpec(sample_rate=16000, crop_s=0.5)
    dm = _dm(corpora, spec, num_workers=1)
    it = dm.stream(start=7)
    for b in (7, 8):
        assert torch.equal(next(it)["audio"], _dm(corpora, spec).batch(b)["audio"])




def test_speech_is_whole_utterances_padded_and_mixed(corpora) -> None:  # noqa: F811
    if "speech" not in corpora:
        pytest.skip("espeak-ng not installed")
    spec = DataSpec(sample_rate=16000, crop_s=0.5, targets=("phonemes",), kinds=("speech",))
    dm = TrainDataModule(train=[str(corpora["speech"])], val=None, spec=spec, batch_size=3, seed=0, max_steps=5)
    b = dm.batch(0)
    sp = Corpus(corpora["speech"])
    n = [int(sp.record(r[1])["n_samples"]) for r in dm.train_sampler().refs(0)]
    assert b["audio"].shape == (3, max(n)) and b["lengths"].tolist() == n
    for i, k in enumerate(n):
        assert float(b["audio"][i, k:].abs().sum()) == 0.0
    assert all(len(p) > 0 for p in b["phonemes"]) and b["kind"] == ["speech"] * 3
    # music + speech for an objective without targets: speech is cropped like music
    spec = DataSpec(sample_rate=16000, crop_s=0.5)
    dm = TrainDataModule(train=[str(corpora["music"]), str(corpora["speech"])], val=None, spec=spec,
                         weights=[1.0, 1.0], batch_size=4, seed=0, max_steps=5)
    kinds = sum((dm.batch(k)["kind"] for k in range(5)), [])
    assert set(kinds) == {"music", "speech"} and dm.batch(0)["audio"].shape == (4, 8000)


# ----------------------------------------------------------------------------------- engine
@pytest.fixture(scope="module")
def run(corpora, tmp_path_factory):  # noqa: F811
    return train(toy_config(corpora, export={"every_checkpoint": True}), out=tmp_path_factory.mktemp("run") / "run")


def test_run_directory_logs_and_manifest(run) -> None:
    import json

    d = run.run_dir
    assert run.finished and run.global_step == 6
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["finished"] and manifest["global_step"] == 6 and manifest["seeds"] == {"seed": 5, "data": 5}
    corpus = next(iter(manifest["corpora"].values()))
    assert corpus["kind"] == "music" and len(corpus["content_hash"]) == 64
    assert manifest["environment"]["packages"]["lightning"]
    m = pd.read_csv(d / "logs" / "metrics.csv")
    train_rows = m.dropna(subset=["train/loss"])
    assert train_rows["step"].tolist() == list(range(6))
    assert train_rows["train/lr"].iloc[0] == pytest.approx(1e-2 * 0.5)         # warm-up 1/2
    assert train_rows["train/lr"].iloc[3] == pytest.approx(1e-2 * lr_factor(3, warmup_steps=2, max_steps=6,
                                                                                schedule="cosine", min_ratio=0.0))
    val = m.dropna(subset=["val/loss"])
    assert val["step"].tolist() == [2, 5] and val["val/mean_abs_audio"].gt(0).all()   # every 3 steps
    assert (d / "backbone-step0000003").is_dir() and (d / "backbone-step0000006").is_dir()


def test_exported_backbone_loads_through_checkpoint_extractor(run) -> None:
    from musiclens.extract.checkpoint import checkpoint_extractor

    ex = checkpoint_extractor(run.backbone)
    assert ex.sample_rate == 16000 and ex.layer_names == ["layer_00", "layer_01", "layer_02"]
    state = torch.load(run.last_checkpoint, weights_only=True)["state_dict"]
    from tests.train._engine_helpers import _build_toy

    mine = _build_toy({"dim": 8, "n_layers": 2})
    mine.load_state_dict({k[len("objective.backbone."):]: v for k, v in state.items()
                          if k.startswith("objective.backbone.")})
    mine.eval()
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(4000).astype(np.float32) * 0.1 for _ in range(2)]
    acts = ex.extract(clips)
    with torch.no_grad():
        hs = mine(torch.from_numpy(np.stack(clips))).hidden_states
    for k, name in enumerate(ex.layer_names):
        np.testing.assert_allclose(np.asarray(acts.layers[name][0]), hs[k][0].numpy(), atol=1e-5)
    import json

    assert json.loads((run.backbone / "config.json").read_text())["training"]["step"] == 6


def test_cli_trains_end_to_end(corpora, tmp_path) -> None:  # noqa: F811
    from typer.testing import CliRunner

    from musiclens.cli import app

    cfg = toy_config(corpora, trainer={"val_every_n_steps": 0})
    cfg.pop("objective")
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    runner = CliRunner()
    help_text = runner.invoke(app, ["train", "--help"]).output
    for name in ("ntxent", "mert", "wav2vec2", "data2vec", "transcription", "ctc"):
        assert name in help_text
    res = runner.invoke(app, ["train", "toy", "--config", str(path), "--out", str(tmp_path / "run"),
                              "--max-steps", "2", "--set", "optim.lr=0.001"])
    assert res.exit_code == 0, res.output
    assert f"backbone: {(tmp_path / 'run' / 'backbone').resolve()}" in res.output
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["optim"]["max_steps"] == 2 and saved["optim"]["lr"] == 0.001 and saved["objective"] == "toy"
    again = runner.invoke(app, ["train", "toy", "--config", str(path), "--out", str(tmp_path / "run"),
                                "--max-steps", "2", "--set", "optim.lr=0.001"])
    assert again.exit_code == 0 and "already finished at step 2" in again.output
