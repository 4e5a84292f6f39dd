"""The transaction of one output: the lock that makes its writer the only one, the temporary
files of a run in progress, and the journaled commit that makes them the output.

For a target ``NAME.rec`` written by ``COMMAND`` (``pack``, ``index``, ``merge``, ...):
``NAME.rec.lock`` (:mod:`.lock`), ``NAME.rec.COMMAND.partial`` / ``NAME.idx.COMMAND.partial``
(the records and their index), ``NAME.failures.jsonl.COMMAND.partial`` (skipped items),
``NAME.crc.COMMAND.partial`` (the checksum sidecar), ``NAME.rec.COMMAND.partial.json``
(:class:`RunState`, so ``resume`` can continue) and, while a commit runs, ``NAME.rec.journal``
(:mod:`.journal`). An append writes its new records to ``NAME.rec.COMMAND.partial`` too, with
their final offsets in the new ``.idx``; the commit copies them after the existing end of
``NAME.rec``, so an append costs what it adds and the existing file is never copied.
"""

import logging
import os
import shutil
from array import array

from ..errors import RecpackError
from ..format.checks import check_pair, recover_partial
from ..format.checksums import Checksums, crc32c, read_checksums, write_checksums
from ..format.index import IndexEntries, format_index_line, read_index_arrays
from ..format.names import crc_path_for, index_path_for, report_path_for
from ..storage.local import remove_file, write_all
from .journal import CommitError, commit, journal_path_for, recover
from .lock import OutputLock
from .runstate import RunState, target_fingerprint
from .workers import register_output, release_output

__all__ = ["OutputTransaction", "RunState", "target_fingerprint", "CommitError"]

log = logging.getLogger(__name__)
_IOV_MAX = 512  # well under every platform's IOV_MAX
_WRITEBACK_STEP = 32 << 20
_FADVISE = getattr(os, "posix_fadvise", None)
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", 4)



