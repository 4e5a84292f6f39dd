"""Gluon datasets for the usual sources: an im2rec ``.lst`` file with an image root, and arrays.

Both give ``(image, label)`` items like Gluon's vision datasets (the image an ``NDArray``, HWC,
RGB, uint8) and expose ``record_keys`` so :class:`~mxnet_recpack.RecordFileWriter` stores each
item under its own key, also through ``transform_first``/``take``/``shard``.
"""

import numpy as np
from mxnet import nd
from mxnet.gluon.data import Dataset

from .errors import BadImageError, OptionError
from .images import center_crop_square, decode_image, resize_short_edge, resolve_inter_method
from .lists import ListEntries, parse_list
from .probe import DEFAULT_MAX_PIXELS, check_image_bytes
from .storage import join, read_bytes

__all__ = ["ImageListDataset", "ArrayDataset"]


class ImageListDataset(Dataset):
    """The images of an im2rec ``.lst`` file (``index<TAB>label[<TAB>label...]<TAB>path``).

    Parameters
    ----------
    list_file : str or ListEntries
        Path of the ``.lst`` (local or ``s3://``), or already parsed entries.
    root : str, default '.'
        Folder (or ``s3://bucket/prefix``) the list's paths are relative to.
    color : {1, 0, -1}, default 1
        1: RGB, 0: gray (H x W x 1), -1: as stored (alpha kept), as ``cv2.imread`` flags.
    decode : bool, default True
        ``False`` gives the file's bytes instead of a decoded image (pass-through: the writer
        stores them verbatim).
    pack_label : bool, default True
        Lines with several labels give a vector label (all of them). ``False`` keeps only the
        first, as ``im2rec.py`` does without ``--pack-label``.
    allow_outside_root : bool, default False
        Accept list paths that are absolute or climb out of ``root`` with ``..``.
    storage_options : dict, optional
        fsspec options for ``s3://`` paths (endpoint, credentials).
    resize : int, default 0
        im2rec's ``--resize``: scale the shorter edge to this many pixels (0: keep the size).
    center_crop : bool, default False
        im2rec's ``--center-crop``: crop the centred square (before resizing, as im2rec does).
    inter_method : int, default 1
        Interpolation for ``resize``: 0 nearest, 1 bilinear, 2 bicubic, 3 area, 4 Lanczos,
        9 auto, 10 random (seeded by the record key).
    max_pixels : int or None, default 89478485
        Refuse images larger than this many pixels (Pillow's decompression-bomb limit) before
        decoding them; ``None`` for no limit.

    Bad files (missing, empty, truncated, not an image, too large) raise an error naming the
    file and the reason; :class:`~mxnet_recpack.RecordFileWriter` skips and reports them.

    Notes
    -----
    Keys (``record_keys``) are the list's index column. Items are read lazily, so forked
    DataLoader workers share the parsed list without copying it.
    """

    def __init__(self, list_file, root=".", color=1, *, decode=True, pack_label=True,
                 allow_outside_root=False, storage_options=None, resize=0, center_crop=False,
                 inter_method=1, max_pixels=DEFAULT_MAX_PIXELS):
        if color not in (1, 0, -1):
            raise OptionError("color must be 1 (color), 0 (gray) or -1 (unchanged, keeps "
                              "alpha); got %r" % (color,))
        if isinstance(resize, bool) or not isinstance(resize, int) or resize < 0:
            raise OptionError("resize must be an integer >= 0 (0 keeps the original size); "
                              "got %r" % (resize,))
        resolve_inter_method(inter_method, (1, 1), (1, 1))  # validates the code
        if max_pixels is not None and (isinstance(max_pixels, bool) or
                                       not isinstance(max_pixels, int) or max_pixels < 1):
            raise OptionError("max_pixels must be a positive integer or None; got %r"
                              % (max_pixels,))
        self.max_pixels = max_pixels
        self.resize = resize
        self.center_crop = bool(center_crop)
        self.inter_method = inter_method
        if isinstance(list_file, ListEntries):
            self._entries = list_file
        else:
            self._entries = parse_list(list_file, allow_outside_root=allow_outside_root,
                                       storage_options=storage_options)
        self.list_file = self._entries.source
        self.root = root
        self.color = color
        self.decode = decode
        self.pack_label = pack_label
        self.storage_options = storage_options

    @property
    def entries(self):
        return self._entries

    @property
    def record_keys(self):
        """The ``.lst`` index of every item: the record keys."""
        return self._entries.keys

    def record_source(self, i):
        """The image path of item ``i`` (for failure reports)."""
        return join(self.root, self._entries.path(i))

    def __len__(self):
        return len(self._entries)

    def label(self, i):
        """Item ``i``'s label: a float, or a float32 vector when the line has several."""
        labels = self._entries.labels(i)
        if len(labels) == 1 or not self.pack_label:
            return float(labels[0])
        return labels.copy()

    def read_bytes(self, i):
        """The image file's bytes for item ``i``, checked (see :func:`check_image_bytes`)."""
        path = self.record_source(i)
        try:
            data = read_bytes(path, storage_options=self.storage_options)
        except FileNotFoundError:
            raise FileNotFoundError("image file not found: %s" % path) from None
        except IsADirectoryError:
            raise IsADirectoryError("a folder, not an image file: %s" % path) from None
        try:
            check_image_bytes(data, max_pixels=self.max_pixels, require_known=not self.decode)
        except ValueError as exc:
            raise BadImageError("%s: %s" % (exc, path)) from None
        return data

    def read_image(self, i):
        """Item ``i`` decoded with OpenCV and preprocessed (center crop, resize) as numpy.

        Returns HWC RGB (H x W x 1 for gray, RGBA with ``color=-1`` and an alpha channel).
        """
        path = self.record_source(i)
        img = decode_image(self.read_bytes(i), self.color)
        if img is None:
            raise BadImageError("not a decodable image (corrupt, truncated or another "
                                  "format): %s" % path)
        if self.max_pixels is not None and img.shape[0] * img.shape[1] > self.max_pixels:
            raise BadImageError("%d x %d = %d pixels, more than the max_pixels limit of %d: "
                                  "%s" % (img.shape[1], img.shape[0], img.shape[0] * img.shape[1],
                                          self.max_pixels, path))
        if self.center_crop:
            img = center_crop_square(img)
        if self.resize:
            img = resize_short_edge(img, self.resize, self.inter_method,
                                    key=self._entries.key(i))
        if img.ndim == 2:
            img = img[:, :, None]
        return img

    def record_item(self, i):
        """Item ``i`` for the writer: numpy image (or the file's bytes) and label, no NDArray."""
        if not self.decode:
            return self.read_bytes(i), self.label(i)
        return self.read_image(i), self.label(i)

    def __getitem__(self, i):
        if not self.decode:
            return self.read_bytes(i), self.label(i)
        return nd.array(self.read_image(i), dtype=np.uint8), self.label(i)


