"""A reader for the IDX format of the original MNIST files (LeCun et al.).

Layout: 2 zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then one
big-endian uint32 per dimension, then the data. So an image file starts with the magic number
0x00000803 and a label file with 0x00000801. Every check failure names the file.
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np

from advmnist.errors import DataError

_UBYTE = 0x08
KINDS = {"images": (3, "an IDX image file"), "labels": (1, "an IDX label file")}


def _check_magic(data: bytes, name: str, kind: str | None) -> int:
    """The number of dimensions the magic number announces; a DataError when it is not the expected one."""
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    magic = int.from_bytes(data[:4], "big")
    if kind is not None:
        want_ndim, what = KINDS[kind]
        want = _UBYTE << 8 | want_ndim
        if magic != want:
            raise DataError(f"{name}: wrong magic number 0x{magic:08x} (expected 0x{want:08x}, {what})")
    elif zero != 0 or dtype != _UBYTE or not 1 <= ndim <= 4:
        raise DataError(f"{name}: wrong magic number 0x{magic:08x} (expected 0x0000080N, an unsigned-byte IDX file)")
    return ndim


def parse_idx(data: bytes, name: str, *, kind: str | None = None) -> np.ndarray:
    """Parse IDX bytes into a uint8 array; `name` appears in every error message.

    `kind` ("images" or "labels") demands that file's magic number (0x00000803 or 0x00000801).
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)} or None, not {kind!r}")
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"{name}: corrupt gzip stream ({exc})") from None
    if len(data) < 4:
        raise DataError(f"{name}: file too short to be IDX ({len(data)} bytes)")
    ndim = _check_magic(data, name, kind)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated header: {len(data)} bytes, a {ndim}-dimensional IDX header needs {header}")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + math.prod(shape)  # Python ints: no overflow
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "padded"
        raise DataError(f"{name}: {problem}: {len(data)} bytes, its header's shape {shape} needs {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx(path: str | Path, *, kind: str | None = None) -> np.ndarray:
    """Read an IDX file (plain or gzipped) into a uint8 array; `kind` as in `parse_idx`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_idx(data, str(path), kind=kind)
