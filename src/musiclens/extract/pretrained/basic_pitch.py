"""basic-pitch (Spotify, ICASSP 2022; basic-pitch 0.4.0's ``nmp.onnx``) layer by layer, without TensorFlow.

The ONNX graph is loaded with ``onnx``; the tensors below are appended to the graph outputs and
the edited graph is run with onnxruntime (CPU).  The network takes windows of 43 844 samples at
22.05 kHz (2 s minus one hop) and returns 172 frames per window at a hop of 256 samples
(86.13 frames/s); frame ``j`` of a window is centred on the window's sample ``256 j``.

Windowing and reassembly.  As in ``basic_pitch.inference``, the clip is prefixed with 15 frames
(3 840 samples) of zeros, cut into windows that overlap by 30 frames, and the first and last 15
frames of every window are dropped.  Unlike basic-pitch's own hop of 36 164 samples (which is not
a whole number of frames, so its frame grid drifts by 188 samples ≈ 8.5 ms per window and needs the
empirical correction of ``model_frames_to_time``), the window hop here is 142 frames = 36 352
samples: kept frames tile the clip exactly, and frame ``t`` of the result is centred on sample
``256 t`` of the clip (time ``256 t / 22050`` s).  A clip of ``n`` samples has ``ceil(n / 256)``
frames (those centred inside the clip).  Windows are independent, so batching is exact.

Layers, input to output (each ``[frames, dim]``, channel-major where a tensor has channels):

``cqt``               log-normalised CQT (309 bins, 3 per semitone)
``hcqt``              harmonic stack of the CQT (8 harmonics × 264)
``contour_features``  conv + batch norm + ReLU (8 × 264)
``contour``           contour (multi-pitch salience) head, sigmoid (264)
``note_features``     conv + ReLU on the contour map (32 × 88)
``note``              note head, sigmoid (88 piano keys)
``onset_features``    conv + batch norm + ReLU on the HCQT (32 × 88)
``onset``             onset head, sigmoid (88)

The per-window min–max normalisation of the log-CQT is basic-pitch's own: it makes each window's
features depend on the whole window (including the zero padding of the last window).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from musiclens.errors import ExtractionError
from musiclens.extract.pretrained._common import PretrainedExtractor, info_head, run_batched
from musiclens.extract.pretrained._imports import basic_pitch_onnx_path, import_onnx
from musiclens.provenance import hash_bytes

__all__ = ["BasicPitchExtractor", "BASIC_PITCH_SAMPLE_RATE"]

logger = logging.getLogger(__name__)

BASIC_PITCH_SAMPLE_RATE = 22050
FFT_HOP = 256
WINDOW_SAMPLES = 2 * BASIC_PITCH_SAMPLE_RATE - FFT_HOP   # 43 844
WINDOW_FRAMES = 172
OVERLAP_FRAMES = 30
KEEP_FRAMES = WINDOW_FRAMES - OVERLAP_FRAMES              # 142
WINDOW_HOP = KEEP_FRAMES * FFT_HOP                        # 36 352
INPUT_NAME = "serving_default_input_2:0"


def _node_output(op: str, prefix: str, *, by_input: bool = False) -> Callable[[Any], str | None]:
    def find(graph: Any) -> str | None:
        for node in graph.node:
            key = node.input[0] if by_input and node.input else node.name
            if node.op_type == op and key.startswith(prefix):
                return str(node.output[0])
        return None

    return find


#: How to find each layer's tensor in the graph (op type and node-name prefix).
_LAYER_FINDERS: dict[str, Callable[[Any], str | None]] = {
    "cqt": _node_output("Reshape", "model_1/normalized_log_1/Reshape_2"),
    "hcqt": _node_output("Slice", "model_1/harmonic-stacking-diff/strided_slice_7"),
    "contour_features": _node_output("Relu", "model_1/re_lu_1/Relu", by_input=True),
    "contour": _node_output("Sigmoid", "model_1/contours-reduced/Sigmoid"),
    "note_features": _node_output("Relu", "model_1/re_lu_2/Relu", by_input=True),
    "note": _node_output("Sigmoid", "model_1/conv2d_3/Sigmoid"),
    "onset_features": _node_output("Relu", "model_1/re_lu_3/Relu", by_input=True),
    "onset": _node_output("Sigmoid", "model_1/conv2d_5/Sigmoid"),
}


class BasicPitchExtractor(PretrainedExtractor):
    """basic-pitch's ICASSP 2022 model as an :class:`~musiclens.extract.base.Extractor`.

    Parameters
    ----------
    batch_size
        Windows per onnxruntime call.
    num_threads
        onnxruntime intra-op threads (``None``: onnxruntime's default).
    progress
        Progress bar over window batches.
    """

    sample_rate: int = BASIC_PITCH_SAMPLE_RATE

    def __init__(self, *, batch_size: int = 8, num_threads: int | None = None, progress: bool = False) -> None:
        onnx, ort = import_onnx()
        path = basic_pitch_onnx_path()
        raw = path.read_bytes()
        model = onnx.load_from_string(raw)
        self.tensor_names: dict[str, str] = {}
        for name, find in _LAYER_FINDERS.items():
            tensor = find(model.graph)
            if tensor is None:
                raise ExtractionError(
                    f"basic-pitch graph has no tensor for layer {name!r}; this extractor expects basic-pitch "
                    "0.4.0's icassp_2022/nmp.onnx (pip install --no-deps basic-pitch==0.4.0)"
                )
            self.tensor_names[name] = tensor
        existing = {o.name for o in model.graph.output}
        for tensor in self.tensor_names.values():
            if tensor not in existing:
                model.graph.output.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
        opts = ort.SessionOptions()
        if num_threads is not None:
            opts.intra_op_num_threads = int(num_threads)
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        self.layer_names = list(_LAYER_FINDERS)
        self.batch_size = int(batch_size)
        self.progress = progress
        self.name = "basic-pitch"
        self.frame_rate_hz = BASIC_PITCH_SAMPLE_RATE / FFT_HOP
        self.weights_file = str(path)
        self.weights_hash = hash_bytes(raw)
        self.min_samples = 1
        # time axis of each tensor: the one of size WINDOW_FRAMES in a probe run
        probe = self.session.run(list(self.tensor_names.values()), {INPUT_NAME: np.zeros((1, WINDOW_SAMPLES, 1), np.float32)})
        self._time_axis: dict[str, int] = {}
        for name, arr in zip(self.tensor_names, probe):
            axes = [a for a in range(1, arr.ndim) if arr.shape[a] == WINDOW_FRAMES]
            if len(axes) != 1:
                raise ExtractionError(f"basic-pitch tensor for {name!r} has shape {arr.shape}; cannot find its time axis")
            self._time_axis[name] = axes[0]

    def n_frames(self, n_samples: int) -> int:
        """Frames of a clip of ``n_samples``: those centred inside it, ``ceil(n / 256)``."""
        return -(-int(n_samples) // FFT_HOP)

    def frame_times(self, n_frames: int) -> np.ndarray:
        """``[shape=(n_frames,)]`` seconds: frame ``t`` centred on sample ``256 t``."""
        return np.arange(n_frames, dtype=np.float64) * FFT_HOP / BASIC_PITCH_SAMPLE_RATE

    def windows(self, clip: np.ndarray) -> np.ndarray:
        """``[shape=(n_windows, 43844)]`` windows of one clip (see the module docstring)."""
        n = self.n_frames(clip.shape[0])
        n_windows = max(1, -(-n // KEEP_FRAMES))
        padded = np.concatenate([np.zeros(OVERLAP_FRAMES // 2 * FFT_HOP, np.float32), clip])
        total = (n_windows - 1) * WINDOW_HOP + WINDOW_SAMPLES
        padded = np.pad(padded, (0, max(0, total - padded.shape[0])))
        return np.stack([padded[w * WINDOW_HOP: w * WINDOW_HOP + WINDOW_SAMPLES] for w in range(n_windows)])

    def _run(self, windows: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
        outs = self.session.run([self.tensor_names[n] for n in names], {INPUT_NAME: windows[:, :, None]})
        res: dict[str, np.ndarray] = {}
        for name, arr in zip(names, outs):
            t = np.moveaxis(arr, self._time_axis[name], 1)
            res[name] = t.reshape(t.shape[0], t.shape[1], -1).astype(np.float32)
        return res

    def _per_clip(
        self, clips: list[np.ndarray], ids: list[str], names: list[str]
    ) -> tuple[list[dict[str, np.ndarray]], list[int]]:
        """Windows of all clips in batches; ``frame_times[t] = 256 t / 22050``."""
        wins = [self.windows(c) for c in clips]
        counts = [w.shape[0] for w in wins]
        joined = run_batched(np.concatenate(wins), names, self._run, batch_size=self.batch_size,
                             desc=self.name, progress=self.progress)
        half = OVERLAP_FRAMES // 2
        per_clip: list[dict[str, np.ndarray]] = []
        offset = 0
        valid = []
        for clip, c in zip(clips, counts):
            n = self.n_frames(clip.shape[0])
            valid.append(n)
            per_clip.append({
                name: joined[name][offset:offset + c, half:half + KEEP_FRAMES].reshape(c * KEEP_FRAMES, -1)[:n]
                for name in names
            })
            offset += c
        return per_clip, valid

    def info(self) -> dict[str, Any]:
        """Architecture, weights hash and options."""
        return {
            **info_head(self.name, "basic-pitch", "basic-pitch"),
            "runtime": "onnxruntime (CPUExecutionProvider)",
            "weights_file": self.weights_file,
            "weights_hash": self.weights_hash,
            "randomized": False,
            "sample_rate": BASIC_PITCH_SAMPLE_RATE,
            "hop_length": FFT_HOP,
            "frame_rate_hz": self.frame_rate_hz,
            "window_samples": WINDOW_SAMPLES,
            "window_hop_samples": WINDOW_HOP,
            "overlap_frames": OVERLAP_FRAMES,
            "graph_tensors": dict(self.tensor_names),
            "layers": list(self.layer_names),
            "frame_convention": "frame t centred on sample 256*t; windows of 43844 samples, hop 142 frames, "
                                "15 frames dropped at each window edge",
            "licence": "basic-pitch Apache-2.0 (code and model)",
        }

