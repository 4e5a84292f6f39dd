"""``ImageList``: the images of an im2rec ``.lst`` file, read and preprocessed with OpenCV.

The mxnet-free core of the Gluon ``ImageListDataset``: ``recpack im2rec`` without Gluon
transforms runs on it alone. Inside the pipeline images stay in OpenCV's BGR order from decode
to encode (:class:`~mxnet_recpack.images.codec.BGR`); only :meth:`ImageList.read_image`, which
users and transforms see, returns RGB.
"""

from __future__ import annotations

import os

from ..errors import BadImageError
from ..images.codec import BGR
from ..images.encodings import ENCODINGS
from ..images.probe import check_image_bytes
from ..images.transform import Preprocess
from ..options import D, validate
from ..storage import is_url, joiner, read_bytes, read_into
from .lists import ListEntries, parse_list

__all__ = ["ImageList"]

class ImageList:
    """The images of an im2rec ``.lst`` file (``index<TAB>label[<TAB>label...]<TAB>path``).

    Parameters
    ----------
    list_file : str or ListEntries
        Path of the ``.lst`` (local or ``s3://``), or already parsed entries.
    root : str, default '.'
        Folder (or ``s3://bucket/prefix``) the list's paths are relative to.
    color : {1, 0, -1}, default 1
        1: color, 0: gray (H x W x 1), -1: as stored (alpha kept), as ``cv2.imread`` flags.
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
    resize : int or (int, int), default 0
        im2rec's ``--resize``: scale the shorter edge to this many pixels (0: keep the size);
        or an exact ``(width, height)``, as Gluon's ``Resize((w, h))``, applied after
        ``center_crop``.
    center_crop : bool, default False
        im2rec's ``--center-crop``: crop the centred square (before resizing, as im2rec does).
    inter_method : int, default 1
        Interpolation for ``resize``: 0 nearest, 1 bilinear (im2rec's), 2 bicubic, 3 area,
        4 Lanczos, 9 auto (area to shrink), 10 random (seeded by the record key).
    reduced_decode : {'auto', True, False}, default 'auto'
        Decode a JPEG at 1/2, 1/4 or 1/8 scale in the DCT (area-like, several times faster)
        when that still leaves at least twice ``resize`` pixels on the shorter edge, then
        resize with ``inter_method`` to the size a full decode would give. ``'auto'`` does it
        for the area methods 3 and 9 only, so every other method keeps ``im2rec.py``'s exact
        pixels; ``True`` for every method (with the default bilinear: about 1.6x faster on
        camera-size photos, as close to a full decode + area resize as ``im2rec.py``'s own
        output); ``False`` never.
    max_pixels : int or None, default 89478485
        Refuse images larger than this many pixels (Pillow's decompression-bomb limit) before
        decoding them; ``None`` for no limit.
    any_format : bool, default False
        With ``decode=False``: also give the bytes of formats MXNet's decoder cannot read
        (GIF, WebP, PNM), for readers that can (DALI); by default they are bad images.

    Bad files (missing, empty, truncated, not an image, too large) raise
    :class:`~mxnet_recpack.errors.BadImageError` or ``FileNotFoundError`` naming the file and
    the reason; :class:`~mxnet_recpack.RecordFileWriter` skips and reports them.

    Notes
    -----
    Keys (``record_keys``) are the list's index column. Items are read lazily, so forked
    workers share the parsed list without copying it.
    """

    def __init__(self, list_file: str | os.PathLike | ListEntries,
                 root: str | os.PathLike = D.root, color: int = D.color, *,
                 decode: bool = D.decode, pack_label: bool = True,
                 allow_outside_root: bool = D.allow_outside_root,
                 storage_options: dict | None = D.storage_options,
                 resize: int | tuple[int, int] = D.resize, center_crop: bool = D.center_crop,
                 inter_method: int = D.inter_method, reduced_decode: str | bool = D.reduced_decode,
                 max_pixels: int | None = D.max_pixels, any_format: bool = D.any_format):
        self.root = validate("root", root)
        self.color = validate("color", color)
        self.decode = validate("decode", decode)
        self.pack_label = validate("pack_label", pack_label)
        self.storage_options = validate("storage_options", storage_options)
        self.resize = validate("resize", resize)
        self.center_crop = validate("center_crop", center_crop)
        self.inter_method = validate("inter_method", inter_method)
        self.reduced_decode = validate("reduced_decode", reduced_decode)
        self.max_pixels = validate("max_pixels", max_pixels)
        self.any_format = validate("any_format", any_format)
        if isinstance(list_file, ListEntries):
            self._entries = list_file
        else:
            self._entries = parse_list(
                list_file, allow_outside_root=validate("allow_outside_root", allow_outside_root),
                storage_options=self.storage_options)
        self.list_file = self._entries.source
        if not validate("allow_outside_root", allow_outside_root):
            _check_root(self.root, self.list_file)
        self._join = joiner(self.root)
        self._preprocess = Preprocess(color=self.color, resize=self.resize,
                                      center_crop=self.center_crop,
                                      inter_method=self.inter_method,
                                      reduced_decode=self.reduced_decode,
                                      max_pixels=self.max_pixels)

    @property
    def entries(self):
        return self._entries

    def fingerprint(self):
        """What this list's items are: the list's bytes and every option that shapes an item
        (a resumed run must match it)."""
        return {"list_sha256": self._entries.sha256, "items": len(self),
                "root": str(self.root) if is_url(self.root) else os.path.abspath(self.root),
                "color": self.color, "decode": self.decode,
                "pack_label": self.pack_label, "resize": self.resize,
                "center_crop": self.center_crop, "inter_method": self.inter_method,
                "reduced_decode": self.reduced_decode, "max_pixels": self.max_pixels,
                "any_format": self.any_format}

    @property
    def record_keys(self):
        """The ``.lst`` index of every item: the record keys."""
        return self._entries.keys

    def record_source(self, i):
        """The image path of item ``i`` (for failure reports)."""
        return self._join(self._entries.path(i))

    def __len__(self):
        return len(self._entries)

    def label(self, i):
        """Item ``i``'s label: a float, or a float32 vector when the line has several."""
        labels = self._entries.labels(i)
        if len(labels) == 1 or not self.pack_label:
            return float(labels[0])
        return labels.copy()

    def _read_checked(self, i):
        path = self.record_source(i)
        try:
            data = read_bytes(path, storage_options=self.storage_options, what="an image file")
        except FileNotFoundError:
            raise FileNotFoundError("image file not found: %s" % path) from None
        return data, self._check(data, path), path

    def _check(self, data, path, start=0, end=None):
        """The image in ``data[start:end]`` (the file at ``path``), checked."""
        try:
            info = check_image_bytes(data, max_pixels=self.max_pixels,
                                     require_known=not self.decode, start=start, end=end)
        except BadImageError as exc:
            raise BadImageError("%s: %s" % (exc, path)) from None
        if not self.decode and not self.any_format and not ENCODINGS[info.format].mxnet_decodes:
            raise BadImageError("%s image: MXNet's decoder cannot read this format "
                                "(ImageRecordIter dies on it), so it is not stored as it is; "
                                "repack it as JPEG (without pass_through), or pass "
                                "any_format=True (--any-format) to store it for readers that "
                                "can, such as DALI: %s" % (info.format.upper(), path))
        return info

    @property
    def record_item_bytes(self):
        """Items are the files' bytes, stored as they are (``decode=False``): the writer reads
        them straight into its batch buffer with :meth:`record_bytes_into`."""
        return not self.decode

    def record_bytes_into(self, i, buffer, offset):
        """With ``decode=False``: read item ``i``'s file into the bytearray ``buffer`` from
        ``offset`` (it grows as needed), checked as :meth:`read_bytes` checks it (the same
        errors); the number of bytes."""
        path = self.record_source(i)
        try:
            n = read_into(path, buffer, offset, storage_options=self.storage_options,
                          what="an image file")
        except FileNotFoundError:
            raise FileNotFoundError("image file not found: %s" % path) from None
        self._check(buffer, path, offset, offset + n)
        return n

    def record_nbytes(self, i):
        """With ``decode=False``: the size of item ``i``'s file (local files), else None."""
        if self._join.url:
            return None
        try:
            return os.stat(self.record_source(i)).st_size
        except OSError:
            return None

    def record_label(self, i):
        """Item ``i``'s label (:meth:`label`): what the writer puts before
        :meth:`record_bytes_into`'s bytes."""
        return self.label(i)

    def read_bytes(self, i):
        """The image file's bytes for item ``i``, checked (missing, empty, truncated, bomb)."""
        return self._read_checked(i)[0]

    def _decode(self, i):
        """Item ``i`` decoded and preprocessed: OpenCV order (:class:`BGR`), H x W for gray."""
        data, info, path = self._read_checked(i)
        return self._preprocess(data, info, self._entries.key(i), path)

    def read_image(self, i):
        """Item ``i`` decoded and preprocessed, as numpy HWC RGB (H x W x 1 for gray; RGBA with
        ``color=-1`` and an alpha channel)."""
        img = self._decode(i)
        if img.ndim == 2:
            return img[:, :, None]
        return BGR.to_rgb(img)

    def record_item(self, i):
        """Item ``i`` for the writer: the image (BGR-tagged numpy, or the file's bytes) and its
        label, with no colour conversion and no NDArray."""
        if not self.decode:
            return self.read_bytes(i), self.label(i)
        return self._decode(i), self.label(i)

    def __getitem__(self, i):
        """``(image, label)``: the image numpy HWC RGB, or the file's bytes with
        ``decode=False``."""
        if not self.decode:
            return self.read_bytes(i), self.label(i)
        return self.read_image(i), self.label(i)


def _check_root(root, list_file):
    """A local ``root`` the list's paths are relative to must be a folder: said once, before
    any image is read, rather than as a missing file per image."""
    if is_url(root) or os.path.isdir(root):
        return
    what = "is not a folder" if os.path.exists(root) else "does not exist"
    raise FileNotFoundError(
        "the image folder %s %s: the list %s names images relative to it (ROOT, the second "
        "argument of `recpack im2rec PREFIX ROOT`; root= in Python). Give the folder the list "
        "was made from" % (root, what, list_file or "given"))
