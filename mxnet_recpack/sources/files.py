"""Per-process, thread-safe access to record files, local or at URLs, by positional reads.

Dropped when pickled, reopened lazily in each process (fork, spawn, forkserver). Several
records are read with :meth:`RecordFiles.read_many`: local files record by record (``pread``
is as fast as it gets), files at URLs with neighbouring records coalesced into one ranged
request and several requests in flight, since each request costs a round trip.
"""

import os
import threading

from ..storage import is_url

__all__ = ["RecordFiles", "coalesce"]

#: Records at most this far apart (bytes) share a request: fetching the gap is cheaper than a
#: round trip to an object store (about 1 ms, ~100 KB at 1 Gbit/s).
GAP = 256 << 10
#: A request holds at most this much.
SPAN = 16 << 20


def coalesce(where, gap=GAP, span=SPAN):
    """Group ``(file, offset, size)`` reads into ranges ``(file, start, end, [(index, at)])``:
    sorted by position, neighbours within ``gap`` bytes and ``span`` in all share one."""
    order = sorted(range(len(where)), key=lambda j: (where[j][0], where[j][1]))
    ranges = []
    for j in order:
        f, offset, size = where[j]
        last = ranges[-1] if ranges else None
        if last and last[0] == f and offset - last[2] <= gap and \
                max(last[2], offset + size) - last[1] <= span:
            last[2] = max(last[2], offset + size)
            last[3].append((j, offset))
        else:
            ranges.append([f, offset, offset + size, [(j, offset)]])
    return ranges


class RecordFiles:
    """The files of a record set, opened per process (dropped when pickled)."""

    def __init__(self, paths, storage_options):
        self.paths = paths
        self.storage_options = storage_options
        self._pid = None
        self._lock = threading.Lock()
        self._open = {}

    def __getstate__(self):
        return {"paths": self.paths, "storage_options": self.storage_options}

    def __setstate__(self, state):
        self.__init__(state["paths"], state["storage_options"])

    def _handle(self, f):
        if self._pid != os.getpid():  # a fresh process (fork): never reuse the parent's
            with self._lock:
                if self._pid != os.getpid():
                    self._open, self._pid = {}, os.getpid()
        handle = self._open.get(f)
        if handle is None:
            with self._lock:
                handle = self._open.get(f)
                if handle is None:
                    handle = self._open_file(self.paths[f])
                    self._open[f] = handle
        return handle

    def _open_file(self, path):
        if is_url(path):
            from ..storage.remote import filesystem
            return ("url",) + tuple(filesystem(path, self.storage_options))
        return ("fd", os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0)))

    def read(self, f, offset, size):
        """``size`` bytes at ``offset`` of file ``f`` (fewer only at the end of the file)."""
        handle = self._handle(f)
        if handle[0] == "url":
            from ..storage.remote import remote_errors
            with remote_errors(self.paths[f], "reading records"):
                return handle[1].cat_file(handle[2], start=offset, end=offset + size)
        if hasattr(os, "pread"):
            return os.pread(handle[1], size, offset)
        with self._lock:  # pragma: no cover - Windows: no pread
            os.lseek(handle[1], offset, os.SEEK_SET)
            return os.read(handle[1], size)

    def fd(self, f):
        """The descriptor of local file ``f``."""
        return self._handle(f)[1]

    def size(self, f):
        handle = self._handle(f)
        if handle[0] == "url":
            from ..storage.remote import remote_errors
            with remote_errors(self.paths[f], "looking it up"):
                return handle[1].size(handle[2])
        return os.fstat(handle[1]).st_size

    def close(self):
        for handle in self._open.values():
            if handle[0] == "fd":
                os.close(handle[1])
        self._open = {}

    def read_many(self, where, gap=GAP):
        """The bytes of each ``(file, offset, size)`` in ``where``, in that order (at a URL,
        reads less than ``gap`` bytes apart share a request)."""
        out = [None] * len(where)
        urls = []
        for j, (f, offset, size) in enumerate(where):
            if self._handle(f)[0] == "url":
                urls.append(j)
            else:
                out[j] = self.read(f, offset, size)
        if urls:
            for j, data in zip(urls, self._fetch([where[j] for j in urls], gap)):
                out[j] = data
        return out

    def _fetch(self, where, gap):
        """Ranged requests for reads of files at URLs (fsspec's ``cat_ranges``: s3fs sends
        them concurrently)."""
        from ..storage.remote import remote_errors
        ranges = coalesce(where, gap)
        out = [None] * len(where)
        by_file = {}
        for r in ranges:
            by_file.setdefault(r[0], []).append(r)
        for f, group in by_file.items():
            fs, path = self._handle(f)[1:]
            with remote_errors(self.paths[f], "reading records"):
                blobs = fs.cat_ranges([path] * len(group), [r[1] for r in group],
                                      [r[2] for r in group])
            for (_, start, _, members), blob in zip(group, blobs):
                if isinstance(blob, Exception):
                    with remote_errors(self.paths[f], "reading records"):
                        raise blob
                for j, offset in members:
                    size = where[j][2]
                    out[j] = bytes(blob[offset - start:offset - start + size])
        return out
