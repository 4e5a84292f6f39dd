"""A record as every format holds it: ``Sample(key, flag, label, id, id2, image, head)``.

A RecordIO record is an image-record header (``flag``, ``label``, ``id``, ``id2``; see
:mod:`~mxnet_recpack.format.header`), then ``flag`` float32 labels, then the image bytes; its
``key`` is what the ``.idx`` lists. Every other format keeps these fields (webdataset in its
``.json``, Parquet in columns, MDS and TFRecord in fields), so ``.rec -> X -> .rec`` gives back
the same payload, byte for byte. ``head`` is None when the fields re-pack to the original
header; otherwise (a header MXNet's own ``pack`` would not write: a label field that is not 0
beside label vectors, NaN bits of their own) it holds the original header bytes, which formats
store as ``recordio_header`` (base64), so nothing is lost either.

Standard library and numpy only.
"""

import base64
import struct
from collections import namedtuple

import numpy as np

from ..format.header import HEADER_SIZE, unpack_record

__all__ = ["Sample", "sample_from_payload", "payload_of", "sample_metadata",
           "sample_from_metadata", "label_value", "is_integral"]

_HEADER = struct.Struct("<IfQQ")

#: ``label``: a float when ``flag == 0``, else a float32 array of ``flag`` values; ``image``:
#: the image bytes as stored (``b""`` for a label-only record); ``head``: see the module doc.
Sample = namedtuple("Sample", ["key", "flag", "label", "id", "id2", "image", "head"])


def _canonical_head(flag, label, ident, id2):
    if flag == 0:
        return _HEADER.pack(0, label, ident, id2)
    return _HEADER.pack(flag, 0.0, ident, id2) + np.asarray(label, "<f4").tobytes()


def sample_from_payload(key, payload):
    """The Sample of a RecordIO record ``payload`` listed under ``key``."""
    header, image = unpack_record(payload)
    label = float(header.label) if header.flag == 0 else np.array(header.label, np.float32)
    head = _canonical_head(header.flag, label, header.id, header.id2)
    stored = bytes(memoryview(payload)[:HEADER_SIZE + 4 * header.flag])
    return Sample(int(key), int(header.flag), label, int(header.id), int(header.id2),
                  bytes(image), None if stored == head else stored)


def payload_of(sample):
    """The RecordIO payload of ``sample`` (the inverse of :func:`sample_from_payload`)."""
    head = sample.head if sample.head is not None else _canonical_head(
        sample.flag, sample.label, sample.id, sample.id2)
    return head + bytes(sample.image)


def label_value(sample):
    """The label as JSON data: a float, or a list of floats (each exactly the float32)."""
    return float(sample.label) if sample.flag == 0 else [float(v) for v in sample.label]


def is_integral(sample):
    """True when the label is one number that is an integer (a class id)."""
    return sample.flag == 0 and float(sample.label).is_integer()


def sample_metadata(sample):
    """Every header field as JSON data (what webdataset's ``.json`` holds)."""
    meta = {"key": sample.key, "flag": sample.flag, "label": label_value(sample),
            "id": sample.id, "id2": sample.id2}
    if sample.head is not None:
        meta["recordio_header"] = base64.b64encode(sample.head).decode("ascii")
    return meta


def sample_from_metadata(meta, image):
    """A Sample from :func:`sample_metadata`'s fields and the image bytes."""
    flag = int(meta["flag"])
    label = float(meta["label"]) if flag == 0 else np.asarray(meta["label"], np.float32)
    head = meta.get("recordio_header")
    return Sample(int(meta["key"]), flag, label, int(meta["id"]), int(meta["id2"]),
                  bytes(image), base64.b64decode(head) if head else None)
