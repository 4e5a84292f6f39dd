"""The checksum sidecar: for every record of a ``.rec``, its key, where it starts and a CRC32C of
its bytes; and what made the file.

``train.crc`` beside ``train.rec``: any changed byte of the ``.rec`` (a pixel of a PNG, a label,
a float of a ``.npy``, a frame head) changes the CRC of the record that holds it. Each record's
entry names its byte offset and key, so a checksum is matched to a record by where it is, not
by counting records (a damaged stretch, or records appended by another tool, do not shift the
others), and an ``.idx`` line that names another key than the one written there is caught.
Little-endian; version 2::

    b"RPCRC2\\0\\0" | uint64 .rec length | uint64 entries | uint32 meta bytes | uint32 0
    | meta (UTF-8 JSON, zero-padded to 8 bytes) | entries x uint64 offset | entries x uint64 key
    | entries x uint32 CRC32C | uint32 CRC32C of everything before it

``meta``: ``{"run": the digest of the run that last wrote the file (or null), "covers": "all"
(every record has an entry) or "some" (records whose bytes could not be checked have none:
``index --salvage`` of a file without a usable sidecar)}``. Version 1 (``b"RPCRC32C"``, CRCs
in file order, no offsets or keys), written by earlier releases, is still read.

A record's CRC covers its bytes as stored, from its offset to the next record's (frames and
padding). The writer computes them as it frames records; an append extends the sidecar without
reading the file again. Standard library, numpy and ``google-crc32c``.
"""

import json
import os
import struct

import numpy as np

from ..errors import RecordFormatError

from google_crc32c import extend as _extend

__all__ = ["crc32c", "crc32c_of_buffers", "Checksums", "read_checksums", "write_checksums",
           "Expected"]

_MAGIC_V1 = b"RPCRC32C"
_MAGIC = b"RPCRC2\0\0"
_HEAD_V1 = struct.Struct("<8sQQ")
_HEAD = struct.Struct("<8sQQII")


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
    """The checksums of a ``.rec``'s records and the length of the file they describe.

    Attributes
    ----------
    crcs : numpy.ndarray of uint32
    offsets, keys : numpy.ndarray (int64, uint64) or None
        Where each record starts and its key (None for a version-1 sidecar: in file order).
    length : int
    run : str or None
        The digest of the run that last wrote the file (see :mod:`~.pipeline.runstate`).
    covers : {'all', 'some'}
        ``'some'``: records whose bytes could not be checked have no entry.
    """

    def __init__(self, crcs=None, length=0, *, offsets=None, keys=None, run=None,
                 covers="all"):
        self.crcs = np.asarray(crcs if crcs is not None else [], dtype="<u4")
        self.length = int(length)
        self.offsets = None if offsets is None else np.asarray(offsets, dtype=np.int64)
        self.keys = None if keys is None else np.asarray(keys, dtype=np.uint64)
        self.run = run
        self.covers = covers

    def __len__(self):
        return len(self.crcs)

    @property
    def version(self):
        return 1 if self.offsets is None else 2

    def by_offset(self):
        """``{offset: entry number}`` (version 2 only)."""
        return dict(zip(self.offsets.tolist(), range(len(self.crcs))))

    def same_entries(self, other):
        """The same records, keys and checksums (the run digest aside)."""
        return self.length == other.length and np.array_equal(self.crcs, other.crcs) and \
            _same(self.offsets, other.offsets) and _same(self.keys, other.keys)

    def to_bytes(self):
        if self.offsets is None or self.keys is None:
            raise ValueError("a version-2 sidecar needs every entry's offset and key")
        meta = json.dumps({"covers": self.covers, "run": self.run}, sort_keys=True).encode()
        meta += b"\0" * (-len(meta) % 8)
        body = b"".join((_HEAD.pack(_MAGIC, self.length, len(self.crcs), len(meta), 0), meta,
                         self.offsets.astype("<i8").tobytes(), self.keys.astype("<u8").tobytes(),
                         self.crcs.astype("<u4").tobytes()))
        return body + struct.pack("<I", crc32c(body))


