"""URLs (``s3://bucket/key`` and any other fsspec protocol): the filesystem for a URL, what its
errors mean, a local copy to read, and an output staged locally and committed only when
complete (:mod:`.remote_commit` has the commit protocol).

Every ``s3://`` request has a timeout and a bounded number of retries (:data:`S3_DEFAULTS`:
5 s to connect, 15 s without an answer, at most 3 attempts by botocore, each tried at most
:data:`S3FS_RETRIES` times by s3fs), so a server that stops answering is given up on, with a
clear error, after at most about 1.5 minutes; an upload also has a deadline
(:func:`put_file`), since a server that stops reading a request's body is not caught by the
read timeout. fsspec's own configuration (``FSSPEC_S3='{"config_kwargs": {...}}'`` or a file in
``~/.config/fsspec``) and then the caller's ``storage_options`` override them. Network faults
become :class:`~mxnet_recpack.errors.StorageUnreachableError`, a missing object
:class:`~mxnet_recpack.errors.MissingObjectError`, any other refusal
:class:`~mxnet_recpack.errors.StorageError`; each message names the URL, what was being done
and the fix.

fsspec (and s3fs for ``s3://``) are imported only here, and only when a URL is used.
"""

import asyncio
import copy
import hashlib
import logging
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager

from ..errors import (MissingObjectError, RecpackError, StorageError,
                      StorageUnreachableError)

__all__ = ["filesystem", "RemoteOutput", "local_copy", "settle_url", "remote_errors",
           "storage_error", "is_network_error", "cause_of", "staging_target", "put_file",
           "waiting_on_storage", "S3_DEFAULTS", "S3FS_RETRIES", "UPLOAD_FLOOR_RATE"]

log = logging.getLogger(__name__)

#: The options every ``s3://`` filesystem starts from: botocore's timeouts and retries.
S3_DEFAULTS = {"config_kwargs": {"connect_timeout": 5, "read_timeout": 15,
                                 "retries": {"total_max_attempts": 3, "mode": "standard"}}}
#: s3fs's own retries of a request whose answer was cut short or timed out (around botocore's
#: attempts; s3fs's default is 5).
S3FS_RETRIES = 2
#: The slowest upload rate :func:`put_file` waits for (bytes per second).
UPLOAD_FLOOR_RATE = 256 << 10


def _merged(*layers):
    """Options merged in order, later layers winning; ``config_kwargs`` merged key by key."""
    out = {}
    for layer in layers:
        for name, value in (layer or {}).items():
            if name == "config_kwargs" and isinstance(value, dict):
                out[name] = dict(out.get(name, {}), **value)
            else:
                out[name] = value
    return out


def filesystem(url, storage_options=None):
    """``(fsspec filesystem, path inside it)`` for ``url``; ``s3://`` gets
    :data:`S3_DEFAULTS` under fsspec's configuration and ``storage_options``."""
    try:
        import fsspec
        import fsspec.config
    except ImportError as exc:  # pragma: no cover - the s3 extra installs it
        raise ImportError("%s needs fsspec and s3fs: pip install 'mxnet_recpack[s3]'"
                          % url) from exc
    protocol = url.split("://", 1)[0].lower()
    if protocol not in ("s3", "s3a"):
        return fsspec.core.url_to_fs(url, **(storage_options or {}))
    options = _merged(copy.deepcopy(S3_DEFAULTS), fsspec.config.conf.get(protocol),
                      storage_options)
    fs, path = fsspec.core.url_to_fs(url, **options)
    fs.retries = S3FS_RETRIES  # an instance attribute: s3fs takes no option for it
    return fs, path


_NETWORK = None


def _network_errors():
    global _NETWORK
    if _NETWORK is None:
        found = [ConnectionError, TimeoutError, asyncio.TimeoutError]
        try:
            from fsspec.exceptions import FSTimeoutError
            found.append(FSTimeoutError)
        except ImportError:  # pragma: no cover
            pass
        try:
            import botocore.exceptions as boto
            found += [boto.ConnectionError, boto.HTTPClientError]
        except ImportError:  # pragma: no cover - another protocol than s3
            pass
        try:
            import aiohttp
            found.append(aiohttp.ClientError)
        except ImportError:  # pragma: no cover
            pass
        _NETWORK = tuple(found)
    return _NETWORK


def is_network_error(exc):
    """True when ``exc`` says the server could not be reached or stopped answering (refused,
    reset, timed out), as opposed to an answer that refused the request."""
    return isinstance(exc, _network_errors())


