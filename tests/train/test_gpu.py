"""GPU checks of the training engine (skipped without CUDA; run them on a GPU machine).

They train real objectives in bf16 mixed precision on one CUDA device through :func:`train`,
resume, and check that the exported backbone extracts on CPU what it computes on the GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
from musiclens.extract.checkpoint import checkpoint_extractor
from musiclens.train.engine import train
from tests.train._engine_helpers import corpora  # noqa: F401  (fixture)

pytestmark = pytest.mark.gpu


def _config(corpora, objective: str, model: dict, **extra) -> dict:  # noqa: F811
    cfg = {
        "objective": objective, "model": model,
        "data": {"train": [str(corpora["music"])], "val": 0.5, "batch_size": 4, "crop_s": 2.0},
        "optim": {"lr": 1e-3, "max_steps": 8, "warmup_steps": 2},
        "trainer": {"accelerator": "gpu", "devices": 1, "precision": "bf16-mixed", "log_every_n_steps": 1,
                    "val_every_n_steps": 4, "checkpoint_every_n_steps": 4, "progress_bar": False},
        "seed": 3,
    }
    cfg.update(extra)
    return cfg


@pytest.mark.parametrize("objective,model,options", [
    ("ntxent", {"family": "vit1d", "config": "test"}, {"crop_s": 2.0, "max_view_gap_s": 1.0}),
    ("mert", {"family": "mert", "config": {"sample_rate": 16000}},
     {"crop_s": 2.0, "cqt_fmin": 65.4, "cqt_n_bins": 72, "cqt_bins_per_octave": 12, "n_clusters": 8,
      "prepare_batches": 2}),
    ("transcription", {"family": "wav2vec2"}, {"crop_s": 2.0}),
])
def test_bf16_training_resumes_and_exports(corpora, tmp_path, objective, model, options) -> None:  # noqa: F811
    cfg = _config(corpora, objective, model, options=options)
    first = train({**cfg, "optim": {**cfg["optim"], "max_steps": 4}}, out=tmp_path / "short")
    assert first.finished and first.global_step == 4
    result = train(cfg, out=tmp_path / "run")
    assert result.finished and result.global_step == 8
    assert all(np.isfinite(v) for v in result.metrics.values() if isinstance(v, float))
    # the exported backbone computes on CPU what it computes on the GPU (both float32 at extraction)
    ex_cpu = checkpoint_extractor(result.backbone, device="cpu")
    ex_gpu = checkpoint_extractor(result.backbone, device="cuda")
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(ex_cpu.sample_rate).astype(np.float32) * 0.1 for _ in range(2)]
    a, b = ex_cpu.extract(clips), ex_gpu.extract(clips)
    assert a.layer_names == b.layer_names and len(a.layer_names) == result_layers(result.backbone)
    for layer in a.layer_names:
        np.testing.assert_allclose(a.layers[layer], b.layers[layer], rtol=1e-3, atol=1e-3)


def result_layers(backbone) -> int:
    import json

    return len(json.loads((backbone / "config.json").read_text())["layers"])
