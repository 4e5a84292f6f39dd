"""Arrow arrays to and from numpy buffers.

pyarrow's conversions of Python objects and to numpy (``pa.array``, ``Array.to_numpy``,
``fill_null``) import pandas when it is installed (``datasets`` installs it): over a second,
and some 100 MB, in every process that writes or reads. Building arrays from buffers, and
reading numbers through them, needs neither, copies in bulk and keeps float32 bits exactly.
"""

import numpy as np

__all__ = ["numbers", "binaries", "struct_of", "list_of", "numbers_of", "offsets_of"]

_NUMPY = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
          "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
          "halffloat": np.float16, "float": np.float32, "double": np.float64}


def _validity(pa, valid):
    if valid.all():
        return None, 0
    return pa.py_buffer(np.packbits(valid, bitorder="little")), int((~valid).sum())


def numbers(pa, arrow_type, values):
    """An Arrow array of ``arrow_type`` holding the numpy ``values`` (of the same width)."""
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(arrow_type, len(values), [None, pa.py_buffer(values)])


def binaries(pa, items):
    """A binary array of ``items`` (bytes, or None for null)."""
    valid = np.fromiter((b is not None for b in items), bool, len(items))
    offsets = np.zeros(len(items) + 1, np.int64)
    np.cumsum([len(b) if b is not None else 0 for b in items], out=offsets[1:])
    if offsets[-1] >= 1 << 31:
        raise ValueError("a binary array of %d bytes needs 64-bit offsets" % offsets[-1])
    bitmap, nulls = _validity(pa, valid)
    data = pa.py_buffer(b"".join(b for b in items if b))
    return pa.Array.from_buffers(pa.binary(), len(items), [
        bitmap, pa.py_buffer(offsets.astype(np.int32)), data], null_count=nulls)


def struct_of(pa, arrow_type, children, valid):
    """A struct array of ``children``, null where ``valid`` (a bool array) is False."""
    bitmap, nulls = _validity(pa, np.asarray(valid, bool))
    return pa.Array.from_buffers(arrow_type, len(valid), [bitmap], null_count=nulls,
                                 children=children)


def list_of(pa, arrow_type, offsets, values):
    """A list array of ``arrow_type``: row i is ``values[offsets[i]:offsets[i + 1]]``."""
    offsets = np.ascontiguousarray(offsets, np.int32)
    return pa.Array.from_buffers(arrow_type, len(offsets) - 1, [None, pa.py_buffer(offsets)],
                                 children=[values])


def numbers_of(array):
    """The values of a numeric Arrow array as numpy (its own dtype, bits as stored); with nulls,
    float64 with NaN where null."""
    dtype = _NUMPY.get(str(array.type))
    if dtype is None or array.null_count:
        return np.array([np.nan if v is None else v for v in array.to_pylist()], np.float64)
    return np.frombuffer(array.buffers()[1], dtype, count=len(array),
                         offset=array.offset * np.dtype(dtype).itemsize)


def offsets_of(array):
    """Where each row of a list array starts and ends in ``array.values`` (n + 1 offsets)."""
    size = getattr(array.type, "list_size", None)
    if size is not None:  # fixed_size_list
        return (np.arange(len(array) + 1) + array.offset) * size
    return numbers_of(array.offsets)
