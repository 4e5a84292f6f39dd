"""Write MosaicML streaming's MDS: shards (``shard.NNNNN.mds``) and their ``index.json``.

The layout, as streaming 0.13's ``MDSWriter`` writes it (and its ``StreamingDataset`` reads it):

- a shard: uint32 sample count ``n``; ``n + 1`` uint32 offsets (from the file's start: sample
  ``i`` is bytes ``offsets[i]:offsets[i + 1]``); the writer's configuration as JSON (sorted
  keys); then the samples. All little-endian; a shard is below 4 GiB.
- a sample: one uint32 length per variable-size column, then every column's value, in column
  order (columns sorted by name).
- ``index.json``: ``{"shards": [...], "version": 2}``, each shard the configuration plus
  ``samples``, ``raw_data`` (``basename``, ``bytes``, ``hashes``) and ``zip_data`` (null: no
  compression).

recpack's columns hold every field of a :class:`~mxnet_recpack.formats.sample.Sample`:
``flag`` uint32, ``id`` and ``id2`` uint64, ``image`` (``bytes``, or ``jpeg``/``png`` when
asked: the same bytes, which streaming then opens as PIL images), ``key`` uint64, ``label``
``ndarray:float32`` (``[label]`` when ``flag`` is 0, else the ``flag`` values) and
``recordio_header`` ``bytes`` (empty, or the original header when it would not re-pack). The
same samples and shard limits give the same bytes as ``MDSWriter``: no timestamps, no ids.
"""

import hashlib
import json
import os
import struct

import numpy as np

from ...errors import ImageEncodeError, OptionError, OutputError
from ...images.encodings import sniff
from .columns import encode_ndarray

__all__ = ["IMAGE_ENCODINGS", "MAX_SHARD_BYTES", "columns", "shard_config", "encode",
           "ShardWriter", "shard_basename", "index_json"]

#: How ``image`` may be declared: ``bytes`` (any image, label-only records too), or ``jpeg`` /
#: ``png`` (every image of that format, none empty).
IMAGE_ENCODINGS = ("bytes", "jpeg", "png")
#: Offsets are uint32: a shard ends at or before this byte.
MAX_SHARD_BYTES = 2 ** 32 - 1
_U64 = 2 ** 64
_U32 = 2 ** 32
_FIXED = struct.Struct("<IQQ")       # flag, id, id2 (the columns before image)
_KEY = struct.Struct("<Q")
_SIZES = struct.Struct("<III")       # image, label, recordio_header
_HASHES = tuple(sorted(a for a in hashlib.algorithms_guaranteed if not a.startswith("shake")))


def columns(image_encoding="bytes"):
    """recpack's MDS columns: ``{name: encoding}``, names sorted."""
    if image_encoding not in IMAGE_ENCODINGS:
        raise OptionError("MDS image encoding %r is not one recpack writes: choose one of %s "
                          "(images are stored as they are, never re-encoded)"
                          % (image_encoding, ", ".join(IMAGE_ENCODINGS)))
    return {"flag": "uint32", "id": "uint64", "id2": "uint64", "image": image_encoding,
            "key": "uint64", "label": "ndarray:float32", "recordio_header": "bytes"}


def shard_config(image_encoding="bytes", *, size_limit=None, hashes=()):
    """The configuration every shard repeats (in its header and its ``index.json`` entry)."""
    cols = columns(image_encoding)
    hashes = list(hashes)
    if hashes != sorted(set(hashes)) or any(h not in _HASHES for h in hashes):
        raise OptionError("MDS hashes must be distinct, sorted and among %s; found %r"
                          % (", ".join(_HASHES), hashes))
    if size_limit is not None and not 0 < int(size_limit) <= MAX_SHARD_BYTES:
        raise OptionError("MDS size_limit is a byte count in [1, 2**32), found %r"
                          % (size_limit,))
    return {"column_encodings": list(cols.values()), "column_names": list(cols),
            "column_sizes": [4, 8, 8, None, 8, None, None], "compression": None,
            "format": "mds", "hashes": hashes,
            "size_limit": None if size_limit is None else int(size_limit), "version": 2}


def _check_int(sample, field, value, bound):
    if not 0 <= value < bound:
        raise ImageEncodeError("record key %s: %s %d is out of range for MDS's uint%d column"
                               % (sample.key, field, value, 64 if bound == _U64 else 32))


def encode(sample, image_encoding="bytes"):
    """The MDS bytes of one :class:`~mxnet_recpack.formats.sample.Sample` (one sample of a
    shard: the lengths of ``image``, ``label``, ``recordio_header``, then every column)."""
    key, flag, ident, id2 = int(sample.key), int(sample.flag), int(sample.id), int(sample.id2)
    for field, value, bound in (("key", key, _U64), ("flag", flag, _U32),
                                ("id", ident, _U64), ("id2", id2, _U64)):
        _check_int(sample, field, value, bound)
    labels = np.asarray(sample.label, "<f4").reshape(-1)
    if len(labels) != max(flag, 1):
        raise ImageEncodeError("record key %d: flag %d needs %s, found %d values"
                               % (key, flag, "one label" if flag == 0 else "%d labels" % flag,
                                  len(labels)))
    image = bytes(sample.image)
    if image_encoding != "bytes" and sniff(image) != image_encoding:
        raise ImageEncodeError("record key %d: the MDS image column is declared %s but this "
                               "image is %s; write the dataset with image encoding 'bytes'"
                               % (key, image_encoding, "empty (a label-only record)" if not
                                  image else sniff(image)))
    label = encode_ndarray(labels)
    head = b"" if sample.head is None else bytes(sample.head)
    return b"".join((_SIZES.pack(len(image), len(label), len(head)),
                     _FIXED.pack(flag, ident, id2), image, _KEY.pack(key), label, head))


