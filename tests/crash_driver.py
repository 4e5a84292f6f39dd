"""The crash tests' driver: runs ``recpack`` commands, each in a fresh fork, with a fault
injected at one file-system call (SQLite's approach to testing its journal).

Started once per test session (``python crash_driver.py``), it imports mxnet_recpack (never
mxnet) and then reads one JSON request per line on stdin::

    {"argv": [...], "cwd": DIR, "watch": DIR, "out": PREFIX, "at": N or null,
     "kind": "kill" | "enospc" | "eio" | null}

For each, a forked child runs ``mxnet_recpack.cli.main(argv)`` (the code the ``recpack``
console script runs) with its stdout and stderr in ``PREFIX.out`` / ``PREFIX.err``, after
wrapping the calls that change files: ``os.open`` for writing, ``write``, ``writev``,
``pwrite``, ``fsync``, ``fdatasync``, ``ftruncate``, ``truncate``, ``replace``, ``rename``,
``link``, ``remove``, ``unlink``, ``mkdir``, ``rmdir``, ``copy_file_range``, ``sendfile``, and
the ``write``/``writelines``/``flush``/``truncate``/``close`` of every file ``open``/``os.fdopen``
opens for writing. Only calls on paths under ``watch`` count as steps. Step ``at`` gets the fault:

* ``kill``: SIGKILL before the call (what is on disk is what a ``kill -9`` there leaves);
* ``enospc``: the call fails with ENOSPC, and so does every later call that writes data (a
  full disk stays full; renames, removals and truncations still work);
* ``eio``: the call fails with EIO (once).

The reply is one JSON line: ``{"status": wait status, "steps": [...], "fired": step or null}``
(``steps`` lists every step the run made, in order, as ``"call path"``).
"""
import builtins
import errno
import json
import os
import signal
import sys
import traceback

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class Faults:
    def __init__(self, watch, at, kind, log_path):
        self.watch = os.path.realpath(watch) + os.sep
        self.at, self.kind, self.log_path = at, kind, log_path
        self.steps, self.full, self.on, self.fired = [], False, True, None

    def _inside(self, path):
        if isinstance(path, int):
            try:
                path = os.readlink("/proc/self/fd/%d" % path)
            except OSError:
                return None
        elif isinstance(path, bytes):
            path = path.decode("utf-8", "replace")
        if not isinstance(path, str):
            path = getattr(path, "__fspath__", lambda: None)()
            if path is None:
                return None
        full = os.path.realpath(os.path.abspath(path))
        return full[len(self.watch):] if full.startswith(self.watch) else None

    def step(self, call, paths, data=False):
        if not self.on:
            return
        names = [n for n in (self._inside(p) for p in paths) if n is not None]
        if not names:
            return
        self.steps.append("%s %s" % (call, " -> ".join(names)))
        if self.full and data and self.kind == "enospc":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if len(self.steps) - 1 != self.at:
            return
        self.fired = self.steps[-1]
        self.save()
        if self.kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.kind == "enospc":
            self.full = True
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    def save(self):
        self.on = False
        try:
            with _REAL["open"](self.log_path, "w") as f:
                json.dump({"steps": self.steps, "fired": self.fired}, f)
        finally:
            self.on = True


_REAL = {}
FAULTS = None


class _File:
    """A file opened for writing, whose writes are steps."""

    def __init__(self, f, path):
        self.__dict__["_f"], self.__dict__["_path"] = f, path

    def write(self, data):
        FAULTS.step("write", [self._path], data=True)
        return self._f.write(data)

    def writelines(self, lines):
        FAULTS.step("write", [self._path], data=True)
        return self._f.writelines(lines)

    def flush(self):
        if not self._f.closed:
            FAULTS.step("flush", [self._path], data=True)
        return self._f.flush()

    def truncate(self, *args):
        FAULTS.step("truncate", [self._path])
        return self._f.truncate(*args)

    def close(self):
        if self._f.closed:
            return None
        try:
            FAULTS.step("close", [self._path])
        except OSError:
            self._f.close()
            raise
        return self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __iter__(self):
        return iter(self._f)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __setattr__(self, name, value):
        setattr(self._f, name, value)


