"""Checking and repairing record files: the pair check before an append, recovery of an
interrupted run's partial output, ``recpack index`` and ``recpack verify``.

Never imports mxnet; ``verify`` imports OpenCV to decode images.
"""

import io
import os

from .errors import IndexFormatError, RecordFormatError
from .header import HEADER_SIZE, unpack_record
from .index import format_index_line, index_path_for, read_index
from .recordio import MAGIC_BYTES, RecordReader

__all__ = ["check_pair", "recover_partial", "rebuild_index", "verify", "Problem"]


def check_pair(rec_path, idx_path=None):
    """Check that ``idx`` lists every record of ``rec``, in order, each whole, nothing trailing.

    Reads only frame heads (8 bytes a frame), not payloads.

    Returns
    -------
    list of (key, offset)

    Raises
    ------
    RecordFormatError, IndexFormatError
        Naming the first problem, with the fix.
    """
    idx_path = index_path_for(rec_path) if idx_path is None else idx_path
    entries = read_index(idx_path)
    with open(rec_path, "rb") as f:
        reader = RecordReader(f, path=rec_path)
        expected = 0
        for n, (key, offset) in enumerate(entries, start=1):
            if offset != expected:
                raise IndexFormatError(
                    "%s:%d: key %d points at byte %d but the previous record ends at byte %d: "
                    "the index does not describe this .rec; rebuild it with `recpack index %s`"
                    % (idx_path, n, key, offset, expected, rec_path))
            end = reader.skip_next(offset)
            if end is None:
                raise IndexFormatError("%s:%d: key %d points at byte %d, past the end of %s"
                                       % (idx_path, n, key, offset, rec_path))
            expected = end
        if expected != reader.size:
            raise RecordFormatError(
                "%d bytes follow the last indexed record (ends at byte %d): a torn write or "
                "records missing from the index; run `recpack verify %s`"
                % (reader.size - expected, expected, rec_path), path=rec_path, offset=expected)
    return entries


