"""The RecordIO sink: where a run's records go when the output is an indexed ``.rec``.

For ``NAME.rec`` and the run's tag (``.pack.partial``): ``NAME.rec.pack.partial`` and
``NAME.idx.pack.partial`` (the records and their index), ``NAME.rec.pack.partial.crcs`` (each
record's CRC32C as it was written: a resume keeps only records that still match theirs) and, at
the commit, ``NAME.crc.pack.partial`` (the checksum sidecar). An append writes its new records to
``NAME.rec.pack.partial`` too, with their final offsets in the new ``.idx``; the commit copies
them after the existing end of ``NAME.rec`` (in place: an append costs what it adds).

The sink knows these files and nothing of locks, journals or run states (the runner's,
:mod:`mxnet_recpack.pipeline.commit`); it says what the commit must move into place
(:meth:`RecordIOSink.finish`).
"""

import logging
import os
from array import array

import numpy as np

from ...errors import RecpackError
from ...format.checks import check_pair
from ...format.checksums import Checksums, crc32c, write_checksums
from ...format.index import IndexEntries, format_index_line
from ...format.names import crc_path_for, index_path_for, report_path_for
from ...storage.local import io_step, remove_file, write_all
from ..seams import CommitPlan
from .reopen import open_append, open_resume, read_sidecar

__all__ = ["RecordIOSink"]

log = logging.getLogger(__name__)
_IOV_MAX = 512  # well under every platform's IOV_MAX
_WRITEBACK_STEP = 32 << 20
_FADVISE = getattr(os, "posix_fadvise", None)


def _nbytes(buffer):
    return memoryview(buffer).nbytes
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", 4)


