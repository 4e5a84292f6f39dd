"""The commit journal: a pair (and its report and checksum sidecar) becomes the output as a
whole, or not at all, whatever step fails or is killed.

In the spirit of SQLite's rollback journal. A *replace* commit (a new file, a rewrite):

1. every new file is complete and fsynced under its temporary name;
2. the files it replaces get a second name (a hard link ``NAME.<command>.old``), so readers
   still see them;
3. ``train.rec.journal`` lists every (new, final, old) and is fsynced;
4. the new files are renamed over the finals, one by one;
5. the journal and the second names are removed.

An *append* commit (records written after the existing end of the ``.rec``, in place): the
journal, with the original length, is written before the first new byte; the commit renames the
new ``.idx`` (and report, sidecar) into place; a rollback truncates the ``.rec`` back to its
original bytes.

Whoever takes the target's lock next (every recpack command that writes, replaces or checks
it) reads a journal it finds first (:func:`recover`): a replace whose renames had begun is
finished (every new file was complete before the journal was written); a rollback that had
begun is finished; an append that had not committed is undone (unless that command resumes
it).
"""

import hashlib
import json
import logging
import os
import shutil

from ..errors import CommitError
from ..storage.local import fsync_dir

__all__ = ["journal_path_for", "commit", "begin_append", "rollback_append", "pending_append",
           "recover", "CommitError"]

log = logging.getLogger(__name__)
_TAIL = 1 << 16  # the bytes an append's journal hashes, just before its original end


def journal_path_for(target):
    """``train.rec`` -> ``train.rec.journal``."""
    return os.fspath(target) + ".journal"


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


def _drop(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _second_name(final, old):
    """Give ``final`` the second name ``old`` (a hard link: readers keep the first)."""
    _drop(old)
    try:
        os.link(final, old)
    except OSError:  # no hard links here (some network file systems): a copy
        shutil.copy2(final, old)


def commit(journal, members, removes=(), *, append=None):
    """Make ``members`` (``[(new, final), ...]``) the output, and ``removes`` (finals that must
    not outlive the commit, such as a stale report) disappear, as one step.

    ``append``: ``(rec, original length)`` when the records were written after the end of
    ``rec`` itself; a rollback then also truncates it back.

    Raises
    ------
    CommitError
        A rename failed; everything is rolled back to the old files (the new files stay under
        their temporary names, and an append's records are cut off again).
    """
    entry = _read_journal(journal) if append else None
    entry = dict(entry or {"version": 1, "kind": "replace"}, state="renaming", members=[])
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
        raise CommitError("%s: the commit could not rename %s (%s); the previous files "
                          "are back in place%s" % (
                              target, getattr(exc, "filename", None) or "a file",
                              exc.strerror or exc,
                              " and the new records cut off again" if append else
                              ", the new ones kept under their temporary names")) from exc
    _finish(journal, entry)


def _roll_forward(entry):
    for m in entry["members"]:
        if m["new"] is None:
            _drop(m["final"])
        elif os.path.exists(m["new"]):
            os.replace(m["new"], m["final"])
    if entry["members"]:
        fsync_dir(entry["members"][0]["final"])


def _roll_back(journal, entry):
    """Put every old file back, and every new file back under its temporary name; an append's
    records are cut off again. Each step looks at what exists, so running it again after a
    kill finishes what was left."""
    entry = dict(entry, state="rolling-back")
    _write_journal(journal, entry)
    for m in entry["members"]:
        new, final, old = m["new"], m["final"], m["old"]
        if old is not None:
            if not os.path.exists(old):
                continue  # restored already
            if new is not None and not os.path.exists(new) and os.path.exists(final):
                _second_name(final, new)  # keep the new file under its temporary name
            os.replace(old, final)
        elif new is not None and not os.path.exists(new) and os.path.exists(final):
            os.replace(final, new)  # there was no old file: the new one goes back
    fsync_dir(journal)
    if entry.get("kind") == "append":
        rollback_append(journal, entry["rec"], entry["length"])
    _drop(journal)


def _finish(journal, entry):
    _drop(journal)
    for m in entry["members"]:
        if m["old"] is not None:
            _drop(m["old"])
    fsync_dir(journal)


def begin_append(journal, rec, length, tail_sha256):
    """Before the first new byte is written after ``length`` bytes of ``rec`` (whose last
    64 KiB hash to ``tail_sha256``: a rollback truncates only that file, never a replacement)."""
    _write_journal(journal, {"version": 1, "kind": "append", "state": "appending",
                             "rec": os.fspath(rec), "length": int(length),
                             "tail_sha256": tail_sha256, "members": []})


def rollback_append(journal, rec, length):
    """Truncate ``rec`` back to its original ``length`` bytes and forget the journal.

    Returns False (and truncates nothing) when ``rec`` is no longer the file the append began
    on (shorter, or its bytes before ``length`` changed: another tool replaced it)."""
    entry = _read_journal(journal) or {}
    if entry.get("kind") != "append" or entry.get("length") != length:
        entry = {}
    same = os.path.exists(rec) and os.path.getsize(rec) >= length
    if same and entry.get("tail_sha256"):
        with open(rec, "rb") as f:
            f.seek(max(0, length - _TAIL))
            same = hashlib.sha256(f.read(min(length, _TAIL))).hexdigest() == \
                entry["tail_sha256"]
    if same:
        with open(rec, "r+b") as f:
            f.truncate(length)
            f.flush()
            os.fsync(f.fileno())
    _drop(journal)
    fsync_dir(journal)
    return same


def pending_append(journal):
    """``(rec, original length)`` of an append that has not committed, or None."""
    entry = _read_journal(journal)
    if entry and entry.get("kind") == "append" and entry.get("state") == "appending":
        return entry["rec"], entry["length"]
    return None


def recover(journal, *, keep_append=False):
    """Finish or undo the interrupted commit ``journal`` describes (a no-op without one).

    ``keep_append``: leave an uncommitted append in place (the command resumes it).

    Returns
    -------
    str or None
        What was done (for the log), or None when there was nothing to do.
    """
    entry = _read_journal(journal)
    if entry is None:
        return None
    kind, state = entry.get("kind"), entry.get("state")
    if kind == "append" and state == "appending":
        if keep_append:
            return None
        if rollback_append(journal, entry["rec"], entry["length"]):
            return "undid an interrupted append: %s is back to its %d original bytes" % (
                entry["rec"], entry["length"])
        return ("found the journal of an interrupted append, but %s was replaced since: left "
                "as it is" % entry["rec"])
    if state == "rolling-back":
        _roll_back(journal, entry)
        return "finished rolling back an interrupted commit"
    try:
        _roll_forward(entry)
    except OSError:
        _roll_back(journal, entry)
        return "rolled back an interrupted commit that could not be finished"
    _finish(journal, entry)
    return "finished an interrupted commit"
