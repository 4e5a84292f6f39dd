"""The ``.idx`` file beside a ``.rec``: one ``key<TAB>offset`` line per record, in file order.

MXNet's Python reader splits each line on the tab; DALI and dmlc's indexed splitter sort the
offsets and take each record's size from the gap to the next one, so every record must be
listed, once, and nothing else. Standard library only.
"""

import os
import warnings

import numpy as np

from ..errors import IndexFormatError
from .header import MAX_KEY
from .names import rec_path_for, strip_suffix

__all__ = [
    "format_index_line",
    "parse_index_line",
    "complete_lines",
    "read_index",
    "read_index_arrays",
    "IndexEntries",
]


def format_index_line(key, offset):
    """One ``.idx`` line, exactly as ``MXIndexedRecordIO.write_idx`` writes it."""
    return "%d\t%d\n" % (key, offset)


def parse_index_line(line):
    """``'12\t3456'`` -> ``(12, 3456)``; ``ValueError`` for anything else."""
    key, offset = line.split("\t")
    return int(key), int(offset)


def complete_lines(path):
    """The whole (newline-terminated) lines of a text file; a torn last line is dropped, and a
    missing file has none (what an interrupted writer left behind)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    end = data.rfind(b"\n")
    return data[:end + 1].decode("utf-8", "replace").splitlines() if end >= 0 else []


def _rec_of(idx_path):
    return rec_path_for(strip_suffix(idx_path, ".idx"))


def read_index(path, *, text=None):
    """Parse an ``.idx`` file into a list of ``(key, offset)`` in file order.

    Raises
    ------
    IndexFormatError
        Naming the line number, for a line that is not ``integer<TAB>integer``, or whose key
        (offset) is outside 0 .. 2**64-1 (0 .. 2**63-1).
    FileNotFoundError
        When the file is missing (with the fix in the message).
    """
    path = os.fspath(path)
    if text is None:
        try:
            with open(path, "r", encoding="ascii", newline="") as f:
                text = f.read()
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                "%s: index file not found; rebuild it with `recpack index %s`"
                % (path, _rec_of(path))) from exc
        except UnicodeDecodeError as exc:
            raise IndexFormatError("%s: not a text index file (byte %d is not ASCII)"
                                   % (path, exc.start)) from exc
    entries = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.strip().split("\t")
        if fields == [""]:
            raise IndexFormatError("%s:%d: empty line; every line must be 'key<TAB>offset'"
                                   % (path, lineno))
        if len(fields) != 2:
            raise IndexFormatError("%s:%d: expected 'key<TAB>offset', found %r"
                                   % (path, lineno, line))
        try:
            key, offset = int(fields[0]), int(fields[1])
        except ValueError as exc:
            raise IndexFormatError("%s:%d: key and offset must be integers, found %r"
                                   % (path, lineno, line)) from exc
        if not 0 <= key <= MAX_KEY:
            raise IndexFormatError("%s:%d: key %d is out of range: keys are unsigned 64-bit "
                                   "integers, 0 .. 2**64-1; rebuild the index with `recpack "
                                   "index %s`"
                                   % (path, lineno, key, _rec_of(path)))
        if not 0 <= offset < 1 << 63:
            raise IndexFormatError("%s:%d: offset %d is out of range: byte offsets are 0 .. "
                                   "2**63-1; rebuild the index with `recpack index %s`"
                                   % (path, lineno, offset, _rec_of(path)))
        entries.append((key, offset))
    return entries


class IndexEntries:
    """``(key, offset)`` pairs held as two numpy arrays (a 1.3 M-line index in 20 MB, not in
    a list of tuples): ``len``, ``[i]`` and iteration give ``(key, offset)``."""

    def __init__(self, keys, offsets):
        self.keys = np.asarray(keys, dtype=np.uint64)
        self.offsets = np.asarray(offsets, dtype=np.int64)

    @classmethod
    def from_pairs(cls, pairs):
        pairs = list(pairs)
        return cls([k for k, _ in pairs], [o for _, o in pairs])

    def __len__(self):
        return len(self.keys)

    def __getitem__(self, i):
        if isinstance(i, slice) or isinstance(i, np.ndarray):
            return IndexEntries(self.keys[i], self.offsets[i])
        return int(self.keys[i]), int(self.offsets[i])

    def __iter__(self):
        return zip(self.keys.tolist(), self.offsets.tolist())


def _fast_parse(data):
    """``(keys, offsets)`` of well-formed index bytes at C speed, or None (then the careful
    parser finds and names the problem)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    tabs, newlines = np.flatnonzero(raw == 9), np.flatnonzero(raw == 10)
    if not len(data) or data[-1:] != b"\n" or len(tabs) != len(newlines) or \
            (tabs >= newlines).any() or (tabs[1:] <= newlines[:-1]).any() or b"-" in data:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            values = np.fromstring(data, dtype=np.uint64, sep=" ")
        except (ValueError, DeprecationWarning):
            return None
    # numpy saturates what does not fit at 2**64-1: a key there may be one that is out of range
    if len(values) != 2 * len(newlines) or (values[1::2] >= np.uint64(1 << 63)).any() or \
            (values[0::2] == np.uint64(MAX_KEY)).any():
        return None
    return values[0::2].copy(), values[1::2].astype(np.int64)


def read_index_arrays(path):
    """:func:`read_index` as :class:`IndexEntries`, fast (numpy's parser) where the file is
    well formed; the errors are :func:`read_index`'s."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return IndexEntries.from_pairs(read_index(path))  # raises, with the fix
    fast = _fast_parse(data)
    if fast is None:
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError as exc:
            raise IndexFormatError("%s: not a text index file (byte %d is not ASCII)"
                                   % (path, exc.start)) from exc
        return IndexEntries.from_pairs(read_index(path, text=text))
    return IndexEntries(*fast)
