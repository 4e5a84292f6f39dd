"""mxnet_recpack: make, check and read MXNet RecordIO (``.rec`` + ``.idx``) files.

Importing this package is cheap and never imports mxnet. With MXNet installed, every Gluon
``Dataset`` gains a ``to_recordio(path, ...)`` method and the Gluon names (``ImageListDataset``,
``ArrayDataset``) work; without it they raise an error saying how to install it, and everything
else (the ``recpack`` command, ``im2rec``, ``RecordFileWriter``, ``ImageList``) works as is.

The layers, bottom up: ``errors``, ``options``; ``format`` (bytes), ``storage`` (where bytes
live); ``images`` (pixels); ``sources`` (where items come from); ``pipeline`` (workers, the one
writer, the job runner); the front doors (``im2rec``, ``ops``, ``inspection``, ``cli``); and
``gluon`` on top, the only place that imports mxnet.
"""

from ._version import __version__
from . import errors as _errors
from .errors import *  # noqa: F401,F403 - the error hierarchy is public API
from .gluon import gluon_name as _gluon_name, install as _install

#: Names resolved on first use, so ``import mxnet_recpack`` stays cheap: where each lives. The
#: Gluon classes import mxnet then (or give a stand-in that explains how to install it).
_LAZY = {
    "RecordFileWriter": ("pipeline.writer", "RecordFileWriter"),
    "WriteSummary": ("pipeline.summary", "WriteSummary"),
    "ImageList": ("sources.image_list", "ImageList"),
    "RecordFile": ("format.reader", "RecordFile"),
    "RecordReader": ("format.framing", "RecordReader"),
    "encode_record": ("format.framing", "encode_record"),
    "RecordHeader": ("format.header", "RecordHeader"),
    "pack_record": ("format.header", "pack_record"),
    "unpack_record": ("format.header", "unpack_record"),
    "read_index": ("format.index", "read_index"),
    "to_recordio": ("gluon.patch", "to_recordio"),
    "im2rec": ("pack", "im2rec"),
    "make_list": ("sources.discover", "make_list"),
    "verify": ("ops.verify", "verify"),
    "rebuild_index": ("ops.index", "rebuild_index"),
    "salvage": ("ops.index", "salvage"),
    "RecordDataset": ("reader", "RecordDataset"),
    "RecordLoader": ("loader.core", "RecordLoader"),
    "merge": ("ops.edit", "merge"),
    "split": ("ops.edit", "split"),
    "shuffle": ("ops.edit", "shuffle"),
    "filter_records": ("ops.select", "filter_records"),
    "relabel": ("ops.select", "relabel"),
    "rewrite": ("ops.rewrite", "rewrite"),
    "convert": ("ops.convert", "convert"),
}
_GLUON = ("ImageListDataset", "ArrayDataset")

__all__ = ["__version__"] + sorted(list(_LAZY) + list(_GLUON)) + _errors.__all__

#: Subpackages and modules reachable as attributes (``mxnet_recpack.samples``).
_SUBMODULES = {"cli", "errors", "format", "gluon", "images", "inspection", "ops", "pack",
               "options", "pipeline", "reader", "loader", "samples", "sources", "storage", "demo"}


def _import(name):
    import importlib
    return importlib.import_module("." + name, __name__)


def __getattr__(name):
    if name in _SUBMODULES:
        return _import(name)
    if name in _GLUON:
        value = _gluon_name(name)
    elif name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(_import(module), attr)
    else:
        raise AttributeError("module 'mxnet_recpack' has no attribute %r" % name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


_install()
