"""The temporary files of a run in progress, and how they become the output.

``NAME.rec.partial`` / ``NAME.idx.partial`` receive the records; ``NAME.rec.partial.json``
describes the run so ``resume`` can continue it; ``NAME.failures.jsonl.partial`` lists skipped
items. Only :meth:`PartialOutput.commit` moves them to their final names. An exclusive lock on
the partial ``.rec`` keeps two runs from writing the same output.
"""

import json
import logging
import os
import shutil
import signal

from .errors import OptionError, RecpackError
from .index import format_index_line, index_path_for
from .repair import check_pair, complete_lines, recover_partial
from .storage import fsync_dir

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks
    fcntl = None

#: File descriptors of the outputs this process is writing, by output; see
#: _after_fork_in_child (which must not import, lock or allocate much: it runs in a fresh fork).
_OPEN_FDS = {}

try:  # looked up now, not in the forked child
    import ctypes
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _PRCTL = None


def _after_fork_in_child():
    """In a forked child (a DataLoader worker): let go of the parent's output files.

    The child's copies of the descriptors are pointed at /dev/null (nothing buffered is ever
    flushed into the output, and the lock on it stays with the parent alone), and on Linux the
    child is killed when its parent dies, so a ``kill -9`` of a run leaves no orphan workers
    holding the partial files.
    """
    fds = [fd for fd in _OPEN_FDS.values() for fd in fd]
    if not fds:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in fds:
        try:
            os.dup2(devnull, fd)
        except OSError:
            pass
    os.close(devnull)
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = ["PartialOutput", "report_path_for"]


def _write_all(fd, view):
    """os.write until every byte of ``view`` is written."""
    while len(view):
        view = view[os.write(fd, view):]

log = logging.getLogger(__name__)
_IOV_MAX = 512  # well under every platform's IOV_MAX
_WRITEBACK_STEP = 32 << 20
_FADVISE = getattr(os, "posix_fadvise", None)
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", 4)


def _copy_file(src, dst):
    """Copy the open file ``src`` to the (empty) open file ``dst``: in the kernel with
    ``copy_file_range`` where it works (on file systems with reflinks, such as XFS and btrfs,
    it shares the blocks instead of copying them), else through a buffer."""
    size = os.fstat(src.fileno()).st_size
    copied = 0
    if hasattr(os, "copy_file_range"):
        try:
            while copied < size:
                n = os.copy_file_range(src.fileno(), dst.fileno(), size - copied,
                                       copied, copied)
                if n == 0:
                    break
                copied += n
        except OSError:  # not supported here (another file system, an old kernel)
            pass
    src.seek(copied)
    dst.seek(copied)
    for block in iter(lambda: src.read(1 << 22), b""):
        _write_all(dst.fileno(), memoryview(block))


def report_path_for(rec_path):
    """``train.rec`` -> ``train.failures.jsonl``: where skipped items are listed."""
    return os.path.splitext(os.fspath(rec_path))[0] + ".failures.jsonl"