def _appending(path, *, truncate):
    """An unbuffered binary file that every write appends to (what a kill leaves is what was
    written)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
    return os.fdopen(os.open(path, flags, 0o666), "ab", buffering=0)


class RecordIOSink:
    """The files of a run writing ``path`` (a ``.rec``), its ``.idx`` and checksum sidecar.

    After opening: ``entries`` (``(key, offset)`` already in the output: appended-to or resumed
    records), ``offset`` (where the next record goes), ``length`` (an append's original
    ``.rec`` length: its records go after it).
    """

    name = "recordio"
    can_append = True
    #: What :meth:`made_by` checked, for the "already complete" message.
    as_made = ("its index, length and last record are as it wrote them (`recpack verify` "
               "checks every byte)")

    def __init__(self, path, tag=".pack.partial"):
        self.path = os.fspath(path)
        self.idx_path = index_path_for(self.path)
        self.report_path = report_path_for(self.path)
        self.crc_path = crc_path_for(self.path)
        self.rec_tmp, self.idx_tmp = self.path + tag, self.idx_path + tag
        self.crc_tmp = self.crc_path + tag
        self.sums_tmp = self.rec_tmp + ".crcs"
        self.rec = self.idx = self.sums = None
        self.length = 0
        self.crcs, self.offsets = array("I"), array("q")
        self.unchecked = []  # records the sidecar must not vouch for (see write)
        self._written = self._advised = self._advised_offset = 0
        self.entries = IndexEntries([], [])
        self.offset = 0

    # -- what is there ------------------------------------------------------------------------
    def exists(self):
        return os.path.exists(self.path) or os.path.exists(self.idx_path)

    def has_partial(self):
        return os.path.exists(self.rec_tmp)

    def temp_files(self):
        """Every file a run of this sink makes (removed when a run is discarded)."""
        return [self.rec_tmp, self.idx_tmp, self.crc_tmp, self.sums_tmp]

    def fds(self):
        return [f.fileno() for f in (self.rec, self.idx, self.sums) if f is not None]

    # -- opening ------------------------------------------------------------------------------
    def open_fresh(self, *, append=False):
        """Create the run's files (``append``: after :meth:`open_append`)."""
        with io_step("creating %s" % self.rec_tmp):
            fd = os.open(self.rec_tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
            # Unbuffered: the writer appends a whole batch per os.writev (see write).
            self.rec = os.fdopen(fd, "r+b", buffering=0)
            self.idx = _appending(self.idx_tmp, truncate=not append)
            self.sums = _appending(self.sums_tmp, truncate=True)
            remove_file(self.crc_tmp)

    def open_append(self):
        """Check the existing pair and take over its sidecar; ``(records there, the target's
        fingerprint)`` for the run state."""
        return open_append(self)

    def open_resume(self, initial_records, target, sidecar):
        """Continue the interrupted run: cut back to its last record that still checks out."""
        open_resume(self, initial_records, target, sidecar)

    # -- writing ------------------------------------------------------------------------------
    def write(self, records, checked=True):
        """Append ``(key, frame buffers, crc)`` records: their index lines and CRCs first, the
        records last (one ``writev`` per batch: several times faster than a write per record on
        common file systems), so a kill between them leaves lines and CRCs of records that are
        not there (a resume drops them), never a record its run cannot vouch for. ``checked``
        False: the checksum sidecar must not vouch for these records."""
        frames, lines, crcs, offsets, offset = [], [], array("I"), array("q"), self.offset
        for key, buffers, crc in records:
            frames += buffers
            lines.append(format_index_line(key, offset))
            crcs.append(crc)
            offsets.append(offset)
            offset += _nbytes(buffers[0]) if len(buffers) == 1 else sum(map(_nbytes, buffers))
        fd = self.rec.fileno()
        with io_step("writing the index lines to %s" % self.idx_tmp):
            write_all(self.idx.fileno(), memoryview("".join(lines).encode("ascii")))
        with io_step("writing the checksums to %s" % self.sums_tmp):
            write_all(self.sums.fileno(), memoryview(np.asarray(crcs, "<u4").tobytes()))
        with io_step("writing the records to %s" % self.rec_tmp):
            for start in range(0, len(frames), _IOV_MAX):
                chunk = frames[start:start + _IOV_MAX]
                total = offset - self.offset if len(frames) <= _IOV_MAX else \
                    sum(map(_nbytes, chunk))
                done = os.writev(fd, chunk)
                if done != total:  # a short write (rare on files): finish the rest
                    write_all(fd, memoryview(b"".join(chunk))[done:])
                self._written += total
                self.offset += total
        if not checked:
            self.unchecked.extend(range(len(self.crcs), len(self.crcs) + len(crcs)))
        self.crcs.extend(crcs)
        self.offsets.extend(offsets)
        self._write_back(fd)

    def _write_back(self, fd):
        if self._written - self._advised >= _WRITEBACK_STEP and _FADVISE is not None:
            # Start writing back what is written and let the kernel drop it from the cache:
            # the final fsync then has little left to do (measured: 600 MB in 0.28 s instead
            # of 1.75 s), and a huge output does not flood the page cache.
            end = self.rec.tell()
            _FADVISE(fd, self._advised_offset, end - self._advised_offset, _DONTNEED)
            self._advised_offset, self._advised = end, self._written

    def stored_record(self, i):
        """The bytes (frames) of the ``i``-th record already in the output when it opened."""
        start = int(self.entries.offsets[i])
        end = int(self.entries.offsets[i + 1]) if i + 1 < len(self.entries) else self.offset
        with open(self.rec_tmp if start >= self.length else self.path, "rb") as f:
            f.seek(start - (self.length if start >= self.length else 0))
            return f.read(end - start)

    # -- finishing ----------------------------------------------------------------------------
    def _sidecar(self, keys, run):
        mask = np.ones(len(self.crcs), bool)
        mask[self.unchecked] = False
        if not mask.any() and len(mask):
            return None  # no record could be checked: no sidecar vouches for them
        return Checksums(np.frombuffer(self.crcs, np.uint32)[mask], self.offset,
                         offsets=np.frombuffer(self.offsets, np.int64)[mask],
                         keys=np.asarray(keys, np.uint64)[mask], run=run,
                         covers="all" if mask.all() else "some")

    def finish(self, *, keys, run, append, sidecar=True):
        """Flush the run's files to the disk and write its checksum sidecar (recording the
        digest ``run`` of the run); what the commit moves into place."""
        with io_step("writing the records to %s" % self.rec_tmp):
            self.rec.flush()
            os.fsync(self.rec.fileno())
        with io_step("writing the index %s" % self.idx_tmp):
            os.fsync(self.idx.fileno())
        members, removes = [(self.idx_tmp, self.idx_path)], []
        sums = self._sidecar(keys, run) if sidecar else None
        if sums is not None:
            with io_step("writing the checksum sidecar %s" % self.crc_tmp):
                write_checksums(self.crc_tmp, sums)
            members.append((self.crc_tmp, self.crc_path))
        else:
            removes.append(self.crc_path)  # a sidecar of the previous file would be stale
        self.close_files()
        if append:
            return CommitPlan(members, removes, (self.path, self.length, self.rec_tmp),
                              [self.sums_tmp])
        return CommitPlan([(self.rec_tmp, self.path)] + members, removes, None,
                          [self.sums_tmp])

    def made_by(self, run):
        """True when the pair there was last written, whole, by the run of digest ``run``, and
        its index, length and last record are as that run wrote them."""
        sums = read_sidecar(self.crc_path)
        return sums is not None and sums.run is not None and sums.run == run and \
            os.path.exists(self.path) and os.path.getsize(self.path) == sums.length and \
            _describes(self, sums)

    def close_files(self):
        for f in (self.rec, self.idx, self.sums):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        self.rec = self.idx = self.sums = None


def _describes(sink, sums):
    """The pair is the one ``sums`` (a version-2 sidecar) was written with: its index lists
    every record the sidecar does, under the same key, the last record ends at the end of the
    file, and its bytes match their CRC32C."""
    try:
        entries = check_pair(sink.path, sink.idx_path, last_only=True)
    except (RecpackError, OSError):
        return False
    at = dict(zip(entries.offsets.tolist(), entries.keys.tolist()))
    if sums.offsets is None or any(at.get(o) != k for o, k in zip(sums.offsets.tolist(),
                                                                   sums.keys.tolist())):
        return False
    if not len(sums):
        return True
    last = int(np.argmax(sums.offsets))
    start = int(sums.offsets[last])
    end = next((o for o in sorted(at) if o > start), sums.length)
    with open(sink.path, "rb") as f:
        f.seek(start)
        return crc32c(f.read(end - start)) == int(sums.crcs[last])