def cause_of(exc):
    """``Type: message`` of an exception, for error messages."""
    text = getattr(exc, "strerror", None) if isinstance(exc, OSError) else None
    return "%s: %s" % (type(exc).__name__, text or exc or "no message")


def storage_error(exc, url, doing):
    """The :class:`~mxnet_recpack.errors.StorageError` for ``exc``, raised while ``doing``
    (``"reading it"``) at ``url``; None for an error that is not the storage's (a bug)."""
    if isinstance(exc, RecpackError):
        return exc
    if is_network_error(exc):
        return StorageUnreachableError(
            "%s: %s failed: the storage server could not be reached or stopped answering "
            "(%s); check that it is up and reachable (its endpoint comes from AWS_ENDPOINT_URL "
            "or storage_options), then run the command again" % (url, doing, cause_of(exc)))
    if isinstance(exc, FileNotFoundError):
        return MissingObjectError("%s does not exist: %s found nothing there (%s); check the "
                                  "bucket and the key" % (url, doing, cause_of(exc)))
    if isinstance(exc, PermissionError):
        return StorageError("%s: %s was refused: access denied (%s); check the credentials "
                            "(AWS_ACCESS_KEY_ID, AWS_PROFILE or storage_options) and the "
                            "bucket's policy" % (url, doing, cause_of(exc)))
    try:
        from botocore.exceptions import BotoCoreError
    except ImportError:  # pragma: no cover
        BotoCoreError = ()  # noqa: N806
    if isinstance(exc, BotoCoreError):
        return StorageError("%s: %s failed: the S3 client is not set up (%s); set the "
                            "credentials and region (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
                            "AWS_DEFAULT_REGION, AWS_PROFILE) or pass storage_options"
                            % (url, doing, cause_of(exc)))
    if isinstance(exc, OSError):
        return StorageError("%s: %s failed: the storage server answered with an error (%s); "
                            "run the command again, and if it fails the same way, check the "
                            "server" % (url, doing, cause_of(exc)))
    return None


@contextmanager
def remote_errors(url, doing):
    """Turn the storage's errors raised inside into :func:`storage_error`'s."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - translated, or raised as it is
        error = storage_error(exc, url, doing)
        if error is None or error is exc:
            raise
        raise error from exc


def put_file(fs, local_path, remote):
    """Upload a file, given up on (``FSTimeoutError``) when it has not finished within four
    read timeouts plus its size at :data:`UPLOAD_FLOOR_RATE`: the read timeout starts only
    once a request's body is sent, so a server that stops reading it (waiting for its
    ``100 Continue``, or its TCP window closed) would otherwise be waited for forever."""
    if not getattr(fs, "async_impl", False):
        fs.put_file(local_path, remote)
        return
    from fsspec.asyn import sync
    from fsspec.exceptions import FSTimeoutError
    read_timeout = (getattr(fs, "config_kwargs", None) or {}).get("read_timeout") or 15
    size = os.path.getsize(local_path)
    deadline = 4 * read_timeout + size / UPLOAD_FLOOR_RATE
    try:
        sync(fs.loop, fs._put_file, local_path, remote, timeout=deadline)
    except FSTimeoutError:
        raise FSTimeoutError("the upload of %d bytes to %s did not finish within %.0f s"
                             % (size, remote, deadline)) from None


def waiting_on_storage(thread):
    """True when ``thread`` is blocked waiting for fsspec's answer to a request (in
    ``fsspec.asyn.sync``, which waits on an event in Python code): safe to leave behind."""
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code.co_name == "sync" and frame.f_globals.get("__name__") == "fsspec.asyn":
            return True
        frame = frame.f_back
    return False


def staging_target(url, staging_dir=None):
    """The local path a URL's output is staged at (and locked by, on this host)."""
    base = staging_dir or os.path.join(tempfile.gettempdir(), "recpack-staging")
    folder = os.path.join(base, hashlib.sha1(url.encode("utf-8")).hexdigest()[:16])
    return os.path.join(folder, url.rstrip("/").rsplit("/", 1)[-1])


def settle_url(url, storage_options=None, *, must_exist=True):
    """Before a command reads the pair at ``url``: finish or undo a commit that was
    interrupted there, unless a command on this host is at work on it; ``(fs, path, the
    objects of the pair)``. Raises :class:`~mxnet_recpack.errors.MissingObjectError` when
    ``must_exist`` and there is no object at ``url``."""
    from .remote_commit import RemotePair
    fs, path = filesystem(url, storage_options)
    target = staging_target(url)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    found = RemotePair(fs, url, path).settle(lock_target=target)
    if must_exist and path not in found:
        raise MissingObjectError("%s does not exist (no object at this URL); check the bucket "
                                 "and the key" % url)
    return fs, path, found


