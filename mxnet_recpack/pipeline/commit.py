"""The transaction of one output: the lock that makes its writer the only one, the temporary
files of a run in progress, and the journaled commit that makes them the output.

For a target ``NAME.rec`` written by ``COMMAND`` (``pack``, ``index``, ``salvage``):
``NAME.rec.lock`` (:mod:`.lock`), ``NAME.rec.COMMAND.partial`` / ``NAME.idx.COMMAND.partial``
(the records and their index), ``NAME.failures.jsonl.COMMAND.partial`` (skipped items),
``NAME.crc.COMMAND.partial`` (the checksum sidecar), ``NAME.rec.COMMAND.partial.json``
(:class:`RunState`, so ``resume`` can continue; the commit's journal owns it and removes it with
itself, so a committed run never looks interrupted) and, while a commit runs,
``NAME.rec.journal`` (:mod:`.journal`). An append writes its new records to
``NAME.rec.COMMAND.partial`` too, with their final offsets in the new ``.idx``; the commit copies
them after the existing end of ``NAME.rec``, so an append costs what it adds and the existing
file is never copied.
"""

import logging
import os
from array import array
from contextlib import contextmanager

import numpy as np

from ..errors import (BadImageError, CommitError, OutputError, OutputExistsError,
                      OutputLockedError, RecpackError)
from ..format.checks import check_pair
from ..format.checksums import Checksums, crc32c, write_checksums
from ..format.index import IndexEntries
from ..format.names import crc_path_for, index_path_for, report_path_for
from ..storage.local import cause_of, fix_for, io_step, remove_file, step_of, write_all
from .journal import commit, journal_path_for, recover
from .lock import OutputLock
from .reopen import open_append, open_resume, read_sidecar
from .runstate import RunState, run_digest, target_fingerprint
from .workers import register_output, release_output

__all__ = ["OutputTransaction", "RunState", "target_fingerprint", "CommitError", "keeps_partial"]

log = logging.getLogger(__name__)
_IOV_MAX = 512  # well under every platform's IOV_MAX
_WRITEBACK_STEP = 32 << 20
_FADVISE = getattr(os, "posix_fadvise", None)
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", 4)


