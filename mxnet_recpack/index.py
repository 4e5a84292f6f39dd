"""The ``.idx`` file beside a ``.rec``, and random access to an indexed record file.

An ``.idx`` has one ``key<TAB>offset`` line per record, in file order: MXNet's Python reader
splits each line on the tab; DALI and dmlc's indexed splitter sort the offsets and take each
record's size from the gap to the next one, so every record must be listed and nothing else.
Standard library only (numpy for labels): this module never imports mxnet.
"""

import os

from .errors import IndexFormatError
from .header import unpack_record
from .recordio import RecordReader

__all__ = [
    "format_index_line",
    "index_path_for",
    "read_index",
    "RecordFile",
]


def index_path_for(rec_path):
    """``train.rec`` -> ``train.idx`` (any other name gets ``.idx`` appended)."""
    rec_path = os.fspath(rec_path)
    root, ext = os.path.splitext(rec_path)
    return (root if ext == ".rec" else rec_path) + ".idx"


def format_index_line(key, offset):
    """One ``.idx`` line, exactly as ``MXIndexedRecordIO.write_idx`` writes it."""
    return "%d\t%d\n" % (key, offset)


def read_index(path, *, text=None):
    """Parse an ``.idx`` file into a list of ``(key, offset)`` in file order.

    Raises
    ------
    IndexFormatError
        Naming the line number, for a line that is not ``integer<TAB>integer``.
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
                % (path, path[:-4] + ".rec" if path.endswith(".idx") else path)) from exc
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
        if offset < 0:
            raise IndexFormatError("%s:%d: negative offset %d" % (path, lineno, offset))
        entries.append((key, offset))
    return entries


class RecordFile:
    """Random and sequential read access to a ``.rec`` file and its ``.idx``.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.rec`` file; its ``.idx`` is found beside it unless ``idx_path`` is given.
    idx_path : str, optional
        Where the index is; pass ``False`` to read the ``.rec`` sequentially without one.

    Examples
    --------
    >>> with RecordFile("train.rec") as rf:
    ...     header, image_bytes = rf.read_image(rf.keys[0])
    """

    def __init__(self, path, *, idx_path=None):
        self.path = os.fspath(path)
        self.idx_path = index_path_for(self.path) if idx_path is None else idx_path
        self._f = open(self.path, "rb")
        self._reader = RecordReader(self._f, path=self.path)
        self._offsets = {}
        self.keys = []
        if self.idx_path:
            for key, offset in read_index(self.idx_path):
                if key in self._offsets:
                    raise IndexFormatError("%s: key %d is listed twice" % (self.idx_path, key))
                self._offsets[key] = offset
                self.keys.append(key)

    def __len__(self):
        return len(self.keys)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._f.close()

    def offset(self, key):
        try:
            return self._offsets[key]
        except KeyError:
            raise KeyError("key %r is not in %s" % (key, self.idx_path)) from None

    def read(self, key):
        """The raw payload of the record with this key."""
        return self._reader.read_at(self.offset(key))

    def read_image(self, key):
        """``(RecordHeader, image bytes)`` of the record with this key."""
        offset = self.offset(key)
        return unpack_record(self._reader.read_at(offset), offset=offset, path=self.path)

    def scan(self):
        """Yield ``(offset, payload)`` for every record in file order (ignores the index)."""
        self._f.seek(0)
        return iter(self._reader)

    def __iter__(self):
        """Yield ``(key, RecordHeader, image bytes)`` in index order."""
        for key in self.keys:
            header, data = self.read_image(key)
            yield key, header, data

