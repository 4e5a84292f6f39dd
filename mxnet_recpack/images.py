"""Images: turn a dataset item's image into stored bytes, and im2rec's preprocessing.

Gluon and ``mx.image`` images are RGB; OpenCV encodes and decodes BGR. Everything that crosses
into OpenCV is flipped here, once, so a red image stays red when ``ImageRecordIter`` (which
decodes with OpenCV and hands out RGB) reads it back.

OpenCV and numpy only: this module never imports mxnet.
"""

import io
import random

import numpy as np

from .errors import ImageEncodeError, OptionError

__all__ = [
    "BGR",
    "ENCODINGS",
    "INTER_METHODS",
    "as_numpy_image",
    "encode_image",
    "decode_image",
    "center_crop_square",
    "resize_short_edge",
    "resolve_inter_method",
]

#: Encodings a record's image can be stored with.
ENCODINGS = (".jpg", ".png", ".npy")
_ENCODING_ALIASES = {".jpg": ".jpg", ".jpeg": ".jpg", ".png": ".png", ".npy": ".npy"}

#: im2rec / mx.image interpolation codes: 0-4 are OpenCV's, 9 auto, 10 random.
INTER_METHODS = {
    0: "nearest", 1: "bilinear", 2: "bicubic", 3: "area", 4: "lanczos4",
    9: "auto (cubic to enlarge, area to shrink, bilinear otherwise)",
    10: "random among 0-4 (seeded by the record key, so output stays deterministic)",
}


class BGR(np.ndarray):
    """A numpy image already in OpenCV's channel order (BGR or BGRA).

    The pipeline tags the images it decodes itself with this view, so they go from decode to
    encode without two colour conversions; arrays from anywhere else are taken to be RGB.
    """

    @staticmethod
    def to_rgb(img):
        """A plain RGB(A) array from a BGR(A) one (H x W arrays are returned as they are)."""
        img = np.asarray(img)
        if img.ndim == 3 and img.shape[2] == 3:
            return _cv2().cvtColor(img, _cv2().COLOR_BGR2RGB)
        if img.ndim == 3 and img.shape[2] == 4:
            return _cv2().cvtColor(img, _cv2().COLOR_BGRA2RGBA)
        return img


def _cv2():
    import cv2  # imported lazily: `recpack index/verify` do not need it
    return cv2


def normalize_encoding(encoding):
    """``".JPEG"`` -> ``".jpg"``; raise :class:`OptionError` for anything not in ENCODINGS."""
    key = str(encoding).lower()
    if not key.startswith("."):
        key = "." + key
    try:
        return _ENCODING_ALIASES[key]
    except KeyError:
        raise OptionError("encoding %r is not supported; choose one of %s ('.npy' stores any "
                          "numpy array, e.g. float tensors after ToTensor/Normalize)"
                          % (encoding, ", ".join(ENCODINGS))) from None


def as_numpy_image(image):
    """An item's image as a numpy array (NDArray and mx.np arrays are copied out)."""
    asnumpy = getattr(image, "asnumpy", None)
    if callable(asnumpy):
        return asnumpy()
    if isinstance(image, np.ndarray):
        return image
    try:
        return np.asarray(image)
    except Exception as exc:  # noqa: BLE001 - anything unconvertible is the user's type error
        raise ImageEncodeError("cannot store an image of type %s: expected a numpy array, an "
                               "mxnet NDArray or encoded bytes" % type(image).__name__) from exc


