"""TFRecord framing: how records follow each other in a file, and the index DALI reads.

Each record is (little-endian)::

    uint64 length | uint32 masked CRC32C of the 8 length bytes | data[length]
    | uint32 masked CRC32C of the data

with ``masked = ((crc >> 15) | (crc << 17)) + 0xa282ead8`` (mod 2**32): TensorFlow's
``core/lib/io/record_writer`` and ``crc32c.h``. Records are concatenated; no file header or
footer. Uncompressed files only (a GZIP or ZLIB TFRecord is refused with the fix).

The index NVIDIA DALI's ``fn.readers.tfrecord`` needs (``index_path``, one per file; what DALI's
``tools/tfrecord2idx`` writes): one ASCII line ``"<offset> <size>\\n"`` per record, in file
order, ``size`` being the whole framed record (12 + length + 4 bytes). The ``tfrecord`` package
(``tfrecord.tools.tfrecord2idx``) writes the same lines and reads the first column.

Standard library, numpy and ``google-crc32c``.
"""

import os
import struct
from collections import namedtuple

from ...errors import IndexFormatError, RecordFormatError
from ...format.checksums import crc32c

__all__ = ["HEAD_SIZE", "TAIL_SIZE", "masked_crc", "frame_chunks", "Locator", "scan_file",
           "read_frame", "index_bytes", "parse_index", "check_index"]

_LENGTH = struct.Struct("<Q")
_HEAD = struct.Struct("<QI")
_CRC = struct.Struct("<I")
HEAD_SIZE = _HEAD.size  # 12: length, its CRC
TAIL_SIZE = _CRC.size   # 4: the data's CRC
_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF
#: ``position``: the record's number in the file (0, 1, ...); ``offset``: where its frame
#: starts; ``length``: its data's length (the frame is 16 bytes more).
Locator = namedtuple("Locator", ["position", "offset", "length"])
_FIX = ("the file is damaged or was cut short (a copy that did not finish, a full disk): "
        "create it again from its source, or convert the records before this one")


def masked_crc(crc):
    """TFRecord's mask of a CRC32C (so that data holding its own CRC does not check out)."""
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & _U32


def frame_chunks(chunks):
    """The framed record of a record whose data is the concatenation of ``chunks``, as one
    ``bytes`` (the data's CRC is taken chunk by chunk, and the data copied once)."""
    length = sum(len(c) for c in chunks)
    head = _LENGTH.pack(length)
    crc = 0
    for c in chunks:
        crc = crc32c(c, crc)
    return b"".join([head, _CRC.pack(masked_crc(crc32c(head)))] + list(chunks)
                    + [_CRC.pack(masked_crc(crc))])


def _compressed(head):
    if head[:2] == b"\x1f\x8b":
        return "GZIP (the bytes start with gzip's magic 1f 8b): decompress it first (gunzip)"
    if head[:1] == b"\x78" and (head[0] << 8 | head[1]) % 31 == 0:
        return ("ZLIB (the bytes start with a zlib header): decompress it first "
                "(python -c \"import sys, zlib; sys.stdout.buffer.write(zlib.decompress("
                "sys.stdin.buffer.read()))\")")
    return None


def _check_head(path, offset, position, head, size):
    """The data length of the frame whose 12 head bytes are ``head``, checked."""
    length, stored = _HEAD.unpack(head)
    if masked_crc(crc32c(head[:8])) != stored:
        compressed = _compressed(head) if offset == 0 else None
        if compressed:
            raise RecordFormatError("not an uncompressed TFRecord: this looks like a TFRecord "
                                    "compressed with %s, then read it again" % compressed,
                                    path=path, offset=offset)
        raise RecordFormatError(
            "record %d: the CRC32C of its length field does not match (stored 0x%08x, computed "
            "0x%08x; the length field reads %d): not a TFRecord file, or %s"
            % (position, stored, masked_crc(crc32c(head[:8])), length, _FIX),
            path=path, offset=offset)
    end = offset + HEAD_SIZE + length + TAIL_SIZE
    if end > size:
        raise RecordFormatError(
            "record %d: truncated: it declares %d bytes of data, so it ends at byte %d, but the "
            "file has %d bytes; %s" % (position, length, end, size, _FIX),
            path=path, offset=offset)
    return length


