"""URLs (``s3://bucket/key`` and any other fsspec protocol): the filesystem for a URL, and an
output staged locally and uploaded only when complete.

fsspec (and s3fs for ``s3://``) are imported only here, and only when a URL is used.
"""

import hashlib
import logging
import os
import tempfile
import shutil
import uuid
from contextlib import contextmanager

from ..errors import CommitError

__all__ = ["filesystem", "RemoteOutput", "local_copy"]

log = logging.getLogger(__name__)


def filesystem(url, storage_options=None):
    """``(fsspec filesystem, path inside it)`` for ``url``."""
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - the s3 extra installs it
        raise ImportError("%s needs fsspec and s3fs: pip install 'mxnet_recpack[s3]'"
                          % url) from exc
    return fsspec.core.url_to_fs(url, **(storage_options or {}))


@contextmanager
def local_copy(url, suffixes, *, storage_options=None):
    """A local copy of a record file at ``url`` and its sidecars (``suffixes`` such as
    ``(".idx", ".crc")``, each where it exists), in a temporary folder removed afterwards:
    how ``verify``, ``inspect``, ``extract`` and ``index`` read ``s3://``, as the writer writes
    it (staged locally). Yields the local ``.rec`` path."""
    fs, path = filesystem(url, storage_options)
    if not fs.exists(path):
        raise FileNotFoundError("%s: no such object" % url)
    folder = tempfile.mkdtemp(prefix="recpack-read-")
    try:
        local = os.path.join(folder, path.rsplit("/", 1)[-1])
        base = path[:-4] if path.endswith(".rec") else path
        lbase = local[:-4] if local.endswith(".rec") else local
        log.info("%s: reading a local copy (%d bytes)", url, fs.size(path))
        fs.get_file(path, local)
        for suffix in suffixes:
            if fs.exists(base + suffix):
                fs.get_file(base + suffix, lbase + suffix)
        yield local
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
        self.fs, self._path = filesystem(url, storage_options)
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
        """Upload finished files in order, then remove the staged copies (a failure report of
        a stopped run: one file, nothing to keep together)."""
        for local_path in local_paths:
            self.fs.put_file(local_path, self._remote(local_path))
            log.info("uploaded %s", self.fs.unstrip_protocol(self._remote(local_path)))
        for local_path in local_paths:
            os.remove(local_path)

    def commit(self, local_paths, removes=()):
        """Upload finished files so that the remote pair changes as a whole.

        Every file first goes to a staging key beside its final one (``KEY.upload-TOKEN``):
        an upload that fails there leaves the finals as they were. Then each final is kept as
        ``KEY.old-TOKEN`` (a server-side copy) and replaced by a server-side copy of its new
        version, and ``removes`` (stale sidecars) are deleted; if one of these steps fails,
        the finals already replaced are restored. Object stores cannot replace two keys at
        once: a reader that lists the pair during those copies (a second or so) may see one
        new and one old file. Concurrent writers to one key are not detected.
        """
        token = uuid.uuid4().hex[:12]
        finals = [self._remote(p) for p in local_paths]
        gone = [self._remote(p) for p in removes]
        staged, backups, replaced = {}, {}, []
        try:
            for local_path, final in zip(local_paths, finals):
                staged[final] = "%s.upload-%s" % (final, token)
                self.fs.put_file(local_path, staged[final])
            self.fs.invalidate_cache()
            for final in finals + gone:
                if self.fs.exists(final):
                    backups[final] = "%s.old-%s" % (final, token)
                    self.fs.copy(final, backups[final])
            for final in finals:
                self.fs.copy(staged[final], final)
                replaced.append(final)
            for final in gone:
                if final in backups:
                    self.fs.rm_file(final)
                    replaced.append(final)
        except Exception as exc:
            for final in self._restore(replaced, backups):  # keep what could not go back
                kept = backups.pop(final)
                log.error("%s could not be restored; the previous version is kept at %s",
                          final, kept)
            raise CommitError("%s: uploading the new files failed (%s: %s); the files at the "
                              "URL are as they were (the new ones are complete in %s); "
                              "run the command again" % (self.url, type(exc).__name__, exc,
                                                        os.path.dirname(self.local))) from exc
        finally:
            for key in list(staged.values()) + list(backups.values()):
                try:
                    self.fs.rm_file(key)
                except Exception:  # noqa: BLE001 - leftovers are harmless, say so
                    log.warning("could not delete the temporary object %s", key)
        for final in finals:
            log.info("uploaded %s", self.fs.unstrip_protocol(final))
        for local_path in local_paths:
            os.remove(local_path)

    def _restore(self, replaced, backups):
        """Put the finals back; the ones whose backup could not be copied back."""
        failed = []
        for final in replaced:
            try:
                if final in backups:
                    self.fs.copy(backups[final], final)
                else:
                    self.fs.rm_file(final)
            except Exception:  # noqa: BLE001 - reported by the caller, the backup kept
                if final in backups:
                    failed.append(final)
        return failed