def _wrap(name, fn, where, data=False):
    def wrapper(*args, **kwargs):
        FAULTS.step(name, [args[i] for i in where if i < len(args)], data=data)
        return fn(*args, **kwargs)
    wrapper.__name__ = fn.__name__
    return wrapper


def _writable(mode):
    return any(c in mode for c in "wax+")


def install(watch, at, kind, log_path):
    global FAULTS
    FAULTS = Faults(watch, at, kind, log_path)
    _REAL["open"] = builtins.open
    real_open, real_fdopen, real_os_open = builtins.open, os.fdopen, os.open

    def open_(file, mode="r", *args, **kwargs):
        if not _writable(mode):
            return real_open(file, mode, *args, **kwargs)
        FAULTS.step("open", [file])
        return _File(real_open(file, mode, *args, **kwargs), file)

    def fdopen(fd, mode="r", *args, **kwargs):
        f = real_fdopen(fd, mode, *args, **kwargs)
        return _File(f, fd) if _writable(mode) else f

    def os_open(path, flags, *args, **kwargs):
        if flags & _WRITE_FLAGS:
            FAULTS.step("open", [path])
        return real_os_open(path, flags, *args, **kwargs)

    builtins.open, os.fdopen, os.open = open_, fdopen, os_open
    for name, where, data in (("write", (0,), True), ("writev", (0,), True),
                              ("pwrite", (0,), True), ("fsync", (0,), False),
                              ("fdatasync", (0,), False), ("ftruncate", (0,), False),
                              ("truncate", (0,), False), ("replace", (0, 1), False),
                              ("rename", (0, 1), False), ("link", (0, 1), False),
                              ("remove", (0,), False), ("unlink", (0,), False),
                              ("mkdir", (0,), False), ("rmdir", (0,), False),
                              ("copy_file_range", (1,), True), ("sendfile", (0,), True)):
        if hasattr(os, name):
            setattr(os, name, _wrap(name, getattr(os, name), where, data))


def _child(request):
    code = 99
    try:
        os.chdir(request["cwd"])
        for fd, suffix in ((1, ".out"), (2, ".err")):
            target = os.open(request["out"] + suffix, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                             0o644)
            os.dup2(target, fd)
            os.close(target)
        install(request["watch"], request.get("at"), request.get("kind"),
                request["out"] + ".steps")
        from mxnet_recpack.cli import main
        try:
            code = main(request["argv"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the test reads the traceback
        traceback.print_exc()
        code = 98
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            if FAULTS is not None:
                FAULTS.save()
        finally:
            os._exit(code)


def main():
    os.environ["OPENCV_FOR_THREADS_NUM"] = "1"
    import cv2
    cv2.setNumThreads(1)  # in this parent, before any fork: children run OpenCV alone
    import importlib
    import pkgutil
    import mxnet_recpack
    for module in pkgutil.walk_packages(mxnet_recpack.__path__, "mxnet_recpack."):
        if not module.name.startswith(("mxnet_recpack.gluon", "mxnet_recpack.demo",
                                           "mxnet_recpack.__main__")):
            importlib.import_module(module.name)  # warm: every child starts with it imported
    import tqdm  # noqa: F401
    for line in sys.stdin:
        request = json.loads(line)
        for path in (request["out"] + s for s in (".out", ".err", ".steps")):
            if os.path.exists(path):
                os.remove(path)
        pid = os.fork()
        if pid == 0:
            _child(request)
        _, status = os.waitpid(pid, 0)
        reply = {"status": status, "steps": [], "fired": None}
        try:
            with open(request["out"] + ".steps") as f:
                reply.update(json.load(f))
        except (OSError, ValueError):
            pass
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
