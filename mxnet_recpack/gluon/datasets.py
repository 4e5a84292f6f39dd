"""Gluon datasets for the usual sources: an im2rec ``.lst`` file with an image root, and arrays.

Both give ``(image, label)`` items like Gluon's vision datasets (the image an ``NDArray``, HWC,
RGB, uint8) and expose ``record_keys`` so :class:`~mxnet_recpack.RecordFileWriter` stores each
item under its own key, also through ``transform_first``/``take``/``shard``.
"""

import hashlib

import numpy as np
from mxnet import nd
from mxnet.gluon.data import Dataset

from ..errors import OptionError
from ..sources.image_list import ImageList

__all__ = ["ImageListDataset", "ArrayDataset"]


class ImageListDataset(ImageList, Dataset):
    """The images of an im2rec ``.lst`` file as a Gluon ``Dataset``.

    Items are ``(NDArray image, label)`` like Gluon's vision datasets: HWC, RGB, uint8 (H x W x 1
    for gray), or the file's bytes with ``decode=False``. Parameters are those of
    :class:`~mxnet_recpack.sources.ImageList`: ``list_file``, ``root``, ``color``, ``decode``,
    ``pack_label``, ``allow_outside_root``, ``storage_options``, ``resize``, ``center_crop``,
    ``inter_method``, ``reduced_decode``, ``max_pixels``.

    Keys (``record_keys``) are the list's index column, also through ``transform_first``,
    ``take`` and ``shard``. When written with ``to_recordio``, items without Gluon transforms
    (or with ``Resize``/``CenterCrop`` transforms, which run as the equivalent OpenCV calls)
    skip the NDArray round trip.

    Examples
    --------
    >>> ds = ImageListDataset("train.lst", root="images")
    >>> ds.transform_first(transforms.Resize(256, keep_ratio=True)).to_recordio("train.rec")
    'train.rec'
    """

    __doc__ += ImageList.__doc__[ImageList.__doc__.index("    Parameters"):]

    @classmethod
    def from_image_list(cls, source):
        """The same list and options as an :class:`ImageList`, as a Gluon dataset (the parsed
        list is shared, not read again)."""
        dataset = cls.__new__(cls)
        dataset.__dict__.update(source.__dict__)
        return dataset

    def __getitem__(self, i):
        image, label = ImageList.__getitem__(self, i)
        return (nd.array(image, dtype=np.uint8) if self.decode else image), label


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

    def fingerprint(self):
        """A hash of every image and label (a resumed run must match it)."""
        digest = hashlib.sha256()
        for group in (self._images, self._labels):
            for item in (group if isinstance(group, list) else [group]):
                arr = np.ascontiguousarray(item)
                digest.update(str((arr.dtype.str, arr.shape)).encode())
                digest.update(arr.tobytes())
        return {"arrays_sha256": digest.hexdigest(), "items": len(self)}

    def __getitem__(self, i):
        img = np.asarray(self._images[i])
        if img.ndim == 2:
            img = img[:, :, None]
        label = self._labels[i]
        if isinstance(label, np.ndarray) and label.ndim == 0:
            label = label.item()
        return nd.array(img, dtype=img.dtype), label
