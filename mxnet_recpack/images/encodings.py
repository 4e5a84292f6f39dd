"""The one table of image encodings: how each is recognised, named, stored and read.

Every module that names, sniffs or checks an encoding asks here: the writer (which encodings
it can store), ``probe`` (which format some bytes are), ``verify`` (which formats MXNet's own
decoder reads), ``inspect`` and ``extract`` (the file extension of each). Standard library only.
"""

from collections import namedtuple

from ..errors import OptionError

__all__ = ["Encoding", "ENCODINGS", "WRITABLE", "sniff", "normalize_encoding", "extension",
           "store_quality", "DEFAULT_QUALITY"]

#: ``name``: the format; ``ext``: the file extension ``extract`` gives it; ``aliases``: the
#: spellings of ``encoding=`` that mean it; ``magic``: byte prefixes that identify it;
#: ``writable``: the writer can encode arrays to it; ``mxnet_decodes``: the OpenCV bundled with
#: MXNet (ImageRecordIter, ImageRecordDataset) decodes it.
Encoding = namedtuple("Encoding", ["name", "ext", "aliases", "magic", "writable",
                                   "mxnet_decodes"])

ENCODINGS = {e.name: e for e in (
    Encoding("jpeg", ".jpg", (".jpg", ".jpeg"), (b"\xff\xd8\xff",), True, True),
    Encoding("png", ".png", (".png",), (b"\x89PNG\r\n\x1a\n",), True, True),
    Encoding("npy", ".npy", (".npy",), (b"\x93NUMPY",), True, False),
    Encoding("bmp", ".bmp", (), (b"BM",), False, True),
    Encoding("tiff", ".tif", (), (b"II*\0", b"MM\0*"), False, True),
    Encoding("pnm", ".pnm", (), (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6"), False, False),
    Encoding("gif", ".gif", (), (b"GIF87a", b"GIF89a"), False, False),
    Encoding("webp", ".webp", (), (), False, False),  # RIFF....WEBP: see sniff
    Encoding("other", ".bin", (), (), False, False),
)}

#: What ``encoding=`` accepts, canonical spelling first.
WRITABLE = tuple(e.aliases[0] for e in ENCODINGS.values() if e.writable)
_ALIASES = {alias: e.aliases[0] for e in ENCODINGS.values() for alias in e.aliases}
_PREFIXES = [(m, e.name) for e in ENCODINGS.values() for m in e.magic]


def sniff(data):
    """The name of the format of some bytes (``'jpeg'``, ``'png'``, ..., ``'other'``)."""
    head = bytes(data[:12])
    for magic, name in _PREFIXES:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return "other"


def extension(name):
    """The file extension of a format name from :func:`sniff`."""
    return ENCODINGS[name].ext


def normalize_encoding(encoding):
    """``".JPEG"`` -> ``".jpg"``; :class:`OptionError` for anything the writer cannot store."""
    key = str(encoding).lower()
    if not key.startswith("."):
        key = "." + key
    try:
        return _ALIASES[key]
    except KeyError:
        raise OptionError("encoding %r is not supported; choose one of %s ('.npy' stores any "
                          "numpy array, e.g. float tensors after ToTensor/Normalize)"
                          % (encoding, ", ".join(WRITABLE))) from None


#: ``quality=None`` means: JPEG quality 95, PNG compression level 9 (the level im2rec.py's
#: quality 95 becomes: OpenCV takes levels above 9 as 9, so the bytes are im2rec.py's).
DEFAULT_QUALITY = {".jpg": 95, ".png": 9}


def store_quality(encoding, quality):
    """The number OpenCV is given for ``encoding`` (canonical): ``quality`` or the format's
    default, a PNG level capped at 9 (as OpenCV would, without its warning); None for .npy."""
    if encoding not in DEFAULT_QUALITY:
        return None
    if quality is None:
        return DEFAULT_QUALITY[encoding]
    return min(int(quality), 9) if encoding == ".png" else int(quality)
