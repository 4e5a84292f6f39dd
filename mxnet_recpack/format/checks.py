"""Frame-level checks of a record file and its index: no pixels, no writing.

* :func:`check_pair`: the ``.idx`` lists every record of the ``.rec``, in order, each whole,
  nothing trailing (before an append).
* :func:`scan`: every record, or the damage found instead, resynchronising after it (for
  ``verify`` and salvage).

Standard library and numpy only.
"""

import os
import threading

import numpy as np

from ..errors import IndexFormatError, RecordFormatError
from .framing import (FRAME_HEAD, LENGTH_MASK, MAGIC, MAGIC_BYTES, RecordReader,
                      aligned_magic_offsets)
from .header import HEADER_SIZE, unpack_record
from .index import read_index_arrays
from .names import index_path_for

__all__ = ["check_pair", "record_ends", "scan", "walk", "next_frame_offset",
           "record_starts"]


def check_pair(rec_path, idx_path=None, *, entries=None, last_only=False):
    """Check that ``idx`` lists every record of ``rec`` once, each whole, nothing trailing.

    Reads only frame heads (8 bytes a frame, gathered from a memory map), not payloads.
    ``entries``: the index, already read. ``last_only``: check that the offsets ascend and the
    last record ends where the file does, and no other frame (when a checksum sidecar already
    vouches for the file).

    Returns
    -------
    IndexEntries

    Raises
    ------
    RecordFormatError, IndexFormatError
        Naming the first problem, with the fix.
    """
    idx_path = index_path_for(rec_path) if idx_path is None else idx_path
    listed = read_index_arrays(idx_path) if entries is None else entries
    size = os.path.getsize(rec_path)
    # An index may list the records in any order (MXNet reads it by key): they are checked in
    # file order, and the lines named by their place in the index.
    order = np.argsort(listed.offsets, kind="stable")
    entries = listed[order] if (np.diff(order) != 1).any() else listed
    if last_only and len(entries):
        if (np.diff(entries.offsets) <= 0).any() or entries.offsets[0] != 0:
            return check_pair(rec_path, idx_path, entries=listed)  # say exactly where
        last = record_ends(rec_path, entries.offsets[-1:], size)
        ends = np.concatenate((entries.offsets[1:], last))
    else:
        ends = record_ends(rec_path, entries.offsets, size)
    starts = np.concatenate(([0], ends[:-1]))
    wrong = np.flatnonzero((entries.offsets != starts) | (ends < 0))
    if len(wrong):
        n = int(wrong[0])
        key, offset = entries[n]
        n = int(order[n])
        if ends[n] < 0 and offset == starts[n]:
            raise IndexFormatError("%s:%d: key %d points at byte %d, where no whole record is "
                                   "(past the end of %s, or damaged)"
                                   % (idx_path, n + 1, key, offset, rec_path))
        raise IndexFormatError(
            "%s:%d: key %d points at byte %d but the previous record ends at byte %d: the index "
            "does not describe this .rec; rebuild it with `recpack index %s`"
            % (idx_path, n + 1, key, offset, int(starts[n]), rec_path))
    expected = int(ends[-1]) if len(ends) else 0
    if expected != size:
        raise RecordFormatError(
            "%d bytes follow the last indexed record (ends at byte %d): a torn write or records "
            "missing from the index; run `recpack verify %s`"
            % (size - expected, expected, rec_path), path=rec_path, offset=expected)
    return listed


def record_ends(rec_path, offsets, size):
    """Where each record starting at ``offsets`` ends (-1 where none starts, or it runs past
    ``size``): frame heads gathered from a memory map, so a million records take a fraction of
    a second; records split into several frames are followed one by one."""
    ends = np.full(len(offsets), -1, dtype=np.int64)
    inside = np.flatnonzero((offsets >= 0) & (offsets + 8 <= size))
    if not len(inside):
        return ends
    mm = np.memmap(rec_path, dtype=np.uint8, mode="r")
    heads = mm[offsets[inside, None] + np.arange(8)].copy().view("<u4")
    del mm
    magic, lrec = heads[:, 0], heads[:, 1]
    whole = (magic == MAGIC) & ((lrec >> 29) == 0)
    end = offsets[inside] + 8 + ((lrec & LENGTH_MASK).astype(np.int64) + 3 & ~3)
    ok = whole & (end <= size)
    ends[inside[ok]] = end[ok]
    split = inside[(magic == MAGIC) & ((lrec >> 29) == 1)]
    if len(split):
        with open(rec_path, "rb") as f:
            reader = RecordReader(f, path=rec_path, size=size)
            for n in split:
                try:
                    nxt = reader.skip_next(int(offsets[n]))
                except RecordFormatError:
                    nxt = None
                ends[n] = -1 if nxt is None else nxt
    return ends


