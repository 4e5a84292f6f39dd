"""im2rec's preprocessing: centre crop, resize (shorter edge or exact size), interpolation
codes, and JPEG DCT-domain reduced decoding, resolved once per run by :class:`Preprocess`.
"""

import random

from ..errors import BadImageError
from .codec import BGR, decode_image
from .opencv import load

__all__ = ["center_crop_square", "short_edge_size", "resolve_inter_method",
           "resize_short_edge", "reduced_decode_factor", "Preprocess"]


def center_crop_square(img):
    """im2rec's ``--center-crop``: the largest centred square (margin rounded down)."""
    h, w = img.shape[:2]
    if h > w:
        margin = (h - w) // 2
        return img[margin:margin + w, :]
    margin = (w - h) // 2
    return img[:, margin:margin + h]


def center_crop_window(h, w):
    """The part of an ``h`` x ``w`` image that :func:`center_crop_square` keeps, in normalized
    coordinates ``(x0, y0, x1, y1)`` (what detection boxes are given in)."""
    if h > w:
        margin = (h - w) // 2
        return 0.0, margin / h, 1.0, (margin + w) / h
    margin = (w - h) // 2
    return margin / w, 0.0, (margin + h) / w, 1.0


def short_edge_size(h, w, size):
    """``(new_w, new_h)`` with the shorter edge ``size``, rounded down as im2rec does."""
    if h > w:
        return size, h * size // w
    return w * size // h, size


def target_size(h, w, resize):
    """``(new_w, new_h)`` for ``resize``: a shorter-edge int, or an exact ``(w, h)``."""
    return tuple(resize) if isinstance(resize, tuple) else short_edge_size(h, w, resize)


def resolve_inter_method(inter_method, src_hw, dst_wh, key=0):
    """Map a (valid) im2rec interpolation code to an OpenCV flag for one resize."""
    if inter_method == 9:
        cv2 = load()
        (h, w), (nw, nh) = src_hw, dst_wh
        if nh > h and nw > w:
            return cv2.INTER_CUBIC
        if nh < h and nw < w:
            return cv2.INTER_AREA
        return cv2.INTER_LINEAR
    if inter_method == 10:
        return random.Random(int(key)).randint(0, 4)
    return inter_method  # 0-4 are OpenCV's own codes


def resize_short_edge(img, size, inter_method=1, key=0, source_hw=None):
    """im2rec's ``--resize``: scale so the shorter edge is ``size`` (or to an exact
    ``(w, h)`` when ``size`` is a pair).

    ``source_hw`` is the original size when ``img`` was decoded at reduced scale: the output
    size (and the interpolation choice of methods 9/10) follows it, as a full decode would.
    """
    h, w = source_hw or img.shape[:2]
    new_wh = target_size(h, w, size)
    flag = resolve_inter_method(inter_method, (h, w), new_wh, key)
    if new_wh == (img.shape[1], img.shape[0]):
        return img
    out = load().resize(img, new_wh, interpolation=flag)
    return out.view(BGR) if isinstance(img, BGR) else out


def reduced_decode_factor(h, w, size, *, center_crop=False):
    """The largest JPEG DCT scale 1/f (f in 8, 4, 2) that keeps at least twice the target on
    every side; 1 (a full decode) for images less than four times the target.

    ``size`` is a shorter edge, or an exact ``(w, h)``. The margin of two keeps the result as
    good as a full decode followed by an area resize (measured: 36.6 dB mean PSNR on camera
    photos; a margin of one gives 32.7 dB). With ``center_crop`` the crop's margin must be a
    multiple of f, so the crop falls exactly on reduced pixels.
    """
    short = min(h, w)
    margin = (max(h, w) - short) // 2
    if isinstance(size, tuple):
        need_h, need_w = (max(size),) * 2 if center_crop else (size[1], size[0])
    else:
        need_h = need_w = size
    side_h, side_w = (short, short) if center_crop or not isinstance(size, tuple) else (h, w)
    for f in (8, 4, 2):
        if -(-side_h // f) >= 2 * need_h and -(-side_w // f) >= 2 * need_w and \
                not (center_crop and margin % f):
            return f
    return 1


class Preprocess:
    """Decode one image file's bytes and apply im2rec's ``center_crop`` and ``resize``.

    Options are checked by the caller (:class:`~mxnet_recpack.sources.ImageList`) and resolved
    here once: the result is BGR (a :class:`BGR` view) or H x W gray, as OpenCV gives it.
    """

    def __init__(self, *, color, resize, center_crop, inter_method, reduced_decode,
                 max_pixels):
        self.color = color
        self.resize = resize
        self.center_crop = center_crop
        self.inter_method = inter_method
        self.max_pixels = max_pixels
        self.reduce = bool(resize) and color != -1 and (
            reduced_decode is True or (reduced_decode == "auto" and inter_method in (3, 9)))

    def __call__(self, data, info, key, source):
        """``data``: the file's bytes; ``info``: their probe; ``source``: for messages."""
        return self.run(data, info, key, source)[0]

    def run(self, data, info, key, source):
        """``(image, (height, width) before the crop)``: the size the crop was taken from
        (after EXIF orientation), which boxes in normalized coordinates refer to."""
        factor = 1
        if self.reduce and info.format == "jpeg" and info.width:
            factor = reduced_decode_factor(info.height, info.width, self.resize,
                                           center_crop=self.center_crop)
        img = decode_image(data, self.color, rgb=False, reduce=factor)
        if img is None:
            raise BadImageError("not a decodable image (corrupt, truncated or another "
                                "format): %s" % source)
        if self.max_pixels is not None and img.shape[0] * img.shape[1] * factor ** 2 > \
                self.max_pixels:
            raise BadImageError("%d x %d = %d pixels, more than the max_pixels limit of %d: %s"
                                % (img.shape[1], img.shape[0], img.shape[0] * img.shape[1],
                                   self.max_pixels, source))
        full = before = img.shape[:2]
        if factor > 1:
            full = (info.height, info.width)
            if img.shape[:2] != (-(-full[0] // factor), -(-full[1] // factor)):
                full = full[::-1]  # EXIF orientation turned it: the header's size is pre-turn
        if factor > 1:
            before = full
        if self.center_crop:
            img = center_crop_square(img)
            full = (min(full),) * 2
        if self.resize:
            img = resize_short_edge(img, self.resize, self.inter_method, key=key,
                                    source_hw=full)
        return (img if img.ndim == 2 else img.view(BGR)), tuple(before)
