"""The transaction of one output: the lock that makes its writer the only one, the run state
that ``resume`` continues, the failure report, and the journaled commit that makes the sink's
files the output. What those files are is the sink's (:mod:`mxnet_recpack.formats.seams`): the
RecordIO pair (:class:`~mxnet_recpack.formats.recordio.sink.RecordIOSink`), shards...

For a target ``NAME.rec`` written by ``COMMAND`` (``pack``, ``index``, ``salvage``):
``NAME.rec.lock`` (:mod:`.lock`), ``NAME.failures.jsonl.COMMAND.partial`` (skipped items),
``NAME.rec.COMMAND.partial.json`` (:class:`RunState`, so ``resume`` can continue; the commit's
journal owns it and removes it with itself, so a committed run never looks interrupted) and,
while a commit runs, ``NAME.rec.journal`` (:mod:`.journal`); the sink's files beside them.
"""

import logging
import os
from contextlib import contextmanager

from ..errors import (BadImageError, CommitError, OutputError, OutputExistsError,
                      OutputLockedError, RecpackError)
from ..formats.recordio.sink import RecordIOSink
from ..storage.local import cause_of, fix_for, io_step, remove_file, step_of
from .journal import commit, journal_path_for, recover
from .lock import OutputLock
from .runstate import RunState, run_digest
from .workers import register_output, release_output

__all__ = ["OutputTransaction", "RunState", "CommitError", "keeps_partial"]

log = logging.getLogger(__name__)


def keeps_partial(exc_type):
    """Whether a run that stopped with ``exc_type`` keeps its files for ``resume``: an
    interruption, or trouble writing them (a full disk, an I/O error); not bad data or options.
    """
    return issubclass(exc_type, (KeyboardInterrupt, SystemExit, OSError)) and not issubclass(
        exc_type, (BadImageError, OutputExistsError, OutputLockedError))


class OutputTransaction:
    """One run writing a sink's output, from the lock to the commit.

    Parameters
    ----------
    target : str or Sink
        A ``.rec`` path (its sink: :class:`RecordIOSink`) or a sink.
    command : str
        Names the run's temporary files (``pack``, ``salvage``...).

    After :meth:`open`: ``mode`` (``"fresh"``, ``"append"``, ``"resume"``, or ``"check"``: a
    resume was asked for, no interrupted run is there but the target is: nothing is opened, see
    :meth:`made_by`) and ``state`` (a :class:`RunState`); the sink's ``entries`` and ``offset``.
    """

    def __init__(self, target, *, command="pack"):
        tag = ".%s.partial" % command
        self.sink = RecordIOSink(target, tag) if isinstance(target, (str, os.PathLike)) \
            else target
        self.path = self.sink.path
        self.command = command
        self.report_path = self.sink.report_path
        self.report_tmp = self.report_path + tag
        self.state_path = self.path + tag + ".json"
        self.journal = journal_path_for(self.path)
        self.lock = None
        self.mode = None
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
        called). ``exists``: whether the target exists (default: the sink's files)."""
        self.acquire()
        try:
            if resume and os.path.exists(self.state_path):
                self.mode = "resume"
                self._open_resume()
                return self
            exists = self.sink.exists() if exists is None else exists
            if resume and exists:
                self.mode = "check"  # nothing to resume: see made_by
                return self
            if resume:
                log.info("%s: no interrupted run to resume, and no file there: starting one",
                         self.path)
            elif self.sink.has_partial():
                log.warning("%s: discarding the partial output of an interrupted run (pass "
                            "resume=True / --resume to continue it instead)", self.path)
            self.mode = "append" if append and exists and self.sink.can_append else "fresh"
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

    def _open_fresh(self):
        if self.mode == "append":
            initial, target = self.sink.open_append()
            self.state = RunState(initial_records=initial, append=True, target=target)
        else:
            self.state = RunState()
        self.sink.open_fresh(append=self.mode == "append")
        remove_file(self.report_tmp)
        self.save_state()
        self._register()
        return self

    def _open_resume(self):
        try:
            with open(self.state_path, encoding="utf-8") as f:
                self.state = RunState.from_json(f.read())
        except (OSError, ValueError, TypeError) as exc:
            raise RecpackError("%s: cannot resume, the run description %s is unreadable (%s); "
                               "start again without resume" % (self.path, self.state_path, exc))
        state = self.state
        self.sink.open_resume(state.initial_records, state.target if state.append else None,
                              state.sidecar)
        self._register()

    def nothing_to_resume(self):
        """The refusal of a resume that finds no interrupted run of a file that is there."""
        return ("%s: nothing to resume: no interrupted run of this file was found, and the "
                "file there was not made by this run (or was changed since: appended to, "
                "written by another tool). Run without --resume (resume=False) to make it "
                "again%s" % (self.path, ", or with --append to add to it"
                             if self.sink.can_append else ""))

    def made_by(self, description, quiet=False):
        """In ``"check"`` mode: True when the output there was last written, whole, by a run
        with this description (and is as it wrote it)."""
        made = self.sink.made_by(run_digest(description))
        if made and not quiet:
            log.warning("%s: already complete: this same run made it, and %s; nothing to do",
                        self.path, getattr(self.sink, "as_made", "it is as that run wrote it"))
        return made

    # -- writing ------------------------------------------------------------------------------
    def write(self, records, checked=True):
        """Append a batch of framed records to the sink, naming the step of an error."""
        with self.naming_errors("could not write the records"):
            self.sink.write(records, checked)

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
        run = run_digest(self.state.run) if self.state.resumable else None
        try:
            plan = self.sink.finish(keys=keys, run=run, append=self.state.append)
        except OSError as exc:
            error = CommitError(str(self.output_error(exc, "the commit could not complete",
                                                      kept="finished")))
            error.errno = getattr(exc, "errno", None)
            raise error from exc
        members, removes = list(plan.members), list(plan.removes)
        if report:
            members.append((self.report_tmp, self.report_path))
        else:
            removes.append(self.report_path)  # a stale report of an earlier run
        release_output(self)
        advice = ("the finished run is kept", "run the same command with --resume") \
            if self.resumable else ("nothing is lost", "run the same command again")
        commit(self.journal, members, removes, append=plan.append,
               owned=[self.state_path] + list(plan.owned), advice=advice)
        if not keep_lock:
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
                for p in self.sink.temp_files() + [self.report_tmp, self.state_path,
                                                   self.state_path + ".tmp"]:
                    try:
                        remove_file(p)
                    except OSError:
                        pass
        finally:
            self._close()

    def _register(self):
        """Remember our descriptors for forked children to let go of."""
        register_output(self, self.sink.fds())

    def _close_files(self):
        release_output(self)
        self.sink.close_files()

    def _close(self):
        self._close_files()
        if self.lock is not None:
            release_output(self.lock)
            self.lock.release()
            self.lock = None