def next_frame_offset(f, start, size):
    """Offset of the next 4-byte-aligned magic word at or after ``start`` (where a frame may
    begin), or ``size`` when there is none: how a scan resynchronises after damage."""
    pos = (start + 3) & ~3
    chunk = 1 << 20
    while pos < size:
        f.seek(pos)
        hits = aligned_magic_offsets(f.read(chunk))
        if len(hits):
            return pos + hits[0]
        pos += chunk
    return size


def scan(f, *, path=None, size=None):
    """Walk every frame of an open ``.rec`` from the start, resynchronising after damage.

    Yields
    ------
    (offset, payload, None) for each whole record, or (offset, None, RecordFormatError) where
    no whole record starts; the scan then continues at the next aligned magic word.
    """
    reader = RecordReader(f, path=path, size=size)
    size = reader.size
    offset = 0
    while offset < size:
        f.seek(offset)
        try:
            got = reader.read_next(offset)
        except RecordFormatError as exc:
            yield offset, None, exc
            offset = next_frame_offset(f, offset + 4, size)
            continue
        if got is None:
            return
        yield offset, got[0], None
        offset = got[1]


def record_starts(f, size, *, path=None):
    """``(offsets, ids)`` of every record of an open ``.rec``, in file order, from frame heads
    and image headers only (one small read per record): what an index is made from.

    ``ids[i]`` is the header id of record ``i``, or None for a record too short to have an
    image header. Damage raises :class:`RecordFormatError` (``recpack index --salvage`` keeps
    the intact records).
    """
    reader = RecordReader(f, path=path, size=size)
    offsets, ids = [], []
    pos, want = 0, 8 + HEADER_SIZE
    while pos < size:
        f.seek(pos)
        head = f.read(want)
        if len(head) == want:
            magic, lrec = FRAME_HEAD.unpack_from(head)
            length = lrec & LENGTH_MASK
            end = pos + 8 + (length + 3 & ~3)
            if magic == MAGIC and lrec >> 29 == 0 and length >= HEADER_SIZE and end <= size:
                offsets.append(pos)
                ids.append(int.from_bytes(head[16:24], "little"))
                pos = end
                continue
        f.seek(pos)  # a split or short record, or damage: read it whole (it says what is wrong)
        got = reader.read_next(pos)
        if got is None:
            break
        payload, end = got
        offsets.append(pos)
        ids.append(int(unpack_record(payload)[0].id) if len(payload) >= HEADER_SIZE else None)
        pos = end
    return offsets, ids


_CHUNK = 16 << 20


