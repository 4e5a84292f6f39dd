"""The crash tests' side of the driver (``crash_driver.py``), and what MXNet's own readers see
of a pair at a given moment."""
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import namedtuple

HERE = os.path.dirname(os.path.abspath(__file__))

#: A run of the driver: ``code`` (exit status, or None when killed), ``signal`` (or None),
#: ``steps`` (every counted step), ``fired`` (the step that got the fault), ``out``/``err``.
Run = namedtuple("Run", ["code", "signal", "steps", "fired", "out", "err"])


class Driver:
    """The driver process (started once), running commands in forks with faults."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "crash_driver.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=HERE)

    def run(self, argv, cwd, *, at=None, kind=None):
        """Run ``recpack ARGV`` in ``cwd``, counting steps on paths under ``cwd`` (and the
        fault ``kind`` at step ``at``)."""
        logs = str(cwd) + ".log"
        request = {"argv": [str(a) for a in argv], "cwd": str(cwd), "watch": str(cwd),
                   "out": logs, "at": at, "kind": kind}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the crash driver died"
        reply = json.loads(line)
        status = reply["status"]
        with open(logs + ".out") as f:
            out = f.read()
        with open(logs + ".err") as f:
            err = f.read()
        killed = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        return Run(None if killed else os.WEXITSTATUS(status), killed, reply["steps"],
                   reply["fired"], out, err)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(30)


def copy_folder(src, dst, exist_ok=False):
    shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=exist_ok)
    return dst


def mxnet_views(rec):
    """``(sequential, indexed)``: what ``MXRecordIO`` reads from ``rec`` front to back, and what
    ``MXIndexedRecordIO`` reads key by key through its ``.idx``; each a tuple, ``"absent"``
    when the file is missing, or ``("error", message)`` where the reader fails."""
    import mxnet as mx
    rec = str(rec)
    idx = rec[:-4] + ".idx"
    if not os.path.exists(rec):
        return "absent", "absent"
    sequential = []
    reader = mx.recordio.MXRecordIO(rec, "r")
    try:
        while True:
            item = reader.read()
            if item is None:
                break
            sequential.append(item)
    except mx.base.MXNetError as exc:
        sequential = [("error", str(exc).splitlines()[0])]
    finally:
        reader.close()
    if not os.path.exists(idx):
        return tuple(sequential), "absent"
    indexed = []
    try:
        reader = mx.recordio.MXIndexedRecordIO(idx, rec, "r")
        try:
            indexed = [(key, reader.read_idx(key)) for key in reader.keys]
        finally:
            reader.close()
    except (mx.base.MXNetError, ValueError, OSError) as exc:
        indexed = [("error", str(exc).splitlines()[0])]
    return tuple(sequential), tuple(indexed)


#: Files no run may leave behind once a command on the same target has succeeded.
def strays(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(
        (".partial", ".journal", ".json", ".lock", ".tmp")) or ".journal." in n or
        ".partial." in n)


def killed(run):
    return run.signal == signal.SIGKILL
