"""MosaicML streaming's MDS (``index.json`` + ``shard.NNNNN.mds``), written and read with no
dependency beyond numpy: ``codec`` writes shards and their index, ``reader`` reads samples by
position and checks a dataset, ``columns`` knows MDS's column encodings."""

from .codec import (IMAGE_ENCODINGS, MAX_SHARD_BYTES, ShardWriter, columns, encode, index_json,
                    shard_basename, shard_config)
from .reader import Locator, Shard, check, read, read_index, scan

__all__ = ["IMAGE_ENCODINGS", "MAX_SHARD_BYTES", "ShardWriter", "columns", "encode",
           "index_json", "shard_basename", "shard_config", "Locator", "Shard", "check", "read",
           "read_index", "scan"]
