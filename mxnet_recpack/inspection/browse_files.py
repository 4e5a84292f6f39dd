"""What ``recpack browse`` reads from a record file: its records by position, a few at a time.

Opening a file reads its ``.idx`` (numpy's parser) and nothing of the ``.rec``; a file without
an index (im2rec.cc writes none) is walked frame by frame only as far as the pages asked for
need. Every read is positional (``os.pread`` locally, a ranged request for a URL), so the
server's threads share one open file, and every byte read is counted (``source.bytes_read``).
Beside the file: the class names of ``NAME.classes.tsv`` (what ``im2rec --list`` writes), its
failure report, and InsightFace's layout when key 0 is its header record.
"""

import json
import os
import re
import struct
import threading
from collections import namedtuple

import numpy as np

from ..errors import IndexFormatError, RecordFormatError, RecpackError
from ..format.framing import FRAME_HEAD, LENGTH_MASK, MAGIC, RecordReader
from ..format.header import HEADER_SIZE, unpack_record
from ..format.index import IndexEntries, read_index, read_index_arrays
from ..format.names import index_path_for, report_path_for, stem
from ..storage import check_regular_file, is_url

__all__ = ["BrowsedFile", "Source", "Head", "classes_path_candidates"]

#: A URL is read in ranges of at least this much (a frame head and an image header, with room
#: to spare), and while the frames of a file without an index are walked, of this much.
_URL_READAHEAD, _URL_WALK_READAHEAD = 4 << 10, 64 << 10
_HEAD = 8 + HEADER_SIZE  # frame head + image header
_SIDECAR_LIMIT = 16 << 20  # classes.tsv and failure reports: read this much at most
_FAILURES_SHOWN = 1000

#: One record as a grid shows it: position, key, byte offset, header, whether it holds an
#: image, and the payload's length; ``error`` (a RecordFormatError) when it cannot be read.
Head = namedtuple("Head", ["pos", "key", "offset", "header", "has_image", "length", "error"])


class Source:
    """Positional reads of one local file or URL, counted in ``reads`` and ``bytes_read``."""

    def __init__(self, path, storage_options=None):
        self.path, self.url = path, is_url(path)
        self.reads = self.bytes_read = 0
        self._count = threading.Lock()
        self._options = storage_options
        if self.url:
            from ..storage.remote import filesystem, remote_errors
            self._fs, self._where = filesystem(path, storage_options)
            self._errors = remote_errors
            with remote_errors(path, "looking it up"):
                self.size = int(self._fs.size(self._where))
            self.readahead = _URL_READAHEAD
        else:
            check_regular_file(path, "the record file")
            self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            self.size = os.fstat(self._fd).st_size
            self.readahead = 0

    def read(self, offset, n):
        """``n`` bytes at ``offset`` (fewer at the end of the file)."""
        n = max(0, min(n, self.size - offset))
        if not n:
            return b""
        if self.url:
            with self._errors(self.path, "reading records"):
                data = self._fs.cat_file(self._where, start=offset, end=offset + n)
        else:
            data = os.pread(self._fd, n, offset)
        with self._count:
            self.reads += 1
            self.bytes_read += len(data)
        return data

    def exists_beside(self, path):
        """Whether the sidecar ``path`` (a local path, or a URL beside this one) exists."""
        if self.url:
            from ..storage.remote import filesystem
            fs, where = filesystem(path, self._options)
            with self._errors(path, "looking it up"):
                return fs.exists(where)
        try:
            return check_regular_file(path, "a sidecar file", missing_ok=True)
        except (RecpackError, OSError):  # a folder or a device of that name: no sidecar
            return False

    def read_sidecar(self, path, limit):
        """The first ``limit`` bytes of the sidecar ``path`` (``limit + 1`` when it is
        longer: so the caller can tell)."""
        if self.url:
            from ..storage.remote import filesystem
            fs, where = filesystem(path, self._options)
            with self._errors(path, "reading it"):
                return fs.cat_file(where, start=0, end=limit + 1)
        with open(path, "rb") as f:
            return f.read(limit + 1)

    def close(self):
        if not self.url:
            os.close(self._fd)


