"""Local files: whole-file reads, complete writes, kernel copies, durable renames.

Standard library only.
"""

import errno
import os
import stat
from contextlib import contextmanager

from ..errors import NotAFileError

__all__ = ["check_regular_file", "read_local", "read_local_into", "write_all", "copy_range",
           "fsync_dir", "remove_file", "io_step", "step_of", "cause_of", "fix_for", "tail_sha256"]

_TAIL = 1 << 16  # the bytes before a length that identify a file (see tail_sha256)


def tail_sha256(path, length):
    """sha256 of the 64 KiB of ``path`` before byte ``length``: what identifies the file an
    append began on (a recovery truncates and extends only that file)."""
    import hashlib
    with open(path, "rb") as f:
        f.seek(max(0, length - _TAIL))
        return hashlib.sha256(f.read(min(length, _TAIL))).hexdigest()

#: What a path that is not a regular file is, and why reading it is refused.
_KINDS = (
    (stat.S_ISDIR, "a directory", "give the path of the file itself"),
    (stat.S_ISFIFO, "a FIFO (named pipe)", "reading it could block forever: copy the data "
     "into a regular file"),
    (stat.S_ISCHR, "a character device", "reading it could block or never end (/dev/zero): "
     "copy the data into a regular file"),
    (stat.S_ISBLK, "a block device", "copy the data into a regular file"),
    (stat.S_ISSOCK, "a socket", "copy the data into a regular file"),
)


@contextmanager
def io_step(what):
    """Name the step an ``OSError`` raised inside comes from (``"writing the journal X"``), so
    the message that reports it can say what was being done (the innermost name wins)."""
    try:
        yield
    except OSError as exc:
        if getattr(exc, "recpack_step", None) is None:
            exc.recpack_step = what
        raise


def step_of(exc, default="writing the files"):
    """The step :func:`io_step` named for ``exc``."""
    return getattr(exc, "recpack_step", None) or default


def cause_of(exc):
    """``'no space left on device'``: what the system said, without ``[Errno N]``."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__


#: What to do about an error, by errno.
_FIXES = {
    errno.ENOSPC: "free space",
    getattr(errno, "EDQUOT", -1): "free space (the disk quota is used up)",
    errno.EIO: "check the disk (the system log names the device error)",
    errno.EACCES: "check the folder's permissions",
    errno.EPERM: "check the folder's permissions (and that the files are not immutable)",
    errno.EROFS: "make the file system writable",
    errno.EFBIG: "raise the file-size limit (ulimit -f) or use a file system that holds "
                 "larger files",
}


def fix_for(exc):
    """What to do before trying again, for the error ``exc``."""
    return _FIXES.get(getattr(exc, "errno", None), "fix the cause")


def _refuse(path, mode, what):
    kind, fix = next(((kind, fix) for test, kind, fix in _KINDS if test(mode)),
                     ("of another type", "copy the data into a regular file"))
    raise NotAFileError("%s is %s, not a regular file: refused as %s; %s"
                        % (path, kind, what, fix), path=path, kind=kind)


def check_regular_file(path, what, *, missing_ok=False):
    """Refuse, before anything reads it, a ``path`` that is a directory, a FIFO, a device or a
    socket (:class:`~mxnet_recpack.errors.NotAFileError` naming the path, what it is and what
    it was given as: ``what`` such as ``"the record file"``).

    Returns True for a regular file (symbolic links are followed). A missing path raises
    ``FileNotFoundError`` naming it, or returns False with ``missing_ok``.
    """
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if missing_ok:
            return False
        raise FileNotFoundError("%s: no such file (expected %s here)" % (path, what)) \
            from None
    if not stat.S_ISREG(mode):
        _refuse(path, mode, what)
    return True


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
_READV = hasattr(os, "readv")


def read_local(path, what="a file"):
    """The whole content of a local file: one open, fstat and read (no buffered file object,
    a little cheaper per image than ``open(path, "rb").read()``). A directory, FIFO or device
    is refused (:class:`~mxnet_recpack.errors.NotAFileError`) without blocking."""
    fd = os.open(path, _READ_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would never end (/dev/zero)
            _refuse(path, info.st_mode, what)
        size = info.st_size
        data = os.read(fd, size + 1)
        if len(data) != size:  # a short read, or the file changed size: read on, to a bound
            parts, limit = [data], max(2 * size, 1 << 20)
            while parts[-1] and sum(map(len, parts)) <= limit:
                parts.append(os.read(fd, 1 << 20))
            data = b"".join(parts)
            if len(data) > limit:
                raise OSError("%s grew while it was read (from %d bytes to more than %d): "
                              "refused, something is still writing it" % (path, size, limit))
        return data
    finally:
        os.close(fd)


def read_local_into(path, buf, at, what="a file"):
    """Read the whole local file ``path`` into the bytearray ``buf`` from offset ``at`` (``buf``
    grows when it is too short: it must not be exported meanwhile); the number of bytes.

    :func:`read_local`'s checks and errors, without a bytes object per file: one open, fstat,
    read straight into ``buf`` and close. A file that does not read back at the size its
    ``fstat`` said (it is being written) is read again by :func:`read_local`.
    """
    fd = os.open(path, _READ_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would never end (/dev/zero)
            _refuse(path, info.st_mode, what)
        size = info.st_size
        if len(buf) < at + size + 1:
            buf.extend(bytes(max(at + size + 1 - len(buf), len(buf) // 2)))
        n = -1
        if _READV:
            with memoryview(buf) as view:
                n = os.readv(fd, [view[at:at + size + 1]])
    finally:
        os.close(fd)
    if n == size:
        return n
    data = read_local(path, what)
    if len(buf) < at + len(data):
        buf.extend(bytes(at + len(data) - len(buf)))
    buf[at:at + len(data)] = data
    return len(data)


def write_all(fd, view):
    """``os.write`` until every byte of ``view`` (a memoryview) is written."""
    while len(view):
        view = view[os.write(fd, view):]


def copy_range(src, dst, size, *, dst_offset=0):
    """Copy the first ``size`` bytes of the open file ``src`` to ``dst`` at ``dst_offset``: in
    the kernel with ``copy_file_range`` where it works (on file systems with reflinks, such as
    XFS and btrfs, it shares the blocks instead of copying them), else through a buffer."""
    copied = 0
    if hasattr(os, "copy_file_range"):
        try:
            while copied < size:
                n = os.copy_file_range(src.fileno(), dst.fileno(), size - copied, copied,
                                       dst_offset + copied)
                if n == 0:
                    break
                copied += n
        except OSError:  # not supported here (another file system, an old kernel)
            pass
    src.seek(copied)
    while copied < size:
        block = src.read(min(1 << 22, size - copied))
        if not block:
            raise OSError("%s ended after %d of %d bytes" % (getattr(src, "name", "a file"),
                                                            copied, size))
        os.lseek(dst.fileno(), dst_offset + copied, os.SEEK_SET)
        write_all(dst.fileno(), memoryview(block))
        copied += len(block)


def fsync_dir(path):
    """Make a rename in ``path``'s directory durable (no-op where unsupported)."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_file(path):
    """Delete ``path``; one that is already gone is fine."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
