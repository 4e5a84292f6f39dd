"""The commit journal: a pair (and its report and checksum sidecar) becomes the output as a
whole, or not at all, whatever step fails or is killed.

In the spirit of SQLite's rollback journal. Every new file is complete and fsynced under its
temporary name first. Then:

1. each file the commit replaces gets a second name (a hard link ``NEW.old``), so readers still
   see it and a rollback can put it back;
2. ``train.rec.journal`` lists every (new, final, old) and is fsynced;
3. an *append* copies its new records (written meanwhile to ``NAME.rec.COMMAND.partial``) after
   the original end of the ``.rec``: a kernel copy that costs what it adds;
4. the new files are renamed over the finals, one by one;
5. the journal, the second names and the appended records' temporary file are removed.

Until step 3 the ``.rec`` is exactly as it was: every reader, with or without the ``.idx``, sees
the old records only. During step 3 (a fraction of a second per 100 MB added) a reader without
the ``.idx``, or ``ImageRecordIter``, which reads past the last indexed record to the end of the
file, can meet the new records before the new ``.idx`` is in place.

Whoever takes the target's lock next (every recpack command that writes or reads it) settles a
journal it finds first (:func:`recover`): a commit whose renames had begun is finished (every
new file was complete before the journal was written, and an append's records are copied
again); a rollback that had begun is finished.
"""

import hashlib
import json
import logging
import os
import shutil

from ..errors import CommitError, OutputLockedError
from ..storage.local import copy_range, fsync_dir, remove_file
from .lock import OutputLock

__all__ = ["journal_path_for", "commit", "recover", "settle", "tail_sha256", "CommitError"]

log = logging.getLogger(__name__)
_TAIL = 1 << 16  # the bytes before an append's original end that identify the file


def journal_path_for(target):
    """``train.rec`` -> ``train.rec.journal``."""
    return os.fspath(target) + ".journal"


def tail_sha256(path, length):
    """sha256 of the 64 KiB of ``path`` before byte ``length``: what an append journals, so a
    recovery truncates and extends only the file the append began on."""
    with open(path, "rb") as f:
        f.seek(max(0, length - _TAIL))
        return hashlib.sha256(f.read(min(length, _TAIL))).hexdigest()


def _write_journal(path, entry):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(entry, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path)


def _read_journal(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _second_name(final, old):
    """Give ``final`` the second name ``old`` (a hard link: readers keep the first)."""
    remove_file(old)
    try:
        os.link(final, old)
    except OSError:  # no hard links here (some network file systems): a copy
        shutil.copy2(final, old)


def commit(journal, members, removes=(), *, append=None):
    """Make ``members`` (``[(new, final), ...]``) the output, and ``removes`` (finals that must
    not outlive the commit, such as a stale report) disappear, as one step.

    ``append``: ``(rec, original length, tail)``: the new records in the file ``tail`` go after
    the first ``original length`` bytes of ``rec``.

    Raises
    ------
    CommitError
        A step failed; everything is rolled back to the old files (the new files stay under
        their temporary names, and the ``.rec`` is cut back to its original bytes).
    """
    entry = {"version": 1, "kind": "replace", "state": "committing", "members": []}
    if append is not None:
        rec, length, tail = append
        entry.update(kind="append", rec=rec, length=int(length), tail=tail,
                     tail_size=os.path.getsize(tail), tail_sha256=tail_sha256(rec, length))
    for new, final in members:
        old = None
        if os.path.exists(final):
            old = new + ".old"
            _second_name(final, old)
        entry["members"].append({"new": new, "final": final, "old": old})
    for final in removes:
        if os.path.exists(final):
            old = final + ".removed"
            _second_name(final, old)
            entry["members"].append({"new": None, "final": final, "old": old})
    _write_journal(journal, entry)
    try:
        _roll_forward(entry)
    except OSError as exc:
        _roll_back(journal, entry)
        target = entry.get("rec") or entry["members"][0]["final"]
        raise CommitError("%s: the commit could not complete (%s: %s); the previous files are "
                          "back in place, the new ones kept under their temporary names"
                          % (target, getattr(exc, "filename", None) or "a file",
                             exc.strerror or exc)) from exc
    _finish(journal, entry)


def _same_file(entry):
    """The ``.rec`` an append journal names is still the file the append began on."""
    rec, length = entry["rec"], entry["length"]
    return os.path.exists(rec) and os.path.getsize(rec) >= length and \
        tail_sha256(rec, length) == entry["tail_sha256"]


def _copy_tail(entry):
    """Append the new records after the original end (again, if a kill interrupted it)."""
    if not os.path.exists(entry["tail"]):
        return  # copied and renamed already: the commit was finishing
    with open(entry["rec"], "r+b") as dst, open(entry["tail"], "rb") as src:
        dst.truncate(entry["length"])
        copy_range(src, dst, entry["tail_size"], dst_offset=entry["length"])
        dst.flush()
        os.fsync(dst.fileno())


def _roll_forward(entry):
    if entry["kind"] == "append":
        _copy_tail(entry)
    for m in entry["members"]:
        if m["new"] is None:
            remove_file(m["final"])
        elif os.path.exists(m["new"]):
            os.replace(m["new"], m["final"])
    if entry["members"]:
        fsync_dir(entry["members"][0]["final"])


def _roll_back(journal, entry):
    """Put every old file back, and every new file back under its temporary name; cut an
    append's records off again. Each step looks at what exists, so running it again after a
    kill finishes what was left."""
    entry = dict(entry, state="rolling-back")
    _write_journal(journal, entry)
    for m in entry["members"]:
        new, final, old = m["new"], m["final"], m["old"]
        renamed = (not os.path.exists(final)) if new is None else not os.path.exists(new)
        if old is not None:
            if not os.path.exists(old):
                continue  # restored already
            if not renamed:
                remove_file(old)  # the final was never replaced: the second name just goes
                continue
            if new is not None and os.path.exists(final):
                _second_name(final, new)  # keep the new file under its temporary name
            os.replace(old, final)
        elif new is not None and renamed and os.path.exists(final):
            os.replace(final, new)  # there was no old file: the new one goes back
    if entry["kind"] == "append" and _same_file(entry):
        with open(entry["rec"], "r+b") as f:
            f.truncate(entry["length"])
            os.fsync(f.fileno())
    fsync_dir(journal)
    remove_file(journal)


def _finish(journal, entry):
    remove_file(journal)
    for m in entry["members"]:
        if m["old"] is not None:
            remove_file(m["old"])
    if entry["kind"] == "append":
        remove_file(entry["tail"])
    fsync_dir(journal)


def recover(journal):
    """Finish or undo the interrupted commit ``journal`` describes (a no-op without one).

    Returns
    -------
    str or None
        What was done (for the log), or None when there was nothing to do.
    """
    entry = _read_journal(journal)
    if entry is None:
        return None
    if entry.get("kind") == "append" and not _same_file(entry):
        remove_file(journal)
        return ("found the journal of an interrupted append, but %s was replaced since: left "
                "as it is" % entry["rec"])
    if entry.get("state") == "rolling-back":
        _roll_back(journal, entry)
        return "finished rolling back an interrupted commit: the previous files are in place"
    try:
        _roll_forward(entry)
    except OSError:
        _roll_back(journal, entry)
        return "rolled back an interrupted commit that could not be finished"
    _finish(journal, entry)
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