class _Chunks:
    """A file's bytes by position, the next sequential chunk read in a thread meanwhile (reads
    release the GIL): parsing one chunk overlaps reading the next from the disk."""

    def __init__(self, f, size):
        self._f, self._size = f, size
        self._pread = hasattr(os, "pread") and hasattr(f, "fileno")
        self._ahead = None  # (position, thread, [data])

    def _read(self, pos, n):
        if self._pread:
            return os.pread(self._f.fileno(), n, pos)
        self._f.seek(pos)
        return self._f.read(n)

    def read(self, pos, n):
        """``n`` bytes at ``pos`` (fewer at the end of the file)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead[1].join()
            if ahead[0] == pos and len(ahead[2][0]) >= min(n, self._size - pos):
                data = ahead[2][0][:n]
                self._prefetch(pos + len(data))
                return data
        data = self._read(pos, n)
        self._prefetch(pos + len(data))
        return data

    def _prefetch(self, pos):
        if not self._pread or pos >= self._size:
            return
        out = [b""]
        n = min(_CHUNK, self._size - pos)
        thread = threading.Thread(target=lambda: out.__setitem__(0, self._read(pos, n)),
                                  daemon=True)
        thread.start()
        self._ahead = (pos, thread, out)


def walk(f, size, *, path=None):
    """Like :func:`scan`, reading the file in large sequential chunks (the next one read while
    this one is parsed: disk speed), and giving each record's bytes as stored too (for its
    checksum).

    Yields
    ------
    (offset, end, payload, raw, None) for each whole record (``raw`` the bytes from ``offset``
    to ``end``, frames and padding), or (offset, None, None, None, RecordFormatError).
    """
    chunks = _Chunks(f, size)
    base, buf = 0, b""
    offset = 0
    after = None  # (base, chunk) to go on with once past a record that straddled two chunks
    while offset < size:
        if after is not None and offset >= after[0]:
            (base, buf), after = after, None
        if offset < base or offset - base + 8 > len(buf):
            base, buf = offset, chunks.read(offset, _CHUNK)
        got = _record_in(buf, offset - base, size - base)
        if got == "more":  # the record runs past this chunk
            next_base = base + len(buf)
            nxt = chunks.read(next_base, _CHUNK)
            carry = bytes(buf[offset - base:])
            k = _single_frame_rest(carry, len(nxt))
            if k is not None:  # join just this record's bytes, then go on in the next chunk
                buf, after = carry + nxt[:k], (next_base, nxt)
            else:  # several frames, or larger than a chunk: join the chunks (rare)
                buf = carry + nxt
            base = offset
            got = _record_in(buf, 0, size - base)
            if got == "more":  # a record larger than a chunk
                need = _record_size(f, base, size)
                buf = buf + chunks.read(base + len(buf), need - len(buf))
                got = _record_in(buf, 0, size - base)
        if isinstance(got, RecordFormatError):
            yield offset, None, None, None, RecordFormatError(str(got), path=path,
                                                              offset=offset)
            offset = next_frame_offset(f, offset + 4, size)
            base, buf, after = offset, b"", None
            continue
        payload, length = got
        start = offset - base
        yield offset, offset + length, payload, memoryview(buf)[start:start + length], None
        offset += length


def _single_frame_rest(carry, available):
    """How many bytes past ``carry`` (a record's first bytes, its frame head among them) the
    record needs, when it is one frame and they are within ``available``; else None."""
    if len(carry) < 8:
        return None
    magic, lrec = FRAME_HEAD.unpack_from(carry)
    rest = 8 + ((lrec & LENGTH_MASK) + 3 & ~3) - len(carry)
    return rest if magic == MAGIC and lrec >> 29 == 0 and 0 < rest <= available else None


def _record_size(f, base, size):
    """Bytes from ``base`` to the end of the record there (following its frames), or what is
    left of the file if it is damaged (the parse then says why)."""
    pos = base
    while True:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            return size - base
        magic, lrec = FRAME_HEAD.unpack(head)
        if magic != MAGIC:
            return size - base
        pos += 8 + ((lrec & LENGTH_MASK) + 3 & ~3)
        if lrec >> 29 in (0, 3) or pos >= size:
            return min(pos, size) - base


def _record_in(buf, start, left):
    """``(payload, stored length)`` of the record at ``start`` of ``buf``, "more" when it runs
    past ``buf`` (but not past the file's ``left`` bytes), or the RecordFormatError."""
    view = memoryview(buf)
    parts, pos, first = [], start, True
    while True:
        if pos + 8 > len(buf):
            return "more" if pos + 8 <= left and len(buf) < left else RecordFormatError(
                "truncated frame header: the file ends inside it (an interrupted write?)")
        magic, lrec = FRAME_HEAD.unpack_from(buf, pos)
        if magic != MAGIC:
            return RecordFormatError("bad magic word 0x%08x (expected 0x%08x): not a RecordIO "
                                     "frame" % (magic, MAGIC))
        cflag, length = lrec >> 29, lrec & LENGTH_MASK
        if cflag not in ((0, 1) if first else (2, 3)):
            return RecordFormatError("frame with cflag %d where a %s should be" % (
                cflag, "record start" if first else "continuation frame"))
        end = pos + 8 + (length + 3 & ~3)
        if end > len(buf):
            return "more" if end <= left and len(buf) < left else RecordFormatError(
                "truncated frame: it declares %d payload bytes but the file ends first (an "
                "interrupted write?)" % length)
        parts.append(view[pos + 8:pos + 8 + length])
        pos = end
        if cflag in (0, 3):
            payload = parts[0] if len(parts) == 1 else MAGIC_BYTES.join(parts)
            return payload, pos - start
        first = False
