"""RecordIO framing, byte-compatible with dmlc-core (what ``mx.recordio`` writes and reads).

A record is stored as one or more frames::

    uint32 magic (0xced7230a) | uint32 cflag << 29 | length | payload | zero padding to 4 bytes

all little-endian. Wherever the magic word occurs in a payload at a 4-byte-aligned offset, the
writer ends the current frame there, drops those 4 bytes and starts a continuation frame
(cflag 1 = first, 2 = middle, 3 = last; 0 = a record in a single frame). Readers put the magic
word back. Lengths are below 2**29.

Standard library and numpy only.
"""

import io
import os
import struct

import numpy as np

from ..errors import RecordFormatError

__all__ = [
    "MAGIC",
    "MAGIC_BYTES",
    "MAX_RECORD_BYTES",
    "FRAME_HEAD",
    "LENGTH_MASK",
    "aligned_magic_offsets",
    "encode_record",
    "too_large",
    "FramedRecord",
    "stored_frame",
    "frame_buffers",
    "RecordReader",
]

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
#: Largest payload a frame (and dmlc's writer, for a whole record) accepts.
MAX_RECORD_BYTES = (1 << 29) - 1
#: A frame head: magic word, then ``cflag << 29 | length``.
FRAME_HEAD = struct.Struct("<II")
LENGTH_MASK = (1 << 29) - 1
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")


