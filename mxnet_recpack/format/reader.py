"""Random and sequential access to the records of a ``.rec`` file through its ``.idx``.

Bytes and headers only (no pixels): standard library and numpy.
"""

import os

from ..errors import IndexFormatError
from .framing import RecordReader
from .header import unpack_record
from .index import read_index
from .names import index_path_for

__all__ = ["RecordFile"]


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
        return self.read_image_at(self.offset(key))

    def read_image_at(self, offset):
        """``(RecordHeader, image bytes)`` of the record at byte ``offset``."""
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

