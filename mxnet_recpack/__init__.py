"""mxnet_recpack: turn image datasets into MXNet RecordIO (``.rec`` + ``.idx``) files.

Importing this package is cheap (it does not import mxnet) and gives every Gluon ``Dataset`` a
``to_recordio(path, ...)`` method. The Gluon-side names (``ImageListDataset``, ``ArrayDataset``)
import mxnet when first used.
"""

from ._version import __version__
from .errors import (BadImageError, ImageEncodeError, IndexFormatError, ListFormatError, OptionError,
                     OutputExistsError, RecordFormatError, RecpackError, TooManyFailuresError)
from .api import im2rec
from .discover import make_list
from .gluon import install as _install, to_recordio
from .header import RecordHeader, pack_record, unpack_record
from .index import RecordFile, read_index
from .recordio import RecordReader, encode_record
from .writer import RecordFileWriter, WriteSummary

__all__ = [
    "__version__",
    "RecordFileWriter",
    "WriteSummary",
    "ImageListDataset",
    "ArrayDataset",
    "RecordFile",
    "RecordReader",
    "RecordHeader",
    "encode_record",
    "pack_record",
    "unpack_record",
    "read_index",
    "to_recordio",
    "im2rec",
    "make_list",
    "RecpackError",
    "RecordFormatError",
    "IndexFormatError",
    "ListFormatError",
    "ImageEncodeError",
    "OptionError",
    "TooManyFailuresError",
    "OutputExistsError",
    "BadImageError",
]

_LAZY = {
    "ImageListDataset": "datasets",
    "ArrayDataset": "datasets",
}


_SUBMODULES = {"api", "cli", "datasets", "discover", "errors", "fastpath", "gluon", "header",
               "images", "index", "inspection", "lists", "parts", "pipeline", "probe",
               "recordio", "repair", "samples", "sources", "storage", "writer"}


def __getattr__(name):
    import importlib
    if name in _SUBMODULES:  # mxnet_recpack.samples etc. without an explicit import
        return importlib.import_module("." + name, __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError("module 'mxnet_recpack' has no attribute %r" % name)
    value = getattr(importlib.import_module("." + module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


_install()
