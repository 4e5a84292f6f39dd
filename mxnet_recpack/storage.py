"""Storage: local paths and URLs (``s3://...``) through fsspec, and atomic output files.

Local paths use plain ``open``; anything with a ``scheme://`` goes through fsspec, which is
imported only then. Output is written under a temporary name and moved into place only when
complete (see :class:`AtomicOutput`).
"""

import os
import re

__all__ = [
    "is_url",
    "join",
    "read_bytes",
    "read_text",
    "fsync_dir",
]

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_url(path):
    """True for ``s3://bucket/key`` and other ``scheme://`` paths (``file://`` included)."""
    return bool(_URL.match(str(path)))


def join(root, relative):
    """Join an image root (local or URL) and a list's relative path."""
    root = os.fspath(root)
    if is_url(root):
        return root.rstrip("/") + "/" + relative.replace("\\", "/").lstrip("/")
    return os.path.join(root, relative)


def _fs(url, storage_options):
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - the s3 extra installs it
        raise ImportError("reading %s needs fsspec and s3fs: pip install "
                          "'mxnet_recpack[s3]'" % url) from exc
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    return fs, path


def read_bytes(path, *, storage_options=None):
    """The whole content of a local file or URL."""
    if is_url(path):
        fs, p = _fs(path, storage_options)
        return fs.cat_file(p)
    with open(path, "rb") as f:
        return f.read()


def read_text(path, *, storage_options=None, encoding="utf-8"):
    """The content of a text file (local or URL), decoded; a bad byte names its offset."""
    data = read_bytes(os.fspath(path), storage_options=storage_options)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise UnicodeDecodeError(exc.encoding, exc.object, exc.start, exc.end,
                                 "%s: byte %d is not valid %s" % (path, exc.start, encoding))


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
