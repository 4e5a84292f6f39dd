"""The state worker processes start in, whatever the start method (fork, spawn, forkserver).

* A forked child lets go of the parent's open output files (they are pointed at /dev/null, so
  nothing buffered is ever flushed into the output and the lock stays with the parent).
* Every worker dies with its parent (Linux ``PR_SET_PDEATHSIG``): a ``kill -9`` of a run leaves
  no orphan workers holding the partial files.
* Workers ignore Ctrl-C (it is the parent's to handle) and use one OpenCV thread each (the
  workers are the parallelism). ``cv2.setNumThreads`` must run in the parent, before a fork:
  in a forked child it deadlocks when the parent's OpenCV pool already ran. Spawned children
  read ``OPENCV_FOR_THREADS_NUM`` when they import OpenCV.
"""

import os
import signal
import sys
import threading

__all__ = ["register_output", "release_output", "worker_start", "WorkerState"]

#: File descriptors of the outputs this process is writing, by owner (see _after_fork_in_child,
#: which must not import, lock or allocate much: it runs in a fresh fork).
_OPEN_FDS = {}
_PRCTL = []  # [prctl] once looked up, in the parent: never ctypes in a forked child


def register_output(owner, fds):
    """Remember the descriptors of an output being written: a process forked meanwhile (a
    worker of ours or of a framework's loader) drops them and dies with this one."""
    _lookup_prctl()
    _OPEN_FDS[id(owner)] = list(fds)


def release_output(owner):
    _OPEN_FDS.pop(id(owner), None)


def _after_fork_in_child():
    fds = [fd for fds in _OPEN_FDS.values() for fd in fds]
    if not fds:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in fds:
        try:
            os.dup2(devnull, fd)
        except OSError:
            pass
    os.close(devnull)
    _die_with_parent()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _die_with_parent():
    if _PRCTL and _PRCTL[0] is not None:
        _PRCTL[0](1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _lookup_prctl():
    """Find ``prctl`` in the parent, once (looking it up in a forked child could deadlock)."""
    if not _PRCTL:
        try:
            import ctypes
            _PRCTL.append(ctypes.CDLL(None, use_errno=True).prctl if
                          sys.platform.startswith("linux") else None)
        except (OSError, AttributeError):  # pragma: no cover - not Linux
            _PRCTL.append(None)


def worker_start():
    """Run first in every worker process: die with the parent, leave Ctrl-C to it."""
    _lookup_prctl()  # a spawned child looks it up itself (no fork, no deadlock)
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class WorkerState:
    """The parent's state while it starts worker processes (a context manager).

    The default SIGTERM action (terminating a pool must simply end its workers), one OpenCV
    thread, and ``OPENCV_FOR_THREADS_NUM=1`` for children that import OpenCV themselves.
    """

    def __enter__(self):
        _lookup_prctl()
        self.main = threading.current_thread() is threading.main_thread()
        self.previous = signal.signal(signal.SIGTERM, signal.SIG_DFL) if self.main else None
        self.cv2 = sys.modules.get("cv2")
        self.threads = self.cv2.getNumThreads() if self.cv2 is not None else None
        if self.cv2 is not None:
            self.cv2.setNumThreads(1)
        self.env = os.environ.get("OPENCV_FOR_THREADS_NUM")
        os.environ["OPENCV_FOR_THREADS_NUM"] = "1"
        return self

    def __exit__(self, *exc):
        if self.main:
            signal.signal(signal.SIGTERM, self.previous)
        if self.cv2 is not None:
            self.cv2.setNumThreads(self.threads)
        if self.env is None:
            os.environ.pop("OPENCV_FOR_THREADS_NUM", None)
        else:
            os.environ["OPENCV_FOR_THREADS_NUM"] = self.env
