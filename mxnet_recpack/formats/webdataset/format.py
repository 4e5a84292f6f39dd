"""webdataset's row of the formats table: tar shards written by :mod:`.codec`, read back from
a folder of ``.tar`` files, a brace pattern (``train-{000000..000099}.tar``) or one ``.tar``."""

from ..paths import expand_inputs
from ..shards import ShardFormat
from . import codec

__all__ = ["WEBDATASET"]


class _Shard:
    """The samples of one tar, by position (scanned when opened)."""

    def __init__(self, path, first, label):
        self.path, self.first, self.label = path, first, label
        self.locators = codec.scan(path)
        self._keys = None

    def __len__(self):
        return len(self.locators)

    def key_hint(self, j):
        """The key of a sample recpack wrote (its .json has the header fields; the whole
        sample is read later, and checked); other writers' samples take their position, even
        when their names are numbers (img2dataset's 000000005.jpg + .json)."""
        if self._keys is None:  # every .json of the shard through one descriptor
            with open(self.path, "rb") as f:
                metas = [codec.own_metadata(self.path, loc, f.fileno())
                         for loc in self.locators]
            self._keys = [self.first + j if m is None else int(m["key"])
                          for j, m in enumerate(metas)]
        return self._keys[j]

    def read(self, j):
        return codec.read(self.path, self.locators[j], position=self.first + j,
                          label=self.label)


class WebDatasetFormat(ShardFormat):
    name = "webdataset"
    suffix = ".tar"
    default_shard_bytes = 1 << 30

    def encoder(self, options):
        return codec.encode

    def size_of(self, encoded):
        return codec.size_of(encoded)

    def writer(self, path, options):
        return codec.ShardWriter(path)

    def recognise(self, path):
        return expand_inputs(path, (".tar",), probe=True)

    def open_input(self, path, options):
        shards, first = [], 0
        for f in expand_inputs(path, (".tar",)):
            shard = _Shard(f, first, options.get("label"))
            shards.append(shard)
            first += len(shard)
        return shards


WEBDATASET = WebDatasetFormat()
