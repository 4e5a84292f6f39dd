"""Look at an image file's bytes without decoding them: format, size, completeness.

OpenCV decodes a truncated JPEG without complaint (the missing rows come out grey), and decodes
a decompression bomb into gigabytes before anyone can refuse it. These checks run first, on the
header bytes only. Standard library only.
"""

import struct
from collections import namedtuple

from ..errors import BadImageError
from .encodings import sniff

__all__ = ["ImageInfo", "probe_image", "check_image_bytes", "DEFAULT_MAX_PIXELS",
           "SOF_MARKERS"]

#: Pillow's decompression-bomb threshold (``PIL.Image.MAX_IMAGE_PIXELS``): ~89.5 megapixels.
DEFAULT_MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3

#: ``format`` is a name of :data:`~mxnet_recpack.images.encodings.ENCODINGS` ('jpeg', 'png',
#: ..., 'npy') or None (unrecognised); ``width``/``height`` None when the header does not say;
#: ``complete`` False when the file visibly stops early (JPEG without its end marker, PNG
#: without IEND); ``channels`` 1 for gray, 3 or 4 for colour, None when the header does not
#: say (only JPEG and PNG headers are read for it); ``orientation`` a JPEG's EXIF Orientation
#: tag (1 upright, 2-8 turned or mirrored: see :mod:`.exif`), None when it carries none.
ImageInfo = namedtuple("ImageInfo", ["format", "width", "height", "complete", "channels",
                                     "orientation"], defaults=(None,))

#: The JPEG markers of a frame header (SOF0-SOF15 but DHT, JPG, DAC): it holds the size.
SOF_MARKERS = _SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB,
                                0xCD, 0xCE, 0xCF})
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 1, 6: 3}  # colour type -> channels a colour decode keeps


def _tiff_orientation(tiff):
    """The Orientation tag (0x0112, a SHORT) of a TIFF block's first IFD, or None."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    order = "<" if tiff[:2] == b"II" else ">"
    magic, ifd = struct.unpack_from(order + "HI", tiff, 2)
    if magic != 42 or ifd + 2 > len(tiff):
        return None
    for at in range(ifd + 2, ifd + 2 + 12 * struct.unpack_from(order + "H", tiff, ifd)[0], 12):
        if at + 12 > len(tiff):
            return None
        tag, kind = struct.unpack_from(order + "HH", tiff, at)
        if tag == 0x0112:
            return struct.unpack_from(order + "H", tiff, at + 8)[0] if kind == 3 else None
    return None


def _jpeg(data, start, n):
    """The JPEG in ``data[start:n]``: positions are offsets into ``data`` (no copy of it)."""
    pos = start + 2
    width = height = channels = orientation = None
    while pos < n:
        if data[pos] != 0xFF:
            return ImageInfo("jpeg", width, height, False, channels, orientation)
        while pos < n and data[pos] == 0xFF:
            pos += 1
        if pos >= n:
            break
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            return ImageInfo("jpeg", width, height, True, channels, orientation)
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue
        if pos + 2 > n:
            break
        seglen = (data[pos] << 8) | data[pos + 1]
        if marker in _SOF and pos + 8 <= n:
            height, width, channels = struct.unpack_from(">HHB", data, pos + 3)
        if marker == 0xE1 and orientation is None and \
                data[pos + 2:min(pos + 8, n)] == b"Exif\0\0":
            orientation = _tiff_orientation(bytes(data[pos + 8:min(pos + seglen, n)]))
        if marker == 0xDA:
            # Entropy-coded data never holds FF D9 (a literal FF is stuffed as FF 00), so an end
            # marker after the first scan starts means the stream was written to its end.
            return ImageInfo("jpeg", width, height, data.rfind(b"\xff\xd9", pos, n) >= 0,
                             channels, orientation)
        pos += seglen
    return ImageInfo("jpeg", width, height, False, channels, orientation)


def probe_image(data, start=0, end=None):
    """Identify an encoded image from its bytes: ``data`` (bytes-like), or the stretch
    ``data[start:end]`` of a ``bytes`` or ``bytearray`` (read where it is, not copied).

    Returns
    -------
    ImageInfo
    """
    if not isinstance(data, (bytes, bytearray)):
        data, start, end = bytes(data[start:end]), 0, None
    end = len(data) if end is None else end
    name = sniff(data[start:start + 12])
    if name == "jpeg":
        return _jpeg(data, start, end)
    size = end - start
    if name == "png":
        w = h = channels = None
        if size >= 26 and data[start + 12:start + 16] == b"IHDR":
            w, h = struct.unpack_from(">II", data, start + 16)
            channels = _PNG_CHANNELS.get(data[start + 25])
        return ImageInfo("png", w, h, data.rfind(b"IEND", max(start, end - 64), end) >= 0,
                         channels)
    if name == "gif":
        w, h = struct.unpack_from("<HH", data, start + 6) if size >= 10 else (None, None)
        return ImageInfo("gif", w, h, True, None)
    if name == "bmp" and size >= 26:
        w, h = struct.unpack_from("<ii", data, start + 18)
        return ImageInfo("bmp", abs(w), abs(h), True, None)
    if name == "other" or (name == "bmp" and size < 26):
        return ImageInfo(None, None, None, True, None)
    return ImageInfo(name, None, None, True, None)


def check_image_bytes(data, *, max_pixels=DEFAULT_MAX_PIXELS, require_known=False, start=0,
                      end=None):
    """Raise :class:`~mxnet_recpack.errors.BadImageError` with the reason when ``data`` is not
    an image worth decoding (the caller adds which file or record it is).

    Parameters
    ----------
    start, end : int
        Check only ``data[start:end]`` (of a ``bytes`` or ``bytearray``: read in place).
    max_pixels : int or None
        Refuse images whose header declares more pixels (``None``: no limit).
    require_known : bool
        Refuse bytes of no recognised image format (used for pass-through, where nothing else
        looks at the bytes before training does).

    Returns
    -------
    ImageInfo
    """
    end = len(data) if end is None else end
    if end <= start:
        raise BadImageError("empty (zero-byte) file")
    info = probe_image(data, start, end)
    if require_known and info.format is None:
        raise BadImageError("not an image: the first bytes %r match no image format"
                            % bytes(data[start:min(start + 8, end)]))
    if info.width is not None and info.height is not None:
        if info.width == 0 or info.height == 0:
            raise BadImageError("%s header declares an empty %d x %d image"
                                % (info.format, info.width, info.height))
        if max_pixels is not None and info.width * info.height > max_pixels:
            raise BadImageError("%s header declares %d x %d = %d pixels, more than the "
                                "max_pixels limit of %d (a decompression bomb?); raise "
                                "max_pixels (--max-pixels) if the image is genuine"
                                % (info.format, info.width, info.height,
                                   info.width * info.height, max_pixels))
    if not info.complete:
        raise BadImageError("truncated %s: the file ends before the image data does (%d "
                            "bytes)" % (info.format.upper(), end - start))
    return info
