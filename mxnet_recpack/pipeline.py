"""Pipeline: drive a Gluon DataLoader whose workers return encoded records, never pixels.

Each worker reads an item, applies the dataset's (lazy) transforms, encodes the image and packs
the record payload, so what crosses the process boundary is a few kilobytes of bytes per item.
The DataLoader hands batches back in sampler order, so the one writer appends records in dataset
order whatever ``num_workers`` is, and the output is byte-identical for any worker count.

An item that raises is not fatal here: it comes back as a failure (index, key, source, reason)
for the writer to count against ``max_failures``.
"""

import logging
import math
import signal
import threading
import traceback

from .errors import ImageEncodeError, OptionError
from .header import pack_record
from .images import encode_image, normalize_encoding

__all__ = ["RecordEncoder", "Failure", "resolve_item_info", "run_loader", "failure_limit"]

log = logging.getLogger(__name__)


class Failure(dict):
    """One item that could not be stored: ``index``, ``key``, ``source``, ``error``, ``message``."""


def _base(dataset, i):
    """Walk through Gluon's lazy wrappers to the dataset that produced item ``i``.

    ``transform``/``transform_first`` keep positions; ``take``/``shard``/``filter``/``sample``
    map them through their index list. Returns ``(innermost dataset, index in it)``.
    """
    for _ in range(64):  # wrappers nest shallowly; the bound only guards against cycles
        inner = getattr(dataset, "_data", None)
        if inner is not None and type(dataset).__name__ == "_LazyTransformDataset":
            dataset = inner
            continue
        indices = getattr(dataset, "_indices", None)
        inner = getattr(dataset, "_dataset", None)
        if inner is not None and indices is not None and type(dataset).__name__ in (
                "_SampledDataset", "_FilteredDataset"):
            i = indices[i]
            dataset = inner
            continue
        break
    return dataset, i


def resolve_item_info(dataset):
    """Return ``key_of(i)`` and ``source_of(i)`` for a dataset (``None`` when it has none).

    A dataset that defines ``record_keys`` (a sequence, one key per item) gives its own keys,
    also through ``transform_first``/``take``/``shard``; ``record_source(i)`` names an item
    (a path) in failure reports.
    """
    n = len(dataset)
    probe_base, _ = _base(dataset, 0) if n else (dataset, 0)
    keys = getattr(probe_base, "record_keys", None)
    source = getattr(probe_base, "record_source", None)

    def key_of(i):
        base, j = _base(dataset, i)
        return int(base.record_keys[j])

    def source_of(i):
        base, j = _base(dataset, i)
        return base.record_source(j)

    return (key_of if keys is not None else None), (source_of if callable(source) else None)


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
    """Picklable worker-side function: dataset position -> (key, record payload | Failure).

    Parameters
    ----------
    dataset : gluon.data.Dataset
    key_of : callable or None
        Position -> record key; ``None`` means ``key_base + position``.
    key_base : int
    source_of : callable or None
    encoding, quality :
        See :func:`~mxnet_recpack.images.encode_image`.
    """

    def __init__(self, dataset, *, key_of=None, key_base=0, source_of=None,
                 encoding=".jpg", quality=95):
        self.dataset = dataset
        self.key_of = key_of
        self.key_base = key_base
        self.source_of = source_of
        self.encoding = normalize_encoding(encoding)
        self.quality = quality
        # Datasets may offer record_item(i): the item as numpy/bytes, skipping NDArray copies.
        self._get = getattr(dataset, "record_item", None) or dataset.__getitem__

    def key(self, i):
        return self.key_of(i) if self.key_of is not None else self.key_base + i

    def __len__(self):
        return len(self.dataset)

    def encode_item(self, item, key):
        image, label = _split_item(item)
        return pack_record(label, key, encode_image(image, self.encoding, self.quality))

    def __getitem__(self, i):
        key = self.key(i)
        try:
            return key, self.encode_item(self._get(i), key)
        except Exception as exc:  # noqa: BLE001 - every item failure is reported, not raised
            source = None
            if self.source_of is not None:
                try:
                    source = self.source_of(i)
                except Exception:  # noqa: BLE001
                    source = None
            log.debug("item %d failed: %s", i, traceback.format_exc())
            return key, Failure(index=int(i), key=int(key), source=source,
                                error=type(exc).__name__, message=str(exc))


def _collect(samples):
    """DataLoader batchify_fn: keep the (key, payload) pairs as they are."""
    return samples


def run_loader(encoder, *, num_workers=0, batch_size=32, thread_pool=False, timeout=600):
    """Yield batches of ``(key, payload | Failure)`` in dataset order through a Gluon DataLoader."""
    if not isinstance(num_workers, int) or num_workers < 0:
        raise OptionError("num_workers must be an integer >= 0, got %r" % (num_workers,))
    if not isinstance(batch_size, int) or batch_size < 1:
        raise OptionError("batch_size must be an integer >= 1, got %r" % (batch_size,))
    if len(encoder) == 0:
        return
    from mxnet.gluon.data import DataLoader

    # Forked workers get the default SIGTERM action, not the CLI's handler: Pool.terminate()
    # must simply end them.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL) if main else None
    try:
        loader = DataLoader(encoder, batch_size=batch_size, shuffle=False, last_batch="keep",
                            batchify_fn=_collect, num_workers=num_workers,
                            thread_pool=thread_pool, timeout=timeout)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    try:
        for batch in loader:
            yield batch
    finally:
        pool = getattr(loader, "_worker_pool", None)
        if pool is not None:
            pool.terminate()
            pool.join()
            loader._worker_pool = None


def failure_limit(max_failures, total):
    """How many failures are tolerated: ``None`` = no limit; ``< 1`` = a fraction of ``total``."""
    if max_failures is None:
        return None
    if isinstance(max_failures, bool) or not isinstance(max_failures, (int, float)) or (
            max_failures < 0 or math.isnan(max_failures)):
        raise OptionError("max_failures must be None (no limit), a count >= 1, or a fraction in "
                          "[0, 1) of the dataset; got %r" % (max_failures,))
    if max_failures < 1:
        return int(math.floor(max_failures * total))
    return int(max_failures)
