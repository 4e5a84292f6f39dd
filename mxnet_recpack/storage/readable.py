"""One door for reading a record file that may be a URL: a local path to read it at, and every
path of that local copy in a result (dicts, lists, strings, namedtuples such as ``verify``'s
result, an error's message) mapped back to the URL, so nothing names a temporary file that is
gone by the time it is shown.

Standard library only (the copy itself is :func:`~mxnet_recpack.storage.remote.local_copy`).
"""

import os
from contextlib import ExitStack

from . import is_url

__all__ = ["readable", "Readable"]


def readable(path, suffixes=(".idx", ".crc"), *, storage_options=None):
    """A :class:`Readable` for ``path`` (a context manager): ``with readable(url) as r:`` reads
    ``r.path`` and returns ``r.back(result)``."""
    return Readable(path, suffixes, storage_options=storage_options)


class Readable:
    """``path`` itself for a local file; for a URL (``s3://``), a local copy of it and of its
    sidecars (``suffixes`` such as ``(".idx", ".crc")``, each where it exists), removed on
    exit.

    Attributes
    ----------
    path : str
        Where to read (the local copy of a URL).
    url : str or None
        The URL, when ``path`` is a copy of one.
    """

    def __init__(self, path, suffixes=(".idx", ".crc"), *, storage_options=None):
        path = os.fspath(path)
        self.url = path if is_url(path) else None
        self.path = path
        self._suffixes, self._storage_options = tuple(suffixes), storage_options
        self._stack = ExitStack()
        self._old = self._new = None

    def __enter__(self):
        if self.url is not None:
            from .remote import local_copy
            self.path = self._stack.enter_context(local_copy(
                self.url, self._suffixes, storage_options=self._storage_options))
            self._old = os.path.dirname(self.path) + os.sep
            self._new = self.url.rsplit("/", 1)[0] + "/"
        return self

    def __exit__(self, kind, exc, tb):
        try:
            if isinstance(exc, Exception):
                _mapped_error(exc, self.back)
        finally:
            self._stack.close()
        return False

    def back(self, result):
        """``result`` with every path inside the local copy's folder named by its URL instead:
        strings replaced, dicts and lists changed in place (a dict subclass stays itself),
        tuples remade (a namedtuple's extra attributes mapped too). Local files: unchanged."""
        if self._old is None:
            return result
        return _mapped(result, self._old, self._new)


def _mapped(obj, old, new):
    if isinstance(obj, str):
        return obj.replace(old, new)
    if isinstance(obj, dict):
        for key in list(obj):
            obj[key] = _mapped(obj[key], old, new)
        return obj
    if isinstance(obj, list):
        obj[:] = [_mapped(v, old, new) for v in obj]
        return obj
    if isinstance(obj, tuple):
        items = [_mapped(v, old, new) for v in obj]
        if any(a is not b for a, b in zip(items, obj)):
            remade = type(obj)._make(items) if hasattr(obj, "_make") else type(obj)(items)
            if hasattr(remade, "__dict__"):  # a namedtuple subclass's extra attributes
                remade.__dict__.update(obj.__dict__)
            obj = remade
        for key, value in list(getattr(obj, "__dict__", {}).items()):
            setattr(obj, key, _mapped(value, old, new))
    return obj


def _mapped_error(exc, back):
    """An error raised while reading the copy, its message and path attributes mapped."""
    exc.args = tuple(back(a) for a in exc.args)
    for name in ("path", "filename", "filename2", "strerror", "reason"):
        value = getattr(exc, name, None)
        if isinstance(value, str):
            try:
                setattr(exc, name, back(value))
            except AttributeError:  # pragma: no cover - a read-only attribute
                pass
