"""The reader's training crops, on numpy with OpenCV: a centre crop (scale to cover, crop the
middle) and torchvision's ``RandomResizedCrop``, each with an optional horizontal flip.

A crop is planned from the image's size before the image is decoded (a JPEG's frame header
gives it): so a JPEG whose crop is shrunk anyway is decoded at a reduced DCT scale, by the rule
the packer uses (:func:`~mxnet_recpack.images.transform.reduced_decode_factor`), and the crop
box is mapped onto the reduced pixels. Randomness comes from a ``numpy.random.Generator`` the
caller hands in, drawn in a fixed order (the box, then the flip), so a seeded generator gives
the same crop wherever and however often it runs.
"""

import math
import numbers
from collections import namedtuple

import numpy as np

from ..errors import OptionError
from .opencv import load
from .transform import reduced_decode_factor

__all__ = ["CROPS", "Plan", "TrainCrop", "center_box", "random_box", "item_rng"]

CROPS = ("center", "random")
#: torchvision's RandomResizedCrop defaults.
DEFAULT_SCALE = (0.08, 1.0)
DEFAULT_RATIO = (3 / 4, 4 / 3)
_ATTEMPTS = 10
_INTERPOLATIONS = {0: "nearest", 1: "linear", 2: "cubic", 3: "area", 4: "lanczos4"}

#: A crop in the pixels of the whole (EXIF-oriented) image: rows ``top:top + height``, columns
#: ``left:left + width``, then mirrored left to right when ``flip``.
Plan = namedtuple("Plan", ["top", "left", "height", "width", "flip"])


def _half_up(x):
    return int(math.floor(x + 0.5))