class _At:
    """A read-only file object over a :class:`Source` (what :class:`RecordReader` reads),
    reading ahead by the source's ``readahead``."""

    def __init__(self, source, pos=0, readahead=None):
        self.source, self.pos = source, pos
        self.readahead = source.readahead if readahead is None else readahead
        self._start, self._buf = 0, b""

    def seek(self, pos, whence=0):
        self.pos = pos if whence == 0 else (self.pos + pos if whence == 1 else
                                            self.source.size + pos)
        return self.pos

    def tell(self):
        return self.pos

    def read(self, n=-1):
        n = self.source.size - self.pos if n is None or n < 0 else n
        lo = self.pos - self._start
        if not 0 <= lo or lo + n > len(self._buf):
            self._start = self.pos
            self._buf = self.source.read(self.pos, max(n, self.readahead))
            lo = 0
        data = self._buf[lo:lo + n]
        self.pos += len(data)
        return data


def classes_path_candidates(rec_path):
    """Where ``NAME.classes.tsv`` may be for ``rec_path``: beside it under its own name, then
    without ``.partNNN``, ``_train``/``_val``/``_test``/``_rest`` and a chunk's ``_N`` (the
    names ``im2rec --list``, ``--nsplit`` and ``split`` give the files made from one list)."""
    base, out = stem(rec_path), []
    for pattern in (r"\.part\d+$", r"_(train|val|test|rest)$", r"_\d+$"):
        out.append(base)
        base = re.sub(pattern, "", base)
    out.append(base)
    return [p + ".classes.tsv" for p in dict.fromkeys(out)]


def _parse_classes(text):
    """``{label: name}`` from ``label<TAB>name`` lines (others are ignored)."""
    classes = {}
    for line in text.splitlines():
        label, _, name = line.partition("\t")
        if name and re.fullmatch(r"-?\d+", label.strip()):
            classes[int(label)] = name.strip()
    return classes


class _Walk:
    """The records of a file without an index, found frame by frame as far as needed."""

    def __init__(self, source, path):
        self.source, self.path = source, path
        self.offsets, self.ids = [], []
        self.next, self.done, self.error = 0, False, None
        self.lock = threading.Lock()
        self._f = _At(source, readahead=_URL_WALK_READAHEAD if source.url else 0)

    def extend(self, want, budget):
        """Find records until ``want`` are known, the file ends or ``budget`` more were read."""
        with self.lock:
            for _ in range(budget):
                if len(self.offsets) >= want or self.done:
                    break
                try:
                    self._step()
                except RecordFormatError as exc:
                    self.error, self.done = exc, True
        return len(self.offsets)

    def _step(self):
        pos, size = self.next, self.source.size
        if pos >= size:
            self.done = True
            return
        self._f.seek(pos)
        head = self._f.read(_HEAD)
        if len(head) == _HEAD:
            magic, lrec = FRAME_HEAD.unpack_from(head)
            length = lrec & LENGTH_MASK
            end = pos + 8 + ((length + 3) & ~3)
            if magic == MAGIC and lrec >> 29 == 0 and length >= HEADER_SIZE and end <= size:
                self.offsets.append(pos)
                self.ids.append(int.from_bytes(head[16:24], "little"))
                self.next = end
                return
        self._f.seek(pos)  # split, short or damaged: the reader reads it whole, or says why
        got = RecordReader(self._f, path=self.path, size=size).read_next(pos)
        if got is None:
            self.done = True
            return
        payload, self.next = got
        self.offsets.append(pos)
        self.ids.append(int(unpack_record(payload)[0].id) if len(payload) >= HEADER_SIZE
                        else None)