def _same(a, b):
    return (a is None and b is None) or (a is not None and b is not None and
                                         np.array_equal(a, b))


def read_checksums(path):
    """The sidecar at ``path``, checked (magic, size, its own CRC); None when absent."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    if len(data) >= 4 and struct.unpack_from("<I", data, len(data) - 4)[0] != crc32c(
            data[:-4]):
        raise RecordFormatError("the checksum sidecar is damaged (its own CRC does not match); "
                                "delete it to verify without checksums", path=path)
    if data[:8] == _MAGIC_V1 and len(data) >= _HEAD_V1.size + 4:
        _, length, count = _HEAD_V1.unpack_from(data)
        if len(data) == _HEAD_V1.size + 4 * count + 4:
            return Checksums(np.frombuffer(data, "<u4", count, _HEAD_V1.size), length)
    elif data[:8] == _MAGIC and len(data) >= _HEAD.size + 4:
        _, length, count, nmeta, _ = _HEAD.unpack_from(data)
        at = _HEAD.size + nmeta
        if len(data) == at + 20 * count + 4:
            try:
                meta = json.loads(data[_HEAD.size:at].rstrip(b"\0").decode("utf-8"))
            except ValueError:
                meta = None
            if isinstance(meta, dict):
                return Checksums(np.frombuffer(data, "<u4", count, at + 16 * count), length,
                                 offsets=np.frombuffer(data, "<i8", count, at),
                                 keys=np.frombuffer(data, "<u8", count, at + 8 * count),
                                 run=meta.get("run"), covers=meta.get("covers", "all"))
    raise RecordFormatError("not a recpack checksum sidecar (bad magic, size or metadata); "
                            "delete it or rebuild the pair", path=path)


def write_checksums(path, checksums):
    """Write the sidecar (to a temporary name: the commit moves it into place) and fsync it."""
    data = checksums.to_bytes()
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class Expected:
    """What the sidecar says each record found in a file should be, by where it starts.

    A version-2 sidecar names every record's offset. A version-1 one lists CRCs in file
    order: they are placed at the ``.idx``'s offsets when the index lists as many records
    (``index_offsets``), else matched by position up to the first damaged stretch (after
    which positions are not known).
    """

    def __init__(self, sums, index_offsets=None):
        self.sums = sums
        self._at = None
        self.seen = set()
        if sums is None:
            return
        if sums.version == 2:
            self._at = sums.by_offset()
        elif index_offsets is not None and len(index_offsets) == len(sums) and (
                len(index_offsets) < 2 or (np.diff(index_offsets) > 0).all()):
            self._at = dict(zip(np.asarray(index_offsets).tolist(), range(len(sums))))

    def entry(self, n, offset, damaged_before):
        """The sidecar entry for the ``n``-th whole record found, at ``offset`` (None when the
        sidecar does not cover it)."""
        if self.sums is None:
            return None
        if self._at is not None:
            j = self._at.get(int(offset))
        else:
            j = n if not damaged_before and n < len(self.sums) else None
        if j is not None:
            self.seen.add(j)
        return j

    @property
    def placed(self):
        """Entries are matched by offset (not by counting records)."""
        return self._at is not None

    def crc(self, j):
        return int(self.sums.crcs[j])

    def key(self, j):
        """The key recorded for entry ``j`` (None for a version-1 sidecar)."""
        return None if self.sums.keys is None else int(self.sums.keys[j])

    def missing(self):
        """Entries no record was found for: ``[(offset or None, key or None), ...]``."""
        out = []
        for j in range(len(self.sums) if self.sums is not None else 0):
            if j not in self.seen:
                out.append((None if self.sums.offsets is None else int(self.sums.offsets[j]),
                            self.key(j)))
        return out
