"""Where bytes live: local paths (``local``) and URLs such as ``s3://bucket/key`` through
fsspec (``remote``, imported only when a URL is used).

A bottom layer beside ``format``: ``sources`` and ``pipeline`` both use it. It may import only
the standard library, ``errors`` and (for URLs) fsspec.
"""

import os
import re

from .local import check_regular_file, fsync_dir, read_local, read_local_into

__all__ = ["is_url", "joiner", "read_bytes", "read_into", "write_small", "fsync_dir",
           "check_regular_file"]

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_url(path):
    """True for ``s3://bucket/key`` and other ``scheme://`` paths (``file://`` included)."""
    return bool(_URL.match(str(path)))


class joiner:  # noqa: N801 - used like a function: joiner(root)(relative)
    """``joiner(root)(relative)`` -> the full path, for one image root (folder or URL prefix).

    Built once per run, so the per-item join is a plain string operation; picklable, so
    datasets holding one travel to spawned workers.
    """

    def __init__(self, root):
        root = os.fspath(root)
        self.url = is_url(root)
        self.base = root.rstrip("/") + "/" if self.url else root
        #: On POSIX, ``os.path.join(root, relative)`` of a relative path is one concatenation.
        self.prefix = None
        if not self.url and os.sep == "/" and isinstance(root, str):
            self.prefix = root if not root or root.endswith("/") else root + "/"

    def __call__(self, relative):
        if self.url:
            return self.base + relative.replace("\\", "/").lstrip("/")
        if self.prefix is not None and not relative.startswith("/"):
            return self.prefix + relative
        return os.path.join(self.base, relative)


def read_bytes(path, *, storage_options=None, what="a file"):
    """The whole content of a local file or URL (a local path that is not a regular file is
    refused as ``what``, naming what it is)."""
    if is_url(path):
        from .remote import filesystem, remote_errors
        fs, p = filesystem(path, storage_options)
        with remote_errors(path, "reading it"):
            return fs.cat_file(p)
    return read_local(path, what)


def read_into(path, buffer, offset, *, storage_options=None, what="a file"):
    """:func:`read_bytes` into the bytearray ``buffer`` from ``offset`` (it grows as needed);
    the number of bytes. Local files are read straight into it."""
    if not is_url(path):
        return read_local_into(path, buffer, offset, what)
    data = read_bytes(path, storage_options=storage_options, what=what)
    if len(buffer) < offset + len(data):
        buffer.extend(bytes(offset + len(data) - len(buffer)))
    buffer[offset:offset + len(data)] = data
    return len(data)


def write_small(path, data, *, storage_options=None):
    """Write a small file (a sidecar: a key mapping, InsightFace's ``property``) whole or not
    at all: a temporary file renamed over ``path``, or one PUT for a URL."""
    data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if is_url(path):
        from .remote import filesystem, remote_errors
        fs, p = filesystem(path, storage_options)
        with remote_errors(path, "writing it"):
            fs.pipe_file(p, data)
        return
    tmp = "%s.%d.partial" % (path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path)