def center_box(h, w, size):
    """``(top, left, height, width)``: the largest centred part of an ``h`` x ``w`` image with
    the aspect ratio of ``size = (width, height)`` (the whole of the shorter side): what is left
    after scaling the image to cover ``size`` and cropping its middle."""
    out_w, out_h = size
    if w * out_h > h * out_w:  # wider than the target: keep the height
        ch, cw = h, min(w, max(1, _half_up(h * out_w / out_h)))
    else:
        cw, ch = w, min(h, max(1, _half_up(w * out_h / out_w)))
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def random_box(h, w, rng, scale=DEFAULT_SCALE, ratio=DEFAULT_RATIO):
    """``(top, left, height, width)`` of a random crop of an ``h`` x ``w`` image, as
    torchvision's ``RandomResizedCrop`` chooses it: an area fraction uniform in ``scale`` and
    an aspect ratio (width / height) log-uniform in ``ratio``, a position uniform among those
    where the box fits; after 10 boxes that do not fit, the centred whole image with its ratio
    clamped into ``ratio``."""
    area = h * w
    low, high = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(_ATTEMPTS):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(low, high))
        cw = round(math.sqrt(target * aspect))
        ch = round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    if w / h < ratio[0]:
        cw, ch = w, min(h, max(1, round(w / ratio[0])))
    elif w / h > ratio[1]:
        cw, ch = min(w, max(1, round(h * ratio[1]))), h
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def item_rng(seed, epoch, position):
    """The generator of one item's randomness: a pure function of its three numbers."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch, position])))


def _pair(name, value, default, positive_low=True, at_most_one=False):
    if value is None:
        return default
    ok = (isinstance(value, (tuple, list)) and len(value) == 2 and
          all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value))
    if ok:
        low, high = float(value[0]), float(value[1])
        ok = 0 < low <= high and (not at_most_one or high <= 1) and math.isfinite(high)
    if not ok:
        raise OptionError("%s = %r is not valid; expected a pair (low, high) with 0 < low <= "
                          "high%s" % (name, value, " <= 1" if at_most_one else ""))
    return low, high


def _size(size):
    if isinstance(size, numbers.Integral) and not isinstance(size, bool) and size > 0:
        return int(size), int(size)
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0
            for v in size):
        return int(size[0]), int(size[1])
    raise OptionError("size = %r is not valid; expected (width, height) in pixels, or one "
                      "integer for a square" % (size,))


class TrainCrop:
    """One crop rule, checked once: ``plan`` draws an image's crop from its size, ``factor``
    says at which DCT scale it can be decoded, ``apply`` cuts and scales the decoded pixels.

    Parameters
    ----------
    size : (int, int) or int or None
        The output ``(width, height)``; None: no crop or resize (only ``flip``).
    crop : {'center', 'random'}
    scale, ratio : (float, float) or None
        ``crop='random'`` only: torchvision's defaults (0.08, 1.0) and (3/4, 4/3).
    flip : bool
        Mirror left to right with probability 1/2.
    interpolation : int
        OpenCV's code for the resize: 0 nearest, 1 linear (default), 2 cubic, 3 area,
        4 lanczos4.
    """

    def __init__(self, size, crop="center", scale=None, ratio=None, flip=False,
                 interpolation=1):
        if crop not in CROPS or not isinstance(crop, str):
            raise OptionError("crop = %r is not valid; expected 'center' or 'random'" % (crop,))
        if crop != "random" and (scale is not None or ratio is not None):
            raise OptionError("scale and ratio choose crop='random''s boxes; crop=%r takes "
                              "neither" % crop)
        if not isinstance(flip, bool):
            raise OptionError("flip = %r is not valid; expected True or False" % (flip,))
        if interpolation not in _INTERPOLATIONS or isinstance(interpolation, bool):
            raise OptionError("interpolation = %r is not valid; expected an OpenCV code: %s"
                              % (interpolation, ", ".join("%d %s" % kv for kv in
                                                          _INTERPOLATIONS.items())))
        self.size = None if size is None else _size(size)
        self.crop = crop
        self.scale = _pair("scale", scale, DEFAULT_SCALE, at_most_one=True)
        self.ratio = _pair("ratio", ratio, DEFAULT_RATIO)
        self.flip = flip
        self.interpolation = int(interpolation)

    @property
    def random(self):
        """Whether a plan draws from the generator."""
        return self.flip or (self.size is not None and self.crop == "random")

    def plan(self, h, w, rng):
        """The :class:`Plan` for an ``h`` x ``w`` image (``rng``: None when not
        :attr:`random`)."""
        if self.size is None:
            box = (0, 0, h, w)
        elif self.crop == "random":
            box = random_box(h, w, rng, self.scale, self.ratio)
        else:
            box = center_box(h, w, self.size)
        return Plan(*box, flip=bool(self.flip and rng.random() < 0.5))

    def factor(self, plan):
        """The JPEG DCT scale 1/f (f in 1, 2, 4, 8) at which ``plan``'s crop keeps at least
        twice the output size on both sides (the packer's margin)."""
        if self.size is None:
            return 1
        return reduced_decode_factor(plan.height, plan.width, self.size)

    @staticmethod
    def snap(plan, factor, h, w):
        """``plan`` with its box's edges on multiples of ``factor`` (within the ``h`` x ``w``
        image): the pixels of a 1/``factor`` decode, so the crop needs no sub-pixel shift.
        Each edge moves by at most ``factor / 2`` pixels, a quarter of an output pixel at
        most under the margin of two."""
        if factor == 1:
            return plan
        top, left = _half_up(plan.top / factor) * factor, _half_up(plan.left / factor) * factor
        bottom = _half_up((plan.top + plan.height) / factor) * factor
        right = _half_up((plan.left + plan.width) / factor) * factor
        bottom, right = min(h, max(top + factor, bottom)), min(w, max(left + factor, right))
        return plan._replace(top=top, left=left, height=bottom - top, width=right - left)

    def apply(self, img, plan, factor=1):
        """``img`` (the whole image, decoded at 1/``factor`` scale) cut to ``plan``'s box
        (its edges on multiples of ``factor``: see :meth:`snap`), scaled to :attr:`size` and
        flipped as planned; H x W x 1 stays H x W x 1."""
        if self.size is not None:
            h, w = img.shape[:2]
            top, left = plan.top // factor, plan.left // factor
            bottom = min(h, max(top + 1, -(-(plan.top + plan.height) // factor)))
            right = min(w, max(left + 1, -(-(plan.left + plan.width) // factor)))
            region = img[min(top, h - 1):bottom, min(left, w - 1):right]
            if region.shape[:2] != self.size[::-1]:
                out = load().resize(region, self.size, interpolation=self.interpolation)
                img = out[:, :, None] if out.ndim == 2 and img.ndim == 3 else out
            else:
                img = region
        if plan.flip:
            img = img[:, ::-1]
        return np.ascontiguousarray(img)
