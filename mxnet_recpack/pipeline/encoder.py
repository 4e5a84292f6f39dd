"""The worker-side function: a dataset position in, a framed record (or a failure) out.

Each worker reads an item, applies the dataset's transforms, encodes the image and frames the
record, so what crosses the process boundary is a few kilobytes of bytes per item, never pixels.
An item that raises is not fatal here: it comes back as a :class:`Failure` for the writer to
count against ``max_failures``; except when the storage it is read from stopped answering
(:class:`~mxnet_recpack.errors.StorageUnreachableError`): that is the network, not the item, and
stops the run.
"""

import logging
import traceback

from ..errors import ImageEncodeError, StorageUnreachableError
from ..format.batch import BufferPool, FrameBatch
from ..format.checksums import crc32c_of_buffers
from ..format.framing import FramedRecord, frame_buffers
from ..format.header import RecordPayload, record_head, unpack_record
from .items import as_items
from .failures import error_kind

__all__ = ["RecordEncoder", "Subset", "Failure", "BATCH_BYTES"]

#: Bytes of files a pass-through batch holds at most (about): read, then written by the writer
#: while still in the CPU's cache. Measured on 2 cores with 1 MiB of L2 each, 20,000 files of
#: 95 KB, medians: batches of 8 files (760 KB) 1.4 s, of 11 (1 MB) 2.3 s, of 16 2.9 s, of 32
#: (3 MB) 5.5 s; 43 KB files 0.80 s in batches of 24 or 32, 0.87 s in batches of 16.
BATCH_BYTES = 768 << 10

log = logging.getLogger(__name__)


class Failure(dict):
    """One item that could not be stored: ``index``, ``key``, ``source``, ``error`` (the
    exception's class name), ``message``, and ``kind``: ``"data"`` for bad or unreachable
    input, ``"code"`` for the dataset's or transform's code failing."""


def _split_item(item):
    if isinstance(item, (tuple, list)):
        if len(item) == 2:
            return item[0], item[1]
        if len(item) == 1:
            return item[0], 0.0
        raise ImageEncodeError(
            "dataset items have %d elements; expected (image, label). Map them first, e.g. "
            "dataset.transform(lambda img, label, *rest: (img, label))" % len(item))
    return item, 0.0


