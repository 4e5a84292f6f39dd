"""The keys of one output: every key written so far (a compact array), the next free key, and
the checks that keep them unique (a repeated key is refused by the write that repeats it)."""

from array import array

import numpy as np

from ..errors import DuplicateKeyError

__all__ = ["KeyLedger"]


class KeyLedger:
    """Keys of the records in an output, in file order.

    Parameters
    ----------
    path : str
        The output (for messages).
    existing : numpy.ndarray of uint64
        Keys already in the file (an append's existing records, a resumed run's).
    """

    def __init__(self, path, existing=()):
        self.path = path
        self._keys = array("Q")
        self._keys.frombytes(np.ascontiguousarray(existing, dtype=np.uint64).tobytes())
        self._seen = None  # a set, made on the first single write (datasets are checked whole)
        self.next_key = (max(self._keys) + 1) if len(self._keys) else 0

    def __len__(self):
        return len(self._keys)

    def array(self):
        """Every key, in file order (a uint64 view, not a copy)."""
        return np.frombuffer(self._keys, dtype=np.uint64) if len(self._keys) else \
            np.zeros(0, np.uint64)

    @property
    def last(self):
        return self._keys[-1]

    def check_one(self, key):
        """Refuse a single record's key that the output already has."""
        if self._seen is None:
            self._seen = set(self._keys)
        if key in self._seen:
            raise DuplicateKeyError("%s: key %d is already in this file; record keys must be "
                                    "unique (nothing was written for it)" % (self.path, key))

    def add(self, key):
        """Record ``key`` (already checked, by :meth:`check_one` or :meth:`check_new`)."""
        self._keys.append(key)
        if self._seen is not None:
            self._seen.add(key)
        if key >= self.next_key:
            self.next_key = key + 1

    def extend(self, keys):
        """Record ``keys`` (a sequence of ints, each already checked), in file order."""
        if self._seen is not None:
            for key in keys:
                self.add(key)
            return
        if keys:
            self._keys.extend(keys)
            self.next_key = max(self.next_key, max(keys) + 1)

    def check_new(self, keys):
        """Refuse a dataset's keys (a uint64 array) that repeat, or that the output has."""
        uniq, counts = np.unique(keys, return_counts=True)
        if len(uniq) != len(keys):
            dup = uniq[counts > 1][:5]
            raise DuplicateKeyError("%s: the dataset repeats record keys %s; keys must be "
                                    "unique" % (self.path, ", ".join(str(int(k)) for k in dup)))
        if len(self._keys):
            clash = np.intersect1d(uniq, np.frombuffer(self._keys, dtype=np.uint64))
            if len(clash):
                raise DuplicateKeyError(
                    "%s: keys %s are already in this file; keys must be unique (to add to a "
                    "file, list only new images, with new indices)"
                    % (self.path, ", ".join(str(int(k)) for k in clash[:5])))
