"""musicnn (musicnn 0.1.0, TensorFlow-1 checkpoints in the wheel) ported to PyTorch, layer by layer.

musicnn (Pons & Serra 2019) tags music: a musically motivated front end (timbral convolutions
spanning 38 and 67 of 96 mel bands, temporal convolutions spanning 128/64/32 frames, each
max-pooled over frequency), a mid end of three 1-D convolutions with dense (concatenated)
and residual connections, and a back end that pools over time (max and mean), a 200-unit dense
layer and 50 sigmoid tags.  The wheel ships the trained weights as TensorFlow-1 checkpoints
(``musicnn/MTT_musicnn/``: MagnaTagATune tags; ``musicnn/MSD_musicnn/``: Million Song Dataset /
last.fm tags); its code needs TensorFlow, which musiclens never installs.  This module reads the
checkpoint files itself (:func:`~musiclens.extract.pretrained.tf_checkpoint.read_tf_checkpoint`: the ``.index`` table and the raw
``.data-00000-of-00001`` bytes; no TensorFlow, no protobuf: the pure-Python
``tensorflow-checkpoint-reader`` 0.2.2 does not import beside protobuf 7), and runs the network as
:func:`build_musicnn_net`'s ``torch.nn.Module`` in inference mode (batch norm with the moving
statistics, epsilon 0.001; dropout off).  The port is converted in memory at each construction
(about 10 MB, well under a second); nothing is downloaded or cached.

Pre-processing as ``musicnn.extractor.batch_data``: 16 kHz, librosa's ``melspectrogram(n_fft=512,
hop_length=256, n_mels=96)`` (power, centred frames), rounded to float16, then
``log10(10000 * x + 1)`` computed in float32 (NumPy 1.x promotion, musicnn's era and its training
code; NumPy 2 keeps float16 there and overflows to inf for loud tonal sounds).  The spectrogram is
cut into non-overlapping patches of 187 frames (3 s: ``librosa.time_to_frames(3) + 1``); the last
incomplete patch is dropped, so a clip needs at least 187 frames (47 616 samples, 2.98 s).

Frames are patches: patch ``i`` starts at mel frame ``i * hop`` (``hop = 187`` by default, so
16000 / (256 * 187) = 0.3342 frames/s) and is reported at the centre of its frames,
``(i * hop + 93) * 256 / 16000`` s.  ``patch_s`` / ``hop_s`` change them as musicnn's
``input_length`` / ``input_overlap`` do (the models were trained on 3 s).

Layers, input to output (one vector per patch; the frame-level layers are pooled over the patch's
frames with ``block_pooling``, ``"mean"`` or ``"max"``):

``mel``          log-compressed mel input (96)
``timbral``      timbral front end: the 38- and 67-band convolutions, max over frequency (2 × 204)
``temporal``     temporal front end: 128-, 64-, 32-frame convolutions, max over frequency (3 × 51)
``cnn1``         mid-end block 1 (64)
``cnn2``         mid-end block 2 after its residual sum (64)
``cnn3``         mid-end block 3 after its residual sum (64)
``mean_pool``    back end: mean over time of [front end, cnn1, cnn2, cnn3] (753)
``max_pool``     back end: max over time of the same (753)
``penultimate``  the 200-unit dense layer after ReLU and batch norm (musicnn's ``penultimate``)
``taggram``      the 50 tag probabilities (sigmoid; names in ``info()["tags"]``)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from musiclens.errors import ConfigError, ExtractionError
from musiclens.extract.pretrained._common import (
    PretrainedExtractor,
    info_head,
    randomize_module,
    run_units,
    state_dict_hash,
)
from musiclens.extract.pretrained._imports import PIP_COMMANDS, import_torch, package_data_path
from musiclens.extract.pretrained.tf_checkpoint import read_tf_checkpoint

__all__ = ["MusicnnExtractor", "build_musicnn_net", "musicnn_log_mel", "MUSICNN_MODELS",
           "MTT_TAGS", "MSD_TAGS"]

logger = logging.getLogger(__name__)

MUSICNN_SAMPLE_RATE = 16000
FFT_SIZE = 512
FFT_HOP = 256
N_MELS = 96
PATCH_FRAMES = 187
BN_EPS = 1e-3

#: musicnn/configuration.py
MTT_TAGS = ['guitar', 'classical', 'slow', 'techno', 'strings', 'drums', 'electronic', 'rock', 'fast', 'piano',
            'ambient', 'beat', 'violin', 'vocal', 'synth', 'female', 'indian', 'opera', 'male', 'singing', 'vocals',
            'no vocals', 'harpsichord', 'loud', 'quiet', 'flute', 'woman', 'male vocal', 'no vocal', 'pop', 'soft',
            'sitar', 'solo', 'man', 'classic', 'choir', 'voice', 'new age', 'dance', 'male voice', 'female vocal',
            'beats', 'harp', 'cello', 'no voice', 'weird', 'country', 'metal', 'female voice', 'choral']
MSD_TAGS = ['rock', 'pop', 'alternative', 'indie', 'electronic', 'female vocalists', 'dance', '00s',
            'alternative rock', 'jazz', 'beautiful', 'metal', 'chillout', 'male vocalists', 'classic rock', 'soul',
            'indie rock', 'Mellow', 'electronica', '80s', 'folk', '90s', 'chill', 'instrumental', 'punk', 'oldies',
            'blues', 'hard rock', 'ambient', 'acoustic', 'experimental', 'female vocalist', 'guitar', 'Hip-Hop',
            '70s', 'party', 'country', 'easy listening', 'sexy', 'catchy', 'funk', 'electro', 'heavy metal',
            'Progressive rock', '60s', 'rnb', 'indie pop', 'sad', 'House', 'happy']

#: name -> (checkpoint folder in the wheel, tags, training data)
MUSICNN_MODELS: dict[str, tuple[str, list[str], str]] = {
    "mtt": ("MTT_musicnn", MTT_TAGS, "MagnaTagATune (50 most frequent tags)"),
    "msd": ("MSD_musicnn", MSD_TAGS, "Million Song Dataset with last.fm tags (50 most frequent)"),
}
MUSICNN_LAYERS = ["mel", "timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool", "penultimate",
                  "taggram"]
_FRAME_LAYERS = ("mel", "timbral", "temporal", "cnn1", "cnn2", "cnn3")
def musicnn_log_mel(clip: np.ndarray) -> np.ndarray:
    """musicnn's input ``[shape=(n_frames, 96)]`` for a 16 kHz clip (see the module docstring)."""
    import librosa

    mel = librosa.feature.melspectrogram(y=np.asarray(clip, dtype=np.float32), sr=MUSICNN_SAMPLE_RATE,
                                         hop_length=FFT_HOP, n_fft=FFT_SIZE, n_mels=N_MELS).T
    mel16 = mel.astype(np.float16).astype(np.float32)
    return np.log10(np.float32(10000.0) * mel16 + np.float32(1.0)).astype(np.float32)


