"""Atomic writes: complete or absent, and readable by a lab group as the user's umask allows."""

from __future__ import annotations

import os
import stat

import pytest

from musiclens.fsutil import atomic_dir, atomic_write_text, current_umask


@pytest.fixture
def umask():
    def set_(mask: int) -> None:
        os.umask(mask)

    before = os.umask(0o022)
    os.umask(before)
    yield set_
    os.umask(before)


@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775),
                                                             (0o077, 0o600, 0o700)])
def test_results_follow_the_umask_not_the_temporary_files_mode(tmp_path, umask, mask, file_mode, dir_mode) -> None:
    umask(mask)
    assert current_umask() == mask
    f = atomic_write_text(tmp_path / "table.csv", "a,b\n")
    assert stat.S_IMODE(f.stat().st_mode) == file_mode
    with atomic_dir(tmp_path / "run") as tmp:
        atomic_write_text(tmp / "inside.json", "{}")
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == dir_mode
    assert stat.S_IMODE((tmp_path / "run" / "inside.json").stat().st_mode) == file_mode


def test_a_failed_folder_leaves_nothing(tmp_path) -> None:
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "run") as tmp:
        atomic_write_text(tmp / "half.csv", "x")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_removes_only_orphans_of_dead_processes(tmp_path) -> None:
    """A kill before the rename leaves ``.<name>.<pid>.*.partial``; the next write removes it if
    that process is gone, and never touches a live process's or anything else."""
    import subprocess
    import sys

    from musiclens.fsutil import atomic_dir

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    orphan = tmp_path / f".out.{dead}.abc123.partial"
    live = tmp_path / f".out.{os.getpid()}.def456.partial"
    other = tmp_path / ".out.notapid.partial"
    for d in (orphan, live, other):
        d.mkdir()
        (d / "rsa.csv").write_text("x\n")
    with atomic_dir(tmp_path / "out", kind="rsa") as tmp:
        (tmp / "rsa.csv").write_text("new\n")
    assert not orphan.exists() and live.is_dir() and other.is_dir()
    assert (tmp_path / "out" / "rsa.csv").read_text() == "new\n"
