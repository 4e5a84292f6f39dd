"""One owner per output: the lock every command that writes or replaces a pair takes.

``train.rec.lock`` beside the target, held (``flock`` on POSIX, ``msvcrt.locking`` on Windows)
from before the first temporary file is made until the commit or rollback is done. A second
command on the same target is refused at once, naming the holder (command, process, host,
since when); a holder that dies releases the lock with its process (the kernel drops the lock),
so no lock is ever stale.

What it covers: one host and its local file systems (NFS and SMB locks are as good as the
mount's). Writers to one ``s3://`` key from several machines are not detected: object stores
have no locks (each machine locks its own staging folder only).
"""

import datetime
import os
import socket
import sys

from ..errors import OutputError, OutputLockedError
from .local import cause_of, fix_for

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None
    import msvcrt

__all__ = ["OutputLock", "lock_path_for"]


def lock_path_for(target):
    """``train.rec`` -> ``train.rec.lock``."""
    return os.fspath(target) + ".lock"


def _try_lock(fd):
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:  # pragma: no cover - Windows
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)


class OutputLock:
    """The lock on ``target`` for ``command`` (a context manager; :meth:`release` is
    idempotent).

    Raises
    ------
    OutputLockedError
        When another command holds it (the message names that command).
    """

    def __init__(self, target, command):
        self.target = os.fspath(target)
        self.path = lock_path_for(self.target)
        self.command = command
        self._fd = None
        for _ in range(8):  # the holder may remove the file between our open and our lock
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                error = OutputError("%s: cannot take the lock %s: %s; nothing was changed: %s, "
                                    "then run the same command again"
                                    % (self.target, self.path, cause_of(exc), fix_for(exc)))
                error.errno = exc.errno
                raise error from exc
            try:
                _try_lock(fd)
            except OSError:
                holder = _read_holder(fd)
                os.close(fd)
                raise OutputLockedError(
                    "%s is being written right now (%s); wait for it to finish: the lock %s is "
                    "released when that process ends, even if it is killed"
                    % (self.target, holder or "by another recpack command", self.path)) from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                break
            os.close(fd)  # locked a file its holder had just removed: try again
        else:  # pragma: no cover - only under a storm of lockers
            raise OutputLockedError("%s: could not take the lock %s" % (self.target, self.path))
        info = "%s, pid %d on %s since %s (%s)" % (
            command, os.getpid(), socket.gethostname(),
            datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            " ".join(os.path.basename(a) if i == 0 else a
                     for i, a in enumerate(sys.argv))[:300])
        try:  # who holds it, for the message a second command gets (the lock holds anyway)
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, info.encode("utf-8"), 0) if hasattr(os, "pwrite") else \
                os.write(self._fd, info.encode("utf-8"))
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False

    def fileno(self):
        return self._fd

    def release(self):
        """Remove the lock file and let go (idempotent)."""
        if self._fd is None:
            return
        try:
            os.remove(self.path)  # while still holding it: a new locker re-checks the inode
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None


def _read_holder(fd):
    try:
        return os.read(fd, 512).decode("utf-8", "replace").strip() or None
    except OSError:
        return None
