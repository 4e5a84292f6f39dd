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
    "EXACT_INTEGERS",
    "label_problem",
    "check_detection_label",
    "crop_detection_label",
    "looks_like_detection_label",
    "RecordHeader",
    "normalize_label",
    "pack_record",
    "record_head",
    "unpack_record",
    "RecordPayload",
    "with_id",
    "with_label",
    "with_data",
    "label_only_record",
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


#: float32 holds every integer up to 2**24 exactly; above it, neighbouring ids merge.
EXACT_INTEGERS = 1 << 24
_F32_MAX = float(np.finfo(np.float32).max)
_LABEL_FIX = ("labels are stored as float32 (what MXNet's readers expect): give class ids "
              "below 2**24 = 16777216 (map them to 0..N-1), or split a large id into two "
              "labels of a vector")


def label_problem(values):
    """Why label ``values`` (a float, or a float64 array) cannot be stored as float32 as
    given: not finite there, or an integer float32 cannot hold exactly; None when they can.
    (Fractions such as 0.1 round to the nearest float32, as they always do.)"""
    if isinstance(values, float):
        if not -_F32_MAX <= values <= _F32_MAX:  # nan fails both comparisons
            return "label %r is not a finite float32" % values
        if abs(values) > EXACT_INTEGERS and values == int(values) and \
                float(np.float32(values)) != values:
            return ("integer label %d cannot be stored exactly: float32 rounds it to %d"
                    % (values, float(np.float32(values))))
        return None
    bad = ~(np.abs(values) <= _F32_MAX)
    if bad.any():
        return "label %r is not a finite float32" % float(values[bad][0])
    big = np.abs(values) > EXACT_INTEGERS
    if big.any():
        v = values[big]
        lost = (v == np.floor(v)) & (v.astype(np.float32).astype(np.float64) != v)
        if lost.any():
            x = float(v[lost][0])
            return ("integer label %d cannot be stored exactly: float32 rounds it to %d"
                    % (x, float(np.float32(x))))
    return None


