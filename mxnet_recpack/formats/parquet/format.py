"""Parquet's row of the formats table: files in Hugging Face ``datasets``' image layout
(:mod:`.codec`), read back from one ``.parquet``, a glob or a folder of them (recursively, as a
``datasets`` repository keeps them under ``data/``), or a ``datasets.Dataset`` object."""

from ..paths import expand_inputs
from ..shards import ShardFormat

__all__ = ["PARQUET"]


class _Shard:
    def __init__(self, path, first, options):
        from .reader import ParquetReader
        self.path = path
        self.reader = ParquetReader(path, image_column=options.get("image_column"),
                                    label_column=options.get("label_column"),
                                    default_label=options.get("label"), first_key=first)
        self.locators = self.reader.locators()

    def __len__(self):
        return len(self.locators)

    def key_hint(self, j):
        return None

    def read(self, j):
        return self.reader.read(self.locators[j])


class _DatasetShard:
    """A ``datasets.Dataset`` object as one shard of rows."""

    def __init__(self, dataset, options):
        from .dataset import DatasetReader
        self.path = "the datasets.Dataset"
        self.dataset = dataset
        self.reader = DatasetReader(dataset, image_column=options.get("image_column"),
                                    label_column=options.get("label_column"),
                                    default_label=options.get("label"))

    def __len__(self):
        return len(self.reader)

    def key_hint(self, j):
        return None

    def read(self, j):
        return self.reader.read(j)

    def fingerprint(self):
        return {"dataset": getattr(self.dataset, "_fingerprint", None)}


class ParquetFormat(ShardFormat):
    name = "parquet"
    suffix = ".parquet"
    default_shard_bytes = 500 << 20  # "a few hundred MB" a file
    needs_layout = True

    def folder_name(self, number, total):
        return "train-%05d-of-%05d.parquet" % (number, total)

    def encoder(self, options):
        from .writer import encode
        return encode

    def size_of(self, encoded):
        from .writer import _size
        return _size(encoded)

    def layout(self, samples, options):
        """The columns of the whole set, from every record (see :class:`.layout.LayoutScan`)."""
        from .layout import LayoutScan
        return LayoutScan(label_kind=options.get("label_kind")).add_all(samples).layout()

    def writer(self, path, options):
        from .writer import ShardWriter
        return ShardWriter(path, options["layout"])

    def recognise(self, path):
        return expand_inputs(path, (".parquet",), probe=True, recursive=True)

    def open_input(self, path, options):
        from .dataset import is_hf_dataset
        if is_hf_dataset(path):
            return [_DatasetShard(path, options)]
        shards, first = [], 0
        for f in expand_inputs(path, (".parquet",), recursive=True):
            shard = _Shard(f, first, options)
            shards.append(shard)
            first += len(shard)
        return shards


PARQUET = ParquetFormat()
