"""Reading im2rec ``.lst`` files: ``index<TAB>label[<TAB>label...]<TAB>relative/path``.

The entries are held in flat numpy arrays rather than Python lists: a 1.3M-line list costs tens of
megabytes instead of hundreds, and forked DataLoader workers share it without copying pages
(touching Python objects' reference counts would copy them).
"""

import hashlib
import os
import posixpath
from array import array

import numpy as np

from ..errors import ListFormatError
from ..format.header import EXACT_INTEGERS, MAX_KEY, label_problem
from ..storage import read_bytes

__all__ = ["ListEntries", "parse_list", "read_list_text"]


class ListEntries:
    """The parsed lines of a ``.lst`` file, in file order.

    Attributes
    ----------
    keys : numpy.ndarray of uint64
        The index column: record keys.
    source : str
        Where the list came from (for messages).
    """

    def __init__(self, keys, label_values, label_starts, path_blob, path_starts, source=None,
                 line_offsets=None, nbytes=None, sha256=None):
        self.keys = keys
        self.line_offsets = line_offsets
        self.nbytes = nbytes
        self._label_values = label_values
        self._label_starts = label_starts
        self._path_blob = path_blob
        self._path_starts = path_starts
        self.source = source
        #: sha256 of the list file's bytes (of the whole list, for a selection of it)
        self.sha256 = sha256

    def __len__(self):
        return len(self.keys)

    def key(self, i):
        return int(self.keys[i])

    def labels(self, i):
        """The labels of entry ``i`` as a float32 array (one or more values)."""
        return self._label_values[self._label_starts[i]:self._label_starts[i + 1]]

    def max_labels(self):
        if len(self) == 0:
            return 0
        return int(np.diff(self._label_starts).max())

    def path(self, i):
        """The relative path of entry ``i`` as written in the list."""
        return self._path_blob[self._path_starts[i]:self._path_starts[i + 1]].decode("utf-8")

    def part_positions(self, nsplit, part):
        """Positions of the entries in part ``part`` of ``nsplit``, as im2rec.cc splits a list.

        im2rec.cc reads the list through dmlc's text ``InputSplit``: the file's bytes are cut
        into ``nsplit`` ranges of ``ceil(size / nsplit)`` bytes and each line goes to the range
        holding the newline just before it (the first line to part 0). Parts are contiguous,
        disjoint, and together hold every line once.
        """
        if self.line_offsets is None:
            raise ValueError("these entries were not read from a file; parts need line offsets")
        if len(self) == 0:
            return np.zeros(0, dtype=np.int64)
        nstep = -(-self.nbytes // nsplit)
        owner = np.where(self.line_offsets > 0, (self.line_offsets - 1) // nstep, 0)
        return np.flatnonzero(np.minimum(owner, nsplit - 1) == part)

    def select(self, positions):
        """A new ``ListEntries`` holding only ``positions`` (in that order)."""
        positions = np.asarray(positions, dtype=np.int64)
        lab = [self.labels(i) for i in positions]
        paths = [self._path_blob[self._path_starts[i]:self._path_starts[i + 1]]
                 for i in positions]
        return ListEntries(self.keys[positions].copy(), *_pack_labels(lab), *_pack_paths(paths),
                           source=self.source, sha256=self.sha256)


def _pack_labels(labels):
    counts = np.fromiter((len(x) for x in labels), dtype=np.int64, count=len(labels))
    starts = np.zeros(len(labels) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    values = (np.concatenate(labels).astype(np.float32) if labels
              else np.zeros(0, dtype=np.float32))
    return values, starts


def _pack_paths(paths):
    counts = np.fromiter((len(p) for p in paths), dtype=np.int64, count=len(paths))
    starts = np.zeros(len(paths) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    return b"".join(paths), starts


def _check_relative(path, source, lineno, allow_outside_root):
    if allow_outside_root or (".." not in path and ":" not in path and path[0] not in "/\\"):
        return  # (no "..", no drive, not absolute: nothing that normalizes to outside the root)
    norm = posixpath.normpath(path.replace("\\", "/"))
    if posixpath.isabs(norm) or norm == ".." or norm.startswith("../") or (
            len(norm) > 1 and norm[1] == ":"):
        raise ListFormatError(
            "%s:%d: path %r is outside the image root. List files are often shared, so paths "
            "must stay inside the root; pass allow_outside_root=True (CLI: "
            "--allow-outside-root) if you trust this list" % (source, lineno, path))


def _lines(data, source):
    """``(lineno, byte offset, text)`` of every non-blank line of a list's bytes."""
    n = len(data)
    start = lineno = 0
    while start < n:
        lineno += 1
        end = data.find(b"\n", start)
        end = n if end < 0 else end
        raw, line_start, start = data[start:end], start, end + 1
        if b"\r" in raw:  # \r\n endings; a lone \r also ends a line (as bytes.splitlines)
            pieces = raw.split(b"\r")
            if len(pieces) > 2 or pieces[1]:
                raise ListFormatError("%s:%d: stray carriage return inside a line"
                                      % (source, lineno))
            raw = pieces[0]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ListFormatError("%s:%d: byte %d is not valid UTF-8"
                                  % (source, lineno, line_start + exc.start)) from None
        if line.strip():
            yield lineno, line_start, line


def _fields(line, source, lineno, allow_outside_root):
    """``(key, labels, path)`` of one line, checked."""
    fields = [f.strip() for f in line.strip().split("\t")]
    if len(fields) < 3:
        raise ListFormatError(
            "%s:%d: expected 'index<TAB>label[<TAB>label...]<TAB>path' (at least 3 "
            "tab-separated fields), found %d field(s): %r. Fields must be separated by "
            "tabs, not spaces" % (source, lineno, len(fields), line))
    try:
        key = int(fields[0])
    except ValueError:
        raise ListFormatError("%s:%d: index %r is not an integer"
                              % (source, lineno, fields[0])) from None
    if not 0 <= key <= MAX_KEY:
        raise ListFormatError("%s:%d: index %d is out of range [0, 2**64)"
                              % (source, lineno, key))
    try:
        labels = [float(x) for x in fields[1:-1]]
    except ValueError:
        raise ListFormatError("%s:%d: labels %r are not all numbers"
                              % (source, lineno, fields[1:-1])) from None
    path = fields[-1]
    if not path:
        raise ListFormatError("%s:%d: empty image path" % (source, lineno))
    _check_relative(path, source, lineno, allow_outside_root)
    return key, labels, path


def read_list_text(text, source="<list>", *, allow_outside_root=False):
    """Parse the content (``bytes`` or ``str``) of a ``.lst`` file. See :func:`parse_list`.

    Memory stays close to the list's own size: fields go straight into flat arrays, with no
    Python object per line left behind.
    """
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    keys, offsets, linenos = array("Q"), array("q"), array("q")
    label_values, label_counts = array("d"), array("q")
    paths, path_ends = bytearray(), array("q")
    for lineno, line_start, line in _lines(data, source):
        key, labels, path = _fields(line, source, lineno, allow_outside_root)
        keys.append(key)
        offsets.append(line_start)
        linenos.append(lineno)
        label_values.extend(labels)
        label_counts.append(len(labels))
        paths += path.encode("utf-8")
        path_ends.append(len(paths))
    keys = np.frombuffer(keys, dtype=np.uint64).copy()
    _check_unique(keys, data, np.frombuffer(offsets, dtype=np.int64), source)
    label_starts = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(np.frombuffer(label_counts, dtype=np.int64), out=label_starts[1:])
    values = np.frombuffer(label_values, dtype=np.float64)
    _check_labels(values, label_starts, linenos, source)
    path_starts = np.zeros(len(keys) + 1, dtype=np.int64)
    path_starts[1:] = np.frombuffer(path_ends, dtype=np.int64)
    return ListEntries(keys, values.astype(np.float32), label_starts, bytes(paths),
                       path_starts, source=source,
                       line_offsets=np.frombuffer(offsets, dtype=np.int64).copy(), nbytes=len(data),
                       sha256=hashlib.sha256(data).hexdigest())


def _check_labels(values, label_starts, linenos, source):
    """Refuse labels float32 cannot hold as written (not finite, or an integer it would
    round), naming the line: a documented deviation from im2rec.py, which rounds silently."""
    problem = label_problem(values) if len(values) else None
    if problem is None:
        return
    bad = ~(np.abs(values) <= float(np.finfo(np.float32).max))
    bad |= (values == np.floor(values)) & (np.abs(values) > EXACT_INTEGERS) & \
        (values.astype(np.float32).astype(np.float64) != values)
    first = int(np.flatnonzero(bad)[0])
    line = int(np.searchsorted(label_starts, first, side="right")) - 1
    raise ListFormatError("%s:%d: %s; labels are stored as float32, as MXNet's readers expect "
                          "(im2rec.py would round it silently): use class ids below 2**24 = "
                          "16777216, or split a large id into two labels"
                          % (source, linenos[line], problem))


def _check_unique(keys, data, offsets, source):
    """Refuse repeated indices, naming both lines (found with numpy, not a per-line dict)."""
    if len(keys) < 2:
        return
    order = np.argsort(keys, kind="stable")
    same = np.flatnonzero(keys[order][1:] == keys[order][:-1])
    if not len(same):
        return
    first, second = sorted((int(order[same[0]]), int(order[same[0] + 1])))
    lines = [data.count(b"\n", 0, int(offsets[i])) + 1 for i in (first, second)]
    raise ListFormatError("%s:%d: index %d already used on line %d; record keys must be "
                          "unique" % (source, lines[1], int(keys[first]), lines[0]))


def parse_list(path, *, allow_outside_root=False, storage_options=None):
    """Read an im2rec ``.lst`` file (local path or ``s3://``).

    Unlike ``im2rec.py``, which prints and skips bad lines, a malformed line raises before any
    record is written, naming the file and line.

    Parameters
    ----------
    path : str
    allow_outside_root : bool
        Accept absolute paths and paths with ``..`` that leave the image root.

    Raises
    ------
    ListFormatError
        Malformed line, duplicate index, or a path outside the root.
    """
    path = os.fspath(path)
    try:
        data = read_bytes(path, storage_options=storage_options, what="an im2rec list file")
    except FileNotFoundError:
        raise FileNotFoundError("list file %s not found; make one with `recpack im2rec --list "
                                "PREFIX ROOT` or mxnet_recpack.make_list" % path) from None
    return read_list_text(data, source=path, allow_outside_root=allow_outside_root)
