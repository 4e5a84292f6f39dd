"""A JPEG's EXIF orientation, and which readers apply it.

A camera stores a photo the way its sensor saw it and says in the EXIF Orientation tag how to
show it: 1 upright, 6 turn a quarter clockwise, 8 a quarter the other way, 3 half a turn,
2, 4, 5, 7 the mirrored ones (:attr:`ImageInfo.orientation
<mxnet_recpack.images.probe.ImageInfo>` reads the tag). Stored as they are (``im2rec
--pass-through``), such JPEGs come back differently from MXNet's own readers (measured with
MXNet 1.9.1 and DALI 2.4):

- ``mx.io.ImageRecordIter`` (``cv::imdecode``), ``cv2.imdecode``/``cv2.imread`` (colour and
  gray) and NVIDIA DALI's decoders apply it.
- ``mx.image.imdecode``, and so Gluon's ``ImageRecordDataset``, InsightFace's ``MXFaceDataset``
  and ``FaceImageIter``, GluonCV: applied, except in a JPEG that begins with a JFIF segment
  (``FF D8 FF E0``, ``"JFIF\\0"``: PIL, editors and web tools write one before the EXIF
  segment; camera originals begin with their EXIF segment). For those MXNet reads the size
  from the header itself, then decodes into that shape with ``IMREAD_IGNORE_ORIENTATION``
  (``get_jpeg_size`` in MXNet's ``src/io/image_io.cc``): as stored.

Other formats are decoded as stored by all of MXNet's readers (DALI applies a PNG's ``eXIf``
orientation). Re-encoding (``im2rec`` without ``--pass-through``, ``recpack rewrite``) applies
the orientation once and stores the image upright, without EXIF: every reader then agrees.

Standard library only.
"""

__all__ = ["EXIF_MODES", "mxnet_decodes_as_stored", "applies_orientation"]

#: What a reader does with a JPEG's EXIF orientation (the ``exif`` option): True applies it
#: (ImageRecordIter, DALI), False ignores it (the pixels as stored), ``"mxnet"`` does what
#: ``mx.image.imdecode`` does.
EXIF_MODES = (True, False, "mxnet")

_FRAMES = {0xC0} | set(range(0xC1, 0xD0)) - {0xC4, 0xC8, 0xCC}  # get_jpeg_size's SOF markers


def mxnet_decodes_as_stored(data):
    """Whether ``mx.image.imdecode`` decodes these JPEG bytes without their EXIF orientation:
    they begin with a JFIF segment and MXNet's own header walk (``get_jpeg_size``, which does
    not skip fill bytes) reaches a frame header. ``data``: the whole image (bytes or a
    memoryview)."""
    n = len(data)
    if n < 11 or bytes(data[:4]) != b"\xff\xd8\xff\xe0" or bytes(data[6:11]) != b"JFIF\0":
        return False
    at, length = 4, (data[4] << 8) | data[5]
    while True:
        at += length
        if at + 1 >= n or data[at] != 0xFF:
            return False
        if data[at + 1] in _FRAMES:
            return True
        at += 2
        if at + 1 >= n:
            return False
        length = (data[at] << 8) | data[at + 1]


def applies_orientation(data, exif):
    """Whether a decode in mode ``exif`` (one of :data:`EXIF_MODES`) applies the EXIF
    orientation of these JPEG bytes (the caller decodes other formats as stored)."""
    if exif == "mxnet":
        return not mxnet_decodes_as_stored(data)
    return exif is True
