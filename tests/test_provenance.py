"""Content hashes of files and folders (manifests, store keys)."""

from __future__ import annotations

import hashlib

from musiclens.provenance import hash_files, hash_path


def test_hash_path_is_names_and_bytes_in_sorted_order(tmp_path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a.bin").write_bytes(b"\x00\x01")
    (tmp_path / "b" / "c.json").write_text("{}")
    h = hashlib.sha256()
    for name, data in (("a.bin", b"\x00\x01"), ("b/c.json", b"{}")):
        h.update(name.encode())
        h.update(data)
    assert hash_path(tmp_path) == h.hexdigest()
    assert hash_path(tmp_path / "a.bin") == hashlib.sha256(b"a.bin\x00\x01").hexdigest()
    before = hash_path(tmp_path)
    (tmp_path / "a.bin").write_bytes(b"\x00\x02")              # one byte: another hash
    assert hash_path(tmp_path) != before


def test_large_inputs_hash_names_and_sizes_only(tmp_path) -> None:
    f = tmp_path / "big.npy"
    f.write_bytes(b"x" * 100)
    fingerprint = hash_files([f], max_bytes=10)
    assert fingerprint == hashlib.sha256(b"big.npy100").hexdigest() != hash_files([f])
    f.write_bytes(b"y" * 100)                                    # same size: same fingerprint, by design
    assert hash_files([f], max_bytes=10) == fingerprint
