"""Pipeline: drive a Gluon DataLoader whose workers return encoded records, never pixels.

Each worker reads an item, applies the dataset's (lazy) transforms, encodes the image and packs
the record payload, so what crosses the process boundary is a few kilobytes of bytes per item.
The DataLoader hands batches back in sampler order, so the one writer appends records in dataset
order whatever ``num_workers`` is, and the output is byte-identical for any worker count.

An item that raises is not fatal here: it comes back as a failure (index, key, source, reason)
for the writer to count against ``max_failures``.
"""

import collections
import logging
import math
import multiprocessing
import os
import signal
import sys
import threading
import traceback

from . import fastpath
from .errors import ImageEncodeError, OptionError
from .fastpath import fast_item_getter
from .header import record_head
from .images import encode_image_buffer, normalize_encoding
from .recordio import frame_buffers

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
    """Picklable worker-side function: dataset position -> (key, framed record | Failure).

    Parameters
    ----------
    dataset : gluon.data.Dataset
    keys : numpy.ndarray or None
        The record key of every dataset position (computed once, by the writer);
        ``None`` means ``key_base + position``.
    key_base : int
    source_of : callable or None
    encoding, quality :
        See :func:`~mxnet_recpack.images.encode_image`.
    """

    def __init__(self, dataset, *, keys=None, key_base=0, source_of=None,
                 encoding=".jpg", quality=95):
        self.dataset = dataset
        self.keys = keys
        self.key_base = key_base
        self.source_of = source_of
        self.encoding = normalize_encoding(encoding)
        self.quality = quality
        # Fastest first: Gluon transforms compiled to OpenCV; a dataset's record_item(i) (numpy
        # or bytes, no NDArray); the plain __getitem__.
        self._get = (fast_item_getter(dataset) if fastpath.enabled else None) or \
            getattr(dataset, "record_item", None)
        #: Items come from OpenCV/numpy code that releases the GIL (so threads can run them
        #: in parallel without any inter-process copying), not from arbitrary Python code.
        self.gil_free = self._get is not None
        if self._get is None:
            self._get = dataset.__getitem__

    def key(self, i):
        return int(self.keys[i]) if self.keys is not None else self.key_base + i

    def __len__(self):
        return len(self.dataset)

    def encode_item(self, item, key):
        """The item's record, framed, as a tuple of buffers the writer appends with writev."""
        image, label = _split_item(item)
        return frame_buffers(record_head(label, key),
                             encode_image_buffer(image, self.encoding, self.quality))

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


_POOL_ENCODER = None


def _pool_init():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle


def _pool_batch(positions):
    return [_POOL_ENCODER[i] for i in positions]


def _is_gluon(dataset):
    gluon_data = sys.modules.get("mxnet.gluon.data")
    return gluon_data is not None and isinstance(dataset, gluon_data.Dataset)


def _batches(n, batch_size):
    return [range(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]


def _run_pool(encoder, num_workers, batch_size, thread_pool):
    """Batches from a plain process (or thread) pool: the mxnet-free path, in order, with at
    most ``2 * num_workers`` batches in flight."""
    global _POOL_ENCODER
    batches = _batches(len(encoder), batch_size)
    if num_workers == 0:
        for batch in batches:
            yield [encoder[i] for i in batch]
        return
    if thread_pool:
        yield from _run_threads(encoder, num_workers, batches)
        return
    _POOL_ENCODER = encoder  # inherited by the forked workers
    with _forking():
        pool = multiprocessing.get_context("fork").Pool(num_workers, initializer=_pool_init)
    try:
        pending = collections.deque()
        todo = iter(batches)
        for batch in todo:
            pending.append(pool.apply_async(_pool_batch, (batch,)))
            if len(pending) >= 2 * num_workers:
                break
        while pending:
            result = pending.popleft().get()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.apply_async(_pool_batch, (nxt,)))
            yield result
    finally:
        pool.terminate()
        pool.join()
        _POOL_ENCODER = None


