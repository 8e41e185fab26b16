"""mirdata loaders pointed at a local copy of a dataset — never downloading.

mirdata 1.0 no longer bundles its dataset indexes (they come from Zenodo on ``.download()``), so
offline ``initialize(name, data_home=...)`` fails at the first ``track_ids``.  The workaround
(``shared/reference/OFFLINE.md`` §7): write an index JSON for the local files and set
``dataset.index_path`` before first use.  :func:`local_mirdata` does this for any loader;
:func:`maestro_mirdata` builds the index (paths + MD5 checksums) and the metadata from a MAESTRO
folder, so ``track.notes``, ``track.audio``, ``track.split`` and ``dataset.validate()`` work.
Nothing here calls ``download``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from musiclens.corpora.maestro import find_maestro_metadata, read_maestro
from musiclens.corpora.pairs import AudioMidiSource
from musiclens.errors import DatasetError, MissingDependencyError
from musiclens.fsutil import atomic_write_json

__all__ = ["md5_file", "local_mirdata", "maestro_mirdata", "source_from_mirdata"]


def md5_file(path: str | os.PathLike[str]) -> str:
    """MD5 hex digest of a file (mirdata's checksum)."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _mirdata() -> Any:
    try:
        import mirdata
    except ImportError as err:
        raise MissingDependencyError("mirdata loaders need `pip install mirdata`") from err
    return mirdata


def local_mirdata(name: str, *, data_home: str | os.PathLike[str], tracks: dict[str, dict[str, list[str | None]]],
                  index_path: str | os.PathLike[str], metadata: dict[str, Any] | None = None,
                  version: str = "local") -> Any:
    """A mirdata dataset over local files, with an index written by us.

    Parameters
    ----------
    name
        mirdata loader name (``"maestro"``, ``"guitarset"``...).
    data_home
        Local dataset folder; index paths are relative to it.
    tracks
        ``{track_id: {file_key: [relative_path, md5]}}`` (mirdata's index format).
    index_path
        Where to write the index JSON (outside ``data_home`` is fine).
    metadata
        Pre-parsed loader metadata (``{track_id: {...}}``) for loaders that would otherwise read
        a downloaded metadata file; set on the dataset, nothing is written to ``data_home``.
    version
        Version string stored in the index.
    """
    mirdata = _mirdata()
    if name not in mirdata.list_datasets():
        raise DatasetError(f"mirdata has no loader {name!r}; available: {', '.join(mirdata.list_datasets())}")
    atomic_write_json(index_path, {"version": version, "tracks": tracks})
    ds = mirdata.initialize(name, data_home=str(data_home))
    ds.index_path = str(index_path)
    if metadata is not None:
        ds.__dict__["_metadata"] = metadata  # mirdata's cached_property reads the instance dict first
    return ds


def maestro_mirdata(root: str | os.PathLike[str], *, index_path: str | os.PathLike[str],
                    checksums: bool = True) -> Any:
    """mirdata's ``maestro`` loader over a local MAESTRO folder (official layout, any version).

    Track ids follow mirdata (``midi_filename`` without extension, e.g. ``2004/MIDI-...``).
    ``checksums=False`` skips the MD5 computation (``validate()`` then reports mismatches).
    """
    root = Path(root)
    tracks = read_maestro(root, check_files=True)
    meta_path = find_maestro_metadata(root)
    index: dict[str, dict[str, list[str | None]]] = {}
    metadata: dict[str, Any] = {}
    for t in tracks:
        midi_rel = t.midi_path.relative_to(root).as_posix()
        audio_rel = t.audio_path.relative_to(root).as_posix()
        tid = midi_rel.split(".")[0]
        index[tid] = {"audio": [audio_rel, md5_file(t.audio_path) if checksums else None],
                      "midi": [midi_rel, md5_file(t.midi_path) if checksums else None]}
        metadata[tid] = {"canonical_composer": t.composer, "canonical_title": t.title, "split": t.split,
                         "year": t.year, "midi_filename": midi_rel, "audio_filename": audio_rel,
                         "duration": t.duration_s}
    return local_mirdata("maestro", data_home=root, tracks=index, index_path=index_path, metadata=metadata,
                         version=meta_path.stem.replace("maestro-v", ""))


def source_from_mirdata(ds: Any, *, track_ids: list[str] | None = None, sample_rate: int = 16000,
                        sustain: bool = True) -> AudioMidiSource:
    """A corpus source over a mirdata dataset's tracks that have ``audio_path`` and ``midi_path``."""
    ids = list(ds.track_ids) if track_ids is None else list(track_ids)
    items = []
    for tid in ids:
        tr = ds.track(tid)
        audio, midi = getattr(tr, "audio_path", None), getattr(tr, "midi_path", None)
        if audio is None or midi is None:
            raise DatasetError(f"mirdata track {tid!r} of {ds.name} has no audio_path/midi_path; "
                               "only audio+MIDI loaders can feed a music corpus")
        items.append({"id": tid.replace("/", "__"), "audio": str(audio), "midi": str(midi),
                      "meta": {"mirdata_id": tid, "split": getattr(tr, "split", None)}})
    return AudioMidiSource(items=items, sample_rate=sample_rate, sustain=sustain, name=f"mirdata:{ds.name}",
                           extra={"data_home": str(ds.data_home)})


