"""The pictures ``recpack browse`` serves: thumbnails made on demand (kept in a bounded cache in
memory), each record's image as a browser shows it, and what its bytes hold.

A JPEG much larger than its thumbnail is decoded at a reduced DCT scale (1/2, 1/4, 1/8), so a
page of big photos costs little; an image whose header declares more pixels than
:data:`~mxnet_recpack.images.probe.DEFAULT_MAX_PIXELS` is not decoded at all.
"""

import threading
from collections import OrderedDict

import numpy as np

from ..images.encodings import sniff
from ..images.opencv import load
from ..images.probe import DEFAULT_MAX_PIXELS
from .common import encoding_of, image_size, npy_shape
from .sheet import _put_text, _thumbnail_source

__all__ = ["thumbnail", "displayable", "describe", "ThumbnailCache", "placeholder"]

#: What a browser shows as stored, by :func:`~mxnet_recpack.images.encodings.sniff`'s name.
BROWSER_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif",
                 "webp": "image/webp", "bmp": "image/bmp"}
_REDUCED = ((8, "IMREAD_REDUCED_COLOR_8"), (4, "IMREAD_REDUCED_COLOR_4"),
            (2, "IMREAD_REDUCED_COLOR_2"))
_GREY = 96


def _too_large(info):
    return info is not None and info.width is not None and info.height is not None and \
        info.width * info.height > DEFAULT_MAX_PIXELS


def _decoded(data, size):
    """The image as a BGR uint8 array (a JPEG at the smallest DCT scale that still gives at
    least ``size`` pixels on its long side), or ``(None, why)``."""
    cv2 = load()
    encoding, info = encoding_of(data)
    if _too_large(info):
        return None, "too large"
    if encoding == "jpeg" and info.width and info.height:
        for factor, flag in _REDUCED:
            if max(info.width, info.height) >= factor * size:
                img = cv2.imdecode(np.frombuffer(data, np.uint8), getattr(cv2, flag))
                return (img, None) if img is not None else (None, "jpeg?")
    img, text = _thumbnail_source(data)
    if img is not None and img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return img, text


def placeholder(text, size):
    """A grey ``size`` x ``size`` PNG saying ``text`` (an image that cannot be shown)."""
    cv2 = load()
    cell = np.full((size, size, 3), _GREY, np.uint8)
    _put_text(cell, text, 6, size // 2 + 4, size - 12, 0.5)
    return cv2.imencode(".png", cell)[1].tobytes(), "image/png"


def thumbnail(data, size):
    """``(bytes, content type)``: the image scaled to fit ``size`` x ``size`` (aspect kept) as
    a JPEG, or a :func:`placeholder` naming what it is when it cannot be drawn."""
    cv2 = load()
    img, text = _decoded(data, size) if len(data) else (None, "label only")
    if img is None:
        return placeholder(text or "?", size)
    h, w = img.shape[:2]
    scale = min(1.0, size / max(h, w))
    if scale < 1:
        img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                         interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes(), "image/jpeg"


def displayable(data):
    """``(bytes, content type)`` of the record's image as a browser shows it: the stored bytes
    when the browser reads the format, else the picture as PNG (``.npy`` images, TIFF, ...);
    None when it is not a picture that can be drawn."""
    if not len(data):
        return None
    name = sniff(data)
    if name in BROWSER_TYPES:
        return bytes(data), BROWSER_TYPES[name]
    img, _ = _decoded(data, 1 << 30)
    if img is None:
        return None
    return load().imencode(".png", img)[1].tobytes(), "image/png"


def describe(data):
    """What the image bytes hold: ``{"encoding", "width", "height", "channels",
    "orientation", "dtype"}`` from the headers (decoded only for formats whose header does not
    give the size)."""
    encoding, info = encoding_of(data)
    out = {"encoding": encoding if encoding != "other" else sniff(data), "width": None,
           "height": None, "channels": None, "orientation": None, "dtype": None}
    if encoding == "npy":
        shape, dtype = npy_shape(data)
        out["dtype"] = None if dtype is None else "%s %s" % (dtype, "x".join(map(str, shape)))
    elif info is not None:
        out["channels"], out["orientation"] = info.channels, info.orientation
    if not _too_large(info):
        out["width"], out["height"] = image_size(encoding, info, data)
    else:
        out["width"], out["height"] = info.width, info.height
    return out


class ThumbnailCache:
    """Thumbnails by ``(file, position)``, least recently used dropped past ``max_bytes``."""

    def __init__(self, max_bytes=64 << 20):
        self.max_bytes, self.bytes = max_bytes, 0
        self._items = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item

    def put(self, key, item):
        with self._lock:
            if key in self._items:
                return
            self._items[key] = item
            self.bytes += len(item[0])
            while self.bytes > self.max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self.bytes -= len(old[0])
