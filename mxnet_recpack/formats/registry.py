"""The formats table: one row a format (its name, its sink and items, how a path of it is
recognised). Adding a format is one folder with a :class:`~.shards.ShardFormat` and one row.

``recordio`` is the pair a :class:`~mxnet_recpack.RecordFileWriter` writes (its sink:
:class:`~.recordio.sink.RecordIOSink`; its items: the records of existing ``.rec`` files).
"""

import glob
import os
from collections import namedtuple

from ..errors import OptionError
from .mds.format import MDS
from .parquet.format import PARQUET
from .tfrecord.format import TFRECORD
from .webdataset.format import WEBDATASET

__all__ = ["FORMATS", "Format", "detect", "format_named"]

#: ``shards``: the :class:`~.shards.ShardFormat` (None for RecordIO, written by the pair
#: writer); ``suffixes``: what names a file of it; ``extra``: the pip extra its library needs.
Format = namedtuple("Format", ["name", "shards", "suffixes", "extra", "what"])

FORMATS = {
    "recordio": Format("recordio", None, (".rec",), None, "an indexed .rec (and its .idx)"),
    "webdataset": Format("webdataset", WEBDATASET, (".tar",), None,
                         "tar shards (a folder, NAME-{000000..000009}.tar, or one .tar)"),
    "tfrecord": Format("tfrecord", TFRECORD, (".tfrecord", ".tfrecords"), None,
                       "TFRecord files of tf.train.Example (one file, a folder or a pattern)"),
    "parquet": Format("parquet", PARQUET, (".parquet",), "parquet",
                      "Parquet in Hugging Face datasets' image layout (a file or a folder)"),
    "mds": Format("mds", MDS, (), None, "a MosaicML streaming (MDS) folder with index.json"),
}


def format_named(name):
    try:
        return FORMATS[name]
    except KeyError:
        raise OptionError("unknown format %r: one of %s" % (name, ", ".join(FORMATS))) from None


def _looks_like(row, path, role):
    base = path.rstrip("/")
    if row.name == "recordio":
        return base.endswith(".rec") or (glob.has_magic(base) and base.endswith(".rec"))
    if row.suffixes and base.split("{")[0] and base.endswith(row.suffixes):
        return True
    if role == "input" or os.path.isdir(base):
        return row.shards.recognise(base)
    return False


def detect(path, hint=None, *, role="input"):
    """The row of ``path`` (``hint``: the format named with ``--from``/``--to``)."""
    if hint is not None:
        return format_named(hint)
    path = os.fspath(path)
    if "://" in path and not path.startswith("file://"):
        if path.rstrip("/").endswith(".rec"):
            return FORMATS["recordio"]
    if role == "input" and not os.path.exists(path) and not glob.has_magic(path) and \
            "{" not in path:
        raise FileNotFoundError("%s: no such file or folder to convert" % path)
    found = [row for row in FORMATS.values() if _looks_like(row, path, role)]
    if len(found) == 1:
        return found[0]
    flag = "--from" if role == "input" else "--to"
    if not found:
        where = "its name and what it holds say no format"
        raise OptionError("%s: which format is this %s (%s)? Name it with %s (%s)" % (
            path, role, where, flag, ", ".join(FORMATS)))
    raise OptionError("%s: this %s could be %s: name its format with %s" % (
        path, role, " or ".join(r.name for r in found), flag))
