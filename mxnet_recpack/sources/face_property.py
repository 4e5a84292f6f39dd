"""InsightFace's ``property`` file: ``num_classes,H,W`` beside a face dataset's ``train.rec``.

``arcface_mxnet``'s training scripts read the number of classes (the width of the classifier)
and the image size from it (``face_image.load_property``; one line). It is written as
``RecBuilder`` writes it: ``num_classes`` is the largest identity + 1, ``H,W`` the size every
image has. When the images are not all one size there is no true ``H,W``: no file is written,
and a warning says so. One ``property`` describes the one dataset of a folder, so a folder
that also holds an input keeps the file it has.
"""

import logging
import os

import numpy as np

from ..format.header import HEADER_SIZE
from ..images.probe import probe_image
from ..images.sizes import jpeg_sizes
from ..storage import is_url, read_bytes, write_small

__all__ = ["property_text", "image_size", "write_property", "write_file_property",
           "folder_of", "PROPERTY"]

log = logging.getLogger(__name__)

#: The file's name, beside the ``.rec``.
PROPERTY = "property"
_PREFIX = 512  # bytes of each record read first: a face JPEG's frame header is in them
_BATCH = 8192


def property_text(classes, height, width):
    """The ``property`` file's content: ``num_classes,H,W``."""
    return "%d,%d,%d\n" % (classes, height, width)


def _one_by_one(records, p, prefix):
    """``(height, width)`` of the image at position ``p`` from its header (in ``prefix``, its
    first bytes, or else in the whole record), or None."""
    info = probe_image(bytes(prefix)) if prefix is not None else None
    if info is None or info.width is None or info.height is None:
        info = probe_image(bytes(records.record(int(p))[2]))
    return (info.height, info.width) if info.width and info.height else None


def image_size(records, positions):
    """``((height, width), None)`` when every image at ``positions`` of a
    :class:`~mxnet_recpack.sources.records.RecordSet` has that size (from the image headers,
    without decoding), else ``(None, why)``."""
    positions = np.asarray(positions, dtype=np.int64)
    size, where = None, None
    for begin in range(0, len(positions), _BATCH):
        chunk = positions[begin:begin + _BATCH]
        buf = records.prefixes(chunk, _PREFIX)
        words = buf[:, :12].copy().view("<u4")  # magic, cflag | length, flag
        whole = (words[:, 1] >> 29) == 0
        starts = 8 + HEADER_SIZE + 4 * words[:, 2].astype(np.int64)
        ends = np.where(whole, 8 + (words[:, 1] & ((1 << 29) - 1)).astype(np.int64), 0)
        sizes = jpeg_sizes(buf, starts, ends)
        for j in np.flatnonzero(sizes[:, 0] < 0):
            found = _one_by_one(records, chunk[j], buf[j, starts[j]:ends[j]] if whole[j] and
                                starts[j] < _PREFIX else None)
            if found is None:
                return None, "the size of key %d is not in its image header" % records.keys[
                    chunk[j]]
            sizes[j] = found
        if size is None and len(sizes):
            size, where = (int(sizes[0, 0]), int(sizes[0, 1])), int(records.keys[chunk[0]])
        other = np.flatnonzero((sizes[:, 0] != size[0]) | (sizes[:, 1] != size[1]))
        if len(other):
            j = other[0]
            return None, ("the images are not all one size (%dx%d at key %d, %dx%d at key "
                          "%d)" % (size[1], size[0], where, sizes[j, 1], sizes[j, 0],
                                   records.keys[chunk[j]]))
    if size is None:
        return None, "there are no images"
    return size, None


def folder_of(path):
    """The folder of a local path or URL (where its ``property`` file goes)."""
    return path.rsplit("/", 1)[0] if is_url(path) else os.path.dirname(os.path.abspath(path))


def write_property(rec, classes, records, positions, *, inputs=(), storage_options=None):
    """Write ``property`` beside ``rec`` for ``classes`` and the images at ``positions`` of
    ``records`` (what ``rec`` holds); returns its path, or None when it is not written (the
    warning says why)."""
    folder = folder_of(rec)
    path = folder + "/" + PROPERTY
    size, why = image_size(records, positions)
    if size is None:
        log.warning("%s: no InsightFace '%s' file written: %s, and it gives one size for all "
                    "(resize them to one, e.g. `recpack rewrite IN OUT --center-crop "
                    "--resize 112`)", rec, PROPERTY, why)
        return None
    text = property_text(classes, *size)
    beside = [p for p in inputs if folder_of(p) == folder]
    if beside:
        try:
            old = read_bytes(path, storage_options=storage_options).decode("utf-8", "replace")
        except (FileNotFoundError, OSError):
            old = None
        if old == text:
            return path
        log.warning("%s: no InsightFace '%s' file written: the folder also holds the input "
                    "%s, and the file describes a folder's one dataset%s; write the output "
                    "into a folder of its own to get one (%r)", rec, PROPERTY, beside[0],
                    "" if old is None else " (the one there is kept)", text.strip())
        return None
    write_small(path, text, storage_options=storage_options)
    return path


def write_file_property(rec, classes=None, *, inputs=(), storage_options=None):
    """:func:`write_property` for the face dataset ``rec`` (its images read from it;
    ``classes`` from their labels when not given). None for a file not in the layout."""
    from .insightface import face_classes, identity_labels, read_layout
    from .records import RecordSet
    records = RecordSet(rec, storage_options=storage_options)
    try:
        layout = read_layout(records)
        if layout is None:
            return None
        images = layout.images[layout.images >= 0]
        if classes is None:
            classes = face_classes(identity_labels(records.labels(images)))
        return write_property(rec, classes, records, images, inputs=inputs,
                              storage_options=storage_options)
    finally:
        records.close()