class BrowsedFile:
    """One ``.rec`` (local or URL) as the browser sees it: records by position.

    Parameters
    ----------
    path : str
        The ``.rec`` file or URL; its ``.idx`` beside it is read when there is one.
    storage_options : dict, optional
        fsspec options for a URL.
    """

    def __init__(self, path, *, storage_options=None):
        self.path = os.fspath(path)
        self.name = self.path.rstrip("/").rsplit("/", 1)[-1].rsplit(os.sep, 1)[-1]
        self.source = Source(self.path, storage_options)
        self.size = self.source.size
        self.idx_path = index_path_for(self.path)
        self.keys = self.offsets = self._walk = self._sorted = self._layout = None
        try:
            if self.source.exists_beside(self.idx_path):
                self.keys, self.offsets = self._read_index(storage_options)
            else:
                self.idx_path = None
                self._walk = _Walk(self.source, self.path)
            self.classes, self.classes_path = self._read_classes()
            report = report_path_for(self.path)
            self.report_path = report if self.source.exists_beside(report) else None
        except BaseException:
            self.source.close()
            raise
        self._lock = threading.RLock()  # face_layout looks keys up under it

    def _read_index(self, storage_options):
        if is_url(self.idx_path):
            from ..storage import read_bytes
            data = read_bytes(self.idx_path, storage_options=storage_options)
            try:
                text = data.decode("ascii")
            except UnicodeDecodeError as exc:
                raise IndexFormatError("%s: not a text index file (byte %d is not ASCII)"
                                       % (self.idx_path, exc.start)) from exc
            entries = IndexEntries.from_pairs(read_index(self.idx_path, text=text))
        else:
            entries = read_index_arrays(self.idx_path)
        return entries.keys, entries.offsets

    def _read_classes(self):
        for path in classes_path_candidates(self.path):
            if self.source.exists_beside(path):
                data = self.source.read_sidecar(path, _SIDECAR_LIMIT)[:_SIDECAR_LIMIT]
                return _parse_classes(data.decode("utf-8", "replace")), path
        return {}, None

    @property
    def indexed(self):
        return self.keys is not None

    def count(self, want=0, budget=0):
        """``(records known, whether that is all of them)``; without an index, first walk on
        until ``want`` records are known (at most ``budget`` more records read)."""
        if self.indexed:
            return len(self.keys), True
        if want > len(self._walk.offsets) and budget:
            self._walk.extend(want, budget)
        return len(self._walk.offsets), self._walk.done

    def walked_bytes(self):
        """How far a file without an index has been walked (its size once it is all known)."""
        return self.size if self.indexed else min(self._walk.next, self.size)

    def walk_error(self):
        """The damage that stopped the walk of a file without an index, or None."""
        return None if self.indexed else self._walk.error

    def where(self, pos):
        """``(key, byte offset)`` of position ``pos`` (known: see :meth:`count`)."""
        if self.indexed:
            return int(self.keys[pos]), int(self.offsets[pos])
        return self._walk.ids[pos], self._walk.offsets[pos]

    def reader(self):
        """A reader to pass to :meth:`head` for records read one after the other (for a URL,
        it reads ahead a little: small records are read a few at a time)."""
        return _At(self.source)

    def head(self, pos, reader=None):
        """The :data:`Head` of position ``pos``, reading its header and labels only."""
        key, offset = self.where(pos)
        try:
            header, has_image, length = self._read_head(offset, reader or self.reader())
        except RecordFormatError as exc:
            return Head(pos, key, offset, None, False, None, exc)
        return Head(pos, key, offset, header, has_image, length, None)

    def _read_head(self, offset, f):
        f.seek(offset)
        head = f.read(_HEAD)
        if len(head) == _HEAD:
            magic, lrec = FRAME_HEAD.unpack_from(head)
            length = lrec & LENGTH_MASK
            if magic == MAGIC and lrec >> 29 == 0 and length >= HEADER_SIZE and \
                    offset + 8 + length <= self.size:
                flag = struct.unpack_from("<I", head, 8)[0]
                need = HEADER_SIZE + 4 * flag
                if need <= length:
                    labels = f.read(4 * flag) if flag else b""
                    header, _ = unpack_record(head[8:] + labels, offset=offset, path=self.path)
                    return header, length > need, length
        payload, _ = self._read_whole(offset)  # split or damaged: read whole, or say why
        header, image = unpack_record(payload, offset=offset, path=self.path)
        return header, len(image) > 0, len(payload)

    def _read_whole(self, offset):
        f = _At(self.source, offset)
        got = RecordReader(f, path=self.path, size=self.size).read_next(offset)
        if got is None:
            raise RecordFormatError("no record here: the file ends", path=self.path,
                                    offset=offset)
        return got

    def record(self, pos):
        """``(key, offset, stored bytes, RecordHeader, image bytes)`` of position ``pos``."""
        key, offset = self.where(pos)
        payload, end = self._read_whole(offset)
        header, image = unpack_record(payload, offset=offset, path=self.path)
        return key, offset, end - offset, header, image

    def positions_of(self, keys):
        """The position of each of ``keys`` (-1 where there is none)."""
        keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
        if self.indexed:
            with self._lock:
                if self._sorted is None:
                    order = np.argsort(self.keys, kind="stable")
                    self._sorted = self.keys[order], order
            ordered, order = self._sorted
        else:
            found = np.array([-1 if k is None else k for k in self._walk.ids], np.int64)
            order = np.flatnonzero(found >= 0)
            order = order[np.argsort(found[order], kind="stable")]
            ordered = found[order].astype(np.uint64)
        if not len(ordered):
            return np.full(len(keys), -1, np.int64)
        at = np.minimum(np.searchsorted(ordered, keys), len(ordered) - 1)
        return np.where(ordered[at] == keys, order[at], -1).astype(np.int64)

    def key_range(self, lo, hi):
        """The positions whose key is in ``lo .. hi`` (either may be None), indexed files."""
        keys = self.keys
        mask = np.ones(len(keys), bool)
        if lo is not None:
            mask &= keys >= np.uint64(lo)
        if hi is not None:
            mask &= keys <= np.uint64(hi)
        return np.flatnonzero(mask)

    def face_layout(self):
        """``(first identity key, end key)`` of InsightFace's layout, or None: key 0 is a
        label-only record with ``flag >= 2`` whose label is ``[first, end]``, integers with
        ``1 <= first <= end`` (the test of :func:`~mxnet_recpack.sources.insightface.
        read_layout`, without mapping every image key)."""
        with self._lock:
            if self._layout is None:
                self._layout = (self._find_layout(),)
        return self._layout[0]

    def _find_layout(self):
        if not self.indexed:
            return None
        p = int(self.positions_of([0])[0])
        if p < 0:
            return None
        head = self.head(p)
        if head.error is not None or head.has_image or head.header.flag < 2:
            return None
        first, end = (float(v) for v in head.header.label[:2])
        if not (np.isfinite(first) and np.isfinite(end)) or first != int(first) or \
                end != int(end) or not 1 <= first <= end:
            return None
        return int(first), int(end)

    def failures(self):
        """``(the first lines of the failure report as dicts, lines in the part read, whether
        the report goes on past it)``; a line that is not JSON is given as its text."""
        data = self.source.read_sidecar(self.report_path, _SIDECAR_LIMIT)
        more = len(data) > _SIDECAR_LIMIT
        lines = data[:_SIDECAR_LIMIT].decode("utf-8", "replace").splitlines()
        rows = []
        for line in lines[:_FAILURES_SHOWN]:
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            rows.append(row if isinstance(row, dict) else {"message": line})
        return rows, len(lines), more or len(lines) > _FAILURES_SHOWN

    def close(self):
        self.source.close()
