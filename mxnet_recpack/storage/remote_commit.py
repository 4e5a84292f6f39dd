"""The commit of a pair at a URL (``s3://bucket/train.rec``): the old pair or the new one, never
one of each, whatever request fails or whenever the server dies.

Object stores replace one key at a time, so the commit is journaled, like the local one
(:mod:`mxnet_recpack.pipeline.journal`), with every step one request:

1. one listing of the pair's names (``train.*``): which finals exist, and what earlier runs
   left (their staging objects, an interrupted commit's journal, which is settled first);
2. each new file is uploaded to ``KEY.upload-TOKEN`` beside its final ``KEY``;
3. each final that exists is kept as ``KEY.old-TOKEN`` (a server-side copy);
4. the journal ``train.rec.journal`` is written: the staged keys, backups and finals;
5. each final is replaced by a server-side copy of its staged version, ``.rec`` first and
   ``.idx`` right after it, then stale sidecars (``removes``) are deleted;
6. the journal is deleted, then every staging object (this run's and earlier runs') in one
   bulk delete.

Until step 5 the finals are as they were. If a copy of step 5 is refused while the server
answers, the journal is marked ``rolling-back`` and the old finals are copied back before the
error is reported (restore-before-report). If the server stops answering, nothing more is
asked of it: the error says which finals are new, which old and which unknown (a request sent
whose answer never came), and the next recpack command on the URL (the same command run
again, or ``verify``, ``inspect``, ``extract``, ``index``) settles the journal first: a
``committing`` journal is finished (the staged files are complete), a ``rolling-back`` one
undone. An interruption (Ctrl-C, SIGTERM) makes no request at all: it leaves the journal
and the staging objects to the next command.

What remains: between the copies of step 5 (one request each, milliseconds for an ``.idx``)
and after a commit cut short there, until the next recpack command on the URL, a reader that
is not recpack (``ImageRecordIter``, ``aws s3 cp``) can meet the new ``.rec`` beside the old
``.idx``; the error of the command that was cut short names the objects. Commands on several
machines are not coordinated: one host's lock covers its own commands only.
"""

import datetime
import json
import logging
import os
import re
import socket
import uuid

from ..errors import (CommitError, MissingObjectError, OutputLockedError,
                      StorageUnreachableError)
from .lock import OutputLock
from .remote import cause_of as _cause, is_network_error, put_file, remote_errors

__all__ = ["RemotePair"]

log = logging.getLogger(__name__)
_STAGING = re.compile(r"\.(upload|old)-[0-9a-f]{12}$")
_COPY_LIMIT = 5 << 30  # CopyObject's limit; larger objects go through fs.copy (multipart)


def _name(key):
    return key.rsplit("/", 1)[-1]


class _Steps:
    """What a commit has done to each final so far: the truth its errors tell."""

    def __init__(self, plan):
        self.plan = plan
        self.state = {m["final"]: "old" for m in plan["members"] + plan["removes"]}

    def text(self):
        unsure = " (a request changing it was sent, its answer never came)"
        words = {"old": "old", "new": "new", "unsure": "new or old" + unsure, "gone": "deleted",
                 "unsure-gone": "deleted or old" + unsure}
        parts = []
        for m in self.plan["members"] + self.plan["removes"]:
            word = words[self.state[m["final"]]]
            if m["backup"] is None:
                word = word.replace("old", "absent")
            parts.append("%s: %s" % (_name(m["final"]), word))
        return "; ".join(parts)


