"""Reading TensorFlow-1 checkpoints (tensor bundle V2) without TensorFlow or protobuf.

A checkpoint ``PREFIX`` is ``PREFIX.index`` (an SSTable: blocks of prefix-compressed key/value
entries, each value a ``BundleEntryProto`` giving a tensor's dtype, shape, shard, offset and size)
and ``PREFIX.data-0000k-of-0000n`` (the raw little-endian tensor bytes).  :func:`read_tf_checkpoint`
decodes both with the standard library and NumPy; only uncompressed blocks and float32 tensors
are needed (musicnn's checkpoints), and anything else is an :class:`~musiclens.errors.ExtractionError`.
The pure-Python ``tensorflow-checkpoint-reader`` package does not import beside protobuf 7, hence
this reader (tested through the musicnn port against real musicnn outputs).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

from musiclens.errors import ExtractionError

__all__ = ["read_tf_checkpoint"]

_TF_FLOAT = 1   # DT_FLOAT


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _table_block(data: bytes, handle: bytes, where: str) -> bytes:
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    if offset + size + 5 > len(data):
        raise ExtractionError(f"{where}: truncated checkpoint index")
    if data[offset + size] != 0:
        raise ExtractionError(f"{where}: compressed checkpoint index blocks are not supported")
    return data[offset:offset + size]


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * n_restarts
    pos, key, out = 0, b"", []
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        size, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        out.append((key, block[pos:pos + size]))
        pos += size
    return out


def _proto_fields(buf: bytes) -> list[tuple[int, Any]]:
    pos, out = 0, []
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        else:
            raise ExtractionError(f"unsupported protobuf wire type {wire} in checkpoint index")
        out.append((field, value))
    return out


def read_tf_checkpoint(prefix: str | Path, *, skip_optimizer: bool = True) -> dict[str, np.ndarray]:
    """Tensors of a TensorFlow (tensor bundle V2) checkpoint, without TensorFlow.

    Parameters
    ----------
    prefix
        Checkpoint prefix: ``<prefix>.index`` and ``<prefix>.data-00000-of-00001`` must exist
        (musicnn's folders use an empty file stem: ``MTT_musicnn/.index``, so pass ``MTT_musicnn/``).
    skip_optimizer
        Leave out Adam slots (``*/Adam``, ``*/Adam_1``) and ``beta1_power`` / ``beta2_power``.

    Returns
    -------
    dict
        ``{variable name: float32 array}`` in the checkpoint's shapes (TensorFlow layouts).
    """
    try:
        return _read_tf_checkpoint(str(prefix), skip_optimizer=skip_optimizer)
    except (IndexError, struct.error, UnicodeDecodeError, ValueError) as err:
        raise ExtractionError(f"could not read the TensorFlow checkpoint {prefix} ({err!r})") from err


def _read_tf_checkpoint(prefix: str, *, skip_optimizer: bool) -> dict[str, np.ndarray]:
    index = Path(prefix + ".index")
    if not index.is_file():
        raise ExtractionError(f"no TensorFlow checkpoint index at {index}")
    data = index.read_bytes()
    if len(data) < 48 or struct.unpack("<Q", data[-8:])[0] != 0xDB4775248B80FB57:
        raise ExtractionError(f"{index} is not a TensorFlow checkpoint index (bad table magic)")
    footer = data[-48:]
    _, pos = _varint(footer, 0)
    _, pos = _varint(footer, pos)          # skip the metaindex handle
    entries: dict[str, bytes] = {}
    for _, handle in _block_entries(_table_block(data, footer[pos:], str(index))):
        for key, value in _block_entries(_table_block(data, handle, str(index))):
            entries[key.decode()] = value
    shards: dict[int, bytes] = {}
    out: dict[str, np.ndarray] = {}
    for name, value in entries.items():
        if not name:
            continue                        # the bundle header
        if skip_optimizer and (name.endswith(("/Adam", "/Adam_1")) or name in ("beta1_power", "beta2_power")):
            continue
        fields = dict(_proto_fields(value))
        dtype, shard, offset, size = fields.get(1, 0), fields.get(3, 0), fields.get(4, 0), fields.get(5, 0)
        if fields.get(7):
            raise ExtractionError(f"{index}: sliced variable {name!r} is not supported")
        if dtype != _TF_FLOAT:
            raise ExtractionError(f"{index}: variable {name!r} has TensorFlow dtype {dtype}, expected float32")
        shape = [dict(_proto_fields(dim)).get(1, 0) for f, dim in _proto_fields(fields.get(2, b"")) if f == 2]
        if shard not in shards:
            path = Path(f"{prefix}.data-{shard:05d}-of-{_n_shards(entries):05d}")
            if not path.is_file():
                raise ExtractionError(f"missing checkpoint data file {path}")
            shards[shard] = path.read_bytes()
        raw = shards[shard][offset:offset + size]
        if len(raw) != size or size != 4 * int(np.prod(shape, dtype=np.int64)):
            raise ExtractionError(f"{index}: variable {name!r} has {len(raw)} bytes for shape {shape}")
        out[name] = np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)
    return out


def _n_shards(entries: dict[str, bytes]) -> int:
    header = dict(_proto_fields(entries.get("", b"")))
    return int(header.get(1, 1)) or 1


# -- pre-processing --------------------------------------------------------------------------------
