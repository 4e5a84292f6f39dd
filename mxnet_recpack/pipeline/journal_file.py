"""The commit journal as a file: written whole (a temporary name, fsynced, renamed), read
back checked (every field a journal of its kind needs), its paths relative to its own folder so
a folder moved or copied while a commit is interrupted keeps a journal about its own files."""

import json
import os

from ..errors import CommitError
from ..storage.local import fsync_dir, io_step

__all__ = ["read_journal", "write_journal"]

_PATHS = ("new", "final", "old")


def _on_disk(entry, folder):
    """``entry`` with its paths relative to the journal's folder: a folder moved or copied
    while a commit is interrupted keeps a journal about its own files."""
    def rel(path):
        return None if path is None else os.path.relpath(path, folder)
    out = dict(entry, members=[{k: rel(m[k]) for k in _PATHS} for m in entry["members"]],
               owned=[rel(p) for p in entry["owned"]])
    for key in ("rec", "tail"):
        if key in out:
            out[key] = rel(out[key])
    return out


def write_journal(path, entry):
    tmp = path + ".tmp"
    folder = os.path.dirname(os.path.abspath(path))
    with io_step("writing the journal %s" % path):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(_on_disk(entry, folder), sort_keys=True))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    fsync_dir(path)


def _valid(entry):
    """True when ``entry`` has every field a journal of this kind needs, of its type."""
    def path(value, optional=False):
        return isinstance(value, str) or (optional and value is None)
    if not isinstance(entry, dict) or entry.get("kind") not in ("replace", "append") or \
            not isinstance(entry.get("members"), list):
        return False
    for m in entry["members"]:
        if not isinstance(m, dict) or not path(m.get("final")) or \
                not path(m.get("new"), True) or not path(m.get("old"), True):
            return False
    if not isinstance(entry.get("owned", []), list) or \
            not all(path(p) for p in entry.get("owned", [])):
        return False
    if entry["kind"] == "append":
        return path(entry.get("rec")) and path(entry.get("tail")) and all(
            isinstance(entry.get(k), int) for k in ("length", "tail_size")) and \
            isinstance(entry.get("tail_sha256"), str)
    return True


def read_journal(path):
    try:
        with open(path, encoding="utf-8") as f:
            entry = json.load(f)
    except FileNotFoundError:
        return None
    except ValueError as exc:  # written whole (renamed into place): damaged since
        raise CommitError("%s is not a commit journal recpack can read (%s): the disk may have "
                          "damaged it. Check the files beside it, then move it away to go on"
                          % (path, exc)) from None
    if not _valid(entry):
        raise CommitError("%s is not a commit journal recpack can read (a field is missing or "
                          "of the wrong kind); check the files beside it, then move it away to "
                          "go on" % path)
    folder = os.path.dirname(os.path.abspath(path))

    def full(p):
        return None if p is None else os.path.normpath(os.path.join(folder, p))
    entry["members"] = [{k: full(m.get(k)) for k in _PATHS} for m in entry["members"]]
    entry["owned"] = [full(p) for p in entry.get("owned", [])]
    for key in ("rec", "tail"):
        if key in entry:
            entry[key] = full(entry[key])
    return entry
