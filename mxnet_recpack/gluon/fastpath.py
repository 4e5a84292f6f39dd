"""Gluon transforms run as the equivalent OpenCV calls on numpy, with the Gluon interface kept.

``dataset.transform_first(Compose([Resize(256, keep_ratio=True), CenterCrop(224)]))`` normally
costs an NDArray round trip and MXNet's operators per image, about three times the OpenCV cost.
When every transform in the chain is one whose OpenCV equivalent gives the same pixels (checked
by the tests, transform by transform), the writer runs that equivalent on the numpy image
instead. Anything else (random augmentations, ``ToTensor``, bicubic resizes, which MXNet's own
OpenCV rounds differently, user functions) keeps the ordinary Gluon path.
"""

import numpy as np

from ..images.opencv import load
from . import internals
from .internals import T

__all__ = ["compile_transform", "fast_item_getter", "enabled"]

#: Switch the fast paths off (tests compare both paths; a suspected mismatch can be ruled out).
enabled = True

#: Interpolations whose cv2.resize pixels equal MXNet's image resize operator (bicubic differs
#: by up to one grey level because MXNet links its own OpenCV).
_EXACT_INTERP = (0, 1, 3, 4)


def _resize_to(img, w, h, interp):
    """cv2.resize that keeps H x W x 1 shapes and the image's channel-order tag (BGR)."""
    if (img.shape[1], img.shape[0]) == (w, h):
        return img
    out = load().resize(np.ascontiguousarray(img), (w, h), interpolation=interp)
    if img.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return out.view(type(img)) if type(img) is not np.ndarray else out


class _Resize:
    """``transforms.Resize``: an (w, h) size, or the shorter edge with keep_ratio (floor)."""

    def __init__(self, size, keep, interp):
        self.size, self.keep, self.interp = size, keep, interp

    def __call__(self, img):
        h, w = img.shape[:2]
        if isinstance(self.size, int):
            if not self.keep:
                return _resize_to(img, self.size, self.size, self.interp)
            if h > w:
                return _resize_to(img, self.size, int(h * self.size / w), self.interp)
            return _resize_to(img, int(w * self.size / h), self.size, self.interp)
        return _resize_to(img, self.size[0], self.size[1], self.interp)


class _CenterCrop:
    """``transforms.CenterCrop``: ``mx.image.center_crop`` (scale the crop down to fit, take it
    from the centre, resize to the size asked for)."""

    def __init__(self, size, interp):
        self.size, self.interp = size, interp

    def __call__(self, img):
        h, w = img.shape[:2]
        tw, th = self.size
        # mx.image.scale_down: the largest crop of the target's aspect that fits the image
        cw, ch = tw, th
        if h < ch:
            cw, ch = float(cw * h) / ch, h
        if w < cw:
            cw, ch = w, float(ch * w) / cw
        cw, ch = int(cw), int(ch)
        x0, y0 = int((w - cw) / 2), int((h - ch) / 2)
        out = img[y0:y0 + ch, x0:x0 + cw]
        if (cw, ch) != (tw, th):
            out = _resize_to(out, tw, th, self.interp)
        return out


def _compile_block(block):
    if type(block) is T.Resize:
        size, keep, interp = internals.resize_args(block)
        if not (isinstance(size, int) or (isinstance(size, (tuple, list)) and len(size) == 2)):
            return None
        if interp not in _EXACT_INTERP:
            return None
        return _Resize(size if isinstance(size, int) else tuple(size), keep, interp)
    if type(block) is T.CenterCrop:
        size, interp = internals.center_crop_args(block)
        if interp not in _EXACT_INTERP:
            return None
        return _CenterCrop(tuple(size), interp)
    if type(block) is T.Compose:
        steps = [_compile_block(child) for child in internals.compose_children(block)]
        if any(step is None for step in steps):
            return None
        return _Chain(steps)
    return None


class _Chain:
    def __init__(self, steps):
        self.steps = steps

    def __call__(self, img):
        for step in self.steps:
            img = step(img)
        return img


def compile_transform(fn):
    """The numpy/OpenCV equivalent of a Gluon transform, or None when there is none."""
    try:
        return _compile_block(fn)
    except Exception:  # noqa: BLE001 - an unknown block is simply not compiled
        return None


class _FastItems:
    """Item getter: the base dataset's ``record_item`` followed by the compiled transforms."""

    def __init__(self, base, steps):
        self.base = base
        self.steps = steps

    def __call__(self, i):
        image, label = self.base.record_item(i)
        for step in self.steps:
            image = step(image)
        return image, label


def fast_item_getter(dataset):
    """For ``base.transform_first(t1)...transform_first(tn)`` where ``base`` has
    ``record_item`` and every ``t`` compiles: a getter returning the same items as numpy
    (in the base's channel order); else None."""
    chain = internals.transform_first_chain(dataset)
    if chain is None:
        return None
    base, fns = chain
    steps = [compile_transform(fn) for fn in fns]
    if not steps or any(step is None for step in steps) or \
            not callable(getattr(base, "record_item", None)) or \
            getattr(base, "decode", True) is False:
        return None
    return _FastItems(base, steps)
