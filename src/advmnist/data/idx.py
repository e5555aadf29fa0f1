"""A reader for the IDX format of the original MNIST files (LeCun et al.).

Layout: 2 zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then one
big-endian uint32 per dimension, then the data. Every check failure names the file.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from advmnist.errors import DataError

_UBYTE = 0x08


def parse_idx(data: bytes, name: str) -> np.ndarray:
    """Parse IDX bytes into a uint8 array; `name` appears in every error message."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"{name}: corrupt gzip stream ({exc})") from None
    if len(data) < 4:
        raise DataError(f"{name}: file too short to be IDX ({len(data)} bytes)")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != _UBYTE or not 1 <= ndim <= 4:
        raise DataError(f"{name}: wrong magic number {data[:4].hex()} (not an unsigned-byte IDX file)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(f"{name}: truncated or padded: {len(data)} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (plain or gzipped) into a uint8 array."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_idx(data, str(path))