def normalize_label(label):
    """Turn a user's label into a ``float`` (scalar) or a 1-D float32 array (vector).

    Numbers, numpy scalars, 0-d arrays and size-1 0-d NDArrays are scalars. Lists, tuples and
    1-D arrays (NDArray too) are vectors and are stored whole, with ``flag = len(label)``;
    that includes detection labels in ImageDetRecordIter's flat layout.

    Raises
    ------
    ImageEncodeError
        For labels with more than one dimension, that are not numeric, not finite, or an
        integer float32 cannot hold exactly (a documented deviation from im2rec.py, which
        rounds them silently).
    """
    if isinstance(label, numbers.Number) and not isinstance(label, bool):
        x = float(label)
        problem = label_problem(x)
        if problem:
            raise ImageEncodeError("%s; %s" % (problem, _LABEL_FIX))
        return x
    label = _as_numpy(label)
    if isinstance(label, np.ndarray) and label.dtype == np.float32 and label.ndim == 1:
        if not np.isfinite(label).all():  # float32 already: only finiteness is left to check
            raise ImageEncodeError("%s; %s" % (label_problem(label.astype(np.float64)),
                                               _LABEL_FIX))
        return label
    if isinstance(label, (list, tuple)) or isinstance(label, np.ndarray) or np.isscalar(label):
        try:
            wide = np.asarray(label, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ImageEncodeError("label %r is not numeric: labels are numbers or vectors "
                                   "of numbers" % (label,)) from exc
        if wide.ndim > 1:
            raise ImageEncodeError(
                "label has shape %s, but a record label is a number or a 1-D vector. For "
                "ImageDetRecordIter, flatten it into [header_width, object_width, ..., then "
                "(class, xmin, ymin, xmax, ymax) per object]" % (wide.shape,))
        problem = label_problem(float(wide) if wide.ndim == 0 else wide)
        if problem:
            raise ImageEncodeError("%s; %s" % (problem, _LABEL_FIX))
        if wide.ndim == 0:
            return float(wide)
        return wide.astype(np.float32)
    raise ImageEncodeError("label %r of type %s is not numeric: labels are numbers or vectors "
                           "of numbers" % (label, type(label).__name__))


def check_detection_label(label):
    """Raise :class:`ImageEncodeError` unless ``label`` (as :func:`normalize_label` gives it)
    follows ImageDetRecordIter's layout: ``[header_width >= 2, object_width >= 5, extra
    header..., then per object (class, xmin, ymin, xmax, ymax, extra...)]``, coordinates in
    [0, 1] with ``min <= max``."""
    label = normalize_label(label)
    layout = ("a detection label is [header_width >= 2, object_width >= 5, extra header..., "
              "then (class, xmin, ymin, xmax, ymax, ...) per object], coordinates in [0, 1]")
    if isinstance(label, float) or len(label) < 2:
        raise ImageEncodeError("detection label %r is too short: %s" % (label, layout))
    hw, ow = float(label[0]), float(label[1])
    if hw != int(hw) or ow != int(ow) or hw < 2 or ow < 5 or hw > len(label):
        raise ImageEncodeError("detection label has header_width %g and object_width %g: %s"
                               % (hw, ow, layout))
    body = label[int(hw):]
    if len(body) % int(ow):
        raise ImageEncodeError("detection label has %d values after its %d-value header, not "
                               "a whole number of %d-value objects: %s"
                               % (len(body), int(hw), int(ow), layout))
    boxes = body.reshape(-1, int(ow))[:, 1:5]
    if len(boxes) and ((boxes < 0) | (boxes > 1)).any() or (
            len(boxes) and ((boxes[:, 0] > boxes[:, 2]) | (boxes[:, 1] > boxes[:, 3])).any()):
        raise ImageEncodeError("detection label has a box outside [0, 1] or with min > max: "
                               "%s" % layout)
    return label


def looks_like_detection_label(label):
    """True when ``label`` follows ImageDetRecordIter's layout with at least one object."""
    try:
        label = check_detection_label(label)
    except ImageEncodeError:
        return False
    return len(label) >= int(label[0]) + int(label[1])


def crop_detection_label(label, window):
    """A detection label for the crop ``window`` = ``(x0, y0, x1, y1)`` (normalized) of its
    image: boxes moved into the window's coordinates and clipped to it; objects left with no
    area are dropped."""
    label = check_detection_label(label).copy()
    x0, y0, x1, y1 = window
    hw, ow = int(label[0]), int(label[1])
    objects = label[hw:].reshape(-1, ow)
    boxes = objects[:, 1:5]
    boxes[:, 0::2] = np.clip((boxes[:, 0::2] - x0) / (x1 - x0), 0.0, 1.0)
    boxes[:, 1::2] = np.clip((boxes[:, 1::2] - y0) / (y1 - y0), 0.0, 1.0)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return np.concatenate((label[:hw], objects[keep].reshape(-1))).astype(np.float32)


def record_head(label, key, id2=0):
    """The header (and label vector) that :func:`pack_record` puts in front of the data."""
    label = normalize_label(label)
    key = int(key)
    if not 0 <= key <= MAX_KEY:
        raise ImageEncodeError("key %d is out of range: record keys are integers in "
                               "[0, 2**64)" % key)
    if isinstance(label, float):
        return _HEADER.pack(0, label, key, id2)
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


class RecordPayload(bytes):
    """A whole record payload (header, labels, data) that the writer stores as it is, byte for
    byte: what a record copied from an existing file becomes."""

    __slots__ = ()


def with_id(payload, key):
    """``payload`` with its header id set to ``key`` (every other byte kept)."""
    key = int(key)
    if not 0 <= key <= MAX_KEY:
        raise ImageEncodeError("key %d is out of range: record keys are integers in "
                               "[0, 2**64)" % key)
    view = memoryview(payload)
    if len(view) < HEADER_SIZE:
        raise RecordFormatError("record of %d bytes is too short for the %d-byte image header"
                                % (len(view), HEADER_SIZE))
    if struct.unpack_from("<Q", view, 8)[0] == key:
        return payload if isinstance(payload, RecordPayload) else RecordPayload(view)
    return RecordPayload(b"".join((view[:8], struct.pack("<Q", key), view[16:])))


def with_label(payload, label, key=None):
    """``payload`` with a new label (a number, or a vector: ``flag = len``), its id (or
    ``key``), ``id2`` and data kept."""
    header, data = unpack_record(payload)
    head = record_head(label, header.id if key is None else key, header.id2)
    return RecordPayload(b"".join((head, data)))


def with_data(payload, data):
    """``payload`` with new data after its header and labels (a re-encoded image)."""
    header, old = unpack_record(payload)
    view = memoryview(payload)
    return RecordPayload(b"".join((view[:len(view) - len(old)], memoryview(data))))


def label_only_record(label, key, id2=0):
    """A record that holds only a label vector (InsightFace's header and identity records)."""
    return RecordPayload(record_head(np.asarray(label, dtype=np.float32), key, id2))
