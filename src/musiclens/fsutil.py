"""Atomic writes and output ownership: results appear complete or not at all, and only where
musiclens may write.

Everything musiclens writes to a run directory goes through these helpers: the content is
written to a temporary sibling, flushed, then renamed into place (``os.replace`` is atomic on
POSIX file systems), so a killed process never leaves a half-written file that looks finished.

Every output folder musiclens makes carries a marker file, ``.musiclens.json``, naming its kind
(``stimuli``, ``features``, ``corpus``, ``train``, ``run``, ``rsa``, ``probe``, ``attention``,
``ssm``...).  :func:`check_out` is called by every command before any work starts: an output
path that is a file, lies in a folder that cannot be written, or is a non-empty folder that
musiclens did not make (or made as another kind of output) is refused with an error naming it.
musiclens never writes into, replaces or deletes a folder it did not make, ``--overwrite`` or not.
Folders written before markers existed are recognised by their manifests.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from musiclens.errors import StoreError

__all__ = [
    "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_write_with", "atomic_dir",
    "current_umask", "remove_dead_temporaries",
    "MARKER_FILE", "mark_output", "output_kind", "check_out",
]

#: The file that marks a folder as a musiclens output; its JSON names the kind.
MARKER_FILE = ".musiclens.json"


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def current_umask() -> int:
    """The process's umask (read from ``/proc`` where possible, so no other thread sees it changed)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(file)`` on ``.<name>.<pid>.<random>.tmp`` next to ``path``, sync, rename over ``path``.

    A kill at any moment leaves the old file or the new one, whole (and at most a temporary file
    that :func:`remove_dead_temporaries` clears).  The file gets the permissions an ordinary
    ``open(path, "w")`` would give (``0o666`` minus the umask), not the owner-only mode of the
    temporary file, so a lab group can read the results.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write_with`)."""
    return atomic_write_with(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def mark_output(folder: str | os.PathLike[str], kind: str) -> Path:
    """Write the marker that makes ``folder`` a musiclens output of ``kind`` (atomically)."""
    return atomic_write_json(Path(folder) / MARKER_FILE, {"musiclens_output": kind})


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _legacy_kind(folder: Path) -> str | None:
    """The kind of a musiclens output written before markers existed, from its manifests."""
    if (folder / "corpus.json").is_file():
        return "corpus"
    build = _load_json(folder / "build.json")
    if build is not None and str(build.get("format", "")).startswith("musiclens-corpus"):
        return "corpus"
    progress = _load_json(folder / "progress.json")
    if progress is not None and "key" in progress and "chunks" in progress:
        return "features"   # an unfinished feature store
    manifest = _load_json(folder / "manifest.json")
    if manifest is not None:
        fmt = manifest.get("format")
        if fmt == "musiclens.StimulusSet":
            return "stimuli"
        if fmt == "musiclens.FeatureStore":
            return "features"
        if isinstance(manifest.get("command"), str):
            return str(manifest["command"])
        if "study" in manifest and "steps" in manifest:
            return "run"
        if "objective" in manifest and "runs" in manifest:
            return "train"
    config = folder / "config.yaml"
    if config.is_file():
        import yaml

        try:
            cfg = yaml.safe_load(config.read_text())
        except (OSError, yaml.YAMLError):
            cfg = None
        if isinstance(cfg, dict):
            if isinstance(cfg.get("study"), dict):
                return "run"
            if "objective" in cfg:
                return "train"
    return None


def output_kind(folder: str | os.PathLike[str]) -> str | None:
    """The kind of musiclens output ``folder`` holds (its marker, else its manifests), or None."""
    folder = Path(folder)
    marker = _load_json(folder / MARKER_FILE)
    if marker is not None and isinstance(marker.get("musiclens_output"), str):
        return str(marker["musiclens_output"])
    return _legacy_kind(folder)


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _probe_writable(folder: Path, out: Path) -> None:
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".musiclens-probe-", dir=folder))
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise StoreError(
            f"cannot write the output {out}: {folder} is not writable ({reason}); "
            "choose an output folder (--out) where you may write"
        ) from None


def check_out(path: str | os.PathLike[str], kind: str, *, overwrite: bool | None = None) -> Path:
    """Refuse an output path musiclens must not write to, before any work starts.

    ``path`` may not exist yet, may be an empty folder, or may hold a finished or partial
    musiclens output of the same ``kind`` (the caller then resumes, reuses or, where asked,
    replaces it).  Anything else is a :class:`~musiclens.errors.StoreError` naming the path:
    a file, a folder that cannot be written (checked by creating and removing a probe folder),
    a non-empty folder without musiclens's marker or manifest, or a musiclens output of another
    kind.  ``overwrite=False`` also refuses a non-empty output of the same kind (for outputs
    that are only ever replaced whole, such as stimulus sets); None leaves that to the caller.
    Returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise StoreError(
            f"the output {path} is a file, not a folder: musiclens writes a folder of results there; "
            "choose a folder path for the output (--out)"
        )
    _probe_writable(_nearest_existing(path.parent), path)
    if path.is_dir():
        _probe_writable(path, path)
        entries = sorted(p.name for p in path.iterdir())
        if entries:
            found = output_kind(path)
            if found is None:
                shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
                raise StoreError(
                    f"the output folder {path} exists and holds files musiclens did not write ({shown}); "
                    "musiclens never writes into, replaces or deletes such a folder, --overwrite or not: "
                    "choose a new or empty output folder (--out)"
                )
            if found != kind:
                raise StoreError(
                    f"the output folder {path} holds a musiclens {found} output, not a {kind} output; "
                    "choose another output folder (--out)"
                )
            if overwrite is False:
                raise StoreError(
                    f"the output folder {path} already exists and holds a musiclens {kind} output; choose another "
                    "output folder, or replace it with overwrite=True (--overwrite on the command line)"
                )
    return path


def remove_dead_temporaries(folder: str | os.PathLike[str], name: str | None = None) -> None:
    """Remove the temporaries ``.<name>.<pid>.<random>.tmp`` (files, :func:`atomic_write_with`) and
    ``.<name>.<pid>.<random>.partial`` (folders, :func:`atomic_dir`) in ``folder`` whose process no
    longer runs (killed before its rename); ``name`` restricts it to one target's."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    pattern = f".{glob.escape(name)}.*" if name is not None else ".*.*.*"
    for tmp in [*folder.glob(pattern + ".tmp"), *folder.glob(pattern + ".partial")]:
        stem = tmp.name[: -len(tmp.suffix)]
        parts = stem[len(name) + 2:].split(".") if name is not None else stem.rsplit(".", 2)[1:]
        pid = parts[0] if parts else ""
        if not pid.isdigit() or (tmp.suffix == ".partial") != tmp.is_dir():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        except PermissionError:   # alive, another user's
            continue


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, overwrite: bool = False, kind: str | None = None) -> Iterator[Path]:
    """Build a folder in a temporary sibling and rename it to ``path`` on success.

    On any exception the temporary folder is removed and ``path`` is untouched.  The folder gets
    the permissions ``mkdir`` would give (``0o777`` minus the umask).

    Parameters
    ----------
    path
        Final folder.
    overwrite
        Replace an existing ``path``; otherwise an existing non-empty folder is an error.
    kind
        The kind of output (see :func:`check_out`): ``path`` is checked before anything is
        written (a foreign folder or another kind of output is refused, ``overwrite`` or not)
        and the finished folder carries the marker of ``kind``.

    Yields
    ------
    Path
        The temporary folder to write into.
    """
    path = Path(path)
    if kind is not None:
        check_out(path, kind, overwrite=overwrite)
    elif path.exists() and not overwrite and (not path.is_dir() or any(path.iterdir())):
        raise StoreError(
            f"output folder {path} already exists and is not empty; "
            "choose another path or pass overwrite=True (--overwrite on the command line)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(path.parent, path.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".partial", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())   # as mkdir would make it, not mkdtemp's owner-only 0o700
        yield tmp
        if kind is not None:
            mark_output(tmp, kind)
        if path.exists():
            trash = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, trash)
            os.replace(tmp, path)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
