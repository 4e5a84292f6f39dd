"""The image-record header that MXNet's image readers expect in front of every image.

Layout (little-endian, what ``mx.recordio.pack`` writes)::

    uint32 flag | float32 label | uint64 id | uint64 id2 | flag x float32 labels | image bytes

``flag == 0``: one scalar label in the header. ``flag > 0``: the header's label field is 0 and
``flag`` float32 labels follow it (vector labels, detection labels). Standard library and numpy
only.
"""

import numbers
import struct
from collections import namedtuple

import numpy as np

from ..errors import ImageEncodeError, RecordFormatError

__all__ = [
    "HEADER_SIZE",
    "MAX_KEY",
    "RecordHeader",
    "normalize_label",
    "pack_record",
    "record_head",
    "unpack_record",
]

_HEADER = struct.Struct("<IfQQ")
HEADER_SIZE = _HEADER.size  # 24
#: Keys are the header's uint64 ``id``.
MAX_KEY = (1 << 64) - 1

#: A decoded header: ``label`` is a float when ``flag == 0``, else a float32 array of ``flag``.
RecordHeader = namedtuple("RecordHeader", ["flag", "label", "id", "id2"])


def _as_numpy(value):
    asnumpy = getattr(value, "asnumpy", None)  # mxnet NDArray and mx.np arrays
    return asnumpy() if callable(asnumpy) else value


def normalize_label(label):
    """Turn a user's label into a ``float`` (scalar) or a 1-D float32 array (vector).

    Numbers, numpy scalars, 0-d arrays and size-1 0-d NDArrays are scalars. Lists, tuples and
    1-D arrays (NDArray too) are vectors and are stored whole, with ``flag = len(label)``;
    that includes detection labels in ImageDetRecordIter's flat layout.

    Raises
    ------
    ImageEncodeError
        For labels with more than one dimension or that are not numeric.
    """
    if isinstance(label, numbers.Number) and not isinstance(label, bool):
        return float(label)
    label = _as_numpy(label)
    if isinstance(label, (list, tuple)) or isinstance(label, np.ndarray) or np.isscalar(label):
        try:
            arr = np.asarray(label, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ImageEncodeError("label %r is not numeric: labels are numbers or vectors "
                                   "of numbers" % (label,)) from exc
        if arr.ndim == 0:
            return float(arr)
        if arr.ndim == 1:
            return arr
        raise ImageEncodeError(
            "label has shape %s, but a record label is a number or a 1-D vector. For "
            "ImageDetRecordIter, flatten it into [header_width, object_width, ..., then "
            "(class, xmin, ymin, xmax, ymax) per object]" % (arr.shape,))
    raise ImageEncodeError("label %r of type %s is not numeric: labels are numbers or vectors "
                           "of numbers" % (label, type(label).__name__))


def record_head(label, key, id2=0):
    """The header (and label vector) that :func:`pack_record` puts in front of the data."""
    label = normalize_label(label)
    key = int(key)
    if not 0 <= key <= MAX_KEY:
        raise ImageEncodeError("key %d is out of range: record keys are integers in "
                               "[0, 2**64)" % key)
    if isinstance(label, float):
        try:
            return _HEADER.pack(0, label, key, id2)
        except OverflowError as exc:
            raise ImageEncodeError("label %r does not fit in a float32" % label) from exc
    return _HEADER.pack(label.size, 0.0, key, id2) + label.astype("<f4").tobytes()


def pack_record(label, key, data, id2=0):
    """Build an image record payload: header, optional label vector, then ``data``.

    Byte-identical to ``mx.recordio.pack(IRHeader(0, label, key, id2), data)``.

    Parameters
    ----------
    label : number or 1-D sequence
        See :func:`normalize_label`.
    key : int
        Stored in the header's ``id`` field (0 <= key < 2**64).
    data : bytes
        The encoded image (or any bytes).
    """
    return b"".join((record_head(label, key, id2), data))


def unpack_record(payload, *, offset=None, path=None):
    """Split an image record payload into its header and the image bytes.

    Returns
    -------
    (RecordHeader, memoryview)

    Raises
    ------
    RecordFormatError
        When the payload is shorter than its header says.
    """
    view = memoryview(payload)
    if len(view) < HEADER_SIZE:
        raise RecordFormatError("record of %d bytes is too short for the %d-byte image header"
                                % (len(view), HEADER_SIZE), path=path, offset=offset)
    flag, label, key, id2 = _HEADER.unpack_from(view)
    start = HEADER_SIZE
    if flag > 0:
        end = start + 4 * flag
        if end > len(view):
            raise RecordFormatError(
                "header says %d labels (flag=%d) but the record holds only %d bytes after the "
                "header" % (flag, flag, len(view) - HEADER_SIZE), path=path, offset=offset)
        label = np.frombuffer(view[start:end], dtype="<f4")
        start = end
    return RecordHeader(flag, label, key, id2), view[start:]
