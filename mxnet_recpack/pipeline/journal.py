"""The commit journal: a pair (and its report and checksum sidecar) becomes the output as a
whole, or not at all, whatever step fails or is killed.

In the spirit of SQLite's rollback journal. Every new file is complete and fsynced under its
temporary name first. Then:

1. each file the commit replaces or removes gets a second name (a hard link
   ``train.rec.journal.old-train.idx``), so readers still see it and a rollback can put it back;
2. ``train.rec.journal`` lists every (new, final, old), the files the run owns (its run state)
   and, for an append, the original length; it is fsynced (this is the commit point);
3. an *append* copies its new records (written meanwhile to ``NAME.rec.COMMAND.partial``) after
   the original end of the ``.rec``: a kernel copy that costs what it adds;
4. the new files are renamed over the finals (see below for the pair);
5. the run state, the second names and the appended records' file are removed, then the journal.

What readers see. A replaced pair changes in three renames: the old ``.idx`` goes first, then
the new ``.rec`` and the new ``.idx`` take their names. POSIX cannot rename two files at once,
so for those microseconds an indexed reader (``MXIndexedRecordIO``, DALI) finds no ``.idx`` and
fails to open, loudly, instead of reading new records at old offsets: at no moment is a new
``.rec`` beside an old ``.idx``, or the reverse. An append never changes the records the old
``.idx`` lists, so an indexed reader sees the old pair until the new ``.idx`` is in place; a
sequential reader (``MXRecordIO``, ``ImageRecordIter`` without an index) sees the new records
from step 3 on.

Whoever takes the target's lock next (every recpack command that writes or reads it) settles a
journal it finds first (:func:`recover`): the commit is finished where it can be (every new
file was complete before the journal was written, and an append's records are copied again),
and undone where it cannot. A failure is undone at once; the error then says whether the
previous files are back, or, when even that failed, what is where and that the next command
finishes the job. Nothing here writes data after the journal (a rollback on a full disk must
not need space): a rollback truncates and renames.
"""

import glob
import logging
import os
import shutil

from ..errors import CommitError, OutputLockedError
from ..storage.local import (cause_of, copy_range, fix_for, fsync_dir, io_step, remove_file,
                             step_of, tail_sha256)
from .journal_file import read_journal as _read_journal, write_journal as _write_journal
from .lock import OutputLock

__all__ = ["journal_path_for", "commit", "recover", "settle", "tail_sha256", "CommitError",
           "remove_leftovers"]

log = logging.getLogger(__name__)


def journal_path_for(target):
    """``train.rec`` -> ``train.rec.journal``."""
    return os.fspath(target) + ".journal"


def _second_name_for(journal, final):
    return "%s.old-%s" % (journal, os.path.basename(final))


def _second_name(final, old):
    """Give ``final`` the second name ``old`` (a hard link: readers keep the first)."""
    remove_file(old)
    try:
        os.link(final, old)
    except OSError:  # no hard links here (some network file systems): a copy
        shutil.copy2(final, old)


def remove_leftovers(journal):
    """Remove what a commit stopped before its journal existed left (second names, a torn
    journal): called under the lock, once no journal is left to settle."""
    for path in glob.glob(glob.escape(journal) + ".*"):
        remove_file(path)


def _entry(members, removes, append, owned, journal):
    entry = {"version": 2, "kind": "replace", "members": [], "owned": list(owned)}
    if append is not None:
        rec, length, tail = append
        entry.update(kind="append", rec=rec, length=int(length), tail=tail,
                     tail_size=os.path.getsize(tail), tail_sha256=tail_sha256(rec, length))
    for new, final in members:
        entry["members"].append({"new": new, "final": final, "old": None})
    for final in removes:
        entry["members"].append({"new": None, "final": final, "old": None})
    names = [m["final"] for m in entry["members"]]
    # A replaced pair: the old .idx goes first (see the module docstring).
    entry["pair"] = entry["kind"] == "replace" and len(names) > 1 and \
        names[0].endswith(".rec") and names[1] == names[0][:-4] + ".idx"
    for m in entry["members"]:
        if os.path.exists(m["final"]):
            m["old"] = _second_name_for(journal, m["final"])
    return entry