class RecordEncoder:
    """Picklable worker-side function: dataset position -> (key, framed record | Failure).

    Parameters
    ----------
    dataset : sequence of (image, label)
        Any sized, indexable dataset (a Gluon ``Dataset``, an ``ImageList``, a list).
    keys : numpy.ndarray or None
        The record key of every dataset position (computed once, by the writer);
        ``None`` means ``key_base + position``.
    key_base : int
    source_of : callable or None
    encoder : ImageEncoder
        How images are stored (encoding and quality, resolved once).
    label_check : callable, optional
        Raises for a label that must not be stored (detection labels that break their layout).
    """

    def __init__(self, dataset, *, keys=None, key_base=0, source_of=None, encoder,
                 label_check=None):
        self.dataset = dataset
        self.keys = keys
        self.key_base = key_base
        self.source_of = source_of
        self.encode_image = encoder
        self.label_check = label_check
        items = as_items(dataset)
        self._get = items.get
        #: Items come from OpenCV/numpy code that releases the GIL (so threads can run them
        #: in parallel without any inter-process copying), not from arbitrary Python code.
        self.gil_free = items.gil_free
        #: Items are stored bytes copied by Python code: threads are capped at one a core.
        self.gil_bound = items.gil_bound
        self._into, self._label_of = items.bytes_into, items.label_of
        self._nbytes = items.nbytes_of
        self._capacity = 1 << 20  # bytes a batch of records took last (a FrameBatch's start)
        self._buffers = BufferPool()

    def key(self, i):
        return int(self.keys[i]) if self.keys is not None else self.key_base + i

    def describe(self, i):
        """``'key K, SOURCE'`` of position ``i``, for messages."""
        text = "key %d" % self.key(i)
        if self.source_of is not None:
            try:
                text += ", %s" % self.source_of(i)
            except Exception:  # noqa: BLE001 - a message must not fail
                pass
        return text

    def __len__(self):
        return len(self.dataset)

    def encode_item(self, item, key):
        """The item's record, framed, as a tuple of buffers the writer appends with writev,
        and the CRC32C of those bytes (for the checksum sidecar)."""
        if isinstance(item, FramedRecord):  # a record's stored frames: appended as they are
            if self.label_check is not None:
                self.label_check(unpack_record(item.payload())[0].label)
            return item.buffers, crc32c_of_buffers(item.buffers)
        if isinstance(item, RecordPayload):  # a whole record, stored as it is
            if self.label_check is not None:
                self.label_check(unpack_record(item)[0].label)
            frames = frame_buffers(b"", item)
            return frames, crc32c_of_buffers(frames)
        image, label = _split_item(item)
        if self.label_check is not None:
            self.label_check(label)
        frames = frame_buffers(record_head(label, key), self.encode_image(image))
        return frames, crc32c_of_buffers(frames)

    def __getitem__(self, i):
        """``(key, frames, crc)``, or ``(key, Failure)`` when the item cannot be stored."""
        key = self.key(i)
        try:
            return (key,) + self.encode_item(self._get(i), key)
        except StorageUnreachableError:
            raise
        except Exception as exc:  # noqa: BLE001 - every item failure is reported, not raised
            return key, self._failure(i, key, exc)

    def batch_size(self, requested):
        """Items per batch: ``requested``, or fewer for files' bytes large enough that
        ``requested`` of them pass :data:`BATCH_BYTES` (their sizes sampled at 16 places), so
        a batch is still in the CPU's cache when the writer copies it out."""
        if self._nbytes is None or not len(self):
            return requested
        n = len(self)
        sizes = [self._nbytes(i) for i in sorted({k * (n - 1) // 15 for k in range(16)})]
        sizes = sorted(s for s in sizes if s)
        if not sizes:
            return requested
        return max(1, min(requested, BATCH_BYTES // max(1, sizes[len(sizes) // 2])))

    def encode_batch(self, positions):
        """``[self[i] for i in positions]``, the same records. Items that are files' bytes
        (pass-through) are read straight into one :class:`~mxnet_recpack.format.batch.FrameBatch`
        behind their headers: one buffer for the batch, no object per record."""
        if self._into is None:
            return [self[i] for i in positions]
        batch, out = FrameBatch(self._buffers.take(self._capacity)), []
        for i in positions:
            key = self.key(i)
            try:
                label = self._label_of(i)
                head = record_head(label, key)
            except Exception:  # noqa: BLE001 - the item's own path reports it, in its order
                out.append(self[i])
                continue
            at = batch.begin(head)
            try:
                n = self._into(i, batch.buffer, at)
                if self.label_check is not None:
                    self.label_check(label)
                batch.end(n)
            except StorageUnreachableError:
                raise
            except Exception as exc:  # noqa: BLE001 - every item failure is reported
                batch.drop()
                out.append((key, self._failure(i, key, exc)))
                continue
            out.append((key, None))
        self._capacity = batch.nbytes + batch.nbytes // 4
        sealed = iter(batch.records())
        return [(r[0],) + next(sealed) if r[1] is None else r for r in out]

    def _failure(self, i, key, exc):
        source = None
        if self.source_of is not None:
            try:
                source = self.source_of(i)
            except Exception:  # noqa: BLE001
                source = None
        log.debug("item %d failed: %s", i, traceback.format_exc())
        return Failure(index=int(i), key=int(key), source=source, error=type(exc).__name__,
                       message=str(exc), kind=error_kind(exc))


class Subset:
    """The encoder's items at ``order`` (one part; what a resumed run still has to do)."""

    def __init__(self, encoder, order):
        self.encoder = encoder
        self.dataset = encoder.dataset
        self.gil_free = encoder.gil_free
        self.gil_bound = encoder.gil_bound
        self.order = order

    def __len__(self):
        return len(self.order)

    def key(self, i):
        return self.encoder.key(int(self.order[i]))

    def describe(self, i):
        return self.encoder.describe(int(self.order[i]))

    def __getitem__(self, i):
        return self.encoder[int(self.order[i])]

    def encode_batch(self, positions):
        return self.encoder.encode_batch([int(self.order[i]) for i in positions])

    def batch_size(self, requested):
        return self.encoder.batch_size(requested)
