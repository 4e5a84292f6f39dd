"""Decoding and encoding images with OpenCV, and the one RGB <-> BGR conversion.

Gluon and ``mx.image`` images are RGB; OpenCV encodes and decodes BGR. Everything that crosses
into OpenCV is flipped here, once, so a red image stays red when ``ImageRecordIter`` (which
decodes with OpenCV and hands out RGB) reads it back. Images the pipeline decodes itself stay
BGR from decode to encode, tagged with the :class:`BGR` view.
"""

import io

import numpy as np

from ..errors import ImageEncodeError
from .encodings import normalize_encoding, store_quality
from .opencv import load

__all__ = ["BGR", "swap_rb", "as_numpy_image", "ImageEncoder", "encode_image", "decode_image"]


class BGR(np.ndarray):
    """A numpy image already in OpenCV's channel order (BGR or BGRA).

    The pipeline tags the images it decodes itself with this view, so they go from decode to
    encode without two colour conversions; arrays from anywhere else are taken to be RGB.
    """

    @staticmethod
    def to_rgb(img):
        """A plain RGB(A) array from a BGR(A) one (H x W arrays are returned as they are)."""
        return swap_rb(np.asarray(img))


def swap_rb(img):
    """RGB(A) <-> BGR(A) (the same swap both ways); gray and 1-channel images unchanged."""
    if img.ndim == 3 and img.shape[2] in (3, 4):
        cv2 = load()
        return cv2.cvtColor(img, cv2.COLOR_RGB2BGR if img.shape[2] == 3 else
                            cv2.COLOR_RGBA2BGRA)  # ~10x faster to encode than a [..., ::-1] view
    return img


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


def _check_layout(arr):
    """An HWC/HW image's array for OpenCV (H x W x 1 becomes H x W), or the reason it is not."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        return arr[:, :, 0]
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4)):
        return arr
    hint = ""
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4):
        hint = (" It looks channel-first (CHW, e.g. after ToTensor): store tensors with "
                "encoding='.npy', or keep images HWC uint8 before encoding.")
    raise ImageEncodeError("cannot encode an image of shape %s: expected H x W (gray) or "
                           "H x W x C with C in 1, 3 (RGB), 4 (RGBA).%s" % (arr.shape, hint))


class ImageEncoder:
    """Encode images for records with one encoding and quality, chosen once per run.

    Parameters
    ----------
    encoding : {'.jpg', '.png', '.npy'}
    quality : int or None
        JPEG quality (1-100, default 95) or PNG compression level (0-9, default 9; larger
        values act as 9, as in ``mx.recordio.pack_img``, and are given to OpenCV as 9).

    Calling it with an image returns the stored bytes: ``bytes`` items verbatim (already
    encoded), arrays (HWC or HW, RGB as Gluon uses them; ``uint8`` for ``.jpg``,
    ``uint8``/``uint16`` for ``.png``, anything for ``.npy``) encoded. The result is ``bytes``
    or the 1-D uint8 array OpenCV encoded into (no copy).
    """

    def __init__(self, encoding, quality):
        self.encoding = normalize_encoding(encoding)
        self.quality = store_quality(self.encoding, quality)
        self._allowed = (np.uint8,) if self.encoding == ".jpg" else (np.uint8, np.uint16)

    def __call__(self, image):
        if isinstance(image, (bytes, bytearray, memoryview)):
            return image
        arr = as_numpy_image(image)
        if self.encoding == ".npy":
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
            return buf.getvalue()
        if arr.dtype not in self._allowed:
            raise ImageEncodeError("cannot encode a %s image as %s: it needs %s pixels. %s"
                                   % (arr.dtype, self.encoding, " or ".join(
                                       np.dtype(t).name for t in self._allowed), _cast_hint(arr)))
        cv2 = load()
        bgr = _check_layout(np.asarray(arr) if isinstance(arr, BGR) else arr)
        if not isinstance(arr, BGR):
            bgr = swap_rb(bgr)
        if self.encoding == ".jpg":
            params = [cv2.IMWRITE_JPEG_QUALITY, self.quality]
        else:
            params = [cv2.IMWRITE_PNG_COMPRESSION, self.quality]
        ok, buf = cv2.imencode(self.encoding, bgr, params)
        if not ok:
            raise ImageEncodeError("OpenCV could not encode an image of shape %s as %s"
                                   % (arr.shape, self.encoding))
        return buf.reshape(-1)


def _cast_hint(arr):
    """How to make ``arr`` storable: pixel values in a wider type are cast; float tensors
    (after ToTensor/Normalize) are not images."""
    if arr.size and arr.dtype.kind in "fiub":
        low, high = float(np.min(arr)), float(np.max(arr))
        integral = arr.dtype.kind != "f" or bool(np.all(np.mod(arr, 1) == 0))
        if 0 <= low and high <= 255 and (high > 1 or integral):
            return ("Its values are pixels in 0-255: convert with %s"
                    % ("image.astype(np.uint8)" if integral else
                       "np.rint(image).astype(np.uint8) (rounded, not truncated)"))
        if arr.dtype.kind in "iu" and 0 <= low and high <= 65535:
            return ("Its values are 16-bit pixels: store them with encoding='.png' (uint16), "
                    "or scale them to 8 bits, (image >> 8).astype(np.uint8)")
        if arr.dtype.kind == "f" and 0 <= low and high <= 1:
            return ("Its values are in 0-1: store (image * 255).round().astype(np.uint8), or "
                    "the floats themselves with encoding='.npy'")
    return ("Float tensors (after ToTensor/Normalize) are not images: store them with "
            "encoding='.npy', or keep the uint8 image and apply those transforms when training")


def encode_image(image, encoding, quality):
    """Encode one image for a record (see :class:`ImageEncoder`); returns ``bytes``."""
    return bytes(ImageEncoder(encoding, quality)(image))


_REDUCED = {(1, 2): "IMREAD_REDUCED_COLOR_2", (1, 4): "IMREAD_REDUCED_COLOR_4",
            (1, 8): "IMREAD_REDUCED_COLOR_8", (0, 2): "IMREAD_REDUCED_GRAYSCALE_2",
            (0, 4): "IMREAD_REDUCED_GRAYSCALE_4", (0, 8): "IMREAD_REDUCED_GRAYSCALE_8"}


def decode_image(data, color=1, *, rgb=True, reduce=1, orientation=True):
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
    orientation : bool
        Apply a JPEG's EXIF orientation (OpenCV's default; ``color=-1`` never applies it).

    Returns
    -------
    numpy.ndarray or None
        ``None`` when the bytes are not a decodable image.
    """
    cv2 = load()
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        return None
    flag = getattr(cv2, _REDUCED[(color, reduce)]) if reduce > 1 else color
    # OpenCV 4.10+ decodes straight to RGB (the same pixels), cheaper than BGR and a swap
    direct = getattr(cv2, "IMREAD_COLOR_RGB", None) if rgb and color == 1 else None
    if direct:
        flag = (flag & ~cv2.IMREAD_COLOR) | direct  # reduced flags are 16/32/48 | IMREAD_COLOR
    if not orientation and color != -1:
        flag |= cv2.IMREAD_IGNORE_ORIENTATION
    img = cv2.imdecode(buf, flag)
    if img is None or not rgb or direct:
        return img
    return swap_rb(img)
