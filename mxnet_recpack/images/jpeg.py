"""JPEG decoding with simplejpeg (libjpeg-turbo 3's TurboJPEG API), where it is installed.

simplejpeg decodes straight to RGB or gray, at the DCT scales 1/2, 1/4 and 1/8 as OpenCV's
``IMREAD_REDUCED_*`` flags do, and gives the same pixels as OpenCV's own libjpeg-turbo build
(measured: see ``docs/reading.md``), 5-20% faster. It ignores EXIF orientation: the turn or
mirror is applied here afterwards, with the same pixel permutations as OpenCV's. Whatever it
will not decode exactly as OpenCV would (a truncated or damaged stream, a colour conversion it
lacks, a frame header beyond the bytes probed) is left to OpenCV: :func:`decode_jpeg` returns
None and the caller decodes with OpenCV, so both decoders read every file the same way.
"""

import numpy as np

from ..errors import OptionError

__all__ = ["DECODERS", "resolve_decoder", "simplejpeg_module", "decode_jpeg", "orient"]

#: The ``decoder`` option: 'auto' is simplejpeg for JPEGs where it imports, else OpenCV.
DECODERS = ("auto", "opencv", "simplejpeg")
INSTALL_HINT = 'pip install "mxnet_recpack[simplejpeg]" (or pip install simplejpeg)'
_MODULE = None


def simplejpeg_module():
    """The ``simplejpeg`` module, or None where it does not import (tried once)."""
    global _MODULE
    if _MODULE is None:
        try:
            import simplejpeg
        except ImportError:
            simplejpeg = False
        _MODULE = simplejpeg
    return _MODULE or None


def resolve_decoder(decoder):
    """The decoder JPEGs go through: 'opencv' or 'simplejpeg' (see :data:`DECODERS`)."""
    if decoder not in DECODERS or not isinstance(decoder, str):
        raise OptionError("decoder = %r is not valid; expected 'auto', 'opencv' or "
                          "'simplejpeg'" % (decoder,))
    if decoder == "opencv":
        return decoder
    if simplejpeg_module() is None:
        if decoder == "simplejpeg":
            raise OptionError("decoder='simplejpeg' needs the simplejpeg package, which does "
                              "not import here: %s, or use decoder='auto' (OpenCV where it "
                              "is missing)" % INSTALL_HINT)
        return "opencv"
    return "simplejpeg"


def orient(img, orientation):
    """An H x W (x C) image turned or mirrored as its EXIF ``orientation`` (1-8) says, as
    OpenCV does it after decoding (2 mirror, 3 half turn, 4 flip, 5 transpose, 6 quarter turn
    clockwise, 7 transverse, 8 quarter turn counter-clockwise)."""
    if orientation in (5, 6, 7, 8):
        img = img.swapaxes(0, 1)
    if orientation in (2, 3, 6, 7):
        img = img[:, ::-1]
    if orientation in (3, 4, 7, 8):
        img = img[::-1]
    return np.ascontiguousarray(img)


def decode_jpeg(data, color, info, *, orientation=True, reduce=1):
    """Decode JPEG bytes with simplejpeg, as :func:`~mxnet_recpack.images.codec.decode_image`
    does with ``rgb=True`` (gray as H x W x 1).

    Parameters
    ----------
    data : bytes-like
    color : {1, 0}
        1: RGB, 0: gray.
    info : ImageInfo
        The probe of the first bytes (size, EXIF orientation).
    orientation : bool
        Apply the EXIF orientation.
    reduce : {1, 2, 4, 8}
        The DCT scale 1/reduce.

    Returns
    -------
    numpy.ndarray or None
        None where OpenCV should decode these bytes instead.
    """
    sj = simplejpeg_module()
    if sj is None or not info.width or not info.height or color not in (0, 1):
        return None
    options = {}
    if reduce > 1:  # exactly 1/reduce: the smallest scale at least this size and this factor
        options = {"min_height": -(-info.height // reduce),
                   "min_width": -(-info.width // reduce), "min_factor": reduce}
    try:
        img = sj.decode_jpeg(data, colorspace="GRAY" if color == 0 else "RGB", **options)
    except ValueError:  # damaged, truncated, or a conversion TurboJPEG lacks: OpenCV's turn
        return None
    if orientation and info.orientation not in (None, 1):
        img = orient(img, info.orientation)
    return img
