"""The transaction of one output: the temporary files of a run in progress, the lock that makes
their writer the only one, and how they become the output.

``NAME.rec.partial`` / ``NAME.idx.partial`` receive the records; ``NAME.rec.partial.json``
(:class:`RunState`) describes the run so ``resume`` can continue it;
``NAME.failures.jsonl.partial`` lists skipped items. Only :meth:`PartialOutput.commit` moves them
to their final names. An exclusive lock on the partial ``.rec`` keeps two runs from writing the
same output.
"""

import json
import logging
import os
import shutil

from ..errors import OptionError, RecpackError
from ..format.checks import check_pair, recover_partial
from ..format.index import format_index_line
from ..format.names import index_path_for, report_path_for
from ..storage.local import copy_file, fsync_dir, write_all
from .workers import register_output, release_output

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks
    fcntl = None

__all__ = ["PartialOutput", "RunState"]

log = logging.getLogger(__name__)
_IOV_MAX = 512  # well under every platform's IOV_MAX
_WRITEBACK_STEP = 32 << 20
_FADVISE = getattr(os, "posix_fadvise", None)
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", 4)


class RunState:
    """What a run is, saved beside its partial output so ``resume`` can continue it.

    Attributes
    ----------
    initial_records : int
        Records in the output before this run (an append's existing file), 0 for a new file.
    append : bool
    run : dict or None
        The description of the dataset and options being written (see ``check_same_run``).
    key_base : int or None
        The first key of datasets that have no keys of their own.
    resumable : bool
        False once the run wrote several datasets or single records: it cannot be resumed.
    resumed : bool
        This process continues an interrupted run (not saved).
    """

    _SAVED = ("initial_records", "append", "run", "key_base", "resumable")

    def __init__(self, initial_records=0, append=False, run=None, key_base=None,
                 resumable=True, resumed=False):
        self.initial_records = initial_records
        self.append = append
        self.run = run
        self.key_base = key_base
        self.resumable = resumable
        self.resumed = resumed

    def to_json(self):
        return json.dumps(dict({k: getattr(self, k) for k in self._SAVED}, version=1),
                          sort_keys=True)

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ValueError("not a version-1 run description")
        return cls(**{k: data[k] for k in cls._SAVED if k in data}, resumed=True)

    def check_same_run(self, description, path):
        """On resume, refuse a run whose description differs from the interrupted one's."""
        before = self.run
        if before is None or before == description:
            return
        diff = sorted(k for k in set(before) | set(description)
                      if before.get(k) != description.get(k))
        raise OptionError(
            "%s: cannot resume: the interrupted run differs in %s (was %s, now %s). Resume "
            "with the same dataset and options, or start again without resume"
            % (path, ", ".join(diff), {k: before.get(k) for k in diff},
               {k: description.get(k) for k in diff}))


class PartialOutput:
    """The files of one run writing ``path`` (a ``.rec``), its ``.idx`` and failure report.

    After :meth:`open`: ``entries`` (``(key, offset)`` already in the file: appended-to or
    resumed records), ``offset`` (where the next record goes), ``state`` (a :class:`RunState`),
    and the open ``rec``/``idx`` files.
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
        self.state = RunState()

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
        self.state = RunState()
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
            copy_file(src, self.rec)
        self.offset = self.rec.seek(0, os.SEEK_END)
        shutil.copyfile(self.idx_path, self.idx_tmp)
        self.idx = open(self.idx_tmp, "a", encoding="ascii", newline="\n")
        self._drop(self.report_tmp)
        self.state = RunState(initial_records=len(self.entries), append=True)
        self.save_state()
        self._register()
        log.info("%s: appending after %d existing records", self.path, len(self.entries))
        return self

    def _open_resume(self):
        try:
            with open(self.state_path, encoding="utf-8") as f:
                state = RunState.from_json(f.read())
        except (OSError, ValueError, TypeError) as exc:
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
                write_all(fd, memoryview(b"".join(chunk))[done:])
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
            f.write(self.state.to_json())
        os.replace(tmp, self.state_path)

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
        register_output(self, [f.fileno() for f in (self.rec, self.idx) if f is not None])

    def _close(self):
        release_output(self)
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

