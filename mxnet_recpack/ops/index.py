"""``recpack index``: write the ``.idx`` of a ``.rec`` from its records (MXNet's
``tools/rec2idx.py``), and ``recpack index --salvage``: a new, whole pair of the intact records
of a truncated or damaged ``.rec``."""

from __future__ import annotations

import logging
import os

import numpy as np

from ..errors import (DuplicateKeyError, IndexFormatError, OptionError, OutputError,
                      RecordFormatError)
from ..format.checks import record_starts, walk
from ..format.checksums import Checksums, Expected, crc32c, write_checksums
from ..format.index import format_index_line, read_index_arrays
from ..format.names import crc_path_for, index_path_for, stem
from ..pipeline.journal import commit, journal_path_for, recover
from ..pipeline.lock import OutputLock
from ..formats.recordio.reopen import read_sidecar
from ..pipeline.writer import RecordFileWriter
from ..storage import check_regular_file
from ..storage.local import cause_of, fix_for, io_step, remove_file, step_of

__all__ = ["rebuild_index", "salvage"]

log = logging.getLogger(__name__)
_AGAIN = ("nothing is lost", "run the same command again")


def rebuild_index(rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None, *,
                  keys: str = "id") -> int:
    """Write the ``.idx`` of a ``.rec`` from its records (MXNet's ``tools/rec2idx.py``).

    Takes the target's lock (a writer of the same pair refuses to start meanwhile, and this
    refuses while one runs) and commits the index through the journal, with the checksum
    sidecar's record of the keys brought up to date in the same commit.

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
            size = os.fstat(f.fileno()).st_size
            offsets, ids = record_starts(f, size, path=rec_path)
        if keys == "id" and None in ids:
            n = ids.index(None)
            raise RecordFormatError("record %d has no image header to take a key from; use "
                                    "keys='position' (--keys position)" % n, path=rec_path,
                                    offset=offsets[n])
        new_keys = [key if keys == "id" else n for n, key in enumerate(ids)]
        members = [(idx_path + ".index.partial", idx_path)]
        sums = _sidecar_with_keys(rec_path, size, offsets, new_keys) \
            if idx_path == index_path_for(rec_path) else None
        if sums is not None:
            members.append((crc_path_for(rec_path) + ".index.partial", crc_path_for(rec_path)))
        try:
            with io_step("writing the index %s" % members[0][0]):
                with open(members[0][0], "w", encoding="ascii", newline="\n") as out:
                    out.writelines(format_index_line(k, o) for k, o in zip(new_keys, offsets))
                    out.flush()
                    os.fsync(out.fileno())
            if sums is not None:
                with io_step("writing the checksum sidecar %s" % members[1][0]):
                    write_checksums(members[1][0], sums)
        except OSError as exc:
            for tmp, _ in members:
                remove_file(tmp)
            error = OutputError("%s: could not write the index: %s (while %s); the previous "
                                "index is intact: %s, then run the same command again"
                                % (rec_path, cause_of(exc), step_of(exc), fix_for(exc)))
            error.errno = exc.errno
            raise error from exc
        commit(journal_path_for(rec_path), members, advice=_AGAIN)
    return len(new_keys)


def _sidecar_with_keys(rec_path, size, offsets, keys):
    """The pair's checksum sidecar with these keys recorded (the index is what names records),
    or None when there is none that describes this file record by record."""
    sums = read_sidecar(crc_path_for(rec_path))
    if sums is None or sums.length != size or len(sums) != len(offsets) or \
            sums.covers != "all" or (sums.offsets is not None and not np.array_equal(
                sums.offsets, np.asarray(offsets, np.int64))):
        return None
    return Checksums(sums.crcs, size, offsets=offsets, keys=keys, run=None)


def _index_offsets(rec_path):
    try:
        return read_index_arrays(index_path_for(rec_path)).offsets
    except (OSError, IndexFormatError):
        return None


def salvage(rec_path: str | os.PathLike, out_path: str | os.PathLike | None = None) -> dict:
    """Write a new, whole pair holding every intact record of a damaged or truncated ``.rec``.

    The records are copied byte for byte (keys are their header ids); damaged stretches are
    skipped (the walk resynchronises on the next frame), and so is a record whose id repeats
    an earlier one, or whose bytes do not match the CRC32C the checksum sidecar recorded for
    them (a sidecar that no longer describes the whole file, because it was cut short or
    appended to, still vouches for each record it lists). The new pair's sidecar vouches only
    for the records that could be checked so; with none, it has no sidecar. The input is not
    changed.

    Returns
    -------
    dict
        ``path`` (the new ``.rec``; default ``NAME.salvaged.rec``), ``kept`` (records),
        ``checked`` (of those, how many matched a checksum of the old sidecar), ``damaged``
        (stretches and records left out, with their byte offsets and reasons).
    """
    rec_path = os.fspath(rec_path)
    out_path = os.fspath(out_path) if out_path else stem(rec_path) + ".salvaged.rec"
    if os.path.abspath(out_path) == os.path.abspath(rec_path):
        raise OptionError("salvage writes a new file: give an output other than %s" % rec_path)
    check_regular_file(rec_path, "the record file")
    expected = Expected(read_sidecar(crc_path_for(rec_path)), _index_offsets(rec_path))
    damaged, kept, checked, n = [], 0, 0, 0
    with open(rec_path, "rb") as f, RecordFileWriter(out_path, _command="salvage") as w:
        for offset, _, payload, raw, error in walk(f, os.fstat(f.fileno()).st_size,
                                                    path=rec_path):
            if error is not None:
                damaged.append({"offset": offset, "reason": error.reason})
                continue
            j = expected.entry(n, offset, bool(damaged))
            n += 1
            if j is not None and crc32c(raw) != expected.crc(j):
                damaged.append({"offset": offset, "reason": "its bytes do not match the CRC32C "
                                "the checksum sidecar recorded for them: the record changed "
                                "since it was written"})
                continue
            try:
                w.write_payload(bytes(payload), checked=j is not None)
                kept += 1
                checked += j is not None
            except (RecordFormatError, DuplicateKeyError) as exc:
                damaged.append({"offset": offset, "reason": str(exc).split(": ", 1)[-1]})
    log.info("%s: %d intact records of %s kept (%d checked against its checksums), %d damaged "
             "stretches left out", out_path, kept, rec_path, checked, len(damaged))
    return {"path": out_path, "kept": kept, "checked": checked, "damaged": damaged,
            "sidecar": expected.sums is not None}