def _appending(path, *, truncate):
    """An unbuffered binary file that every write appends to (what a kill leaves is what was
    written)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
    return os.fdopen(os.open(path, flags, 0o666), "ab", buffering=0)


def _describes(out, sums):
    """The pair at ``out`` is the one ``sums`` (a version-2 sidecar) was written with: its
    index lists every record the sidecar does, under the same key, the last record ends at the
    end of the file, and its bytes match their CRC32C."""
    try:
        entries = check_pair(out.path, out.idx_path, last_only=True)
    except (RecpackError, OSError):
        return False
    at = dict(zip(entries.offsets.tolist(), entries.keys.tolist()))
    if sums.offsets is None or any(at.get(o) != k for o, k in zip(sums.offsets.tolist(),
                                                                   sums.keys.tolist())):
        return False
    if not len(sums):
        return True
    last = int(np.argmax(sums.offsets))
    ends = sorted(at)
    start = int(sums.offsets[last])
    end = next((o for o in ends if o > start), sums.length)
    with open(out.path, "rb") as f:
        f.seek(start)
        return crc32c(f.read(end - start)) == int(sums.crcs[last])


def keeps_partial(exc_type):
    """Whether a run that stopped with ``exc_type`` keeps its files for ``resume``: an
    interruption, or trouble writing them (a full disk, an I/O error); not bad data or options.
    """
    return issubclass(exc_type, (KeyboardInterrupt, SystemExit, OSError)) and not issubclass(
        exc_type, (BadImageError, OutputExistsError, OutputLockedError))


class OutputTransaction:
    """The files of one run writing ``path`` (a ``.rec``), its ``.idx``, failure report and
    checksum sidecar, from the lock to the commit.

    After :meth:`open`: ``mode`` (``"fresh"``, ``"append"``, ``"resume"``, or ``"check"``: a
    resume was asked for, no interrupted run is there but the target is: nothing is opened, see
    :meth:`made_by`), ``entries`` (``(key, offset)`` already in the file: appended-to or resumed
    records), ``offset`` (where the next record goes), ``state`` (a :class:`RunState`), and the
    open ``rec``/``idx`` files.
    """

    def __init__(self, path, *, command="pack"):
        self.path = os.fspath(path)
        self.command = command
        self.idx_path = index_path_for(self.path)
        self.report_path = report_path_for(self.path)
        self.crc_path = crc_path_for(self.path)
        tag = ".%s.partial" % command
        self.rec_tmp, self.idx_tmp = self.path + tag, self.idx_path + tag
        self.report_tmp, self.crc_tmp = self.report_path + tag, self.crc_path + tag
        self.state_path = self.rec_tmp + ".json"
        #: each written record's CRC32C as it was written: a resume keeps only records that
        #: still match theirs (a byte changed in the partial file is never certified)
        self.sums_tmp = self.rec_tmp + ".crcs"
        self.journal = journal_path_for(self.path)
        self.lock = None
        self.rec = self.idx = self.sums = None
        self.mode = None
        self.length = 0  # an append's original .rec length (its records go after it)
        self.crcs, self.offsets = array("I"), array("q")
        self.unchecked = []  # records the sidecar must not vouch for (see write_frames)
        self._written = self._advised = self._advised_offset = 0
        self.entries = IndexEntries([], [])
        self.offset = 0
        self.state = RunState()

    @property
    def resumable(self):
        return self.command != "salvage"

    # -- opening ------------------------------------------------------------------------------
    def acquire(self):
        """Take the lock and settle an interrupted commit (before anything else is touched).

        Raises
        ------
        OutputLockedError
            When another command is writing this output.
        """
        if self.lock is not None:
            return
        self.lock = OutputLock(self.path, self.command)
        register_output(self.lock, [self.lock.fileno()])
        try:
            note = recover(self.journal)
        except BaseException:
            self._close()
            raise
        if note:
            log.warning("%s: %s", self.path, note)
        try:  # a run state whose writing a kill cut short is never read: it goes
            remove_file(self.state_path + ".tmp")
        except OSError:
            pass

    def open(self, *, append=False, resume=False, exists=None):
        """Start (or continue) the run, under the lock (taken now if :meth:`acquire` was not
        called). ``exists``: whether the target exists (default: the local files)."""
        self.acquire()
        try:
            if resume and os.path.exists(self.state_path):
                self.mode = "resume"
                open_resume(self)
                self._register()
                return self
            if exists is None:
                exists = os.path.exists(self.path) or os.path.exists(self.idx_path)
            if resume and exists:
                self.mode = "check"  # nothing to resume: see made_by
                return self
            if resume:
                log.info("%s: no interrupted run to resume, and no file there: starting one",
                         self.path)
            elif os.path.exists(self.rec_tmp):
                log.warning("%s: discarding the partial output of an interrupted run (pass "
                            "resume=True / --resume to continue it instead)", self.path)
            if append and os.path.exists(self.path):
                open_append(self)
                self.mode = "append"
                return self._open_fresh(self.length)
            self.mode = "fresh"
            return self._open_fresh()
        except OSError as exc:
            if exc.errno is None or isinstance(exc, RecpackError):
                self._close()
                raise
            if self.mode == "resume":
                self._close()  # an interrupted run's files are never thrown away
                raise self.output_error(exc, "cannot resume") from exc
            self.discard()
            raise self.output_error(exc, "cannot start", kept=None) from exc
        except BaseException:
            self._close()
            raise

    def _open_fresh(self, length=0):
        with io_step("creating %s" % self.rec_tmp):
            fd = os.open(self.rec_tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
            # Unbuffered: the writer appends a whole batch per os.writev (see write_frames).
            self.rec = os.fdopen(fd, "r+b", buffering=0)
            self.idx = _appending(self.idx_tmp, truncate=not length)
            self.sums = _appending(self.sums_tmp, truncate=True)
            for p in (self.report_tmp, self.crc_tmp):
                remove_file(p)
        if not length:
            self.state = RunState()
        self.save_state()
        self._register()
        return self

    def nothing_to_resume(self):
        """The refusal of a resume that finds no interrupted run of a file that is there."""
        return ("%s: nothing to resume: no interrupted run of this file was found, and the "
                "file there was not made by this run (or was changed since: appended to, "
                "written by another tool). Run without --resume (resume=False) to make it "
                "again, or with --append to add to it" % self.path)

    def made_by(self, description, quiet=False):
        """In ``"check"`` mode: True when the file there was last written, whole, by a run with
        this description (its checksum sidecar records the run's digest)."""
        sums = read_sidecar(self.crc_path)
        made = sums is not None and sums.run is not None and \
            sums.run == run_digest(description) and os.path.exists(self.path) and \
            os.path.getsize(self.path) == sums.length and _describes(self, sums)
        if made and not quiet:
            log.warning("%s: already complete: this same run made it, and its index, length "
                        "and last record are as it wrote them; nothing to do (`recpack verify` "
                        "checks every byte)", self.path)
        return made

    # -- writing ------------------------------------------------------------------------------
    def write_frames(self, frames, index_lines, crcs, offsets, checked=True):
        """Append framed records (one ``writev`` per batch: several times faster than a write
        per record on common file systems), their index lines, CRCs and offsets. ``checked``
        False: the checksum sidecar must not vouch for these records (their bytes could not be
        checked against a checksum of the file they come from)."""
        fd = self.rec.fileno()
        try:
            # The index lines and CRCs first, the records last: a kill between them leaves
            # lines and CRCs of records that are not there (a resume drops them), never a
            # record its run cannot vouch for.
            with io_step("writing the index lines to %s" % self.idx_tmp):
                write_all(self.idx.fileno(), memoryview("".join(index_lines).encode("ascii")))
            with io_step("writing the checksums to %s" % self.sums_tmp):
                write_all(self.sums.fileno(), memoryview(np.asarray(crcs, "<u4").tobytes()))
            with io_step("writing the records to %s" % self.rec_tmp):
                for start in range(0, len(frames), _IOV_MAX):
                    chunk = frames[start:start + _IOV_MAX]
                    done, total = os.writev(fd, chunk), sum(memoryview(f).nbytes for f in chunk)
                    if done != total:  # a short write (rare on files): finish the rest
                        write_all(fd, memoryview(b"".join(chunk))[done:])
                    self._written += total
                    self.offset += total
        except OSError as exc:
            raise self.output_error(exc, "could not write the records") from exc
        if not checked:
            self.unchecked.extend(range(len(self.crcs), len(self.crcs) + len(crcs)))
        self.crcs.extend(crcs)
        self.offsets.extend(offsets)
        if self._written - self._advised >= _WRITEBACK_STEP and _FADVISE is not None:
            # Start writing back what is written and let the kernel drop it from the cache:
            # the final fsync then has little left to do (measured: 600 MB in 0.28 s instead
            # of 1.75 s), and a huge output does not flood the page cache.
            end = self.rec.tell()
            _FADVISE(fd, self._advised_offset, end - self._advised_offset, _DONTNEED)
            self._advised_offset, self._advised = end, self._written

    def output_error(self, exc, what, *, kept="partial"):
        """An :class:`OutputError` for ``exc``, naming the step and saying what is kept:
        ``kept`` is ``"partial"`` or ``"finished"`` (the run's files, for ``resume``), or None
        (nothing was changed)."""
        if kept is None:
            tail = "nothing was changed: %s, then run the same command again" % fix_for(exc)
        elif self.resumable:
            tail = ("the previous files are intact; the %s run is kept: %s, then run the same "
                    "command with --resume" % (kept, fix_for(exc)))
        else:
            tail = ("the previous files are intact: %s, then run the same command again"
                    % fix_for(exc))
        error = OutputError("%s: %s: %s (while %s); %s" % (self.path, what, cause_of(exc),
                                                           step_of(exc), tail))
        error.errno = getattr(exc, "errno", None)
        return error

    @contextmanager
    def naming_errors(self, what, kept="partial"):
        """System errors inside become :meth:`output_error`'s (ours pass as they are)."""
        try:
            yield
        except OSError as exc:
            if isinstance(exc, RecpackError) or exc.errno is None:
                raise
            raise self.output_error(exc, what, kept=kept) from exc

    def stored_record(self, i):
        """The bytes (frames) of the ``i``-th record already in the output when it opened."""
        start = int(self.entries.offsets[i])
        end = int(self.entries.offsets[i + 1]) if i + 1 < len(self.entries) else self.offset
        with open(self.rec_tmp if start >= self.length else self.path, "rb") as f:
            f.seek(start - (self.length if start >= self.length else 0))
            return f.read(end - start)

    def save_state(self):
        tmp = self.state_path + ".tmp"
        try:
            with io_step("writing the run state %s" % self.state_path):
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(self.state.to_json())
                os.replace(tmp, self.state_path)
        except OSError as exc:
            remove_file(tmp)
            raise self.output_error(exc, "cannot start", kept=None) from exc

    # -- finishing ----------------------------------------------------------------------------
    def _sidecar(self, keys):
        """The checksum sidecar of the finished run (None when it keeps none)."""
        if not self.state.sidecar:
            return None
        mask = np.ones(len(self.crcs), bool)
        mask[self.unchecked] = False
        if not mask.any() and len(mask):
            return None  # no record could be checked: no sidecar vouches for them
        run = run_digest(self.state.run) if self.state.resumable else None
        return Checksums(np.frombuffer(self.crcs, np.uint32)[mask], self.offset,
                         offsets=np.frombuffer(self.offsets, np.int64)[mask],
                         keys=np.asarray(keys, np.uint64)[mask], run=run,
                         covers="all" if mask.all() else "some")

    def commit(self, *, keys, report=False, keep_lock=False):
        """Make the run's files the output, as a whole (see :mod:`.journal`). ``keys``: every
        record's key, in file order. With ``keep_lock`` the target stays locked until
        :meth:`release` (an upload still to come).

        Raises
        ------
        CommitError
            Nothing of the run is lost: the previous files are intact (or the journal left
            says what the next command finishes), the run's files are kept.
        """
        members, removes = [(self.idx_tmp, self.idx_path)], []
        try:
            with io_step("writing the records to %s" % self.rec_tmp):
                self.rec.flush()
                os.fsync(self.rec.fileno())
            with io_step("writing the index %s" % self.idx_tmp):
                os.fsync(self.idx.fileno())
            sums = self._sidecar(keys)
            if sums is not None:
                with io_step("writing the checksum sidecar %s" % self.crc_tmp):
                    write_checksums(self.crc_tmp, sums)
                members.append((self.crc_tmp, self.crc_path))
            else:
                removes.append(self.crc_path)  # a sidecar of the previous file would be stale
        except OSError as exc:
            error = CommitError(str(self.output_error(exc, "the commit could not complete",
                                                      kept="finished")))
            error.errno = getattr(exc, "errno", None)
            raise error from exc
        if report:
            members.append((self.report_tmp, self.report_path))
        else:
            removes.append(self.report_path)  # a stale report of an earlier run
        self._close_files()
        advice = ("the finished run is kept", "run the same command with --resume") \
            if self.resumable else ("nothing is lost", "run the same command again")
        if self.state.append:
            commit(self.journal, members, removes, append=(self.path, self.length, self.rec_tmp),
                   owned=[self.state_path, self.sums_tmp], advice=advice)
        else:
            commit(self.journal, [(self.rec_tmp, self.path)] + members, removes,
                   owned=[self.state_path, self.sums_tmp], advice=advice)
        if keep_lock:
            self._close_files()
        else:
            self._close()

    def release(self):
        """Unlock the target after ``commit(keep_lock=True)``."""
        self._close()

    def discard(self, *, keep=False):
        """Stop; the existing output stays as it was (an append never touched it). The run's
        files are removed, or kept for a later ``resume`` when ``keep``."""
        self._close_files()
        try:
            # A commit stopped part-way (an interrupt, not an OSError) leaves its journal: the
            # next command that takes the lock finishes or undoes it, and needs these files.
            if not keep and not os.path.exists(self.journal) and self.mode != "check":
                for p in (self.rec_tmp, self.idx_tmp, self.report_tmp, self.crc_tmp,
                          self.sums_tmp, self.state_path, self.state_path + ".tmp"):
                    try:
                        remove_file(p)
                    except OSError:
                        pass
        finally:
            self._close()

    def _register(self):
        """Remember our descriptors for forked children to let go of."""
        register_output(self, [f.fileno() for f in (self.rec, self.idx, self.sums)
                               if f is not None])

    def _close_files(self):
        release_output(self)
        for f in (self.rec, self.idx, self.sums):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        self.rec = self.idx = self.sums = None

    def _close(self):
        self._close_files()
        if self.lock is not None:
            release_output(self.lock)
            self.lock.release()
            self.lock = None