def shard_basename(number):
    """The name ``MDSWriter`` gives shard ``number`` (from 0): ``shard.00000.mds``."""
    return "shard.%05d.mds" % number


def index_json(shards):
    """The bytes of ``index.json`` for ``shards``, a list of ``(basename, summary)`` in order,
    each summary what :meth:`ShardWriter.close` returned."""
    entries = []
    for basename, summary in shards:
        entry = dict(summary)
        entry["raw_data"] = dict(summary["raw_data"], basename=basename)
        entries.append(entry)
    return json.dumps({"shards": entries, "version": 2}, sort_keys=True).encode("utf-8")


class ShardWriter:
    """Write one MDS shard at ``path`` (the name is the caller's; nothing is renamed).

    Parameters
    ----------
    path : str or os.PathLike
        The file to create (replaced if it exists).
    image_encoding : {'bytes', 'jpeg', 'png'}, default 'bytes'
        What ``index.json`` declares for ``image`` (see :func:`encode`: pass the same).
    size_limit : int, optional
        The shard size limit the shard set is written with (recorded, as ``MDSWriter`` does).
    hashes : sequence of str, default ()
        hashlib algorithms (sorted) whose digests ``index.json`` lists for the shard, which
        ``StreamingDataset(validate_hash=...)`` checks after a download.

    The samples are kept until :meth:`close` (the shard's header, before them, holds their
    count): memory is one shard.
    """

    def __init__(self, path, *, image_encoding="bytes", size_limit=None, hashes=()):
        self.path = os.fspath(path)
        self.config = shard_config(image_encoding, size_limit=size_limit, hashes=hashes)
        self._config = json.dumps(self.config, sort_keys=True).encode("utf-8")
        self._samples = []
        self._body = 0
        self._summary = None
        try:
            self._f = open(self.path, "wb")
        except OSError as e:
            raise OutputError("%s: cannot create the MDS shard (%s): check that its folder "
                              "exists and is writable" % (self.path, e.strerror or e)) from e

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        """Finish the shard when the block succeeded; otherwise stop without finishing it."""
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @property
    def count(self):
        """Samples appended so far."""
        return len(self._samples)

    @property
    def nbytes(self):
        """The size the shard has when closed now."""
        return 4 * (len(self._samples) + 2) + len(self._config) + self._body

    def size_with(self, encoded):
        """The size the shard would have with ``encoded`` added (a sample costs its bytes and
        an offset): start a new shard when this passes the limit, as ``MDSWriter`` does."""
        return self.nbytes + len(encoded) + 4

    def append(self, encoded_list):
        """Add samples made by :func:`encode`, in order."""
        if self._summary is not None:
            raise OutputError("%s: the MDS shard is closed; start a new shard" % self.path)
        encoded_list = [bytes(e) for e in encoded_list]
        size = sum(len(e) for e in encoded_list)
        if self.nbytes + size + 4 * len(encoded_list) > MAX_SHARD_BYTES:
            raise OutputError("%s: an MDS shard holds at most %d bytes (its offsets are uint32); "
                              "these %d samples would make it %d: write smaller shards"
                              % (self.path, MAX_SHARD_BYTES, len(encoded_list),
                                 self.nbytes + size + 4 * len(encoded_list)))
        self._samples.extend(encoded_list)
        self._body += size

    def close(self):
        """Write the shard (header, offsets, configuration, samples), ``fsync`` it, and return
        its summary for :func:`index_json` (the same summary when called again)."""
        if self._summary is not None:
            return self._summary
        sizes = np.fromiter((len(s) for s in self._samples), np.int64, len(self._samples))
        offsets = np.concatenate(([0], np.cumsum(sizes))) + 4 * (len(sizes) + 2) + len(
            self._config)
        digests = [hashlib.new(a) for a in self.config["hashes"]]
        total = self.nbytes
        try:
            parts = [struct.pack("<I", len(sizes)), offsets.astype("<u4").tobytes(),
                     self._config] + self._samples
            for part in parts if digests else ():
                for d in digests:
                    d.update(part)
            for part in parts:  # one write each: measured here, one writev of a whole 64 MB
                self._f.write(part)  # shard costs 4x the system CPU of writing its parts
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as e:
            raise OutputError("%s: writing the MDS shard failed (%s); the shard is incomplete: "
                              "free space or fix the disk, then write it again"
                              % (self.path, e.strerror or e)) from e
        finally:
            self._f.close()
        self._summary = dict(self.config, samples=len(sizes), zip_data=None, raw_data={
            "bytes": total,
            "hashes": {a: d.hexdigest() for a, d in zip(self.config["hashes"], digests)}})
        self._samples = []
        return self._summary

    def abort(self):
        """Stop without finishing the shard (the caller removes the file)."""
        self._samples = []
        self._f.close()
