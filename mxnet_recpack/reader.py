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

from .errors import BadImageError, OptionError
from .images.codec import decode_image
from .images.crops import TrainCrop, item_rng
from .images.encodings import sniff
from .images.exif import applies_orientation
from .images.jpeg import decode_jpeg, resolve_decoder
from .images.probe import probe_image
from .options import is_int, validate
from .sources.records import RecordSet

__all__ = ["RecordDataset"]

_PROBE = 4096  # JPEG SOF and PNG IHDR come first: enough to tell gray from colour
_TURNED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


class RecordDataset:
    """The images of indexed record files, by position, decoded.

    Parameters
    ----------
    path : str, os.PathLike or list
        A ``.rec`` (its ``.idx`` beside it), a glob of parts (``"train.part*.rec"``) or a list
        of files: several files are one dataset, in order. Local paths or URLs (``s3://``).
    transform : callable, optional
        Applied to each image (a numpy array) before it is returned, after the built-in
        ``size``/``crop``/``flip``.
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
    size : (int, int) or int, optional
        Every image comes out ``width`` x ``height`` (an int: a square), cut by ``crop``.
        JPEGs whose crop is at least twice that size (four, eight times) are decoded at 1/2
        (1/4, 1/8) scale in the DCT first, as the packer's reduced decode does. Default: the
        image as stored.
    crop : {'center', 'random'}, default 'center'
        With ``size``. 'center': the image scaled, aspect ratio kept, until it covers
        ``size``, and its middle cut out (the largest centred box of the output's aspect
        ratio, scaled to ``size``). 'random': torchvision's ``RandomResizedCrop``: a box of a
        random area fraction (``scale``) and aspect ratio (``ratio``, log-uniform) at a random
        place, scaled to ``size``.
    scale, ratio : (float, float), optional
        ``crop='random'``'s ranges; default (0.08, 1.0) and (3/4, 4/3), torchvision's.
    flip : bool, default False
        Mirror each image left to right with probability 1/2.
    interpolation : int, default 1 (``cv2.INTER_LINEAR``)
        The OpenCV resize of the crop: 0 nearest, 1 linear, 2 cubic, 3 area, 4 lanczos4.
    seed : int, optional
        Make the random crops and flips a pure function of ``(seed, epoch, position)``: the
        same for any number of workers, processes or runs; call :meth:`set_epoch` to change
        them each epoch. Default None: fresh randomness in every process (as torchvision).
    decoder : {'auto', 'opencv', 'simplejpeg'}, default 'auto'
        Who decodes JPEGs: simplejpeg (``pip install "mxnet_recpack[simplejpeg]"``) gives
        OpenCV's pixels 5-20% faster; 'auto' uses it where it imports. PNG and every other
        format, and JPEGs simplejpeg declines (damaged ones), go through OpenCV.

    Items are ``(image, label)``: the image decoded with OpenCV (the decoder MXNet's
    ``ImageRecordIter`` uses) or simplejpeg as a uint8 H x W x C numpy array (records stored as
    ``.npy`` come back as the stored array, cropped to ``size`` if given), the label a
    ``numpy.float32`` (``flag == 0``) or a float32 vector, as stored. The default ``exif``
    follows the readers a training pipeline replaces (``ImageRecordIter``, DALI) and agrees
    with files packed by re-encoding (``im2rec`` decodes with ``cv2.imread``, which applies the
    orientation once): a photo reads the same whether it was stored as it is or re-encoded.
    ``dataset[i]`` is position ``i`` among the image records, in index order; label-only
    records (InsightFace's header and identity records) are not items. ``keys[i]`` is the
    record key of position ``i``. ``dataset.__getitems__(positions)`` (what PyTorch's
    ``DataLoader`` calls for a batch) is the list of those items.

    Examples
    --------
    >>> ds = RecordDataset("train.rec", size=224, crop="random", flip=True, seed=0)
    >>> image, label = ds[0]
    >>> loader = torch.utils.data.DataLoader(ds, batch_size=32, num_workers=2)
    """

    def __init__(self, path: str | os.PathLike | Sequence[str], *,
                 transform: Callable[[np.ndarray], Any] | None = None, color: int | None = None,
                 storage_options: dict | None = None, insightface: bool = False,
                 exif: bool | str | None = None, size: int | tuple[int, int] | None = None,
                 crop: str | None = None, scale: tuple[float, float] | None = None,
                 ratio: tuple[float, float] | None = None, flip: bool = False,
                 interpolation: int = 1, seed: int | None = None, decoder: str = "auto"):
        if color is not None:
            color = validate("color", color)
        exif = validate("exif", exif)
        if transform is not None and not callable(transform):
            raise TypeError("transform must be callable, got %r" % (transform,))
        self._crop = _train_crop(size, crop, scale, ratio, flip, interpolation)
        if seed is not None and not (is_int(seed) and seed >= 0):
            raise OptionError("seed = %r is not valid; expected None or an integer >= 0"
                              % (seed,))
        self.decoder = resolve_decoder(decoder)
        self.records = RecordSet(path, storage_options=validate(
            "storage_options", storage_options), images_only=not insightface)
        self.insightface = bool(insightface)
        if self.insightface:
            self.records = _face_images(self.records)
        self.transform = transform
        self.color = color
        self.exif = exif if exif is not None else ("mxnet" if self.insightface else True)
        self.seed = None if seed is None else int(seed)
        self.epoch = 0
        self._rng = None  # (pid, generator) of seed=None's randomness

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_rng"] = None  # each process draws its own: never a copy of another's
        return state

    @property
    def paths(self):
        return self.records.paths

    @property
    def keys(self):
        return self.records.keys

    def set_epoch(self, epoch: int) -> None:
        """Choose the random crops and flips of epoch ``epoch`` (with ``seed``). Call it before
        each epoch's iteration starts: DataLoader workers copy the dataset then (with
        ``persistent_workers=True`` they keep the copy they started with)."""
        if not (is_int(epoch) and epoch >= 0):
            raise OptionError("epoch = %r is not valid; expected an integer >= 0" % (epoch,))
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[Any, np.float32 | np.ndarray]:
        n = len(self.records)
        if not -n <= i < n:
            raise IndexError("position %d is out of range for %d images" % (i, n))
        return self._item(i % n, self.records.record(i % n))

    def __getitems__(self, positions: Sequence[int]) -> list:
        """The items at ``positions``, in that order (PyTorch's batched fetch), their records
        read together (at a URL: neighbouring records in one ranged request)."""
        n = len(self.records)
        at = np.asarray(positions, dtype=np.int64).reshape(-1)
        bad = (at < -n) | (at >= n)
        if bad.any():
            raise IndexError("position %d is out of range for %d images"
                             % (int(at[bad.argmax()]), n))
        at = (at % n).tolist() if n else []
        return [self._item(i, record) for i, record in zip(at, self.records.records_at(at))]

    def _item(self, i, record):
        _, header, body = record
        image = self._image(body, i)
        if self.transform is not None:
            image = self.transform(image)
        label = np.float32(header.label) if header.flag == 0 else header.label.copy()
        if self.insightface and header.flag:
            label = np.float32(label[0])
        return image, label

    def _random(self, i):
        """The generator of position ``i``'s crop and flip (None when nothing is random)."""
        if self._crop is None or not self._crop.random:
            return None
        if self.seed is not None:
            return item_rng(self.seed, self.epoch, i)
        if self._rng is None or self._rng[0] != os.getpid():  # a fresh process: fresh entropy
            self._rng = (os.getpid(), np.random.default_rng())
        return self._rng[1]

    def _image(self, body, i):
        head = bytes(body[:_PROBE])
        name = sniff(head)
        crop = self._crop
        if name == "npy":
            img = np.load(io.BytesIO(bytes(body)), allow_pickle=False)
            return img if crop is None else crop.apply(img, crop.plan(*img.shape[:2],
                                                                      self._random(i)))
        info = probe_image(head)
        if name == "jpeg" and not info.width:  # segments (EXIF, ICC) past the probe: walk on
            info = probe_image(body)
        color = self.color
        if color is None:  # gray stays gray: the JPEG/PNG header says which it is
            color = 0 if info.channels == 1 else (1 if info.channels else 4)  # 4: any colour
        orient = name == "jpeg" and color != -1 and applies_orientation(body, self.exif)
        if crop is None:
            return self._decode(body, name, info, color, orient, 1, i)
        plan, factor = None, 1
        if name == "jpeg" and color in (0, 1) and info.width and info.height:
            # planned on the header's size (turned as the decode turns it): the DCT scale
            full = (info.height, info.width)
            if orient and info.orientation in _TURNED:
                full = full[::-1]
            plan = crop.plan(*full, self._random(i))
            factor = crop.factor(plan)
            plan = crop.snap(plan, factor, *full)
        img = self._decode(body, name, info, color, orient, factor, i)
        if plan is not None and img.shape[:2] != (-(-full[0] // factor), -(-full[1] // factor)):
            plan = None  # the decoder turned it otherwise than the probe said: plan on pixels
            if factor > 1:
                img, factor = self._decode(body, name, info, color, orient, 1, i), 1
        if plan is None:
            plan = crop.plan(*img.shape[:2], self._random(i))
        return crop.apply(img, plan, factor)

    def _decode(self, body, name, info, color, orient, factor, i):
        img = None
        if name == "jpeg" and self.decoder == "simplejpeg":
            img = decode_jpeg(body, color, info, orientation=orient, reduce=factor)
        if img is None:
            img = decode_image(body, color, rgb=True, reduce=factor, orientation=orient)
        if img is None:
            path, offset = self.records.where(i)
            raise BadImageError("%s, byte offset %d (key %d): the image does not decode"
                                % (path, offset, int(self.records.keys[i])))
        return img[:, :, None] if img.ndim == 2 else img


def _train_crop(size, crop, scale, ratio, flip, interpolation):
    """The built-in transform the options ask for, checked (None: none)."""
    if size is None:
        given = [name for name, value in (("crop", crop), ("scale", scale), ("ratio", ratio))
                 if value is not None] + (["interpolation"] if interpolation != 1 else [])
        if given:
            raise OptionError("%s only appl%s with size=(width, height), the output size: "
                              "give size too" % (", ".join(given),
                                                 "ies" if len(given) == 1 else "y"))
        if flip is False:
            return None
    return TrainCrop(size, crop or "center", scale, ratio, flip, interpolation)


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