class OutputTransaction:
    """The files of one run writing ``path`` (a ``.rec``), its ``.idx``, failure report and
    checksum sidecar, from the lock to the commit.

    After :meth:`open`: ``entries`` (``(key, offset)`` already in the file: appended-to or
    resumed records), ``offset`` (where the next record goes), ``state`` (a :class:`RunState`),
    and the open ``rec``/``idx`` files.
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
        self.journal = journal_path_for(self.path)
        self.lock = None
        self.rec = self.idx = None
        self.length = 0  # an append's original .rec length (its records go after it)
        self.crcs = array("I")
        self._written = self._advised = self._advised_offset = 0
        self.entries = IndexEntries([], [])
        self.offset = 0
        self.state = RunState()

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

    def open(self, *, append=False, resume=False):
        """Start (or continue) the run, under the lock (taken now if :meth:`acquire` was not
        called)."""
        self.acquire()
        try:
            if resume and os.path.exists(self.state_path):
                return self._open_resume()
            if resume:
                log.info("%s: no interrupted run to resume; starting afresh", self.path)
            elif os.path.exists(self.rec_tmp):
                log.warning("%s: discarding the partial output of an interrupted run (pass "
                            "resume=True / --resume to continue it instead)", self.path)
            if append and os.path.exists(self.path):
                return self._open_append()
            return self._open_fresh()
        except BaseException:
            self._close()
            raise

    def _open_fresh(self, length=0):
        fd = os.open(self.rec_tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
        # Unbuffered: the writer appends a whole batch per os.writev (see write_frames).
        self.rec = os.fdopen(fd, "r+b", buffering=0)
        self.idx = open(self.idx_tmp, "a" if length else "w", encoding="ascii", newline="\n")
        for p in (self.report_tmp, self.crc_tmp):
            remove_file(p)
        if not length:
            self.state = RunState()
        self.save_state()
        self._register()
        return self

    def _open_append(self):
        if not os.path.exists(self.idx_path):
            raise FileNotFoundError("%s exists but its index %s does not; rebuild it with "
                                    "`recpack index %s` before appending"
                                    % (self.path, self.idx_path, self.path))
        self.length = self.offset = os.path.getsize(self.path)
        entries = read_index_arrays(self.idx_path)
        sidecar = self._existing_crcs(self.length, len(entries))
        # With a sidecar that describes this very file (its length and record count), the pair
        # is the one recpack wrote: its last record ending at the end is enough. Without one,
        # every indexed frame is checked (frame heads only).
        self.entries = check_pair(self.path, self.idx_path, entries=entries,
                                  last_only=sidecar)
        shutil.copyfile(self.idx_path, self.idx_tmp)
        self.state = RunState(initial_records=len(self.entries), append=True,
                              target=target_fingerprint(self.path, self.idx_path),
                              sidecar=sidecar)
        self._open_fresh(self.length)
        log.info("%s: appending after %d existing records (%d bytes)", self.path,
                 len(self.entries), self.length)
        return self

    def _existing_crcs(self, length, count):
        """Take over the target's sidecar when it describes it; True if there is one."""
        try:
            existing = read_checksums(self.crc_path)
        except RecpackError as exc:
            log.warning("%s: %s; the appended file gets no checksum sidecar", self.path, exc)
            return False
        if existing is None or existing.length != length or len(existing) != count:
            if existing is not None:
                log.warning("%s: the checksum sidecar %s is stale (it describes %d bytes); "
                            "the appended file gets none", self.path, self.crc_path,
                            existing.length)
            return False
        self.crcs.frombytes(existing.crcs.astype("<u4").tobytes())
        return True

    def _open_resume(self):
        try:
            with open(self.state_path, encoding="utf-8") as f:
                state = RunState.from_json(f.read())
        except (OSError, ValueError, TypeError) as exc:
            raise RecpackError("%s: cannot resume, the run description %s is unreadable (%s); "
                               "start again without resume" % (self.path, self.state_path, exc))
        self.state = state
        if state.append:
            self._check_append_target()
        self.rec = os.fdopen(os.open(self.rec_tmp, os.O_RDWR), "r+b", buffering=0)
        kept, end = recover_partial(self.rec_tmp, self.idx_tmp, trusted=state.initial_records,
                                    shift=self.length)
        self.entries = IndexEntries.from_pairs(kept)
        self.offset = self.length + end
        self.rec.truncate(end)
        self.rec.seek(end)
        with open(self.idx_tmp, "w", encoding="ascii", newline="\n") as f:
            f.writelines(format_index_line(k, o) for k, o in self.entries)
        self.idx = open(self.idx_tmp, "a", encoding="ascii", newline="\n")
        if state.sidecar:
            self._crc_records(state.initial_records)
        self._register()
        log.info("%s: resuming an interrupted run after %d whole records (%d bytes)",
                 self.path, len(self.entries), self.offset)
        return self

    def _check_append_target(self):
        """Resuming an append: the target must be the file the append began on."""
        target = self.state.target
        self.length = target["length"]
        if not os.path.exists(self.path) or not os.path.exists(self.idx_path) or \
                os.path.getsize(self.path) != self.length or \
                target_fingerprint(self.path, self.idx_path) != target:
            raise RecpackError(
                "%s: cannot resume the interrupted append: the file changed since it began "
                "(replaced or written by another tool?). Append again without resume"
                % self.path)
        if self.state.sidecar and not self._existing_crcs(self.length,
                                                         self.state.initial_records):
            self.state.sidecar = False

    def _crc_records(self, skip):
        """The CRCs of the records a resumed run keeps (read once from its temporary file)."""
        offsets = [o - self.length for o in self.entries.offsets[skip:].tolist()] + [
            self.offset - self.length]
        with open(self.rec_tmp, "rb") as f:
            for a, b in zip(offsets, offsets[1:]):
                f.seek(a)
                self.crcs.append(crc32c(f.read(b - a)))

    # -- writing ------------------------------------------------------------------------------
    def write_frames(self, frames, index_lines, crcs):
        """Append framed records (one ``writev`` per batch: several times faster than a write
        per record on common file systems), their index lines and CRCs."""
        fd = self.rec.fileno()
        try:
            for start in range(0, len(frames), _IOV_MAX):
                chunk = frames[start:start + _IOV_MAX]
                done, total = os.writev(fd, chunk), sum(memoryview(f).nbytes for f in chunk)
                if done != total:  # a short write (rare on files): finish the rest
                    write_all(fd, memoryview(b"".join(chunk))[done:])
                self._written += total
                self.offset += total
            self.idx.write("".join(index_lines))
        except OSError as exc:
            raise OSError(exc.errno, "%s: %s while writing records" % (
                self.path, exc.strerror or exc)) from exc
        self.crcs.extend(crcs)
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

    def save_state(self):
        tmp = self.state_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.state.to_json())
        os.replace(tmp, self.state_path)

    # -- finishing ----------------------------------------------------------------------------
    def commit(self, *, report=False, keep_lock=False):
        """Make the run's files the output, as a whole (see :mod:`.journal`). With
        ``keep_lock`` the target stays locked until :meth:`release` (an upload still to come)."""
        for f in (self.rec, self.idx):
            f.flush()
            os.fsync(f.fileno())
        members = [(self.idx_tmp, self.idx_path)]
        removes = []
        if self.state.sidecar:
            write_checksums(self.crc_tmp, Checksums(self.crcs, self.offset))
            members.append((self.crc_tmp, self.crc_path))
        else:
            removes.append(self.crc_path)  # a sidecar of the previous file would be stale
        if report:
            members.append((self.report_tmp, self.report_path))
        else:
            removes.append(self.report_path)  # a stale report of an earlier run
        self._close_files()
        if self.state.append:
            commit(self.journal, members, removes,
                   append=(self.path, self.length, self.rec_tmp))
        else:
            commit(self.journal, [(self.rec_tmp, self.path)] + members, removes)
        remove_file(self.state_path)
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
            if not keep and not os.path.exists(self.journal):
                for p in (self.rec_tmp, self.idx_tmp, self.report_tmp, self.crc_tmp,
                          self.state_path):
                    remove_file(p)
        finally:
            self._close()

    def _register(self):
        """Remember our descriptors for forked children to let go of."""
        register_output(self, [f.fileno() for f in (self.rec, self.idx) if f is not None])

    def _close_files(self):
        release_output(self)
        for f in (self.rec, self.idx):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        self.rec = self.idx = None

    def _close(self):
        self._close_files()
        if self.lock is not None:
            release_output(self.lock)
            self.lock.release()
            self.lock = None