def commit(journal, members, removes=(), *, append=None, owned=(), advice=None):
    """Make ``members`` (``[(new, final), ...]``) the output, and ``removes`` (finals that must
    not outlive the commit, such as a stale report) disappear, as one step; ``owned`` (the run
    state) is removed with the journal once the commit is whole.

    ``append``: ``(rec, original length, tail)``: the new records in the file ``tail`` go after
    the first ``original length`` bytes of ``rec``. ``advice``: what the error message tells the
    user to do once the cause is fixed (``"run the same command with --resume"``).

    Raises
    ------
    CommitError
        A step failed. Its message names the step and says where the files are: the previous
        ones intact or back in place (the new ones kept under their temporary names), or, when
        even the rollback failed, that the journal remains for the next command to settle.
    """
    target = append[0] if append is not None else members[0][1]
    entry = _entry(members, removes, append, owned, journal)
    made = []
    try:
        for m in entry["members"]:
            if m["old"] is not None:
                with io_step("keeping the previous %s" % m["final"]):
                    _second_name(m["final"], m["old"])
                made.append(m["old"])
        _write_journal(journal, entry)
    except OSError as exc:
        for path in made + [journal + ".tmp"]:
            _quietly(remove_file, path)
        raise _error(target, exc, "the previous files are intact", advice) from exc
    try:
        _roll_forward(entry)
    except OSError as exc:
        try:
            _roll_back(journal, entry)
        except OSError as again:
            raise _error(target, exc, _stuck(journal, entry, again), advice) from exc
        raise _error(target, exc, "the previous files are back in place", advice) from exc
    _finish(journal, entry)


def _quietly(fn, *args):
    try:
        fn(*args)
    except OSError:
        pass


def _error(target, exc, where, advice):
    message = "%s: the commit could not complete: %s (while %s); %s" % (
        target, cause_of(exc), step_of(exc), where)
    if advice:
        message += "; %s: %s, then %s" % (advice[0], fix_for(exc), advice[1])
    error = CommitError(message)
    error.errno, error.cause, error.step = getattr(exc, "errno", None), cause_of(exc), \
        step_of(exc)
    return error


def _stuck(journal, entry, again):
    return ("undoing it failed too (%s, while %s), so the journal %s remains: the next recpack "
            "command on %s finishes the commit once the cause is fixed"
            % (cause_of(again), step_of(again), journal,
               entry.get("rec") or entry["members"][0]["final"]))


def _same_file(entry):
    """The ``.rec`` an append journal names is still the file the append began on."""
    rec, length = entry["rec"], entry["length"]
    return os.path.exists(rec) and os.path.getsize(rec) >= length and \
        tail_sha256(rec, length) == entry["tail_sha256"]


def _copy_tail(entry):
    """Append the new records after the original end (again, if a kill interrupted it)."""
    if not os.path.exists(entry["tail"]):
        if os.path.getsize(entry["rec"]) >= entry["length"] + entry["tail_size"]:
            return  # copied already, and the records file removed: the commit was finishing
        raise FileNotFoundError(
            "the new records to append (%s) are gone and %s does not hold them: the append "
            "cannot be finished" % (entry["tail"], entry["rec"]))
    with io_step("appending the new records to %s" % entry["rec"]):
        with open(entry["rec"], "r+b") as dst, open(entry["tail"], "rb") as src:
            dst.truncate(entry["length"])
            copy_range(src, dst, entry["tail_size"], dst_offset=entry["length"])
            dst.flush()
            os.fsync(dst.fileno())


def _roll_forward(entry):
    if entry["kind"] == "append":
        _copy_tail(entry)
    members = entry["members"]
    if entry.get("pair") and os.path.exists(members[0]["new"]) and \
            os.path.exists(members[1]["new"]):
        with io_step("removing the previous %s" % members[1]["final"]):
            remove_file(members[1]["final"])  # never an old .idx beside a new .rec
    for m in members:
        if m["new"] is None:
            if m["old"] is not None:
                with io_step("removing %s" % m["final"]):
                    remove_file(m["final"])
        elif os.path.exists(m["new"]):
            with io_step("renaming %s to %s" % (m["new"], m["final"])):
                os.replace(m["new"], m["final"])
    if members:
        fsync_dir(members[0]["final"])