class ArrayDataset(Dataset):
    """Images held in numpy arrays, with scalar or vector labels.

    Parameters
    ----------
    images : numpy.ndarray, NDArray or list of arrays
        ``N x H x W x C`` (or ``N x H x W`` gray) uint8 RGB, or a list of ``H x W x C`` arrays
        of varying sizes.
    labels : array-like, optional
        ``N`` scalars or ``N x K`` vectors (or a list of vectors); default all 0.

    Notes
    -----
    Items are ``(NDArray image, label)``; keys are positions.
    """

    def __init__(self, images, labels=None):
        if hasattr(images, "asnumpy"):
            images = images.asnumpy()
        n = len(images)
        if labels is None:
            labels = np.zeros(n, dtype=np.float32)
        elif hasattr(labels, "asnumpy"):
            labels = labels.asnumpy()
        if len(labels) != n:
            raise OptionError("ArrayDataset got %d images but %d labels; give one label (or "
                              "label vector) per image" % (n, len(labels)))
        self._images = images
        self._labels = labels

    def __len__(self):
        return len(self._images)

    def __getitem__(self, i):
        img = np.asarray(self._images[i])
        if img.ndim == 2:
            img = img[:, :, None]
        label = self._labels[i]
        if isinstance(label, np.ndarray) and label.ndim == 0:
            label = label.item()
        return nd.array(img, dtype=img.dtype), label
