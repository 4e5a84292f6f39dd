"""TFRecord's row of the formats table: ``.tfrecord`` files with their DALI index
(``.tfindex``) beside each, read back from one file, a pattern or a folder of them."""

from ..paths import expand_inputs
from ..shards import ShardFormat
from . import codec

__all__ = ["TFRECORD"]

_SUFFIXES = (".tfrecord", ".tfrecords")


class _Shard:
    def __init__(self, path, first, label):
        self.path = path
        self.reader = codec.ShardReader(path, first_key=first, default_label=label)

    def __len__(self):
        return len(self.reader)

    def key_hint(self, j):
        return self.reader.key_at(j)  # one feature parsed, not the whole record

    def read(self, j):
        return self.reader[j]


class TFRecordFormat(ShardFormat):
    name = "tfrecord"
    suffix = codec.SUFFIX
    suffixes = _SUFFIXES
    default_shard_bytes = 1 << 30
    shard_extras = ((codec.INDEX_SUFFIX, "DALI's index of the shard"),)

    def folder_name(self, number, total):
        return "shard-%05d%s" % (number, self.suffix)

    def encoder(self, options):
        return codec.encode

    def writer(self, path, options):
        return codec.ShardWriter(path)

    def extras(self, summary):
        return [(codec.INDEX_SUFFIX, codec.index_file(summary))]

    def recognise(self, path):
        return expand_inputs(path, _SUFFIXES, probe=True)

    def open_input(self, path, options):
        shards, first = [], 0
        for f in expand_inputs(path, _SUFFIXES):
            shard = _Shard(f, first, options.get("label"))
            shards.append(shard)
            first += len(shard)
        return shards


TFRECORD = TFRecordFormat()
