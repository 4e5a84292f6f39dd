"""Which ``tf.train.Example`` feature holds which field of a :class:`~..sample.Sample`.

TensorFlow's ImageNet convention (``build_imagenet_data.py``), for any TensorFlow, DALI or
``tfrecord`` reader:

=====================  =======  ==========================================================
``image/encoded``      bytes    the image bytes as stored (``b""`` for a label-only record)
``image/format``       bytes    ``JPEG``, ``PNG``, ... from the bytes (absent when unknown)
``image/class/label``  int64    the label, only where it is one integral number
``image/height``       int64    from the image header (absent where it does not say)
``image/width``        int64    likewise
=====================  =======  ==========================================================

and every RecordIO field, so ``.rec -> TFRecord -> .rec`` gives the same bytes back:

=====================  =======  ==========================================================
``recordio/key``       int64    the ``.idx`` key (a uint64, stored as its int64 bit pattern)
``recordio/flag``      int64    the header's flag (0: one label; N: N labels)
``recordio/label``     float    the label(s) as float32 (1 value when flag is 0, else N)
``recordio/id``        int64    the header's id (uint64 bit pattern)
``recordio/id2``       int64    the header's id2 (uint64 bit pattern)
``recordio/header``    bytes    the original header bytes, only where they would not re-pack
=====================  =======  ==========================================================

A record without ``recordio/key`` was written by something else (TensorFlow, the ``tfrecord``
package): its key is its position (counted from ``first_key``, 0 for the first file), its id
the key, id2 0, its label ``image/class/label`` (int64 or float; one value: a scalar label,
several: a vector), or ``default_label`` where that feature is missing; missing without a
default, it is an error naming the feature.
"""

import struct

import numpy as np

from ...errors import ImageEncodeError, RecordFormatError
from ...format.header import HEADER_SIZE, MAX_KEY, label_problem, normalize_label
from ...images.encodings import ENCODINGS, sniff
from ...images.probe import probe_image
from ..sample import Sample, is_integral
from .example import BYTES, FLOAT, INT64, as_int64

__all__ = ["IMAGE", "FORMAT", "CLASS_LABEL", "HEIGHT", "WIDTH", "KEY", "FLAG", "LABEL", "ID",
           "ID2", "HEADER", "features_of", "sample_of", "inconsistency"]

IMAGE, FORMAT, CLASS_LABEL = "image/encoded", "image/format", "image/class/label"
HEIGHT, WIDTH = "image/height", "image/width"
KEY, FLAG, LABEL = "recordio/key", "recordio/flag", "recordio/label"
ID, ID2, HEADER = "recordio/id", "recordio/id2", "recordio/header"

#: ``image/format`` of each sniffed encoding (upper case, as the ImageNet convention's 'JPEG').
FORMAT_NAMES = {name: name.upper().encode("ascii") for name in ENCODINGS if name != "other"}
#: What other writers put in ``image/format``, to compare with the bytes (lower-cased).
_DECLARED = dict({name: name for name in FORMAT_NAMES}, jpg="jpeg", tif="tiff")
_INT63 = 1 << 63
_KIND_NAMES = {BYTES: "a bytes list", FLOAT: "a float list", INT64: "an int64 list",
               None: "an empty feature (no list)"}


def _uint64(name, value):
    value = int(value)
    if not 0 <= value <= MAX_KEY:
        raise ImageEncodeError("%s %d is not a uint64 (0 .. 2**64-1)" % (name, value))
    return value


def _image_size(image):
    """``(height, width)`` from the image header, or None."""
    try:
        info = probe_image(image)
    except (struct.error, IndexError, ValueError):  # a header too damaged to say
        return None
    if info.width is None or info.height is None:
        return None
    return info.height, info.width


def features_of(sample):
    """The ``(name, kind, values)`` features that hold ``sample`` (see the module doc)."""
    flag = int(sample.flag)
    labels = [sample.label] if flag == 0 else sample.label
    if flag != 0 and len(sample.label) != flag:
        raise ImageEncodeError("sample %d: flag %d but %d labels" % (sample.key, flag,
                                                                       len(sample.label)))
    image = sample.image
    features = [(IMAGE, BYTES, [image]),
                (KEY, INT64, [_uint64("key", sample.key)]),
                (FLAG, INT64, [flag]),
                (LABEL, FLOAT, labels),
                (ID, INT64, [_uint64("id", sample.id)]),
                (ID2, INT64, [_uint64("id2", sample.id2)])]
    if sample.head is not None:
        features.append((HEADER, BYTES, [sample.head]))
    if is_integral(sample) and abs(sample.label) < _INT63:
        features.append((CLASS_LABEL, INT64, [int(sample.label)]))
    if len(image):
        name = FORMAT_NAMES.get(sniff(image))
        if name is not None:
            features.append((FORMAT, BYTES, [name]))
        size = _image_size(image)
        if size is not None:
            features += [(HEIGHT, INT64, [size[0]]), (WIDTH, INT64, [size[1]])]
    return features