def complete_lines(path):
    """The whole (newline-terminated) lines of a text file; a torn last line is dropped."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    end = data.rfind(b"\n")
    return data[:end + 1].decode("utf-8", "replace").splitlines() if end >= 0 else []


def recover_partial(rec_path, idx_path):
    """Find the whole records of an interrupted write: ``(entries, end)``.

    Index lines are kept while each points at the next whole record; records written after the
    last index line (the ``.rec`` buffer was flushed, the ``.idx`` one not yet) are added back
    with their header id as key. A torn last frame is not included: truncate the file to
    ``end``.
    """
    entries = []
    for line in complete_lines(idx_path):
        try:
            key, offset = line.split("\t")
            entries.append((int(key), int(offset)))
        except ValueError:
            break
    kept = []
    end = 0
    with open(rec_path, "rb") as f:
        reader = RecordReader(f, path=rec_path)
        for key, offset in entries:
            if offset != end:
                break
            try:
                nxt = reader.skip_next(offset)
            except RecordFormatError:
                nxt = None
            if nxt is None:
                break
            kept.append((key, offset))
            end = nxt
        while True:
            f.seek(end)
            try:
                got = reader.read_next(end)
                if got is None:
                    break
                header, _ = unpack_record(got[0])
            except RecordFormatError:
                break
            kept.append((int(header.id), end))
            end = got[1]
    return kept, end


def rebuild_index(rec_path, idx_path=None, *, keys="id"):
    """Write the ``.idx`` of a ``.rec`` from its records (MXNet's ``tools/rec2idx.py``).

    Parameters
    ----------
    keys : {'id', 'position'}
        ``'id'``: each record's header id, which gives the same ``.idx`` the writer made (and
        im2rec.py: the ``.lst`` index). ``'position'``: 0, 1, 2... as rec2idx.py does.

    Returns
    -------
    int
        The number of records indexed. The index is written atomically; a damaged ``.rec``
        raises :class:`RecordFormatError` and leaves any existing index untouched.
    """
    if keys not in ("id", "position"):
        raise ValueError("keys must be 'id' or 'position', got %r" % (keys,))
    idx_path = index_path_for(rec_path) if idx_path is None else idx_path
    lines = []
    with open(rec_path, "rb") as f:
        for n, (offset, payload) in enumerate(RecordReader(f, path=rec_path)):
            if keys == "id":
                if len(payload) < HEADER_SIZE:
                    raise RecordFormatError(
                        "record %d has no image header to take a key from; use keys='position' "
                        "(--keys position)" % n, path=rec_path, offset=offset)
                key = unpack_record(payload, offset=offset, path=rec_path)[0].id
            else:
                key = n
            lines.append(format_index_line(key, offset))
    tmp = idx_path + ".partial"
    with open(tmp, "w", encoding="ascii", newline="\n") as out:
        out.writelines(lines)
    os.replace(tmp, idx_path)
    return len(lines)


class Problem(dict):
    """One problem found by :func:`verify`: ``offset``, ``key`` (or None) and ``message``."""

    def __str__(self):
        where = "byte offset %s" % self["offset"] if self["offset"] is not None else "index"
        if self.get("key") is not None:
            where += " (key %s)" % self["key"]
        return "%s: %s" % (where, self["message"])


def _resync(f, start, size):
    """Offset of the next aligned magic word at or after ``start`` (a frame head), or ``size``."""
    pos = (start + 3) & ~3
    chunk = 1 << 20
    while pos < size:
        f.seek(pos)
        data = f.read(chunk + 3)
        i = data.find(MAGIC_BYTES)
        while i >= 0 and (pos + i) & 3:
            i = data.find(MAGIC_BYTES, i + 1)
        if i >= 0:
            return pos + i
        pos += chunk
    return size


def _decode_problem(body):
    import cv2
    import numpy as np
    data = bytes(body)
    if data[:6] == b"\x93NUMPY":
        try:
            np.load(io.BytesIO(data), allow_pickle=False)
            return None
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return "stored .npy array does not load: %s" % exc
    from .probe import check_image_bytes
    try:
        check_image_bytes(data, max_pixels=None)
    except ValueError as exc:
        return str(exc)
    if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) is None:
        return "image does not decode"
    return None


def verify(rec_path, idx_path=None, *, decode=True, max_problems=1000):
    """Read every frame of ``rec_path``, check it against its index, decode every image.

    Returns
    -------
    (int, list of Problem)
        The number of whole records read, and the problems found (at most ``max_problems``).
    """
    idx_path = index_path_for(rec_path) if idx_path is None else idx_path
    problems = []

    def report(offset, key, message):
        if len(problems) < max_problems:
            problems.append(Problem(offset=offset, key=key, message=message))

    try:
        entries = read_index(idx_path)
    except FileNotFoundError:
        entries = None
        report(None, None, "no index file %s; build one with `recpack index %s`"
               % (idx_path, rec_path))
    except IndexFormatError as exc:
        entries = None
        report(None, None, str(exc))
    found = {}
    with open(rec_path, "rb") as f:
        reader = RecordReader(f, path=rec_path)
        size = reader.size
        offset = 0
        while offset < size:
            f.seek(offset)
            try:
                got = reader.read_next(offset)
            except RecordFormatError as exc:
                report(offset, None, str(exc).split(": ", 2)[-1])
                offset = _resync(f, offset + 4, size)
                continue
            if got is None:
                break
            payload, nxt = got
            try:
                header, body = unpack_record(payload)
                found[offset] = header.id
                if decode:
                    message = _decode_problem(body)
                    if message:
                        report(offset, header.id, message)
            except RecordFormatError as exc:
                found[offset] = None
                report(offset, None, str(exc))
            offset = nxt
    if entries is not None:
        listed = set()
        for key, off in entries:
            listed.add(off)
            if off not in found:
                report(off, key, "the index points here but no whole record starts here")
        for off in sorted(set(found) - listed):
            report(off, found[off], "record is not listed in the index %s" % idx_path)
        if len(listed) != len(entries):
            report(None, None, "the index lists some offsets more than once")
    return len(found), problems
