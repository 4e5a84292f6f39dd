"""``recpack index``: write the ``.idx`` of a ``.rec`` from its records (MXNet's
``tools/rec2idx.py``), and ``recpack index --salvage``: a new, whole pair of the intact records
of a truncated or damaged ``.rec``."""

from __future__ import annotations

import logging
import os

from ..errors import DuplicateKeyError, OptionError, RecordFormatError
from ..format.checks import record_starts, scan
from ..format.index import format_index_line
from ..format.names import index_path_for, stem
from ..pipeline.journal import commit, journal_path_for, recover
from ..pipeline.lock import OutputLock
from ..pipeline.writer import RecordFileWriter
from ..storage import check_regular_file

__all__ = ["rebuild_index", "salvage"]

log = logging.getLogger(__name__)


def rebuild_index(rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None, *,
                  keys: str = "id") -> int:
    """Write the ``.idx`` of a ``.rec`` from its records (MXNet's ``tools/rec2idx.py``).

    Takes the target's lock (a writer of the same pair refuses to start meanwhile, and this
    refuses while one runs) and commits the index through the journal.

    Parameters
    ----------
    keys : {'id', 'position'}
        ``'id'``: each record's header id, which gives the same ``.idx`` the writer made (and
        im2rec.py: the ``.lst`` index). ``'position'``: 0, 1, 2... as rec2idx.py does.

    Returns
    -------
    int
        The number of records indexed. A damaged ``.rec`` raises :class:`RecordFormatError`
        (``recpack index --salvage`` keeps its intact records) and leaves any existing index
        untouched.
    """
    if keys not in ("id", "position"):
        raise OptionError("keys = %r is not valid; expected 'id' or 'position'" % (keys,))
    rec_path = os.fspath(rec_path)
    idx_path = index_path_for(rec_path) if idx_path is None else os.fspath(idx_path)
    with OutputLock(rec_path, "index"):
        note = recover(journal_path_for(rec_path))
        if note:
            log.warning("%s: %s", rec_path, note)
        check_regular_file(rec_path, "the record file")
        with open(rec_path, "rb") as f:
            offsets, ids = record_starts(f, os.fstat(f.fileno()).st_size, path=rec_path)
        if keys == "id" and None in ids:
            n = ids.index(None)
            raise RecordFormatError("record %d has no image header to take a key from; use "
                                    "keys='position' (--keys position)" % n, path=rec_path,
                                    offset=offsets[n])
        lines = [format_index_line(key if keys == "id" else n, offset)
                 for n, (key, offset) in enumerate(zip(ids, offsets))]
        tmp = idx_path + ".index.partial"
        with open(tmp, "w", encoding="ascii", newline="\n") as out:
            out.writelines(lines)
            out.flush()
            os.fsync(out.fileno())
        commit(journal_path_for(rec_path), [(tmp, idx_path)])
    return len(lines)


def salvage(rec_path: str | os.PathLike, out_path: str | os.PathLike | None = None) -> dict:
    """Write a new, whole pair holding every intact record of a damaged or truncated ``.rec``.

    The records are copied byte for byte (keys are their header ids); damaged stretches are
    skipped (the walk resynchronises on the next frame), and so is a record whose id repeats
    an earlier one. The input is not changed.

    Returns
    -------
    dict
        ``path`` (the new ``.rec``; default ``NAME.salvaged.rec``), ``kept`` (records),
        ``damaged`` (stretches left out, with their byte offsets and reasons).
    """
    rec_path = os.fspath(rec_path)
    out_path = os.fspath(out_path) if out_path else stem(rec_path) + ".salvaged.rec"
    if os.path.abspath(out_path) == os.path.abspath(rec_path):
        raise OptionError("salvage writes a new file: give an output other than %s" % rec_path)
    check_regular_file(rec_path, "the record file")
    damaged, kept = [], 0
    with open(rec_path, "rb") as f, RecordFileWriter(out_path, _command="salvage") as w:
        for offset, payload, error in scan(f, path=rec_path):
            if error is not None:
                damaged.append({"offset": offset, "reason": error.reason})
                continue
            try:
                w.write_payload(payload)
                kept += 1
            except (RecordFormatError, DuplicateKeyError) as exc:
                damaged.append({"offset": offset, "reason": str(exc).split(": ", 1)[-1]})
    log.info("%s: %d intact records of %s kept, %d damaged stretches left out", out_path,
             kept, rec_path, len(damaged))
    return {"path": out_path, "kept": kept, "damaged": damaged}
