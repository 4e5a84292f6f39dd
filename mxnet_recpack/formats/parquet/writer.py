"""Writing Parquet files in Hugging Face ``datasets``' image layout, one file at a time.

:func:`encode` is the per-record work (in worker processes or threads); :class:`ShardWriter`
turns the encoded records into row groups of one file. The bytes depend only on the records,
the :class:`~mxnet_recpack.formats.parquet.layout.Layout` and the row-group limits (never on
how the records were batched, the time or the machine): row groups are cut at a fixed number
of rows or bytes, compression and encodings are fixed, and Parquet's footer holds no time.
Its ``created_by`` names the pyarrow version, so the same pyarrow gives the same bytes.
"""

import os
import struct
import warnings
from collections import namedtuple

import numpy as np

from ...errors import ImageEncodeError, OptionError
from ...format.header import MAX_KEY
from .arrays import binaries, list_of, numbers, struct_of
from .arrow import pyarrow
from .layout import arrow_schema, integral_label

__all__ = ["Encoded", "encode", "ShardWriter", "ROW_GROUP_ROWS", "ROW_GROUP_BYTES"]

#: Rows per row group (``datasets`` used 100 for image datasets): reading one record reads its
#: row group, so small groups keep random access cheap.
ROW_GROUP_ROWS = 100
#: A row group also ends once it holds this many bytes of images and headers.
ROW_GROUP_BYTES = 64 << 20
_F32 = struct.Struct("<f")
_U32_MAX = (1 << 32) - 1

#: One record as the writer takes it: ``label`` is its float32 bytes (4 a value, ``flag``
#: values for a vector), ``integral`` whether it fits an int64 label column exactly,
#: ``image`` the bytes (``b""``: a label-only record, stored as a null image) and ``head``
#: the original header bytes or None.
Encoded = namedtuple("Encoded", ["key", "flag", "label", "integral", "id", "id2", "image",
                                 "head"])


def _check_uint(name, value, top, key):
    if not 0 <= value <= top:
        raise ImageEncodeError("record key %d: %s %d is outside [0, %d]" % (key, name, value,
                                                                            top))


def encode(sample):
    """The :class:`Encoded` form of a :class:`~mxnet_recpack.formats.sample.Sample` (checked
    here, so a bad record fails in its worker with its key)."""
    key, flag, ident, id2 = int(sample.key), int(sample.flag), int(sample.id), int(sample.id2)
    _check_uint("key", key, MAX_KEY, key)
    _check_uint("flag", flag, _U32_MAX, key)
    _check_uint("id", ident, MAX_KEY, key)
    _check_uint("id2", id2, MAX_KEY, key)
    if flag == 0:
        label = _F32.pack(float(sample.label))
    else:
        values = np.asarray(sample.label)
        if values.dtype != np.float32 or values.shape != (flag,):
            raise ImageEncodeError("record key %d: flag %d needs %d float32 labels, got %s of "
                                   "shape %s" % (key, flag, flag, values.dtype, values.shape))
        label = values.astype("<f4").tobytes()
    head = None if sample.head is None else bytes(sample.head)
    return Encoded(key, flag, label, integral_label(sample), ident, id2, bytes(sample.image),
                   head)


def _size(encoded):
    return len(encoded.image) + len(encoded.label) + len(encoded.head or b"") + 28


class ShardWriter:
    """Write one Parquet file of the layout's schema at ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create (the caller names it and renames it when its run commits).
    layout : Layout
        The columns of the whole set (see :class:`LayoutScan`).
    row_group_rows, row_group_bytes : int
        A row group ends at this many rows, or once it holds this many bytes.

    ``append`` takes :func:`encode`'s records in order; ``count`` and ``nbytes`` are what was
    appended so far (``nbytes``: the file's bytes plus the row group being gathered), so a
    caller can close the file at a size limit. ``close`` writes the last row group and the
    footer, flushes and fsyncs, and returns ``{"count", "nbytes", "row_groups"}``. Memory
    holds one row group. As a context manager it closes on success, and when the body raised
    only releases the file (:meth:`abort`: left empty, for the caller to remove).
    """

    def __init__(self, path, layout, *, row_group_rows=ROW_GROUP_ROWS,
                 row_group_bytes=ROW_GROUP_BYTES):
        if int(row_group_rows) < 1 or int(row_group_bytes) < 1:
            raise OptionError("row_group_rows and row_group_bytes must be at least 1, not "
                              "%r and %r" % (row_group_rows, row_group_bytes))
        pa, pq = pyarrow()
        self.path = os.fspath(path)
        self.layout = layout
        self.row_group_rows, self.row_group_bytes = int(row_group_rows), int(row_group_bytes)
        self._schema = arrow_schema(layout)
        self.count = 0
        self.row_groups = 0
        self._pending, self._pending_bytes = [], 0
        # unbuffered: what pyarrow writes is in the file, so an abort has nothing left to flush
        self._file = open(self.path, "wb", buffering=0)
        try:
            self._writer = pq.ParquetWriter(self._file, self._schema, **_writer_options(layout))
        except BaseException:
            self._file.close()
            raise
        self._closed = False

    @property
    def nbytes(self):
        return self._file.tell() + self._pending_bytes if not self._closed else self._size

    def append(self, encoded_list):
        """Add a batch of :func:`encode` results, in order."""
        if self._closed:
            raise ValueError("%s: append after close" % self.path)
        for encoded in encoded_list:
            self._pending.append(encoded)
            self._pending_bytes += _size(encoded)
            self.count += 1
            if (len(self._pending) >= self.row_group_rows
                    or self._pending_bytes >= self.row_group_bytes):
                self._flush()

    def _flush(self):
        if self._pending:
            table = _table(self._pending, self.layout, self._schema, self.path)
            self._writer.write_table(table, row_group_size=len(self._pending))
            self.row_groups += 1
            self._pending, self._pending_bytes = [], 0

    def close(self):
        """Finish the file; returns ``{"count", "nbytes", "row_groups"}``."""
        if not self._closed:
            self._flush()
            self._writer.close()
            os.fsync(self._file.fileno())
            self._size = self._file.tell()
            self._file.close()
            self._closed = True
        return {"count": self.count, "nbytes": self._size, "row_groups": self.row_groups}

    def abort(self):
        """Release the file without finishing it: it is left empty, for the caller to remove
        (never a readable file of part of the records)."""
        if not self._closed:
            self._closed = True
            self._pending = []
            try:  # pyarrow would otherwise write its footer when collected
                self._writer.close()
            except Exception:  # noqa: BLE001 - a full or failing disk: the file is emptied below
                pass
            try:
                os.ftruncate(self._file.fileno(), 0)
            except OSError:
                pass
            finally:
                self._size = 0
                self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self):
        if getattr(self, "_closed", True) is False:
            warnings.warn("ShardWriter for %s was never closed: the file is left empty"
                          % self.path, ResourceWarning, stacklevel=2)
            self.abort()


