"""Storage: local paths and URLs (``s3://...``) through fsspec, and atomic output files.

Local paths use plain ``open``; anything with a ``scheme://`` goes through fsspec, which is
imported only then. Output is written under a temporary name and moved into place only when
complete (see :class:`AtomicOutput`).
"""

import hashlib
import logging
import os
import re
import tempfile

__all__ = [
    "is_url",
    "join",
    "read_bytes",
    "fsync_dir",
    "RemoteOutput",
]

log = logging.getLogger(__name__)
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
    return _read_local(path)


def _read_local(path):
    """The whole content of a local file: one open, fstat and read (no buffered file object,
    a little cheaper per image than ``open(path, "rb").read()``)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)
        if len(data) != size:  # a short read, or the file changed size: read on to the end
            parts = [data]
            while parts[-1]:
                parts.append(os.read(fd, 1 << 20))
            data = b"".join(parts)
        return data
    finally:
        os.close(fd)


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


class RemoteOutput:
    """An output URL (``s3://bucket/train.rec``) staged in a local folder.

    The writer works on ``local`` (a path in a staging folder named after the URL, so an
    interrupted run can be resumed on the same machine); :meth:`upload` puts the finished
    files at the URL, ``.rec`` first, only once they are complete: each object appears whole
    or not at all.

    Parameters
    ----------
    url : str
    storage_options : dict, optional
        fsspec options (``key``, ``secret``, ``client_kwargs={"endpoint_url": ...}``); by
        default the standard AWS environment variables are used, ``AWS_ENDPOINT_URL`` included.
    staging_dir : str, optional
        Where to stage; default ``$TMPDIR/recpack-staging``.
    """

    def __init__(self, url, *, storage_options=None, staging_dir=None):
        self.url = url
        self.fs, self._path = _fs(url, storage_options)
        base = staging_dir or os.path.join(tempfile.gettempdir(), "recpack-staging")
        folder = os.path.join(base, hashlib.sha1(url.encode("utf-8")).hexdigest()[:16])
        os.makedirs(folder, exist_ok=True)
        self.local = os.path.join(folder, url.rstrip("/").rsplit("/", 1)[-1])

    def _remote(self, local_path):
        """The URL path of a staged file (same name, beside ``url``)."""
        return self._path.rsplit("/", 1)[0] + "/" + os.path.basename(local_path)

    def exists(self, local_path):
        return self.fs.exists(self._remote(local_path))

    def download(self, local_path):
        """Fetch the remote counterpart of ``local_path`` (for append); False if absent."""
        remote = self._remote(local_path)
        if not self.fs.exists(remote):
            return False
        self.fs.get_file(remote, local_path)
        return True

    def upload(self, local_paths):
        """Upload finished files in order, then remove the staged copies."""
        for local_path in local_paths:
            self.fs.put_file(local_path, self._remote(local_path))
            log.info("uploaded %s", self.fs.unstrip_protocol(self._remote(local_path)))
        for local_path in local_paths:
            os.remove(local_path)

    def remove(self, local_path):
        """Delete the remote counterpart of ``local_path`` if it exists (a stale report)."""
        remote = self._remote(local_path)
        if self.fs.exists(remote):
            self.fs.rm_file(remote)
