"""The checksum sidecar: a CRC32C of every record's bytes, and the ``.rec``'s length.

``train.crc`` beside ``train.rec``: any changed byte of the ``.rec`` (a pixel of a PNG, a label,
a float of a ``.npy``, a frame head) changes the CRC of the record that holds it. Little-endian::

    b"RPCRC32C" | uint64 .rec length | uint64 records | records x uint32 CRC32C | uint32 CRC32C
                                                                  of everything before it

A record's CRC covers its bytes as stored, from its offset to the next record's (frames and
padding). The writer computes them as it frames records; an append extends the sidecar without
reading the file again. Standard library, numpy and ``google-crc32c``.
"""

import os
import struct

import numpy as np

from ..errors import RecordFormatError

from google_crc32c import extend as _extend

__all__ = ["crc32c", "crc32c_of_buffers", "Checksums", "read_checksums", "write_checksums"]

_MAGIC = b"RPCRC32C"
_HEAD = struct.Struct("<8sQQ")


def _readable(data):
    """``google_crc32c`` takes bytes and numpy arrays; anything else is viewed as one."""
    return data if isinstance(data, (bytes, np.ndarray)) else np.frombuffer(data, np.uint8)


def crc32c(data, crc=0):
    """CRC32C (Castagnoli) of ``data`` (any bytes-like object), continuing ``crc``."""
    return _extend(crc, _readable(data))


def crc32c_of_buffers(buffers):
    """The CRC32C of the concatenation of ``buffers`` (as ``os.writev`` writes them)."""
    crc = 0
    for b in buffers:
        crc = _extend(crc, _readable(b))
    return crc


class Checksums:
    """The CRCs of a ``.rec``'s records, in file order, and the length they describe."""

    def __init__(self, crcs=None, length=0):
        self.crcs = np.asarray(crcs if crcs is not None else [], dtype="<u4")
        self.length = int(length)

    def __len__(self):
        return len(self.crcs)

    def to_bytes(self):
        body = _HEAD.pack(_MAGIC, self.length, len(self.crcs)) + self.crcs.astype("<u4").tobytes()
        return body + struct.pack("<I", crc32c(body))


def read_checksums(path):
    """The sidecar at ``path``, checked (magic, size, its own CRC); None when absent."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    if len(data) < _HEAD.size + 4 or data[:8] != _MAGIC:
        raise RecordFormatError("not a recpack checksum sidecar (bad magic or too short); "
                                "delete it or rebuild the pair", path=path)
    magic, length, count = _HEAD.unpack_from(data)
    end = _HEAD.size + 4 * count
    if len(data) != end + 4 or struct.unpack_from("<I", data, end)[0] != crc32c(data[:end]):
        raise RecordFormatError("the checksum sidecar is damaged (its own CRC does not match); "
                                "delete it to verify without checksums", path=path)
    return Checksums(np.frombuffer(data, "<u4", count, _HEAD.size), length)


def write_checksums(path, checksums):
    """Write the sidecar (to a temporary name: the commit moves it into place) and fsync it."""
    with open(path, "wb") as f:
        f.write(checksums.to_bytes())
        f.flush()
        os.fsync(f.fileno())
