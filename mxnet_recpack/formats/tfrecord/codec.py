"""The TFRecord codec: ``tf.train.Example`` records in TensorFlow's ImageNet convention, with
every RecordIO field beside them (the mapping: :mod:`.fields`), and the index file NVIDIA
DALI's ``fn.readers.tfrecord`` needs.

- :func:`encode` (in workers): a :class:`~..sample.Sample` -> its framed record (bytes).
- :class:`ShardWriter` (in the writer): appends framed records to one file; ``close()``
  fsyncs it and returns a summary (JSON data) from which :func:`index_file` makes the bytes
  of its index (the runner names, journals and commits both).
- :func:`scan`, :func:`read`, :class:`ShardReader`, :func:`check`: reading.

No TensorFlow and no ``protobuf``: the framing (:mod:`.framing`) and the protobuf wire format
(:mod:`.example`) are done here. Standard library, numpy and ``google-crc32c``.
"""

import os

from ..writing import write_all
from .example import encode_example
from .fields import features_of
from .framing import frame_chunks, index_bytes, scan_file
from .reader import ShardReader, check, read, scan

__all__ = ["SUFFIX", "INDEX_SUFFIX", "encode", "ShardWriter", "index_file", "index_path_of",
           "index_of", "scan", "read", "check", "ShardReader"]

SUFFIX = ".tfrecord"
#: What the ``tfrecord`` package's ``tfrecord2idx DIR`` names an index (DALI has no name of
#: its own; ``.idx`` would be mistaken for a RecordIO index).
INDEX_SUFFIX = ".tfindex"


def encode(sample):
    """The framed TFRecord record holding ``sample`` (deterministic bytes)."""
    return frame_chunks(encode_example(features_of(sample)))


class ShardWriter:
    """Writes one TFRecord file at ``path`` (the caller chooses the name, and renames it).

    ``append(records)`` writes framed records from :func:`encode`, in order; ``count`` and
    ``nbytes`` say how many and how much so far; ``close()`` flushes, fsyncs and returns the
    summary ``{"records": n, "bytes": size, "sizes": [each framed record's size]}``.
    Memory: the sizes, 8 bytes a record.
    """

    def __init__(self, path):
        self.path = str(path)
        self._file = open(self.path, "wb", buffering=0)
        self._sizes = []
        self.nbytes = 0

    @property
    def count(self):
        return len(self._sizes)

    def append(self, records):
        self.nbytes += write_all(self._file.fileno(), records)  # a batch in one writev
        self._sizes.extend(len(r) for r in records)

    def close(self):
        """Finish the file (flush, fsync, close); the summary for :func:`index_file`."""
        if self._file is not None:
            f, self._file = self._file, None
            try:
                f.flush()
                os.fsync(f.fileno())
            finally:
                f.close()
        return {"records": self.count, "bytes": self.nbytes, "sizes": list(self._sizes)}

    def abort(self):
        """Close without finishing (after a failure; the caller removes the file)."""
        if self._file is not None:
            f, self._file = self._file, None
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is None:
            self.close()
        else:
            self.abort()


def index_file(summary):
    """The bytes of the DALI index of a shard, from its :meth:`ShardWriter.close` summary:
    ``"<offset> <size>\\n"`` per record (DALI's ``tfrecord2idx`` format)."""
    return index_bytes(summary["sizes"])


def index_of(path):
    """The bytes of the DALI index of an existing TFRecord file (what ``tfrecord2idx``
    writes, after checking each record's length CRC)."""
    return index_bytes([16 + loc.length for loc in scan_file(str(path))])


def index_path_of(path):
    """Where a shard's index goes by default: ``x.tfrecord`` -> ``x.tfindex``."""
    path = str(path)
    base = path[:-len(SUFFIX)] if path.endswith(SUFFIX) else path
    return base + INDEX_SUFFIX
