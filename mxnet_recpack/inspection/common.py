"""What the inspection commands share: opening a record file (with or without its index) and
walking its records, and telling what a payload holds (encoding, size) from its headers.

Headers only: OpenCV is loaded only for formats whose header does not give the size.
"""

import io
import os

import numpy as np

from ..errors import RecordFormatError
from ..format.header import unpack_record
from ..format.names import index_path_for
from ..format.reader import RecordFile
from ..images.encodings import sniff
from ..images.opencv import load
from ..images.probe import probe_image
from ..storage import check_regular_file

__all__ = ["open_records", "records", "encoding_of", "image_size", "npy_shape"]

_PROBE_PREFIX = 1 << 16  # JPEG SOF / PNG IHDR are near the start; probe only this much first
_KNOWN = ("jpeg", "png", "npy")  # reported by name; anything else counts as 'other'


def open_records(rec_path, idx_path):
    """Open ``rec_path``; returns ``(RecordFile, index path or None)``.

    Without an explicit ``idx_path``, the ``.idx`` beside the ``.rec`` is used when it exists;
    otherwise the file is read sequentially.
    """
    rec_path = os.fspath(rec_path)
    if not check_regular_file(rec_path, "the record file", missing_ok=True):
        raise FileNotFoundError("%s: record file not found (expected a .rec file written by "
                                "recpack or im2rec)" % rec_path)
    if idx_path is None:
        candidate = index_path_for(rec_path)
        idx_path = candidate if check_regular_file(candidate, "the index", missing_ok=True) \
            else False
    elif idx_path is not False:
        idx_path = os.fspath(idx_path)
        check_regular_file(idx_path, "the index", missing_ok=True)  # missing: read_index says
    return RecordFile(rec_path, idx_path=idx_path), (idx_path or None)


def records(rf):
    """Yield ``(key, RecordHeader, image memoryview)`` in index order (file order without one).

    Without an index the key is the header's id; a repeated id raises, since keys must be
    unique to name records (and extracted files).
    """
    if rf.idx_path:
        for key in rf.keys:
            header, data = rf.read_image(key)
            yield key, header, data
        return
    seen = set()
    for offset, payload in rf.scan():
        header, data = unpack_record(payload, offset=offset, path=rf.path)
        if header.id in seen:
            raise RecordFormatError(
                "record id %d is used by an earlier record too, and there is no .idx to give "
                "the records unique keys; build one with `recpack index --keys position %s` "
                "and pass it as idx_path" % (header.id, rf.path), path=rf.path, offset=offset)
        seen.add(header.id)
        yield header.id, header, data


def encoding_of(data):
    """``('jpeg' | 'png' | 'npy' | 'other', ImageInfo or None)`` from the magic bytes."""
    name = sniff(data)
    if name == "npy":
        return "npy", None
    info = probe_image(bytes(data[:_PROBE_PREFIX]))
    if name in _KNOWN:
        if info.width is None and len(data) > _PROBE_PREFIX:
            info = probe_image(bytes(data))
        return info.format, info
    return "other", info


def npy_shape(data):
    """The array shape and dtype stored in ``.npy`` bytes, from the header only."""
    f = io.BytesIO(bytes(data[:4096]))
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    except (ValueError, EOFError):
        return None, None
    return shape, dtype


def _npy_size(shape, dtype):
    """``(width, height)`` of an HW, HWC or CHW array, else ``(None, None)``.

    A 3-D shape is HWC when only its last axis looks like channels (1, 3 or 4), CHW when only
    its first does; when both do, uint8 arrays are taken as HWC images and others as CHW
    tensors (what ``ToTensor`` makes).
    """
    if shape is None:
        return None, None
    if len(shape) == 2:
        return shape[1], shape[0]
    if len(shape) != 3:
        return None, None
    last, first = shape[2] in (1, 3, 4), shape[0] in (1, 3, 4)
    if last and (not first or dtype == np.uint8):
        return shape[1], shape[0]
    if first:
        return shape[2], shape[1]
    return None, None


def image_size(encoding, info, data):
    """``(width, height)`` from the header when it says, else by decoding; Nones if neither."""
    if encoding == "npy":
        return _npy_size(*npy_shape(data))
    if info is not None and info.width is not None and info.height is not None:
        return info.width, info.height
    cv2 = load()
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        return None, None
    return img.shape[1], img.shape[0]
