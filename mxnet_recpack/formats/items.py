"""A shard set of any format as :class:`~mxnet_recpack.formats.seams.Items`: its samples by
position, with their keys, sources and fingerprint, for a run that writes them elsewhere
(``recpack convert``). Each format's row opens its shards (``open_input``); this module makes
one sequence of them."""

import os

import numpy as np

from ..errors import RecordFormatError
from ..format.header import RecordPayload
from .sample import payload_of

__all__ = ["ShardItems"]


class ShardItems:
    """The samples of the shard set at ``path`` in format ``fmt`` (a row of the formats table).

    ``options``: the format's reading rules (``label``: the label of samples that have none;
    ``image_column``, ``label_column`` for Parquet). Keys come from the samples (recpack's
    own files keep them) or count on from 0 in shard order (other writers' files); they are
    read once when the items are made, and each sample is checked against its key when it is
    read again.
    """

    #: Reading a sample is positional reads and parsing: threads run it well enough.
    record_item_gil_free = True
    record_item_gil_bound = True

    def __init__(self, fmt, path, options=None):
        self.fmt = fmt
        self.path = os.fspath(path) if isinstance(path, (str, os.PathLike)) else \
            "a %s" % type(path).__name__
        self.options = dict(options or {})
        self.shards = fmt.open_input(path if not isinstance(path, os.PathLike) else self.path,
                                     self.options)
        counts = [len(s) for s in self.shards]
        self._starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        self.record_keys = self._keys()

    def __len__(self):
        return int(self._starts[-1])

    def _where(self, i):
        s = int(np.searchsorted(self._starts, i, side="right")) - 1
        return self.shards[s], int(i - self._starts[s])

    def _keys(self):
        keys = np.empty(len(self), np.uint64)
        for s, shard in enumerate(self.shards):
            base = int(self._starts[s])
            for j in range(len(shard)):
                hint = shard.key_hint(j)
                keys[base + j] = hint if hint is not None else shard.read(j).key
        return keys

    def sample(self, i):
        """The Sample at position ``i`` (checked against the key read when opening)."""
        shard, j = self._where(i)
        sample = shard.read(j)
        if sample.key != int(self.record_keys[i]):
            raise RecordFormatError("sample %d has key %d, but %d when the set was opened: the "
                                    "files changed while they were read" % (
                                        j, sample.key, int(self.record_keys[i])),
                                    path=shard.path)
        return sample

    def record_item(self, i):
        """Item ``i`` as the RecordIO record it came from (header, labels, image bytes)."""
        return RecordPayload(payload_of(self.sample(i)))

    __getitem__ = record_item

    def record_source(self, i):
        shard, j = self._where(i)
        return "%s (sample %d)" % (shard.path, j)

    def input_files(self):
        files = []
        for shard in self.shards:
            if hasattr(shard, "fingerprint"):  # not files: an object in memory
                continue
            if os.path.isdir(shard.path):
                files.extend(os.path.join(shard.path, n) for n in sorted(os.listdir(shard.path)))
            else:
                files.append(shard.path)
        return files

    def fingerprint(self):
        """The files read (path, size, modification time) and the reading rules: a resumed run
        must read the same."""
        files = []
        for f in self.input_files():
            st = os.stat(f)
            files.append([os.path.abspath(f), st.st_size, st.st_mtime_ns])
        rules = {k: (v if isinstance(v, (int, float, str, type(None))) else repr(v))
                 for k, v in sorted(self.options.items())}
        objects = [shard.fingerprint() for shard in self.shards if hasattr(shard, "fingerprint")]
        return {"format": self.fmt.name, "files": files, "rules": rules, "objects": objects}

    def pickle_parts(self):
        return [("the %s shards at %s" % (self.fmt.name, self.path), self.shards)]