@contextmanager
def local_copy(url, suffixes, *, storage_options=None):
    """A local copy of a record file at ``url`` and its sidecars (``suffixes`` such as
    ``(".idx", ".crc")``, each where it exists), in a temporary folder removed afterwards:
    how ``verify``, ``inspect``, ``extract`` and ``index`` read ``s3://``, as the writer writes
    it (staged locally). An interrupted commit at the URL is finished or undone first, unless
    a command on this host is at work on it. Yields the local ``.rec`` path."""
    fs, path, found = settle_url(url, storage_options)
    folder = tempfile.mkdtemp(prefix="recpack-read-")
    try:
        local = os.path.join(folder, path.rsplit("/", 1)[-1])
        base = path[:-4] if path.endswith(".rec") else path
        lbase = local[:-4] if local.endswith(".rec") else local
        log.info("%s: reading a local copy (%d bytes)", url, found[path].get("size", -1))
        with remote_errors(url, "downloading it"):
            fs.get_file(path, local)
            for suffix in suffixes:
                if base + suffix in found:
                    fs.get_file(base + suffix, lbase + suffix)
        yield local
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class RemoteOutput:
    """An output URL (``s3://bucket/train.rec``) staged in a local folder.

    The writer works on ``local`` (a path in a staging folder named after the URL, so an
    interrupted run can be resumed on the same machine, and locked there); :meth:`commit` puts
    the finished files at the URL as a pair (see :mod:`.remote_commit`): a reader sees the old
    pair or the new one, and a commit cut short is finished by the next recpack command on the
    URL, which also removes what failed runs left there.

    Parameters
    ----------
    url : str
    storage_options : dict, optional
        fsspec options (``key``, ``secret``, ``client_kwargs={"endpoint_url": ...}``,
        ``config_kwargs`` for timeouts and retries); by default the standard AWS environment
        variables are used, ``AWS_ENDPOINT_URL`` included.
    staging_dir : str, optional
        Where to stage; default ``$TMPDIR/recpack-staging``.
    """

    def __init__(self, url, *, storage_options=None, staging_dir=None):
        from .remote_commit import RemotePair
        self.url = url
        self.fs, self._path = filesystem(url, storage_options)
        self.local = staging_target(url, staging_dir)
        os.makedirs(os.path.dirname(self.local), exist_ok=True)
        self.pair = RemotePair(self.fs, url, self._path)
        self._found = None

    def _remote(self, local_path):
        """The URL path of a staged file (same name, beside ``url``)."""
        return self._path.rsplit("/", 1)[0] + "/" + os.path.basename(local_path)

    def settle(self):
        """Finish or undo an interrupted commit at the URL (the caller holds the lock of
        ``local``) and list what is there."""
        self._found = self.pair.settle()

    def exists(self, local_path):
        if self._found is None:
            self.settle()
        return self._remote(local_path) in self._found

    def download(self, local_path):
        """Fetch the remote counterpart of ``local_path`` (for append); False if absent."""
        if not self.exists(local_path):
            return False
        remote = self._remote(local_path)
        with remote_errors(self.fs.unstrip_protocol(remote), "downloading it"):
            self.fs.get_file(remote, local_path)
        return True

    def upload(self, local_paths):
        """Upload finished files in order, then remove the staged copies (a failure report of
        a stopped run: one file, nothing to keep together)."""
        for local_path in local_paths:
            remote = self._remote(local_path)
            with remote_errors(self.fs.unstrip_protocol(remote), "uploading it"):
                put_file(self.fs, local_path, remote)
            log.info("uploaded %s", self.fs.unstrip_protocol(remote))
        for local_path in local_paths:
            os.remove(local_path)

    def commit(self, local_paths, removes=()):
        """Put finished files at the URL as a pair, ``.rec`` first, and delete ``removes``
        (stale sidecars), as :meth:`RemotePair.commit <.remote_commit.RemotePair.commit>`
        does; the staged copies are removed once the commit is done."""
        self.pair.commit([(p, self._remote(p)) for p in local_paths],
                         [self._remote(p) for p in removes],
                         kept_in=os.path.dirname(self.local))
        self._found = None
        for local_path in local_paths:
            os.remove(local_path)