class PartialOutput:
    """The files of one run writing ``path`` (a ``.rec``), its ``.idx`` and failure report.

    After :meth:`open`: ``entries`` (``(key, offset)`` already in the file: appended-to or
    resumed records), ``offset`` (where the next record goes), ``state`` (the run description;
    ``state['resumed']`` is True when an interrupted run is being continued), and the open
    ``rec``/``idx`` files.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.idx_path = index_path_for(self.path)
        self.report_path = report_path_for(self.path)
        self.rec_tmp = self.path + ".partial"
        self.idx_tmp = self.idx_path + ".partial"
        self.report_tmp = self.report_path + ".partial"
        self.state_path = self.path + ".partial.json"
        self.rec = self.idx = None
        self._written = self._advised = self._advised_offset = 0
        self.entries = []
        self.offset = 0
        self.state = {}

    # -- opening ------------------------------------------------------------------------------
    def _open_locked(self):
        fd = os.open(self.rec_tmp, os.O_RDWR | os.O_CREAT, 0o666)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise RecpackError("%s: another run is writing this output right now (it holds "
                                   "%s); wait for it to finish" % (self.path, self.rec_tmp))
        # Unbuffered: the writer appends a whole batch per os.writev (see write_frames).
        return os.fdopen(fd, "r+b", buffering=0)

    def open(self, *, append=False, resume=False):
        """Start (or continue) the run. See the class docstring for what it sets."""
        if resume and os.path.exists(self.rec_tmp) and os.path.exists(self.state_path):
            return self._open_resume()
        if resume:
            log.info("%s: no interrupted run to resume; starting afresh", self.path)
        elif os.path.exists(self.rec_tmp):
            log.warning("%s: discarding the partial output of an interrupted run (pass "
                        "resume=True / --resume to continue it instead)", self.path)
        if append and os.path.exists(self.path):
            return self._open_append()
        self.rec = self._open_locked()
        self.rec.truncate(0)
        self.idx = open(self.idx_tmp, "w", encoding="ascii", newline="\n")
        self._drop(self.report_tmp)
        self.state = {"version": 1, "initial_records": 0, "resumed": False}
        self.save_state()
        self._register()
        return self

    def _open_append(self):
        if not os.path.exists(self.idx_path):
            raise FileNotFoundError("%s exists but its index %s does not; rebuild it with "
                                    "`recpack index %s` before appending"
                                    % (self.path, self.idx_path, self.path))
        self.entries = check_pair(self.path, self.idx_path)
        self.rec = self._open_locked()
        self.rec.truncate(0)
        with open(self.path, "rb") as src:
            _copy_file(src, self.rec)
        self.offset = self.rec.seek(0, os.SEEK_END)
        shutil.copyfile(self.idx_path, self.idx_tmp)
        self.idx = open(self.idx_tmp, "a", encoding="ascii", newline="\n")
        self._drop(self.report_tmp)
        self.state = {"version": 1, "initial_records": len(self.entries), "resumed": False,
                      "append": True}
        self.save_state()
        self._register()
        log.info("%s: appending after %d existing records", self.path, len(self.entries))
        return self

    def _open_resume(self):
        try:
            with open(self.state_path, encoding="utf-8") as f:
                state = json.load(f)
        except (OSError, ValueError) as exc:
            raise RecpackError("%s: cannot resume, the run description %s is unreadable (%s); "
                               "start again without resume" % (self.path, self.state_path, exc))
        self.rec = self._open_locked()
        self.rec.flush()
        self.entries, self.offset = recover_partial(self.rec_tmp, self.idx_tmp)
        self.rec.truncate(self.offset)
        self.rec.seek(self.offset)
        with open(self.idx_tmp, "w", encoding="ascii", newline="\n") as f:
            f.writelines(format_index_line(k, o) for k, o in self.entries)
        self.idx = open(self.idx_tmp, "a", encoding="ascii", newline="\n")
        state["resumed"] = True
        self.state = state
        self._register()
        log.info("%s: resuming an interrupted run after %d whole records (%d bytes)",
                 self.path, len(self.entries), self.offset)
        return self

    def write_frames(self, frames, index_lines):
        """Append framed records (one ``writev`` per batch: several times faster than a write
        per record on common file systems) and their index lines."""
        fd = self.rec.fileno()
        for start in range(0, len(frames), _IOV_MAX):
            chunk = frames[start:start + _IOV_MAX]
            done, total = os.writev(fd, chunk), sum(memoryview(f).nbytes for f in chunk)
            if done != total:  # a short write (rare on files): finish the rest
                _write_all(fd, memoryview(b"".join(chunk))[done:])
            self._written += total
        self.idx.write("".join(index_lines))
        if self._written - self._advised >= _WRITEBACK_STEP and _FADVISE is not None:
            # Start writing back what is written and let the kernel drop it from the cache:
            # the final fsync then has little left to do (measured: 600 MB in 0.28 s instead
            # of 1.75 s), and a huge output does not flood the page cache.
            end = self.rec.tell()
            _FADVISE(fd, self._advised_offset, end - self._advised_offset, _DONTNEED)
            self._advised_offset, self._advised = end, self._written

    def save_state(self):
        tmp = self.state_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.state, f, sort_keys=True)
        os.replace(tmp, self.state_path)

    def check_same_run(self, description):
        """On resume, refuse a run whose description differs from the interrupted one's."""
        before = self.state.get("run")
        if before is None:
            return
        if before != description:
            diff = sorted(k for k in set(before) | set(description)
                          if before.get(k) != description.get(k))
            raise OptionError(
                "%s: cannot resume: the interrupted run differs in %s (was %s, now %s). Resume "
                "with the same dataset and options, or start again without resume"
                % (self.path, ", ".join(diff), {k: before.get(k) for k in diff},
                   {k: description.get(k) for k in diff}))

    def kept_report_lines(self, below_index):
        """Failure-report lines of the interrupted run for items before ``below_index``."""
        lines = []
        for line in complete_lines(self.report_tmp):
            try:
                if json.loads(line)["index"] < below_index:
                    lines.append(line + "\n")
            except (ValueError, KeyError, TypeError):
                break
        return lines

    # -- finishing ----------------------------------------------------------------------------
    def commit(self, *, report=False):
        """Make the partial files the output (``.rec`` first: an old ``.idx`` still describes a
        prefix of an appended ``.rec``)."""
        for f in (self.rec, self.idx):
            f.flush()
            os.fsync(f.fileno())
        if report:
            os.replace(self.report_tmp, self.report_path)
        else:
            self._drop(self.report_path)  # a stale report of an earlier run
        os.replace(self.rec_tmp, self.path)
        os.replace(self.idx_tmp, self.idx_path)
        fsync_dir(self.path)
        self._close()
        self._drop(self.state_path)

    def discard(self, *, keep=False):
        """Close; remove the partial files unless ``keep`` (for a later resume)."""
        self._close()
        if not keep:
            for p in (self.rec_tmp, self.idx_tmp, self.report_tmp, self.state_path):
                self._drop(p)

    def _register(self):
        """Remember our descriptors for forked children to let go of."""
        _OPEN_FDS[id(self)] = [f.fileno() for f in (self.rec, self.idx) if f is not None]

    def _close(self):
        _OPEN_FDS.pop(id(self), None)
        for f in (self.rec, self.idx):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass

    @staticmethod
    def _drop(path):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass

