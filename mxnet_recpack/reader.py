"""A framework-free reader for training: ``RecordDataset(path)[i] -> (image, label)``.

A map-style dataset over one or more ``.rec``/``.idx`` pairs, local or ``s3://``, that PyTorch's
``DataLoader`` and Gluon's ``DataLoader`` can both drive: it opens its files lazily in each
process and reads with positional reads, so it is picklable and safe under fork, spawn and
threads. No MXNet, no framework: images come back as numpy arrays.
"""

from __future__ import annotations

import io
import os
from typing import Any, Callable, Sequence

import numpy as np

from .errors import BadImageError
from .images.codec import swap_rb
from .images.encodings import sniff
from .images.exif import applies_orientation
from .images.opencv import load
from .images.probe import probe_image
from .options import validate
from .sources.records import RecordSet

__all__ = ["RecordDataset"]

_PROBE = 4096  # JPEG SOF and PNG IHDR come first: enough to tell gray from colour


class RecordDataset:
    """The images of indexed record files, by position, decoded.

    Parameters
    ----------
    path : str, os.PathLike or list
        A ``.rec`` (its ``.idx`` beside it), a glob of parts (``"train.part*.rec"``) or a list
        of files: several files are one dataset, in order. Local paths or URLs (``s3://``).
    transform : callable, optional
        Applied to each image (a numpy array) before it is returned.
    color : {None, 1, 0, -1}, default None
        None: H x W x 3 RGB, or H x W x 1 for images stored gray. 1: always RGB. 0: always
        H x W x 1 gray. -1: as stored (alpha and 16-bit depth kept, no EXIF orientation).
    exif : {None, True, False, 'mxnet'}, default None
        What to do with a JPEG's EXIF orientation (a camera's "turn me a quarter"), on which
        MXNet's readers disagree (see :mod:`mxnet_recpack.images.exif`). True: apply it, as
        ``ImageRecordIter`` and DALI do. False: ignore it (the pixels as stored). ``'mxnet'``:
        as ``mx.image.imdecode`` does (Gluon's ``ImageRecordDataset``, InsightFace, GluonCV):
        applied, except in JPEGs that begin with a JFIF segment. None: True, or ``'mxnet'``
        with ``insightface=True``. Other formats are decoded as stored, as MXNet's readers do.
    storage_options : dict, optional
        fsspec options for URLs (endpoint, credentials).
    insightface : bool, default False
        Read a face dataset as InsightFace's ``MXFaceDataset`` does: the images are keys
        ``1 .. label[0]-1`` of the header record at key 0, the label of each is its identity
        (a float: a vector label's first value), the pixels as ``mx.image.imdecode`` gives
        them (``exif='mxnet'`` unless ``exif`` says otherwise). Raises for a file without
        that header.

    Items are ``(image, label)``: the image decoded with OpenCV (the decoder MXNet's
    ``ImageRecordIter`` uses) as a uint8 H x W x C numpy array (records stored as ``.npy`` come
    back as the stored array), the label a float (``flag == 0``) or a float32 vector. The
    default ``exif`` follows the readers a training pipeline replaces (``ImageRecordIter``,
    DALI) and agrees with files packed by re-encoding (``im2rec`` decodes with
    ``cv2.imread``, which applies the orientation once): a photo reads the same whether it
    was stored as it is or re-encoded.
    ``dataset[i]`` is position ``i`` among the image records, in index order; label-only
    records (InsightFace's header and identity records) are not items. ``keys[i]`` is the
    record key of position ``i``.

    Examples
    --------
    >>> ds = RecordDataset("train.rec")
    >>> image, label = ds[0]
    >>> loader = torch.utils.data.DataLoader(ds, batch_size=32, num_workers=2)
    """

    def __init__(self, path: str | os.PathLike | Sequence[str], *,
                 transform: Callable[[np.ndarray], Any] | None = None, color: int | None = None,
                 storage_options: dict | None = None, insightface: bool = False,
                 exif: bool | str | None = None):
        if color is not None:
            color = validate("color", color)
        exif = validate("exif", exif)
        if transform is not None and not callable(transform):
            raise TypeError("transform must be callable, got %r" % (transform,))
        self.records = RecordSet(path, storage_options=validate(
            "storage_options", storage_options), images_only=not insightface)
        self.insightface = bool(insightface)
        if self.insightface:
            self.records = _face_images(self.records)
        self.transform = transform
        self.color = color
        self.exif = exif if exif is not None else ("mxnet" if self.insightface else True)

    @property
    def paths(self):
        return self.records.paths

    @property
    def keys(self):
        return self.records.keys

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[Any, float | np.ndarray]:
        n = len(self.records)
        if not -n <= i < n:
            raise IndexError("position %d is out of range for %d images" % (i, n))
        key, header, body = self.records.record(i % n)
        image = self._decode(body, i % n)
        if self.transform is not None:
            image = self.transform(image)
        label = float(header.label) if header.flag == 0 else header.label.copy()
        if self.insightface and header.flag:
            label = float(label[0])
        return image, label

    def _decode(self, body, i):
        head = bytes(body[:_PROBE])
        name = sniff(head)
        if name == "npy":
            return np.load(io.BytesIO(bytes(body)), allow_pickle=False)
        cv2 = load()
        color = self.color
        if color is None:  # gray stays gray: the JPEG/PNG header says which it is
            channels = probe_image(head).channels
            color = 0 if channels == 1 else (1 if channels else cv2.IMREAD_ANYCOLOR)
        # OpenCV 4.10+ decodes straight to RGB, cheaper than BGR and a swap
        direct = getattr(cv2, "IMREAD_COLOR_RGB", None) if color == 1 else None
        flags = direct or color
        if color != -1 and not (name == "jpeg" and applies_orientation(body, self.exif)):
            flags |= cv2.IMREAD_IGNORE_ORIENTATION
        img = cv2.imdecode(np.frombuffer(body, dtype=np.uint8), flags)
        if img is None:
            path, offset = self.records.where(i)
            raise BadImageError("%s, byte offset %d (key %d): the image does not decode"
                                % (path, offset, int(self.records.keys[i])))
        if img.ndim == 2:
            return img[:, :, None]
        return img if direct else swap_rb(img)


def _face_images(records):
    """The image records of an InsightFace-layout file, in key order."""
    from .errors import RecordFormatError
    from .sources.insightface import read_layout
    layout = read_layout(records) if len(records.paths) == 1 else None
    if layout is None:
        raise RecordFormatError("insightface=True reads one face dataset whose key 0 is a "
                                "header record (flag 2, label [first identity key, end]); %s "
                                "has none: read it without insightface=True"
                                % ", ".join(records.paths))
    missing = layout.images < 0
    if missing.any():
        raise RecordFormatError("the header record says keys 1..%d are images, but key %d is "
                                "not in the index" % (layout.first - 1,
                                                      int(missing.argmax()) + 1),
                                path=records.paths[0])
    return records.subset(layout.images)