def aligned_magic_offsets(payload):
    """Offsets of the magic word in ``payload`` at 4-byte-aligned positions (the one scanner:
    the writer splits records there, ``verify`` and salvage resynchronise on them).

    dmlc checks only whole aligned words; comparing them as uint32 with numpy is about seven
    times faster than ``bytes.find`` on image data.
    """
    words = np.frombuffer(payload, dtype="<u4", count=len(payload) // 4)
    found = words == MAGIC
    if not found.any():
        return ()
    return (found.nonzero()[0] * 4).tolist()


def too_large(size):
    """The error for a record payload of ``size`` bytes, above :data:`MAX_RECORD_BYTES`."""
    return RecordFormatError("a record of %d bytes is too large: RecordIO stores records below "
                             "2**29 bytes (512 MiB); store a smaller image or split the data"
                             % size)


def encode_record(payload):
    """Frame one record exactly as dmlc's ``RecordIOWriter::WriteRecord`` does.

    Parameters
    ----------
    payload : bytes-like
        The record's bytes (for image records, ``header.pack_record(...)``'s output).

    Returns
    -------
    bytes
        The frames to append to a ``.rec`` file; their length is a multiple of 4.
    """
    payload = bytes(payload)
    size = len(payload)
    if size > MAX_RECORD_BYTES:
        raise too_large(size)
    hits = aligned_magic_offsets(payload)
    if not hits:
        return b"".join((MAGIC_BYTES, struct.pack("<I", size), payload, _PAD[size & 3]))
    parts = []
    start = 0
    for pos in hits:
        cflag = 1 if start == 0 else 2
        parts.append(FRAME_HEAD.pack(MAGIC, (cflag << 29) | (pos - start)))
        parts.append(payload[start:pos])
        start = pos + 4
    parts.append(FRAME_HEAD.pack(MAGIC, (3 << 29) | (size - start)))
    parts.append(payload[start:])
    parts.append(_PAD[size & 3])
    return b"".join(parts)


class FramedRecord:
    """A record's bytes exactly as stored in a ``.rec`` (frame head, payload, padding: one whole
    frame), which the writer appends as they are, with no re-framing.

    :func:`stored_frame` makes one from the bytes of a record's extent, checking them.
    ``buffers``: the bytes as one or more buffers (a patched head, then the stored rest: no
    copy of the image), appended with one ``writev``.
    """

    __slots__ = ("buffers",)

    def __init__(self, *buffers):
        self.buffers = buffers

    def __reduce__(self):  # to a worker process: one bytes object (a view cannot be pickled)
        return FramedRecord, (b"".join(self.buffers),)

    def payload(self):
        """The record's payload (the frame's bytes after its head, without the padding)."""
        data = self.buffers[0] if len(self.buffers) == 1 else b"".join(self.buffers)
        return memoryview(data)[8:8 + (FRAME_HEAD.unpack_from(data)[1] & LENGTH_MASK)]


def stored_frame(data, new_id=None, new_label=None):
    """``data`` (the bytes from a record's offset to the next record's) as a
    :class:`FramedRecord` when they are exactly one whole frame whose payload has an image
    header, with the header id set to ``new_id`` and a scalar label (``flag == 0``) set to
    ``new_label`` if given; None otherwise (a split record, trailing bytes, a vector label, or
    a new value that would put the magic word at an aligned position): the caller then
    re-frames the payload."""
    if len(data) < 32:
        return None
    magic, lrec = FRAME_HEAD.unpack_from(data)
    length = lrec & LENGTH_MASK
    if magic != MAGIC or lrec >> 29 or 8 + ((length + 3) & ~3) != len(data) or length < 24:
        return None
    if new_id is None and new_label is None:
        return FramedRecord(data)
    patched = bytearray(data[:32])  # frame head and image header; the image is not copied
    if new_id is not None:
        struct.pack_into("<Q", patched, 16, new_id)
    if new_label is not None:
        if struct.unpack_from("<I", data, 8)[0] != 0:
            return None
        struct.pack_into("<f", patched, 12, new_label)
    if MAGIC in struct.unpack_from("<III", patched, 12):
        return None
    return FramedRecord(bytes(patched), memoryview(data)[32:])


def _file_size(fileobj):
    try:
        return os.fstat(fileobj.fileno()).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        pass
    try:
        here = fileobj.tell()
        end = fileobj.seek(0, io.SEEK_END)
        fileobj.seek(here)
        return end
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None


def frame_buffers(head, data):
    """The frames of the record ``head + data`` as a tuple of buffers, without joining them.

    ``head`` (bytes, a multiple of 4 long: the image-record header) and ``data`` (any
    bytes-like object, e.g. the array ``cv2.imencode`` returns) are written with one
    ``os.writev`` as they are; the payload is copied only in the rare case where the magic
    word must be split out (then the result is ``(encode_record(...),)``). Byte-identical to
    ``encode_record(head + data)``.
    """
    size = len(head) + memoryview(data).nbytes
    if size > MAX_RECORD_BYTES or len(head) % 4 or (MAGIC_BYTES in head and
                                                    aligned_magic_offsets(head)) or \
            aligned_magic_offsets(data):
        return (encode_record(bytes(head) + bytes(data)),)
    return (FRAME_HEAD.pack(MAGIC, size), head, data, _PAD[size & 3])


class RecordReader:
    """Read records (and their byte offsets) from a binary file object.

    Every frame is checked: magic word, continuation flags in order, length against the bytes
    that remain. A damaged file raises :class:`~mxnet_recpack.errors.RecordFormatError` naming
    the byte offset; reading never loops, and never allocates more than the file holds.

    Parameters
    ----------
    fileobj : binary file object
        Opened for reading; seekable for :meth:`read_at`.
    path : str, optional
        Used in error messages only.
    size : int, optional
        The file's size in bytes; found with ``fstat``/``seek`` when not given.
    """

    def __init__(self, fileobj, *, path=None, size=None):
        self._f = fileobj
        self.path = path if path is not None else getattr(fileobj, "name", None)
        self.size = size if size is not None else _file_size(fileobj)

    def _error(self, message, offset):
        return RecordFormatError(message, path=self.path, offset=offset)

    def _read_exact(self, n, offset, what):
        data = self._f.read(n)
        if len(data) != n:
            raise self._error("truncated %s: expected %d bytes, found %d before the end of the "
                              "file (an interrupted write?); `recpack index --salvage` makes a "
                              "new pair of the intact records" % (what, n, len(data)), offset)
        return data

    def read_next(self, offset):
        """Read the record whose first frame starts at ``offset`` (the file is positioned there).

        Returns
        -------
        (bytes, int) or None
            The payload and the offset just past the record, or ``None`` at a clean end of file.
        """
        parts = []
        pos = offset
        first = True
        while True:
            frame = self._frame_head(pos, first)
            if frame is None:
                return None
            cflag, length, padded = frame
            data = self._read_exact(padded, pos, "frame payload") if padded else b""
            parts.append(data[:length])
            pos += 8 + padded
            if cflag in (0, 3):
                return b"".join(parts), pos
            parts.append(MAGIC_BYTES)
            first = False

    def _frame_head(self, pos, first):
        """Read and check the 8-byte frame head at ``pos`` (the file is positioned there).

        Returns ``(cflag, length, padded length)``, or None at a clean end of file where a
        record would start.
        """
        head = self._f.read(8)
        if not head and first:
            return None
        if len(head) != 8:
            raise self._error("truncated frame header: expected 8 bytes, found %d (an "
                              "interrupted write?)" % len(head), pos)
        magic, lrec = FRAME_HEAD.unpack(head)
        if magic != MAGIC:
            raise self._error("bad magic word 0x%08x (expected 0x%08x): not a RecordIO "
                              "frame; the file is damaged or not a .rec file"
                              % (magic, MAGIC), pos)
        cflag = lrec >> 29
        length = lrec & LENGTH_MASK
        if first and cflag not in (0, 1):
            raise self._error("continuation frame (cflag %d) where a record should start"
                              % cflag, pos)
        if not first and cflag not in (2, 3):
            raise self._error("frame with cflag %d inside a split record (expected a "
                              "continuation frame, cflag 2 or 3)" % cflag, pos)
        padded = (length + 3) & ~3
        if self.size is not None and pos + 8 + padded > self.size:
            raise self._error("truncated frame: it declares %d payload bytes but only %d "
                              "bytes remain in the file (an interrupted write?); `recpack "
                              "index --salvage` makes a new pair of the intact records"
                              % (length, max(0, self.size - pos - 8)), pos)
        return cflag, length, padded

    def skip_next(self, offset):
        """Check the frames of the record at ``offset`` without reading its payload.

        Reads only the 8-byte frame heads and seeks past payloads, so checking a large file's
        structure costs one small read per frame.

        Returns
        -------
        int or None
            The offset just past the record, or ``None`` at a clean end of file.
        """
        pos = offset
        first = True
        while True:
            self._f.seek(pos)
            frame = self._frame_head(pos, first)
            if frame is None:
                return None
            cflag, _, padded = frame
            pos += 8 + padded
            if cflag in (0, 3):
                return pos
            first = False

    def read_at(self, offset):
        """Read the record starting at byte ``offset``.

        Raises
        ------
        RecordFormatError
            If no whole record starts there.
        """
        if offset < 0 or (self.size is not None and offset >= self.size):
            raise self._error("offset is outside the file (size %s)" % self.size, offset)
        self._f.seek(offset)
        got = self.read_next(offset)
        if got is None:
            raise self._error("no record here: end of file", offset)
        return got[0]

    def __iter__(self):
        """Yield ``(offset, payload)`` for every record from the current position to the end."""
        try:
            offset = self._f.tell()
        except (AttributeError, OSError, io.UnsupportedOperation):
            offset = 0
        while True:
            got = self.read_next(offset)
            if got is None:
                return
            payload, nxt = got
            yield offset, payload
            offset = nxt