def _roll_back(journal, entry):
    """Put every old file back, and every new file back under its temporary name; cut an
    append's records off again. Each step looks at what exists, so running it again after a
    kill finishes what was left; nothing is written but renames and a truncation. A replaced
    pair's new ``.idx`` leaves first and its old one comes back last, so no moment shows a
    ``.rec`` beside the other version's ``.idx``."""
    members = entry["members"]
    order = list(reversed(members))
    if entry.get("pair"):
        idx = members[1]
        _take_back(idx, keep_final=False)
        order = [m for m in order if m is not idx] + [idx]
    for m in order:
        touched = not os.path.exists(m["final"]) or (m["new"] is not None and
                                                      not os.path.exists(m["new"]))
        _take_back(m)
        _put_back(m, touched)
    # An append's old .idx is back (it lists only the old records): now cut the new ones off.
    if entry["kind"] == "append" and _same_file(entry):
        with io_step("cutting the new records off %s" % entry["rec"]):
            with open(entry["rec"], "r+b") as f:
                f.truncate(entry["length"])
                os.fsync(f.fileno())
    fsync_dir(journal)
    with io_step("removing the journal %s" % journal):
        remove_file(journal)
    fsync_dir(journal)


def _take_back(m, keep_final=True):
    """A new file that took its final name goes back under its temporary name (the final keeps
    it until the old one replaces it, unless ``keep_final`` is False)."""
    new, final = m["new"], m["final"]
    if new is None or os.path.exists(new) or not os.path.exists(final):
        return
    with io_step("moving the new %s back to %s" % (final, new)):
        if keep_final and m["old"] is not None and os.path.exists(m["old"]):
            _second_name(final, new)
        else:
            os.replace(final, new)


def _put_back(m, touched):
    """The old file takes its final name again (or, where the commit never got to replace or
    remove the final, its second name just goes)."""
    old, final = m["old"], m["final"]
    if old is None or not os.path.exists(old):
        return
    with io_step("putting the previous %s back" % final):
        if touched:
            os.replace(old, final)
        else:
            remove_file(old)


def _finish(journal, entry):
    """Remove the run state, second names, an append's records file, then the journal. A
    failure leaves the journal (the commit is whole; the next command finishes tidying up)."""
    try:
        for path in entry.get("owned", []):
            remove_file(path)
        for m in entry["members"]:
            if m["old"] is not None:
                remove_file(m["old"])
        if entry["kind"] == "append":
            remove_file(entry["tail"])
        remove_file(journal)
    except OSError as exc:
        log.warning("%s: committed; tidying up failed (%s), the next recpack command on it "
                    "finishes that", journal[:-len(".journal")], cause_of(exc))
        return
    fsync_dir(journal)


def recover(journal):
    """Finish or undo the interrupted commit ``journal`` describes (a no-op without one).

    Returns
    -------
    str or None
        What was done (for the log), or None when there was nothing to do.

    Raises
    ------
    CommitError
        When it can be neither finished nor undone now (the journal stays for the next try).
    """
    try:
        return _recover(journal)
    except OSError as exc:
        if isinstance(exc, CommitError):
            raise
        target = journal[:-len(".journal")]
        error = CommitError("%s: an interrupted commit found there (%s) could not be settled: "
                            "%s (while %s); %s, then run the command again"
                            % (target, journal, cause_of(exc), step_of(exc), fix_for(exc)))
        error.errno = exc.errno
        raise error from exc


def _recover(journal):
    entry = _read_journal(journal)
    if entry is None:
        remove_leftovers(journal)
        return None
    if entry.get("kind") == "append" and not _same_file(entry):
        remove_file(journal)
        remove_leftovers(journal)
        return ("found the journal of an interrupted append, but %s was replaced since: left "
                "as it is" % entry["rec"])
    if entry.get("state") == "rolling-back":  # a version-1 journal's rollback
        _roll_back(journal, entry)
        return "finished rolling back an interrupted commit: the previous files are in place"
    try:
        _roll_forward(entry)
    except OSError:
        _roll_back(journal, entry)
        remove_leftovers(journal)
        return "rolled back an interrupted commit that could not be finished"
    _finish(journal, entry)
    remove_leftovers(journal)
    return "finished an interrupted commit: the new files are in place"


def settle(target):
    """Before a command reads ``target``: finish or undo a commit that was interrupted there,
    if no other command is at work on it (reading never waits for a lock). Returns what was
    done, or None."""
    journal = journal_path_for(target)
    if not os.path.exists(journal):
        return None
    try:
        with OutputLock(target, "settle"):
            note = recover(journal)
    except OutputLockedError:
        return None  # a writer is at work: it settles what it finds itself
    if note:
        log.warning("%s: %s", target, note)
    return note
