"""A batch of records framed side by side in one buffer, as they go into the ``.rec``.

Stored bytes (a pass-through image file) are read straight into the buffer behind their frame
head and image header, so a batch costs one buffer instead of a few objects per record, the
writer appends it with one ``writev`` and the magic-word scan runs once over the whole batch.
The frames are byte-identical to :func:`~.framing.frame_buffers`'s: a record whose payload holds
the magic word at an aligned position (rare) is framed again by
:func:`~.framing.encode_record`. Buffers are used again once the records of their batch are
gone (:class:`BufferPool`): no fresh memory to fault in for every batch. Standard library,
numpy and ``google-crc32c``.
"""

import sys
import threading

import numpy as np

from .checksums import crc32c
from .framing import FRAME_HEAD, MAGIC, MAX_RECORD_BYTES, encode_record, too_large

__all__ = ["FrameBatch", "BufferPool"]

_ZEROS = bytes(8)


class BufferPool:
    """``bytearray`` buffers for :class:`FrameBatch`, each handed out again once nothing but
    the pool refers to it (the views of the records framed in it are gone; CPython's reference
    count says so, so a buffer still being written is never reused). At most ``size`` are
    kept; threads may share a pool. Not pickled: a copy starts empty."""

    def __init__(self, size=8):
        self.size = size
        self._free = []
        self._lock = threading.Lock()

    def take(self, capacity):
        """A buffer no one else holds, at least ``capacity`` bytes long (its bytes are what an
        earlier batch left: :class:`FrameBatch` writes every byte it hands out)."""
        with self._lock:
            for buf in self._free:
                # references: the list, the loop variable and getrefcount's argument
                if sys.getrefcount(buf) == 3:
                    if len(buf) < capacity:
                        buf.extend(bytes(capacity - len(buf)))
                    return buf
            buf = bytearray(capacity)
            if len(self._free) < self.size:
                self._free.append(buf)
            return buf

    def __getstate__(self):
        return {"size": self.size}

    def __setstate__(self, state):
        self.__init__(state["size"])


class FrameBatch:
    """Records framed in one growing ``bytearray``.

    For each record: :meth:`begin` with its header (the image-record head), then fill
    ``buffer`` from the offset it returns (e.g. with ``read_local_into``), then :meth:`end`
    with the byte count, or :meth:`drop` when the item failed. :meth:`records` seals the
    batch: ``(frame buffers, crc)`` for every record ended, in order.

    Parameters
    ----------
    buffer : bytearray
        Where the records go (it grows when a record does not fit; its old bytes are
        overwritten). Nothing may hold a view of it until :meth:`records`.
    """

    def __init__(self, buffer):
        self.buffer = buffer
        self._at = 0
        self._start = self._data = 0
        self._spans = []  # (start, payload size) of every record ended

    @property
    def nbytes(self):
        """Bytes framed so far."""
        return self._at

    def begin(self, head):
        """Start a record whose payload begins with ``head`` (a multiple of 4 bytes long);
        the offset in :attr:`buffer` where the rest of its payload goes."""
        start = self._start = self._at
        data = start + 8 + len(head)
        if len(self.buffer) < data:
            self.buffer.extend(bytes(max(data - len(self.buffer), len(self.buffer) // 2)))
        self.buffer[start:start + 8] = _ZEROS  # the frame head, written when sealed
        self.buffer[start + 8:data] = head
        self._data = data
        return data

    def end(self, nbytes):
        """End the record begun last: ``nbytes`` bytes follow its head in :attr:`buffer`.

        Raises
        ------
        RecordFormatError
            For a record too large for RecordIO (the record is not kept: :meth:`drop`).
        """
        data_end = self._data + nbytes
        size = data_end - self._start - 8
        if size > MAX_RECORD_BYTES:
            raise too_large(size)
        pad = -size & 3
        if len(self.buffer) < data_end + pad:
            self.buffer.extend(bytes(data_end + pad - len(self.buffer)))
        self.buffer[data_end:data_end + pad] = _ZEROS[:pad]
        self._spans.append((self._start, size))
        self._at = data_end + pad

    def drop(self):
        """Forget the record begun last (its item failed)."""
        self._at = self._start

    def records(self):
        """Seal the batch: ``[(frame buffers, crc32c), ...]`` of every record ended, in order
        (views of :attr:`buffer`, which then no longer changes)."""
        buf, spans, n = self.buffer, self._spans, self._at
        # Frame heads and padding are zeros here, so every aligned magic word is in a payload.
        hits = np.flatnonzero(np.frombuffer(buf, "<u4", count=n // 4) == MAGIC)
        split = ()
        if len(hits):
            starts = np.fromiter((s for s, _ in spans), np.int64, len(spans))
            split = set((np.searchsorted(starts, hits * 4, side="right") - 1).tolist())
        pack = FRAME_HEAD.pack_into
        view, data = memoryview(buf), np.frombuffer(buf, np.uint8, count=n)
        out = []
        for r, (start, size) in enumerate(spans):
            if r in split:  # the magic word inside: dmlc's continuation frames
                frame = encode_record(bytes(view[start + 8:start + 8 + size]))
                out.append(((frame,), crc32c(frame)))
                continue
            pack(buf, start, MAGIC, size)
            stop = start + 8 + ((size + 3) & ~3)
            out.append(((view[start:stop],), crc32c(data[start:stop])))
        return out