def _to_bgr(arr):
    """Validate an HWC/HW uint8 RGB(A) image and return it in OpenCV's channel order."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return arr
    if arr.ndim == 3 and arr.shape[2] == 3:
        return _cv2().cvtColor(arr, _cv2().COLOR_RGB2BGR)  # ~10x a [:, :, ::-1] view's encode
    if arr.ndim == 3 and arr.shape[2] == 4:
        return _cv2().cvtColor(arr, _cv2().COLOR_RGBA2BGRA)
    hint = ""
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4):
        hint = (" It looks channel-first (CHW, e.g. after ToTensor): store tensors with "
                "encoding='.npy', or keep images HWC uint8 before encoding.")
    raise ImageEncodeError("cannot encode an image of shape %s: expected H x W (gray) or "
                           "H x W x C with C in 1, 3 (RGB), 4 (RGBA).%s" % (arr.shape, hint))


def encode_image(image, encoding=".jpg", quality=95):
    """Encode one image for a record; see :func:`encode_image_buffer`. Returns ``bytes``."""
    return bytes(encode_image_buffer(image, encoding, quality))


def encode_image_buffer(image, encoding=".jpg", quality=95):
    """Encode one image for a record.

    Parameters
    ----------
    image : numpy.ndarray, NDArray or bytes
        ``bytes`` are stored verbatim (already encoded). Arrays are HWC (or HW) RGB, as Gluon
        uses; ``uint8`` for ``.jpg``, ``uint8``/``uint16`` for ``.png``; any array for ``.npy``.
    encoding : {'.jpg', '.png', '.npy'}
    quality : int
        JPEG quality (1-100) or PNG compression level (0-9; larger values act as 9), as in
        ``mx.recordio.pack_img``.

    Returns
    -------
    bytes-like
        ``bytes``, or the 1-D uint8 array OpenCV encoded into (no copy).
    """
    if isinstance(image, (bytes, bytearray, memoryview)):
        return image
    encoding = normalize_encoding(encoding)
    arr = as_numpy_image(image)
    if encoding == ".npy":
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
        return buf.getvalue()
    allowed = (np.uint8,) if encoding == ".jpg" else (np.uint8, np.uint16)
    if arr.dtype not in allowed:
        raise ImageEncodeError(
            "cannot encode a %s image as %s: it needs %s pixels. Float tensors (after "
            "ToTensor/Normalize) are not images: store them with encoding='.npy', or keep the "
            "uint8 image and apply those transforms when training"
            % (arr.dtype, encoding, " or ".join(np.dtype(t).name for t in allowed)))
    cv2 = _cv2()
    bgr = np.asarray(arr) if isinstance(arr, BGR) else _to_bgr(arr)
    if bgr.ndim == 3 and bgr.shape[2] == 1:
        bgr = bgr[:, :, 0]
    if encoding == ".jpg":
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    else:
        params = [cv2.IMWRITE_PNG_COMPRESSION, int(quality)]
    ok, buf = cv2.imencode(encoding, bgr, params)
    if not ok:
        raise ImageEncodeError("OpenCV could not encode an image of shape %s as %s"
                               % (arr.shape, encoding))
    return buf.reshape(-1)


def reduced_decode_factor(h, w, size, *, center_crop=False):
    """The largest JPEG DCT scale 1/f (f in 8, 4, 2) that keeps the shorter edge at least twice
    ``size``; 1 (a full decode) for images less than four times the target.

    The margin of two keeps the result as good as a full decode followed by an area resize
    (measured: 36.6 dB mean PSNR on camera photos; a margin of one gives 32.7 dB). With
    ``center_crop`` the crop's margin must be a multiple of f, so the crop falls exactly on
    reduced pixels.
    """
    short = min(h, w)
    margin = (max(h, w) - short) // 2
    for f in (8, 4, 2):
        if -(-short // f) >= 2 * size and not (center_crop and margin % f):
            return f
    return 1


_REDUCED = {(1, 2): "IMREAD_REDUCED_COLOR_2", (1, 4): "IMREAD_REDUCED_COLOR_4",
            (1, 8): "IMREAD_REDUCED_COLOR_8", (0, 2): "IMREAD_REDUCED_GRAYSCALE_2",
            (0, 4): "IMREAD_REDUCED_GRAYSCALE_4", (0, 8): "IMREAD_REDUCED_GRAYSCALE_8"}


def decode_image(data, color=1, *, rgb=True, reduce=1):
    """Decode image bytes with OpenCV.

    Parameters
    ----------
    data : bytes
    color : {1, 0, -1}
        1: three channels, 0: gray (H x W), -1: as stored (alpha kept).
    rgb : bool
        Return RGB(A) (Gluon's order) instead of OpenCV's BGR(A).
    reduce : {1, 2, 4, 8}
        Decode a JPEG at 1/reduce scale in the DCT (color 1 and 0 only): several times faster
        for large photos that are shrunk anyway.

    Returns
    -------
    numpy.ndarray or None
        ``None`` when the bytes are not a decodable image.
    """
    cv2 = _cv2()
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        return None
    flag = getattr(cv2, _REDUCED[(color, reduce)]) if reduce > 1 else color
    img = cv2.imdecode(buf, flag)
    if img is None or not rgb or img.ndim == 2:
        return img
    if img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def center_crop_square(img):
    """im2rec's ``--center-crop``: the largest centred square (margin rounded down)."""
    h, w = img.shape[:2]
    if h > w:
        margin = (h - w) // 2
        return img[margin:margin + w, :]
    margin = (w - h) // 2
    return img[:, margin:margin + h]


def short_edge_size(h, w, size):
    """``(new_w, new_h)`` with the shorter edge ``size``, rounded down as im2rec does."""
    if h > w:
        return size, h * size // w
    return w * size // h, size


def resolve_inter_method(inter_method, src_hw, dst_wh, key=0):
    """Map an im2rec interpolation code to an OpenCV flag for one resize."""
    cv2 = _cv2()
    if inter_method == 9:
        (h, w), (nw, nh) = src_hw, dst_wh
        if nh > h and nw > w:
            return cv2.INTER_CUBIC
        if nh < h and nw < w:
            return cv2.INTER_AREA
        return cv2.INTER_LINEAR
    if inter_method == 10:
        return random.Random(int(key)).randint(0, 4)
    if inter_method not in (0, 1, 2, 3, 4):
        raise OptionError("inter_method %r is not valid; choose one of: %s"
                          % (inter_method, "; ".join("%d %s" % kv for kv in INTER_METHODS.items())))
    return inter_method


def resize_short_edge(img, size, inter_method=1, key=0, source_hw=None):
    """im2rec's ``--resize``: scale so the shorter edge is ``size`` (default bilinear).

    ``source_hw`` is the original size when ``img`` was decoded at reduced scale: the output
    size (and the interpolation choice of methods 9/10) follows it, as a full decode would.
    """
    cv2 = _cv2()
    h, w = source_hw or img.shape[:2]
    new_wh = short_edge_size(h, w, size)
    flag = resolve_inter_method(inter_method, (h, w), new_wh, key)
    if new_wh == (img.shape[1], img.shape[0]):
        return img
    out = cv2.resize(img, new_wh, interpolation=flag)
    return out.view(BGR) if isinstance(img, BGR) else out
