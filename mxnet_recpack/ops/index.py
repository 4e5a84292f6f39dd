"""``recpack index``: write the ``.idx`` of a ``.rec`` from its records (MXNet's
``tools/rec2idx.py``)."""

from __future__ import annotations

import os

from ..errors import OptionError, RecordFormatError
from ..format.framing import RecordReader
from ..format.header import HEADER_SIZE, unpack_record
from ..format.index import format_index_line
from ..format.names import index_path_for

__all__ = ["rebuild_index"]


def rebuild_index(rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None, *,
                  keys: str = "id") -> int:
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
        raise OptionError("keys = %r is not valid; expected 'id' or 'position'" % (keys,))
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