def _run_threads(encoder, num_workers, batches):
    """Batches from ``num_workers`` plain threads, in order.

    Worker w makes batches w, w + n, w + 2n, ... and may run at most ``2 * n`` batches ahead
    of the consumer, a bound that can never block the batch the consumer waits for. No pool
    machinery: its handler threads cost measurable GIL time per task.
    """
    results = [None] * len(batches)
    ready = [threading.Event() for _ in batches]
    state = {"consumed": 0, "stop": False}
    cond = threading.Condition()
    ahead = 2 * num_workers

    def work(w):
        for b in range(w, len(batches), num_workers):
            with cond:
                while not state["stop"] and b - state["consumed"] >= ahead:
                    cond.wait()
                if state["stop"]:
                    return
            try:
                results[b] = [encoder[i] for i in batches[b]]
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
                results[b] = exc
            ready[b].set()

    threads = [threading.Thread(target=work, args=(w,), name="recpack-worker-%d" % w,
                                daemon=True) for w in range(num_workers)]
    for t in threads:
        t.start()
    try:
        for b in range(len(batches)):
            ready[b].wait()
            result, results[b] = results[b], None
            with cond:
                state["consumed"] = b + 1
                cond.notify_all()
            if isinstance(result, BaseException):
                raise result
            yield result
    finally:
        with cond:
            state["stop"] = True
            cond.notify_all()
        for t in threads:
            t.join()


class _forking:
    """The state worker processes are forked in.

    * The default SIGTERM action, not the CLI's handler: terminating a pool must simply end
      its workers.
    * One OpenCV thread: the workers are the parallelism. It must be set here, before the
      fork: ``cv2.setNumThreads`` in a child deadlocks when the parent's OpenCV thread pool
      was running. Children that import OpenCV later read ``OPENCV_FOR_THREADS_NUM``.
    """

    def __enter__(self):
        self.main = threading.current_thread() is threading.main_thread()
        self.previous = signal.signal(signal.SIGTERM, signal.SIG_DFL) if self.main else None
        self.cv2 = sys.modules.get("cv2")
        self.threads = self.cv2.getNumThreads() if self.cv2 is not None else None
        if self.cv2 is not None:
            self.cv2.setNumThreads(1)
        self.env = os.environ.get("OPENCV_FOR_THREADS_NUM")
        os.environ["OPENCV_FOR_THREADS_NUM"] = "1"

    def __exit__(self, *exc):
        if self.main:
            signal.signal(signal.SIGTERM, self.previous)
        if self.cv2 is not None:
            self.cv2.setNumThreads(self.threads)
        if self.env is None:
            os.environ.pop("OPENCV_FOR_THREADS_NUM", None)
        else:
            os.environ["OPENCV_FOR_THREADS_NUM"] = self.env


def run_loader(encoder, *, num_workers=0, batch_size=32, thread_pool=None, timeout=600):
    """Yield batches of ``(key, payload | Failure)`` in dataset order.

    A Gluon ``Dataset`` goes through a ``gluon.data.DataLoader``; a plain source (the
    mxnet-free :class:`~mxnet_recpack.sources.ImageList` of ``recpack im2rec``) through a plain
    pool, so that path never imports mxnet.

    ``thread_pool=None`` chooses: threads when every item is made by OpenCV/numpy code (it
    releases the GIL, and threads need no copying between processes: measurably faster),
    processes when dataset or Gluon code has to run for each item.
    """
    if thread_pool is None:
        thread_pool = getattr(encoder, "gil_free", False)
    if not isinstance(num_workers, int) or num_workers < 0:
        raise OptionError("num_workers must be an integer >= 0, got %r" % (num_workers,))
    if not isinstance(batch_size, int) or batch_size < 1:
        raise OptionError("batch_size must be an integer >= 1, got %r" % (batch_size,))
    if len(encoder) == 0:
        return
    if not _is_gluon(encoder.dataset):
        yield from _run_pool(encoder, num_workers, batch_size, thread_pool)
        return
    from mxnet.gluon.data import DataLoader

    with _forking():
        loader = DataLoader(encoder, batch_size=batch_size, shuffle=False, last_batch="keep",
                            batchify_fn=_collect, num_workers=num_workers,
                            thread_pool=thread_pool, timeout=timeout)
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
