"""MDS's row of the formats table: a folder of ``shard.NNNNN.mds`` files and the
``index.json`` that lists them (MosaicML streaming's layout), written by :mod:`.codec`."""

import functools
import os

from ..shards import ShardFormat
from . import codec, reader

__all__ = ["MDS"]


class _Whole:
    """Every sample of an MDS folder, by position (its shards' offsets read when opened)."""

    def __init__(self, root, label):
        self.path = root
        self.locators = reader.scan(root, default_label=label)

    def __len__(self):
        return len(self.locators)

    def key_hint(self, j):
        return None

    def read(self, j):
        return reader.read(self.path, self.locators[j])


class MDSFormat(ShardFormat):
    name = "mds"
    suffix = ".mds"
    folder_only = True
    default_shard_bytes = 1 << 26  # MDSWriter's default size_limit

    def folder_name(self, number, total):
        return codec.shard_basename(number)

    def encoder(self, options):
        return functools.partial(codec.encode, image_encoding=options.get("image_encoding")
                                 or "bytes")

    def writer(self, path, options):
        return codec.ShardWriter(path, image_encoding=options.get("image_encoding") or "bytes",
                                 size_limit=options.get("shard_bytes"))

    def grown(self, writer, count, size):
        return writer.nbytes + size + 4 * count  # a sample costs its bytes and an offset

    def set_files(self, shards):
        return [("index.json", codec.index_json(shards))]

    def recognise(self, path):
        path = os.fspath(path)
        return os.path.isfile(os.path.join(path, "index.json")) or (
            os.path.basename(path) == "index.json" and os.path.isfile(path))

    def open_input(self, path, options):
        root = os.fspath(path)
        if os.path.basename(root) == "index.json":
            root = os.path.dirname(root) or "."
        return [_Whole(root, options.get("label"))]


MDS = MDSFormat()