def scan_file(path, fd=None):
    """The :class:`Locator` of every record of a TFRecord file, in order (reads 12 bytes a
    record; checks each length's CRC and that the records end where the file does).

    Raises
    ------
    RecordFormatError
        A length whose CRC fails (also what bytes after the last record give), a record cut
        short, a compressed file.
    """
    own = fd is None
    if own:
        fd = _open(path)
    try:
        size = os.fstat(fd).st_size
        locators, offset = [], 0
        while offset < size:
            head = os.pread(fd, HEAD_SIZE, offset)
            if len(head) < HEAD_SIZE:
                raise RecordFormatError(
                    "record %d: truncated: %d bytes are left where a record's 12-byte head "
                    "(length, its CRC) starts; %s" % (len(locators), len(head), _FIX),
                    path=path, offset=offset)
            length = _check_head(path, offset, len(locators), head, size)
            locators.append(Locator(len(locators), offset, length))
            offset += HEAD_SIZE + length + TAIL_SIZE
        return locators
    finally:
        if own:
            os.close(fd)


def _open(path):
    try:
        return os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise RecordFormatError("cannot open the TFRecord file: %s" % (exc.strerror or exc),
                                path=path) from None


def read_frame(path, fd, locator):
    """The data of the record at ``locator`` (a memoryview), with both CRCs checked."""
    position, offset, length = locator
    raw = os.pread(fd, HEAD_SIZE + length + TAIL_SIZE, offset)
    if len(raw) < HEAD_SIZE + length + TAIL_SIZE:
        raise RecordFormatError(
            "record %d: truncated: %d bytes were expected from here, the file has %d; %s"
            % (position, HEAD_SIZE + length + TAIL_SIZE, len(raw), _FIX),
            path=path, offset=offset)
    view = memoryview(raw)
    declared = _check_head(path, offset, position, view[:HEAD_SIZE], offset + len(raw))
    if declared != length:
        raise RecordFormatError(
            "record %d: its length field says %d bytes, the scan said %d: the file changed "
            "since it was scanned; scan it again" % (position, declared, length),
            path=path, offset=offset)
    data = view[HEAD_SIZE:HEAD_SIZE + length]
    stored, = _CRC.unpack(view[HEAD_SIZE + length:])
    computed = masked_crc(crc32c(data))
    if computed != stored:
        raise RecordFormatError(
            "record %d: the CRC32C of its %d data bytes does not match (stored 0x%08x, "
            "computed 0x%08x): the bytes changed after they were written; %s"
            % (position, length, stored, computed, _FIX), path=path, offset=offset)
    return data


def index_bytes(sizes):
    """The DALI index of a file whose framed records have ``sizes`` (in order)."""
    lines, offset = [], 0
    for size in sizes:
        lines.append("%d %d\n" % (offset, size))
        offset += size
    return "".join(lines).encode("ascii")


def parse_index(index_path, data):
    """``[(offset, size), ...]`` from an index file's bytes; IndexFormatError names the line."""
    entries = []
    for number, line in enumerate(data.decode("ascii", "replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not all(f.isdigit() for f in fields):
            raise IndexFormatError(
                "%s, line %d: expected '<offset> <size>' (two non-negative integers, what "
                "DALI's tfrecord2idx writes), found %r; write the index again"
                % (index_path, number, line[:80]))
        entries.append((int(fields[0]), int(fields[1])))
    return entries


def check_index(index_path, data, locators, path):
    """Raise :class:`IndexFormatError` unless the index ``data`` lists exactly the records of
    ``locators`` (so DALI reads each record whole, once)."""
    entries = parse_index(index_path, data)
    for number, (entry, loc) in enumerate(zip(entries, locators), 1):
        expected = (loc.offset, HEAD_SIZE + loc.length + TAIL_SIZE)
        if entry != expected:
            raise IndexFormatError(
                "%s, line %d: says '%d %d', but record %d of %s starts at byte %d and has %d "
                "bytes: the index belongs to another version of the file; write it again"
                % ((index_path, number, entry[0], entry[1], loc.position, path) + expected))
    if len(entries) != len(locators):
        raise IndexFormatError(
            "%s: lists %d records, %s has %d: the index belongs to another version of the "
            "file; write it again" % (index_path, len(entries), path, len(locators)))