# -- the network -----------------------------------------------------------------------------------
def build_musicnn_net(*, n_tags: int = 50, midend_filters: int = 64, backend_units: int = 200) -> Any:
    """musicnn's architecture (``models.build_musicnn`` with ``num_filt=1.6``) as a torch module.

    Layout inside: ``(batch, channels, time, freq)``; ``forward(x)`` takes ``x [shape=(B, T, 96)]``
    log-mel patches and returns every layer at frame level (``(B, T, dim)``) or patch level
    (``(B, dim)``).
    """
    torch = import_torch()
    nn = torch.nn
    F = nn.functional
    timbral_f, temporal_f = int(1.6 * 128), int(1.6 * 32)

    def bn(n: int) -> Any:
        return nn.BatchNorm2d(n, eps=BN_EPS)

    class MusicnnNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.input_bn = nn.BatchNorm2d(1, eps=BN_EPS)
            self.timbral74 = nn.Conv2d(1, timbral_f, (7, int(0.4 * N_MELS)))
            self.timbral74_bn = bn(timbral_f)
            self.timbral77 = nn.Conv2d(1, timbral_f, (7, int(0.7 * N_MELS)))
            self.timbral77_bn = bn(timbral_f)
            self.temporal_kernels = (128, 64, 32)
            for k in self.temporal_kernels:
                setattr(self, f"temporal{k}", nn.Conv2d(1, temporal_f, (k, 1)))
                setattr(self, f"temporal{k}_bn", bn(temporal_f))
            front = 2 * timbral_f + 3 * temporal_f
            self.midend1 = nn.Conv1d(front, midend_filters, 7)
            self.midend1_bn = nn.BatchNorm1d(midend_filters, eps=BN_EPS)
            self.midend2 = nn.Conv1d(midend_filters, midend_filters, 7)
            self.midend2_bn = nn.BatchNorm1d(midend_filters, eps=BN_EPS)
            self.midend3 = nn.Conv1d(midend_filters, midend_filters, 7)
            self.midend3_bn = nn.BatchNorm1d(midend_filters, eps=BN_EPS)
            pooled = front + 3 * midend_filters
            self.pool_bn = nn.BatchNorm1d(2 * pooled, eps=BN_EPS)
            self.dense = nn.Linear(2 * pooled, backend_units)
            self.dense_bn = nn.BatchNorm1d(backend_units, eps=BN_EPS)
            self.output = nn.Linear(backend_units, n_tags)

        def forward(self, x: Any) -> dict[str, Any]:
            out: dict[str, Any] = {"mel": x}
            h = self.input_bn(x[:, None])                                      # (B, 1, T, 96)
            timbral = []
            for conv, norm in ((self.timbral74, self.timbral74_bn), (self.timbral77, self.timbral77_bn)):
                y = norm(torch.relu(conv(F.pad(h, (0, 0, 3, 3)))))             # time padded 3 + 3
                timbral.append(y.amax(dim=3))                                  # (B, 204, T)
            temporal = []
            for k in self.temporal_kernels:
                y = F.pad(h, (0, 0, (k - 1) // 2, k // 2))                     # TensorFlow 'same'
                y = getattr(self, f"temporal{k}_bn")(torch.relu(getattr(self, f"temporal{k}")(y)))
                temporal.append(y.amax(dim=3))                                 # (B, 51, T)
            front = torch.cat(timbral + temporal, dim=1)                       # (B, 561, T)
            cnn1 = self.midend1_bn(torch.relu(self.midend1(F.pad(front, (3, 3)))))
            cnn2 = self.midend2_bn(torch.relu(self.midend2(F.pad(cnn1, (3, 3))))) + cnn1
            cnn3 = self.midend3_bn(torch.relu(self.midend3(F.pad(cnn2, (3, 3))))) + cnn2
            mid = torch.cat([front, cnn1, cnn2, cnn3], dim=1)                  # (B, 753, T)
            max_pool, mean_pool = mid.amax(dim=2), mid.mean(dim=2)
            flat = torch.stack([max_pool, mean_pool], dim=2).flatten(1)        # TF flatten of (753, 2)
            pen = self.dense_bn(torch.relu(self.dense(self.pool_bn(flat))))
            logits = self.output(pen)
            for name, t in (("timbral", torch.cat(timbral, 1)), ("temporal", torch.cat(temporal, 1)),
                            ("cnn1", cnn1), ("cnn2", cnn2), ("cnn3", cnn3)):
                out[name] = t.transpose(1, 2)                                  # (B, T, C)
            out.update(mean_pool=mean_pool, max_pool=max_pool, penultimate=pen, taggram=torch.sigmoid(logits))
            return out

    return MusicnnNet()


def _bn_state(ckpt: dict[str, np.ndarray], tf_name: str, name: str) -> dict[str, np.ndarray]:
    return {f"{name}.weight": ckpt[f"{tf_name}/gamma"], f"{name}.bias": ckpt[f"{tf_name}/beta"],
            f"{name}.running_mean": ckpt[f"{tf_name}/moving_mean"],
            f"{name}.running_var": ckpt[f"{tf_name}/moving_variance"]}


def musicnn_state_dict(ckpt: dict[str, np.ndarray]) -> dict[str, Any]:
    """Map musicnn's TensorFlow variables (creation order of ``models.build_musicnn``) to the port."""
    torch = import_torch()
    s: dict[str, np.ndarray] = {}
    s.update(_bn_state(ckpt, "batch_normalization", "input_bn"))
    convs = ["timbral74", "timbral77", "temporal128", "temporal64", "temporal32"]
    for i, name in enumerate(convs):
        tf_conv = "conv2d" if i == 0 else f"conv2d_{i}"
        s[f"{name}.weight"] = ckpt[f"{tf_conv}/kernel"].transpose(3, 2, 0, 1)        # HWIO -> OIHW
        s[f"{name}.bias"] = ckpt[f"{tf_conv}/bias"]
        s.update(_bn_state(ckpt, f"batch_normalization_{i + 1}", f"{name}_bn"))
    for j in range(3):
        tf_conv = f"conv2d_{5 + j}"
        s[f"midend{j + 1}.weight"] = ckpt[f"{tf_conv}/kernel"][:, :, 0, :].transpose(2, 1, 0)  # (7, C, 1, O) -> OCk
        s[f"midend{j + 1}.bias"] = ckpt[f"{tf_conv}/bias"]
        s.update(_bn_state(ckpt, f"batch_normalization_{6 + j}", f"midend{j + 1}_bn"))
    s.update(_bn_state(ckpt, "batch_normalization_9", "pool_bn"))
    s["dense.weight"], s["dense.bias"] = ckpt["dense/kernel"].T, ckpt["dense/bias"]
    s.update(_bn_state(ckpt, "batch_normalization_10", "dense_bn"))
    s["output.weight"], s["output.bias"] = ckpt["dense_1/kernel"].T, ckpt["dense_1/bias"]
    used = {k.rsplit("/", 1)[0] for k in ckpt}
    expected = ({"batch_normalization"} | {f"batch_normalization_{i}" for i in range(1, 11)}
                | {"conv2d"} | {f"conv2d_{i}" for i in range(1, 8)} | {"dense", "dense_1"})
    if used != expected:
        raise ExtractionError(f"musicnn checkpoint variables differ from the musicnn architecture: "
                              f"unexpected {sorted(used - expected)}, missing {sorted(expected - used)}")
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in s.items()}


class MusicnnExtractor(PretrainedExtractor):
    """musicnn (MTT or MSD) as an :class:`~musiclens.extract.base.Extractor`, one frame per patch.

    Parameters
    ----------
    model
        ``"mtt"`` (MagnaTagATune, musicnn's default ``MTT_musicnn``) or ``"msd"``
        (Million Song Dataset, ``MSD_musicnn``).
    patch_s
        Patch length in seconds, musicnn's ``input_length`` (default 3, as trained):
        ``librosa.time_to_frames(patch_s) + 1`` mel frames.
    hop_s
        Hop between patches, musicnn's ``input_overlap`` (default: the patch length, no overlap).
    block_pooling
        ``"mean"`` or ``"max"``: how the frame-level layers (``mel`` … ``cnn3``) become one
        vector per patch.
    randomize
        Same architecture, freshly initialised (convolutions, dense layers, batch norms) with
        ``seed``: the random-weights control.
    seed
        Seed of the re-initialisation.
    batch_size
        Patches per forward pass.
    device
        Torch device.
    progress
        Progress bar over batches.
    """

    sample_rate: int = MUSICNN_SAMPLE_RATE

    def __init__(
        self,
        *,
        model: str = "mtt",
        patch_s: float = 3.0,
        hop_s: float | None = None,
        block_pooling: str = "mean",
        randomize: bool = False,
        seed: int = 0,
        batch_size: int = 32,
        device: str = "cpu",
        progress: bool = False,
    ) -> None:
        if model not in MUSICNN_MODELS:
            raise ConfigError(f"musicnn model must be one of {', '.join(MUSICNN_MODELS)}, got {model!r}")
        if block_pooling not in ("mean", "max"):
            raise ConfigError(f"block_pooling must be 'mean' or 'max', got {block_pooling!r}")
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.patch_frames = _time_to_frames(float(patch_s)) + 1
        self.hop_frames = self.patch_frames if hop_s is None else _time_to_frames(float(hop_s))
        if self.patch_frames < 8 or self.hop_frames < 1:
            raise ConfigError(f"patch_s={patch_s} / hop_s={hop_s} give {self.patch_frames}-frame patches every "
                              f"{self.hop_frames} frames; use e.g. patch_s=3.0 (at least ~0.15 s and a positive hop)")
        import_torch()
        folder, tags, data = MUSICNN_MODELS[model]
        ckpt_dir = package_data_path("musicnn", folder)
        if not (ckpt_dir / ".index").is_file():
            raise ExtractionError(f"musicnn checkpoint {ckpt_dir}/.index is missing; "
                                  f"reinstall with: {PIP_COMMANDS['musicnn']}")
        net = build_musicnn_net(n_tags=len(tags))
        try:
            net.load_state_dict(musicnn_state_dict(read_tf_checkpoint(str(ckpt_dir) + "/")), strict=True)
        except ExtractionError:
            raise
        except (RuntimeError, KeyError, ValueError) as err:
            raise ExtractionError(f"could not port musicnn's checkpoint {ckpt_dir} ({err}); "
                                  f"reinstall with: {PIP_COMMANDS['musicnn']}") from err
        self.model_name = model
        self.tags = list(tags)
        self.training_data = data
        self.block_pooling = block_pooling
        self.randomize = bool(randomize)
        self.seed = int(seed)
        if self.randomize:
            randomize_module(net, seed=self.seed)
        self.model = net.to(device).eval()
        self.device = device
        self.batch_size = int(batch_size)
        self.progress = progress
        self.patch_s, self.hop_s = float(patch_s), hop_s
        self.weights_file = str(ckpt_dir)
        self.layer_names = list(MUSICNN_LAYERS)
        self.frame_rate_hz = MUSICNN_SAMPLE_RATE / (FFT_HOP * self.hop_frames)
        #: Shortest clip in samples: one whole patch of mel frames (centred STFT: 1 + n // 256 frames).
        self.min_samples = (self.patch_frames - 1) * FFT_HOP
        self.name = f"musicnn-{model}" + ("-random" if self.randomize else "")
        self.weights_hash = state_dict_hash(self.model)

    def n_frames(self, n_samples: int) -> int:
        """Patches of a clip of ``n_samples`` (musicnn drops the last incomplete patch)."""
        t = 1 + int(n_samples) // FFT_HOP
        return 0 if t < self.patch_frames else (t - self.patch_frames) // self.hop_frames + 1

    def frame_times(self, n_frames: int) -> np.ndarray:
        """``[shape=(n_frames,)]`` seconds: centre of patch ``i``, ``(i hop + (patch - 1) / 2) * 256 / 16000``."""
        return ((np.arange(n_frames, dtype=np.float64) * self.hop_frames + (self.patch_frames - 1) / 2)
                * FFT_HOP / MUSICNN_SAMPLE_RATE)

    def patches(self, clip: np.ndarray) -> np.ndarray:
        """``[shape=(n_patches, patch_frames, 96)]`` log-mel patches of one 16 kHz clip."""
        mel = musicnn_log_mel(clip)
        starts = range(0, mel.shape[0] - self.patch_frames + 1, self.hop_frames)
        return np.stack([mel[s:s + self.patch_frames] for s in starts])

    def _forward(self, x: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
        torch = import_torch()
        with torch.inference_mode():
            out = self.model(torch.from_numpy(np.ascontiguousarray(x)).to(self.device))
        res: dict[str, np.ndarray] = {}
        for n in names:
            t = out[n]
            if n in _FRAME_LAYERS:
                t = t.mean(dim=1) if self.block_pooling == "mean" else t.amax(dim=1)
            res[n] = t.float().cpu().numpy()
        return res

    def _per_clip(
        self, clips: list[np.ndarray], ids: list[str], names: list[str]
    ) -> tuple[list[dict[str, np.ndarray]], list[int]]:
        """Patches of all clips in batches of ``batch_size`` (patches are independent)."""
        return run_units([self.patches(c) for c in clips], names, self._forward, batch_size=self.batch_size,
                         desc=self.name, progress=self.progress)

    def info(self) -> dict[str, Any]:
        """Architecture, weights hash, training task and data, tags, options."""
        head = info_head(self.name, "musicnn", "musicnn")
        folder = MUSICNN_MODELS[self.model_name][0]
        return {
            **head,
            "task": "music tagging (50 tags, multi-label)",
            "training_data": self.training_data,
            "weights_source": f"pip package musicnn {head['package_version']}, TensorFlow-1 checkpoint "
                              f"musicnn/{folder}/ (.index + .data-00000-of-00001), ported to PyTorch in memory",
            "model": self.model_name,
            "weights_file": self.weights_file,
            "weights_hash": self.weights_hash,
            "randomized": self.randomize,
            "seed": self.seed if self.randomize else None,
            "sample_rate": MUSICNN_SAMPLE_RATE,
            "mel": {"n_fft": FFT_SIZE, "hop_length": FFT_HOP, "n_mels": N_MELS,
                    "compression": "log10(10000 * float16(mel) + 1)"},
            "patch_frames": self.patch_frames,
            "hop_frames": self.hop_frames,
            "min_samples": self.min_samples,
            "frame_rate_hz": self.frame_rate_hz,
            "block_pooling": self.block_pooling,
            "tags": list(self.tags),
            "layers": list(self.layer_names),
            "frame_convention": "frame i = mel patch i (patch_frames frames from i*hop_frames, 256-sample hop, "
                                "centred STFT), reported at its centre; frame-level layers pooled over the patch",
            "licence": "musicnn ISC (code and weights)",
        }


def _time_to_frames(seconds: float) -> int:
    """``librosa.time_to_frames(seconds, sr=16000, n_fft=512, hop_length=256)`` (musicnn's arithmetic)."""
    return (int(seconds * MUSICNN_SAMPLE_RATE) - FFT_SIZE // 2) // FFT_HOP