def _writer_options(layout):
    """Fixed, deterministic writer settings: images and headers stored plain and
    uncompressed (they are compressed already), the small columns with snappy and statistics,
    page checksums everywhere (so damage is found when reading)."""
    small = ["label.list.element" if layout.label_kind == "vector" else "label",
             "key", "flag", "id", "id2"]
    compression = {name: "SNAPPY" for name in small}
    compression.update({"image.bytes": "NONE", "image.path": "NONE"})
    if layout.recordio_header:
        compression["recordio_header"] = "NONE"
    return {"compression": compression, "use_dictionary": False, "write_statistics": small,
            "write_page_checksum": True, "version": "2.6", "data_page_version": "1.0",
            "store_schema": True}


def _labels(pending, layout, pa, path):
    values = np.frombuffer(b"".join(e.label for e in pending), "<f4")
    if layout.label_kind == "vector":
        offsets = np.zeros(len(pending) + 1, np.int64)
        np.cumsum([max(e.flag, 1) for e in pending], out=offsets[1:])
        return list_of(pa, pa.list_(pa.float32()), offsets, numbers(pa, pa.float32(), values))
    for e in pending:
        if e.flag:
            raise ImageEncodeError("%s: record key %d has a vector label, but the layout's "
                                   "label column is %r (decide the layout from every record "
                                   "with LayoutScan)" % (path, e.key, layout.label_kind))
        if layout.label_kind == "int" and not e.integral:
            raise ImageEncodeError("%s: record key %d has label %r, which an int64 label "
                                   "column cannot hold exactly (decide the layout from every "
                                   "record with LayoutScan)" % (path, e.key,
                                                               _F32.unpack(e.label)[0]))
    if layout.label_kind == "int":
        names = layout.class_names
        if names is not None and not ((values >= 0) & (values < len(names))).all():
            bad = next(e for e in pending if not 0 <= _F32.unpack(e.label)[0] < len(names))
            raise ImageEncodeError("%s: record key %d has label %r, outside the %d class names"
                                   % (path, bad.key, _F32.unpack(bad.label)[0], len(names)))
        return numbers(pa, pa.int64(), values.astype(np.int64))
    return numbers(pa, pa.float32(), values)


def _uints(pa, arrow_type, dtype, values):
    return numbers(pa, arrow_type, np.array(values, dtype))


def _table(pending, layout, schema, path):
    pa, _ = pyarrow()
    if not layout.recordio_header:
        kept = next((e for e in pending if e.head is not None), None)
        if kept is not None:
            raise ImageEncodeError("%s: record key %d keeps its original header bytes, but the "
                                   "layout has no recordio_header column (decide the layout "
                                   "from every record with LayoutScan)" % (path, kept.key))
    n = len(pending)
    image = struct_of(pa, schema.field("image").type,
                      [binaries(pa, [e.image or None for e in pending]),
                       pa.nulls(n, pa.string())], [bool(e.image) for e in pending])
    columns = [image, _labels(pending, layout, pa, path),
               _uints(pa, pa.uint64(), np.uint64, [e.key for e in pending]),
               _uints(pa, pa.uint32(), np.uint32, [e.flag for e in pending]),
               _uints(pa, pa.uint64(), np.uint64, [e.id for e in pending]),
               _uints(pa, pa.uint64(), np.uint64, [e.id2 for e in pending])]
    if layout.recordio_header:
        columns.append(binaries(pa, [e.head for e in pending]))
    return pa.Table.from_arrays(columns, schema=schema)