def _values(features, name, kind, count=None):
    """The values of feature ``name``, checked to be of ``kind`` (and ``count`` long)."""
    found = features.get(name)
    if found is None:
        raise RecordFormatError("feature %r is missing (expected %s%s)"
                                % (name, _KIND_NAMES[kind], _count(count)))
    if found[0] != kind:
        raise RecordFormatError("feature %r is %s, expected %s%s"
                                % (name, _KIND_NAMES[found[0]], _KIND_NAMES[kind], _count(count)))
    if count is not None and len(found[1]) != count:
        raise RecordFormatError("feature %r holds %d values, expected %d"
                                % (name, len(found[1]), count))
    return found[1]


def _count(count):
    return "" if count is None else (" of 1 value" if count == 1 else " of %d values" % count)


def _ours(features):
    """The Sample a record this codec wrote holds."""
    key, = _values(features, KEY, INT64, 1)
    flag, = _values(features, FLAG, INT64, 1)
    if flag >= 1 << 32:
        raise RecordFormatError("feature %r is %d: a RecordIO flag is a uint32" % (FLAG, flag))
    labels = _values(features, LABEL, FLOAT, max(flag, 1))
    label = float(labels[0]) if flag == 0 else np.array(labels, np.float32)
    ident, = _values(features, ID, INT64, 1)
    id2, = _values(features, ID2, INT64, 1)
    head = None
    if HEADER in features:
        head = bytes(_values(features, HEADER, BYTES, 1)[0])
        if len(head) != HEADER_SIZE + 4 * flag or struct.unpack_from("<I", head)[0] != flag:
            raise RecordFormatError(
                "feature %r holds %d bytes that are not a RecordIO header of flag %d (%d bytes "
                "starting with the flag)" % (HEADER, len(head), flag, HEADER_SIZE + 4 * flag))
    image = bytes(_values(features, IMAGE, BYTES, 1)[0])
    return Sample(key, flag, label, ident, id2, image, head)


def _foreign_label(features, default_label):
    found = features.get(CLASS_LABEL)
    if found is None or not len(found[1]):
        if default_label is None:
            raise RecordFormatError(
                "feature %r is missing or empty: give a default label for records without one "
                "(default_label)" % CLASS_LABEL)
        return normalize_label(default_label)
    kind, values = found
    if kind == INT64:
        wide = np.array([as_int64(v) for v in values], np.float64)
    elif kind == FLOAT:
        wide = np.asarray(values, np.float64)
    else:
        raise RecordFormatError("feature %r is %s, expected an int64 or float list"
                                % (CLASS_LABEL, _KIND_NAMES[kind]))
    problem = label_problem(float(wide[0]) if len(wide) == 1 else wide)
    if problem:
        raise RecordFormatError("feature %r: %s (RecordIO labels are float32)"
                                % (CLASS_LABEL, problem))
    return float(wide[0]) if len(wide) == 1 else wide.astype(np.float32)


def sample_of(features, key, *, default_label=None):
    """The Sample a record's decoded ``features`` hold. ``key`` is used only for a record
    without ``recordio/key`` (a file this tool did not write; see the module doc).

    Raises
    ------
    RecordFormatError
        Without file or offset: the caller adds them.
    """
    if KEY in features:
        try:
            return _ours(features)
        except RecordFormatError as exc:
            raise RecordFormatError(
                "%s; a record with %r holds every RecordIO field as this tool writes them, "
                "and this one does not: convert it again from its source (or, for a file "
                "another tool wrote, leave out the recordio/* features)" % (exc.reason, KEY))
    try:
        image = bytes(_values(features, IMAGE, BYTES, 1)[0])
        label = _foreign_label(features, default_label)
    except RecordFormatError as exc:
        raise RecordFormatError(
            "%s; a record without %r (a file another tool wrote) is read by TensorFlow's "
            "ImageNet convention: one image in %r, its label in %r (int64 or float)"
            % (exc.reason, KEY, IMAGE, CLASS_LABEL))
    if not 0 <= key <= MAX_KEY:
        raise RecordFormatError("key %d (from the record's position) is not a uint64" % key)
    flag = 0 if isinstance(label, float) else len(label)
    return Sample(key, flag, label, key, 0, image, None)


def inconsistency(features, sample):
    """Why the convention's features disagree with the record's own fields (None when they
    agree): a wrong ``image/format``, size or class label misleads readers that use them."""
    image = sample.image
    declared = features.get(FORMAT)
    if declared is not None and declared[0] == BYTES and len(declared[1]) == 1:
        said = bytes(declared[1][0]).decode("ascii", "replace").lower()
        if said in _DECLARED and _DECLARED[said] != sniff(image):
            return "feature %r says %r, but the image bytes are %s" % (
                FORMAT, said, sniff(image) if len(image) else "empty")
    size = _image_size(image) if len(image) else None
    for name, at in ((HEIGHT, 0), (WIDTH, 1)):
        found = features.get(name)
        if size is not None and found is not None and found[0] == INT64 and \
                list(found[1]) != [size[at]]:
            return "feature %r says %s, the image header says %d" % (
                name, [as_int64(v) for v in found[1]], size[at])
    found = features.get(CLASS_LABEL)
    if KEY in features and found is not None and found[0] == INT64 and \
            [as_int64(v) for v in found[1]] != ([int(sample.label)] if is_integral(sample)
                                                and abs(sample.label) < _INT63 else []):
        return "feature %r says %s, but recordio/label is %r" % (
            CLASS_LABEL, [as_int64(v) for v in found[1]], sample.label)
    return None
