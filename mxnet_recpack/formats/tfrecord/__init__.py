"""TFRecord: ``tf.train.Example`` records (TensorFlow's ImageNet convention plus every
RecordIO field) and DALI's index files. See :mod:`.codec`."""

from .codec import (INDEX_SUFFIX, SUFFIX, ShardReader, ShardWriter, check, encode, index_file,
                    index_of, index_path_of, read, scan)
from .framing import Locator

__all__ = ["SUFFIX", "INDEX_SUFFIX", "encode", "ShardWriter", "index_file", "index_of",
           "index_path_of", "scan", "read", "check", "ShardReader", "Locator"]
