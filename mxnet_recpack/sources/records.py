"""Existing record files as positions: one or more ``.rec``/``.idx`` pairs (local or ``s3://``),
read without decoding.

:class:`RecordSet` knows, from the index and one small read per record (its frame head and
image header), where every record is, how long it is and whether it holds an image or only a
label. It opens its files lazily, in each process, and reads with positional reads, so one
instance can be pickled to DataLoader workers (fork, spawn, forkserver) and shared by threads.
"""

import copy
import glob
import mmap
import os
import struct

import numpy as np

from ..errors import IndexFormatError, RecordFormatError
from ..format.checks import record_starts
from ..format.framing import MAGIC, RecordReader, stored_frame
from ..format.header import HEADER_SIZE, unpack_record
from ..format.index import read_index, read_index_arrays
from ..format.names import index_path_for
from ..storage import check_regular_file, is_url
from .files import RecordFiles

__all__ = ["RecordSet", "expand_paths"]

_HEAD = 8 + HEADER_SIZE  # frame head + image header: enough to tell an image from a label
_CHUNK = 1 << 20  # records whose heads are gathered at once (bounded memory)
_FRAME = struct.Struct("<II")


_GATHER = 128  # records per memory map: bounds the pages mapped at once (fault-around maps 64K)


def _gather(fd, size, offsets, out, rows):
    """``out[rows[j]] = `` the ``out.shape[1]`` bytes at ``offsets[j]`` of the file ``fd``
    (past its end: its last byte repeated)."""
    gran = mmap.ALLOCATIONGRANULARITY
    width = out.shape[1]
    for start in range(0, len(offsets), _GATHER):
        offs = offsets[start:start + _GATHER]
        lo = int(offs.min()) // gran * gran
        hi = min(size, int(offs.max()) + width)
        mm = mmap.mmap(fd, hi - lo, access=mmap.ACCESS_READ, offset=lo)
        try:
            view = np.frombuffer(mm, np.uint8)
            at = np.minimum((offs - lo)[:, None] + np.arange(width), hi - lo - 1)
            out[rows[start:start + _GATHER]] = view[at]
            del view
        finally:
            mm.close()


