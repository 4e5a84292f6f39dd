"""A ``datasets.Dataset`` (Hugging Face) as input: its rows as Samples, by position.

The same rules as a Parquet file (:mod:`.columns`): the images are read as stored (the Image
column's ``bytes``, or the file at its ``path``, relative to the working directory), never
decoded; the Dataset's own order (after ``shuffle``/``select``) is the order of the records.
``datasets`` itself is not imported here: any object with its ``features``,
``with_format("arrow")`` and slicing works.
"""

import os
import threading

from ...errors import OptionError
from .columns import resolve, samples_of

__all__ = ["DatasetReader", "is_hf_dataset"]

_CHUNK = 100


def is_hf_dataset(obj):
    """True for a ``datasets.Dataset`` (checked without importing ``datasets``)."""
    return type(obj).__module__.startswith("datasets.") and hasattr(obj, "with_format") \
        and hasattr(obj, "features")


class DatasetReader:
    """The rows of a ``datasets.Dataset`` as Samples.

    Parameters
    ----------
    dataset : datasets.Dataset
    image_column, label_column, key_column, default_label, first_key
        As for :class:`~mxnet_recpack.formats.parquet.reader.ParquetReader`.

    ``locators()`` are row positions ``0..len-1``; ``read(i)`` is row ``i``'s Sample.
    """

    def __init__(self, dataset, *, image_column=None, label_column=None, key_column="key",
                 default_label=None, first_key=0):
        if not is_hf_dataset(dataset):
            raise OptionError("expected a datasets.Dataset, got %s (an IterableDataset or a "
                              "DatasetDict: pick a split, or materialize it first)"
                              % type(dataset).__name__)
        self.dataset = dataset.with_format("arrow")
        self.first_key = int(first_key)
        schema = dataset.features.arrow_schema
        self.columns = resolve(schema, image_column=image_column, label_column=label_column,
                               key_column=key_column, default_label=default_label,
                               where="the datasets.Dataset")
        self.base_dir = os.getcwd()
        self._local = threading.local()

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_local"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    def __len__(self):
        return len(self.dataset)

    def locators(self):
        return list(range(len(self.dataset)))

    def _chunk(self, start):
        cached = getattr(self._local, "cached", None)
        if cached is not None and cached[0] == start:
            return cached[1]
        table = self.dataset[start:start + _CHUNK]
        samples = samples_of(table, self.columns, start=start, first_key=self.first_key,
                             base_dir=self.base_dir, where="the datasets.Dataset")
        self._local.cached = (start, samples)
        return samples

    def read(self, index):
        """Row ``index``'s Sample (rows are read, and kept, ``100`` at a time)."""
        index = int(index)
        if not 0 <= index < len(self.dataset):
            raise IndexError("the Dataset has %d rows, not %d" % (len(self.dataset), index + 1))
        start = index - index % _CHUNK
        return self._chunk(start)[index - start]

    def __iter__(self):
        for start in range(0, len(self.dataset), _CHUNK):
            yield from self._chunk(start)