class RemotePair:
    """The objects of one pair at a URL: its finals, the staging objects of commits, the journal.

    Parameters
    ----------
    fs : fsspec filesystem
    url : str
        The ``.rec`` URL (for messages).
    path : str
        The ``.rec`` inside ``fs`` (``bucket/folder/train.rec``).
    """

    def __init__(self, fs, url, path):
        self.fs, self.url, self.path = fs, url, path
        self.folder, name = path.rsplit("/", 1)
        self.prefix = (name[:-4] if name.endswith(".rec") else name) + "."
        self.journal = path + ".journal"

    # -- requests -------------------------------------------------------------------------------
    def listing(self):
        """``{key: info}`` of every object named ``STEM.*`` beside the ``.rec`` (one request)."""
        with remote_errors(self.url, "listing the objects of this pair"):
            try:
                if hasattr(self.fs, "call_s3"):
                    found = self.fs.find(self.folder, maxdepth=1, prefix=self.prefix,
                                         detail=True, refresh=True)
                else:
                    self.fs.invalidate_cache(self.folder)
                    found = {i["name"]: i for i in self.fs.ls(self.folder, detail=True)
                             if _name(i["name"]).startswith(self.prefix)}
            except FileNotFoundError as exc:  # a folder is never missing: the bucket is
                raise MissingObjectError("%s: the bucket %s does not exist (%s); create it "
                                         "first, or check the URL" % (
                                             self.url, self.folder.split("/", 1)[0],
                                             _cause(exc))) from exc
        return {key: info for key, info in found.items() if info.get("type") != "directory"}

    def _copy(self, src, dst, size):
        if hasattr(self.fs, "call_s3") and size < _COPY_LIMIT:  # one request (fs.copy: four)
            bucket, key, _ = self.fs.split_path(dst)
            src_bucket, src_key, _ = self.fs.split_path(src)
            self.fs.call_s3("copy_object", Bucket=bucket, Key=key,
                            CopySource={"Bucket": src_bucket, "Key": src_key})
        else:
            self.fs.copy(src, dst)

    def _write_journal(self, entry):
        self.fs.pipe_file(self.journal, json.dumps(entry, sort_keys=True).encode("utf-8"))

    def _read_journal(self):
        with remote_errors(self.url, "reading the journal of an interrupted commit"):
            try:
                entry = json.loads(self.fs.cat_file(self.journal).decode("utf-8"))
            except FileNotFoundError:
                return None
            except ValueError as exc:
                entry = str(exc)
        if not (isinstance(entry, dict) and entry.get("version") == 1 and
                entry.get("state") in ("committing", "rolling-back") and
                isinstance(entry.get("members"), list) and isinstance(entry.get("removes"), list)):
            raise CommitError("%s: the commit journal %s is not one this version of recpack "
                              "wrote (%.100s); look at the pair, and delete the journal once the "
                              "pair is whole" % (self.url, self.fs.unstrip_protocol(self.journal),
                                                 entry))
        return entry

    def _remove_all(self, keys, doing):
        """One bulk delete; what cannot be deleted now is removed by the next commit."""
        if not keys:
            return
        try:
            with remote_errors(self.url, doing):
                self.fs.rm(sorted(keys))
        except Exception as exc:  # noqa: BLE001 - harmless leftovers, said so
            log.warning("%s; the next commit on this URL removes them", exc)

    # -- settling an interrupted commit -------------------------------------------------------
    def settle(self, *, lock_target=None):
        """Finish or undo an interrupted commit found at the URL; return the listing.

        ``lock_target``: the local path whose lock a writer on this host holds while it
        commits to the URL; when it is held, the writer settles what it finds itself. Without
        it, the caller holds that lock.
        """
        found = self.listing()
        if self.journal not in found:
            return found
        try:
            if lock_target is None:
                note = self.recover(found)
            else:
                with OutputLock(lock_target, "settle"):
                    note = self.recover(found)
        except OutputLockedError:
            return found  # a command on this host is committing it
        if note:
            log.warning("%s: %s", self.url, note)
        self.fs.invalidate_cache(self.folder)
        return self.listing()

    def recover(self, found):
        """Settle the journal (``found``: a listing taken since it was written)."""
        entry = self._read_journal()
        if entry is None:
            return None
        doing = "settling the interrupted commit of %s" % self.fs.unstrip_protocol(self.journal)
        with remote_errors(self.url, doing):
            if entry.get("state") == "committing":
                try:
                    self._forward(entry, found)
                except Exception as exc:  # noqa: BLE001 - refused: undone instead
                    if is_network_error(exc):
                        raise
                    entry = dict(entry, state="rolling-back", refused=str(exc))
                    self._write_journal(entry)
                    self._back(entry, self.listing())
                    self._finish(entry)
                    return ("an interrupted commit could not be finished (%s): undone, the "
                            "previous files are back" % exc)
                self._finish(entry)
                return "finished an interrupted commit: the new files are in place"
            self._back(entry, found)
            self._finish(entry)
            return "finished undoing an interrupted commit: the previous files are back"

    @staticmethod
    def _same(found, a, b):
        x, y = found.get(a), found.get(b)
        return (x is not None and y is not None and x.get("ETag") and
                x.get("ETag") == y.get("ETag") and x.get("size") == y.get("size"))

    def _forward(self, entry, found):
        for m in entry["members"]:
            if m["staged"] not in found:
                raise CommitError("%s: the staged %s is gone" % (self.url, _name(m["staged"])))
        for m in entry["members"]:
            if not self._same(found, m["staged"], m["final"]):
                self._copy(m["staged"], m["final"], found[m["staged"]]["size"])
        for m in entry["removes"]:
            if m["final"] in found:
                self.fs.rm_file(m["final"])

    def _back(self, entry, found):
        for m in entry["members"] + entry["removes"]:
            if m["backup"] is None:
                if m["final"] in found:
                    self.fs.rm_file(m["final"])
            elif m["backup"] not in found:
                if m["final"] not in found:
                    raise CommitError("%s: %s and its backup %s are both gone; nothing to put "
                                      "back" % (self.url, _name(m["final"]), _name(m["backup"])))
            elif not self._same(found, m["backup"], m["final"]):
                self._copy(m["backup"], m["final"], found[m["backup"]]["size"])

    def _finish(self, entry):
        self.fs.rm_file(self.journal)
        self._remove_all([m[k] for m in entry["members"] + entry["removes"]
                          for k in ("staged", "backup") if m.get(k)],
                         "removing the temporary objects of a settled commit")

    # -- the commit -------------------------------------------------------------------------------
    def commit(self, members, removes=(), *, kept_in=None):
        """Put ``members`` (``(local path, final key)``, in copy order: ``.rec`` first) at the
        URL as a whole and delete ``removes`` (final keys of stale sidecars); see the module
        docstring for the steps and what each failure leaves. ``kept_in``: where the new files
        stay on this machine if the commit fails (for the message)."""
        found = self.settle()
        token = uuid.uuid4().hex[:12]
        plan = {"version": 1, "state": "committing", "token": token, "by": _by(),
                "members": [], "removes": []}
        for local_path, final in members:
            plan["members"].append({"final": final, "staged": "%s.upload-%s" % (final, token),
                                    "backup": None, "size": os.path.getsize(local_path),
                                    "local": local_path})
        plan["removes"] = [{"final": final, "staged": None, "backup": None}
                           for final in removes if final in found]
        for m in plan["members"] + plan["removes"]:
            if m["final"] in found:
                m["backup"] = "%s.old-%s" % (m["final"], token)
                m["old_size"] = found[m["final"]]["size"]
        finals = {final for _, final in members} | set(removes)
        leftovers = [k for k in found if _STAGING.sub("", k) in finals and _STAGING.search(k)]
        steps = _Steps(plan)
        where = " (the new files are complete in %s)" % kept_in if kept_in else ""
        try:
            self._stage(plan, found)
        except BaseException as exc:
            self._staging_failed(plan, exc, steps, where, journal_sent=False)
        try:
            self._write_journal(_journal(plan))
        except BaseException as exc:
            self._staging_failed(plan, exc, steps, where, journal_sent=True)
        try:
            self._replace(plan, steps)
        except BaseException as exc:
            self._replace_failed(plan, exc, steps, where)
        self._done(plan, leftovers)

    def _stage(self, plan, found):
        for m in plan["members"]:
            put_file(self.fs, m["local"], m["staged"])
        for m in plan["members"] + plan["removes"]:
            if m["backup"]:
                self._copy(m["final"], m["backup"], m["old_size"])

    def _replace(self, plan, steps):
        for m in plan["members"]:
            steps.state[m["final"]] = "unsure"
            self._copy(m["staged"], m["final"], m["size"])
            steps.state[m["final"]] = "new"
        for m in plan["removes"]:
            steps.state[m["final"]] = "unsure-gone"
            self.fs.rm_file(m["final"])
            steps.state[m["final"]] = "gone"

    def _done(self, plan, leftovers):
        """Steps 6: the pair is whole and new whatever fails now."""
        try:
            with remote_errors(self.url, "deleting the commit's journal"):
                self.fs.rm_file(self.journal)
        except Exception as exc:  # noqa: BLE001 - the next command finds it: finishes again
            log.warning("%s; the new files are in place, and the next recpack command on this "
                        "URL removes the journal and the temporary objects", exc)
        else:
            self._remove_all(_temporaries(plan) + leftovers,
                             "removing the commit's temporary objects")
        self.fs.invalidate_cache(self.folder)
        for m in plan["members"]:
            log.info("uploaded %s", self.fs.unstrip_protocol(m["final"]))

    def _staging_failed(self, plan, exc, steps, where, *, journal_sent):
        """Steps 2-4 failed: the finals are as they were."""
        interrupted = not isinstance(exc, Exception)
        network = interrupted or is_network_error(exc)
        if journal_sent and network:
            after = ("the new files are staged beside them; the commit's journal may have "
                     "reached the server: the next recpack command on this URL then finishes "
                     "this commit (the whole new pair), else it removes the staged files")
        else:
            after = "what this run staged there is removed by the next run on this URL"
            if not network:
                self._remove_all(_temporaries(plan), "removing the staged files")
                after = "the staged files are removed"
        if interrupted:
            log.warning("%s: interrupted while uploading; the files at the URL are as they "
                        "were; %s", self.url, after)
            raise exc
        message = ("%s: uploading the new files failed: %s (%s); the files at the URL are as "
                   "they were%s; %s; run the command again" % (
                       self.url, "the storage server could not be reached or stopped answering"
                       if network else "the storage server refused", _cause(exc), where, after))
        raise (StorageUnreachableError if network else CommitError)(message) from exc

    def _replace_failed(self, plan, exc, steps, where):
        """Step 5 failed: undo it while the server answers, else tell exactly what is where."""
        if not isinstance(exc, Exception):
            log.warning("%s: interrupted during the commit; at the URL now: %s; the next "
                        "recpack command on this URL finishes this commit", self.url,
                        steps.text())
            raise exc
        if is_network_error(exc):
            raise StorageUnreachableError(
                "%s: the storage server could not be reached or stopped answering while the "
                "new files were put in place (%s). "
                "At the URL now: %s. The next recpack command on this URL finishes this commit "
                "(the whole new pair): run the same command again once the server answers "
                "(the new files are staged as NAME.upload-%s, the old ones kept as NAME.old-%s "
                "beside them)" % (self.url, _cause(exc), steps.text(), plan["token"],
                                  plan["token"])) from exc
        for final, now in steps.state.items():  # refused, so not done: as it was
            if now.startswith("unsure"):
                steps.state[final] = "old"
        try:
            self._restore(plan, steps)
        except Exception as again:  # noqa: BLE001 - the journal still says what to do
            raise (StorageUnreachableError if is_network_error(again) else CommitError)(
                "%s: putting the new files in place was refused (%s), and putting the old ones "
                "back failed too (%s). At the URL now: %s. The next recpack command on this URL "
                "settles it (the whole old or new pair, as the journal %s says): run the same "
                "command again once the server answers" % (
                    self.url, _cause(exc), _cause(again), steps.text(),
                    _name(self.journal))) from exc
        raise CommitError("%s: putting the new files in place was refused (%s); the files at "
                          "the URL are as they were%s; run the command again once the cause "
                          "is fixed" % (self.url, _cause(exc), where)) from exc

    def _restore(self, plan, steps):
        self._write_journal(_journal(dict(plan, state="rolling-back")))
        for m in reversed(plan["members"] + plan["removes"]):
            if steps.state[m["final"]] == "old":
                continue
            steps.state[m["final"]] = "unsure" if m["staged"] else "unsure-gone"
            if m["backup"] is None:
                self.fs.rm_file(m["final"])
            else:
                self._copy(m["backup"], m["final"], m["old_size"])
            steps.state[m["final"]] = "old"
        self.fs.rm_file(self.journal)
        self._remove_all(_temporaries(plan), "removing the staged files")


def _temporaries(plan):
    return [m[k] for m in plan["members"] + plan["removes"] for k in ("staged", "backup")
            if m.get(k)]


def _journal(plan):
    """The journal's content: the plan without this machine's paths."""
    return dict(plan, members=[{k: m[k] for k in ("final", "staged", "backup")}
                               for m in plan["members"]],
                removes=[{k: m[k] for k in ("final", "staged", "backup")}
                         for m in plan["removes"]])


def _by():
    return "pid %d on %s since %s" % (
        os.getpid(), socket.gethostname(),
        datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"))