def expand_paths(paths):
    """A list of ``.rec`` paths from a path, a glob (``train.part*.rec``) or a list of them."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = []
    for p in paths:
        p = os.fspath(p)
        if any(c in p for c in "*?["):
            if is_url(p):
                from ..storage.remote import filesystem, remote_errors
                fs, pattern = filesystem(p)
                with remote_errors(p, "listing the files that match it"):
                    found = sorted(fs.unstrip_protocol(m) for m in fs.glob(pattern))
            else:
                found = sorted(glob.glob(p))
            if not found:
                raise FileNotFoundError("%s: no record file matches this pattern" % p)
            out.extend(found)
        else:
            out.append(p)
    if not out:
        raise FileNotFoundError("no record file given")
    return out


class RecordSet:
    """The records of one or more indexed record files, by position, without decoding.

    Parameters
    ----------
    paths : str, os.PathLike or list
        ``.rec`` files (local or URLs), or glob patterns (``"train.part*.rec"``): several
        files are one set, in order. Each needs its ``.idx`` beside it.
    storage_options : dict, optional
        fsspec options for URLs.
    images_only : bool, default False
        Leave out label-only records (no image bytes after the header), such as InsightFace's
        header and identity records.
    scan : bool, default False
        A file without an ``.idx`` (im2rec.cc writes none) is read from its records: keys are
        the header ids, which must then be unique. Default: the ``.idx`` is required.

    Attributes
    ----------
    paths : list of str
    keys : numpy.ndarray of uint64
        The ``.idx`` key of every position.
    """

    def __init__(self, paths, *, storage_options=None, images_only=False, scan=False):
        self.paths = expand_paths(paths)
        self._scan = scan
        self._files = RecordFiles(self.paths, storage_options)
        keys, offsets, sizes, files = [], [], [], []
        #: The files that have no .idx: their records were found by scanning the frames.
        self.scanned = set()
        for f, path in enumerate(self.paths):
            if not is_url(path):
                check_regular_file(path, "a record file")
            k, o, s = self._scan_index(f, path)
            keys.append(k)
            offsets.append(o)
            sizes.append(s)
            files.append(np.full(len(k), f, dtype=np.int32))
        self.keys = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
        self._offsets = np.concatenate(offsets)
        self._sizes = np.concatenate(sizes)
        self._file = np.concatenate(files)
        self.has_image, self._scalar, self._label = self._image_flags()
        if images_only:
            self._take(np.flatnonzero(self.has_image))

    #: Per-record columns, kept in step by :meth:`_take`.
    _COLUMNS = ("keys", "_offsets", "_sizes", "_file", "has_image", "_scalar", "_label")

    def _take(self, rows):
        for name in self._COLUMNS:
            setattr(self, name, getattr(self, name)[rows])
        self._by_key = None

    def _exists(self, path):
        if is_url(path):
            from ..storage.remote import filesystem, remote_errors
            fs, where = filesystem(path, self._files.storage_options)
            with remote_errors(path, "looking it up"):
                return fs.exists(where)
        return os.path.exists(path)

    def _scan_index(self, f, path):
        idx = index_path_for(path)
        if self._scan and not self._exists(idx):
            self.scanned.add(f)
            return self._scan_records(f, path)
        if is_url(idx):
            from ..storage import read_bytes
            text = read_bytes(idx, storage_options=self._files.storage_options).decode("ascii")
            entries = read_index(idx, text=text)
            keys = np.array([k for k, _ in entries], dtype=np.uint64)
            offsets = np.array([o for _, o in entries], dtype=np.int64)
        else:
            check_regular_file(idx, "the index", missing_ok=True)
            entries = read_index_arrays(idx)  # two arrays: no list of tuples a record
            keys, offsets = entries.keys, entries.offsets
        if len(np.unique(keys)) != len(keys):
            raise IndexFormatError("%s: some keys are listed more than once; keys name records, "
                                   "so each must be unique (rebuild it with `recpack index "
                                   "%s`)" % (idx, path))
        # A record's extent runs to the next record's offset (or the end of the file).
        order = np.argsort(offsets, kind="stable")
        ends = np.empty_like(offsets)
        ends[order[:-1]] = offsets[order[1:]]
        if len(order):
            ends[order[-1]] = self._files.size(f)
        sizes = ends - offsets
        if len(sizes) and (sizes <= 0).any():
            bad = int(np.flatnonzero(sizes <= 0)[0])
            raise IndexFormatError("%s: line %d (key %d) points at byte %d, which another line "
                                   "or the end of %s leaves no room for; rebuild it with "
                                   "`recpack index %s`" % (idx, bad + 1, int(keys[bad]),
                                                           int(offsets[bad]), path, path))
        return keys, offsets, sizes

    def _scan_records(self, f, path):
        """Keys (header ids), offsets and sizes of a file without an index, from its records."""
        if is_url(path):
            from ..storage.remote import filesystem, remote_errors
            fs, where = filesystem(path, self._files.storage_options)
            with remote_errors(path, "reading its records"):
                with fs.open(where, "rb", block_size=8 << 20, cache_type="readahead") as fileobj:
                    offsets, ids = record_starts(fileobj, self._files.size(f), path=path)
        else:
            with open(path, "rb") as fileobj:
                offsets, ids = record_starts(fileobj, self._files.size(f), path=path)
        if None in ids:
            raise RecordFormatError("a record has no image header to take a key from, and "
                                    "there is no .idx; build one with `recpack index --keys "
                                    "position %s`" % path, path=path,
                                    offset=offsets[ids.index(None)])
        keys = np.array(ids, dtype=np.uint64)
        offsets = np.array(offsets, dtype=np.int64)
        _, first, counts = np.unique(keys, return_index=True, return_counts=True)
        if (counts > 1).any():
            dup = int(keys[first[counts > 1][0]])
            raise IndexFormatError("%s has no .idx and its records repeat header ids (%d, ...), "
                                   "so they cannot be told apart by key; build an index with "
                                   "`recpack index --keys position %s`" % (path, dup, path))
        ends = np.append(offsets[1:], self._files.size(f))
        return keys, offsets, ends - offsets

    def positions_of(self, keys):
        """The position of the record with each of ``keys`` (-1 where there is none)."""
        if getattr(self, "_by_key", None) is None:
            order = np.argsort(self.keys, kind="stable")
            self._by_key = (self.keys[order], order)
        ordered, order = self._by_key
        keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
        at = np.minimum(np.searchsorted(ordered, keys), max(len(ordered) - 1, 0))
        if not len(ordered):
            return np.full(len(keys), -1, np.int64)
        return np.where(ordered[at] == keys, order[at], -1).astype(np.int64)

    def find(self, key):
        """The position of the record with ``key``, or None."""
        found = int(self.positions_of([key])[0])
        return None if found < 0 else found

    def subset(self, positions):
        """A RecordSet of the records at ``positions``, in that order (sharing the files)."""
        positions = np.asarray(positions, dtype=np.int64)
        out = copy.copy(self)
        out._take(positions)
        return out

    def input_files(self):
        """``(path, size)`` of every file: what a run reading them is made of."""
        return [(p, int(self._files.size(f))) for f, p in enumerate(self.paths)]

    def _heads(self, positions):
        """The first 32 bytes (frame head + image header) of each record at ``positions``."""
        return self.prefixes(positions, _HEAD)

    def prefixes(self, positions, nbytes):
        """``(len(positions), nbytes)`` uint8: the first ``nbytes`` of each record at
        ``positions``, its frame head included (past a record's end: the bytes after it, or
        zeros at the end of a remote file), gathered from small memory maps, each unmapped
        before the next (memory stays flat)."""
        positions = np.asarray(positions, dtype=np.int64)
        out = np.zeros((len(positions), nbytes), np.uint8)
        for f in np.unique(self._file[positions]) if len(positions) else ():
            mine = np.flatnonzero(self._file[positions] == f)
            path = self.paths[f]
            offs = self._offsets[positions[mine]]
            if not is_url(path) and self._files.size(f) > 0:
                _gather(self._files.fd(f), self._files.size(f), offs, out, mine)
            else:  # at a URL: small ranges, sent together (not one request after another)
                heads = self._files.read_many([(int(f), int(off), nbytes) for off in offs],
                                              gap=nbytes)
                for row, head in zip(mine, heads):
                    out[row, :len(head)] = np.frombuffer(head, np.uint8)
        return out

    def _image_flags(self):
        """From the record heads, gathered once: True where a record holds bytes after its
        header and labels (an image); True where its label is a scalar (``flag == 0``, one
        frame), and that label."""
        n = len(self.keys)
        flags = np.ones(n, dtype=bool)
        scalar, label = np.zeros(n, dtype=bool), np.zeros(n, dtype=np.float32)
        for start in range(0, n, _CHUNK):
            pos = np.arange(start, min(n, start + _CHUNK))
            heads = self._heads(pos)
            words = heads[:, :12].copy().view("<u4")  # magic, cflag|length, flag
            whole = (words[:, 1] >> 29) == 0  # a single frame: its length is the payload's
            length = words[:, 1] & ((1 << 29) - 1)
            bad = np.flatnonzero(words[:, 0] != MAGIC)
            if len(bad):
                p = int(pos[bad[0]])
                raise RecordFormatError("no record starts here (key %d of the index); the .idx "
                                        "does not describe this .rec: rebuild it with `recpack "
                                        "index`" % int(self.keys[p]),
                                        path=self.paths[self._file[p]],
                                        offset=int(self._offsets[p]))
            flags[pos] = ~whole | (length > HEADER_SIZE + 4 * words[:, 2].astype(np.int64))
            scalar[pos] = whole & (words[:, 2] == 0) & (length >= HEADER_SIZE)
            label[pos] = heads[:, 12:16].copy().view("<f4")[:, 0]
            for p in pos[~whole]:  # split by the magic word (rare): look at the whole payload
                payload = self.payload(int(p))
                flags[p] = len(payload) > HEADER_SIZE + 4 * struct.unpack_from("<I", payload)[0]
        return flags, scalar, label

    def __len__(self):
        return len(self.keys)

    def stored(self, i, new_id=None, new_label=None):
        """The record at position ``i`` as stored (a FramedRecord: the writer appends it as
        it is), its header id set to ``new_id`` and its scalar label to ``new_label`` if given;
        None when it must be re-framed."""
        f, offset, size = int(self._file[i]), int(self._offsets[i]), int(self._sizes[i])
        return stored_frame(self._files.read(f, offset, size), new_id, new_label)

    def where(self, i):
        """``(path, byte offset)`` of position ``i``."""
        return self.paths[self._file[i]], int(self._offsets[i])

    def payload(self, i):
        """The whole payload of the record at position ``i`` (frames joined, checked)."""
        f, offset, size = int(self._file[i]), int(self._offsets[i]), int(self._sizes[i])
        return self._payload_of(self._files.read(f, offset, size), f, offset)

    def records_at(self, positions):
        """``record(i)`` of each of ``positions``, their bytes read together: at a URL,
        neighbouring records come in one ranged request, a few requests in flight."""
        positions = [int(i) for i in positions]
        where = [(int(self._file[i]), int(self._offsets[i]), int(self._sizes[i]))
                 for i in positions]
        out = []
        for i, (f, offset, _), data in zip(positions, where, self._files.read_many(where)):
            header, body = unpack_record(self._payload_of(data, f, offset), offset=offset,
                                         path=self.paths[f])
            out.append((int(self.keys[i]), header, body))
        return out

    def _payload_of(self, data, f, offset):
        if len(data) >= 8:
            magic, lrec = _FRAME.unpack_from(data)
            length = lrec & ((1 << 29) - 1)
            if magic == MAGIC and lrec >> 29 == 0 and 8 + length <= len(data):
                return data[8:8 + length]
        import io
        reader = RecordReader(io.BytesIO(data), path=self.paths[f], size=len(data))
        got = reader.read_next(0)
        if got is None:
            raise RecordFormatError("no record here: the file ends", path=self.paths[f],
                                    offset=offset)
        return got[0]

    def head_payload(self, i):
        """The start of position ``i``'s payload: its image header and labels, no image bytes
        (reading only those, where the record is one frame)."""
        f, offset, size = int(self._file[i]), int(self._offsets[i]), int(self._sizes[i])
        head = self._files.read(f, offset, min(size, _HEAD))
        if len(head) == _HEAD and _FRAME.unpack_from(head)[1] >> 29 == 0:
            flag = struct.unpack_from("<I", head, 8)[0]
            need = _HEAD + 4 * flag
            if 8 + (_FRAME.unpack_from(head)[1] & ((1 << 29) - 1)) >= need:
                data = head if flag == 0 else self._files.read(f, offset, need)
                return bytes(data[8:need])
        payload = self.payload(i)
        return bytes(payload[:HEADER_SIZE + 4 * struct.unpack_from("<I", payload)[0]])

    def header(self, i):
        """The image header (and labels) of position ``i``, reading only those bytes."""
        f, offset, size = int(self._file[i]), int(self._offsets[i]), int(self._sizes[i])
        head = self._files.read(f, offset, min(size, _HEAD))
        if len(head) == _HEAD and _FRAME.unpack_from(head)[1] >> 29 == 0:
            flag = struct.unpack_from("<I", head, 8)[0]
            need = _HEAD + 4 * flag
            length = _FRAME.unpack_from(head)[1] & ((1 << 29) - 1)
            if 8 + length >= need:
                data = head if flag == 0 else self._files.read(f, offset, need)
                return unpack_record(memoryview(data)[8:need], offset=offset,
                                     path=self.paths[f])[0]
        return self.record(i)[1]

    def labels(self, positions=None):
        """The label of every position (or of ``positions``): a float when ``flag == 0``, else
        a float32 vector, from the headers alone (scalar labels from the record heads gathered
        at open)."""
        positions = np.arange(len(self)) if positions is None else \
            np.asarray(positions, dtype=np.int64).reshape(-1)
        out = self._label[positions].tolist()
        for j in np.flatnonzero(~self._scalar[positions]).tolist():
            header = self.header(int(positions[j]))
            out[j] = float(header.label) if header.flag == 0 else header.label.copy()
        return out

    def record(self, i):
        """``(key, RecordHeader, payload view after the labels)`` of position ``i``."""
        path, offset = self.where(i)
        header, body = unpack_record(self.payload(i), offset=offset, path=path)
        return int(self.keys[i]), header, body

    def close(self):
        """Close this process's file handles (they reopen on the next read)."""
        self._files.close()
