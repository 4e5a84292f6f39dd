"""``RecordLoader``: batches of a record dataset for training, decoded by worker processes
straight into a ring of shared batch buffers (see the package docstring)."""

from __future__ import annotations

import os
import weakref

import numpy as np

from ..errors import OptionError, TransformError, WorkerError
from .outputs import converter
from .plan import EpochPlan
from .pool import Pool
from .worker import (ItemFailed, copy_into, describe, fetch, fits, set_epoch,
                     stack_labels)

__all__ = ["RecordLoader"]


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class RecordLoader:
    """Batches ``(images, labels)`` of ``dataset`` (a :class:`~mxnet_recpack.RecordDataset`,
    a path to make one, or any map-style dataset of ``(image, label)``).

    Parameters
    ----------
    batch_size : int
    shuffle, seed : bool, int
        Shuffle each epoch's order, from ``seed`` and the epoch number (the same on every rank).
    num_workers : int, optional
        Worker processes (default: one per core); 0 reads in this process.
    drop_last : bool
        Drop the last, shorter batch; with ``world_size > 1`` also cut the positions to a
        multiple of the ranks instead of padding (``DistributedSampler``'s two choices).
    output : {'numpy', 'torch', 'mxnet'}
        What ``images`` and ``labels`` are: numpy arrays, torch tensors (sharing the memory),
        or MXNet NDArrays (copies).
    prefetch : int, optional
        Batches read ahead (default: two per worker). The ring holds ``prefetch + 2`` batches.
    rank, world_size : int
        This process's share of each epoch, for distributed training.
    copy : bool
        Give each batch its own memory instead of a view of the ring.
    timeout : float
        Seconds a worker may hold a batch before it is taken to be stuck.
    start_method : str or multiprocessing context, optional
        'fork', 'spawn' or 'forkserver' (default: multiprocessing's default).

    When every item of a batch is an array of the shape and dtype of the epoch's first item
    (a fixed-size transform: ``RecordDataset(..., size=(w, h))``), ``images`` is one
    contiguous N x H x W x C array over the ring; otherwise a list of the items' images.
    ``labels`` is a float32 array (N, or N x L for vectors), or a list when they differ.
    **A batch over the ring stays valid until the second batch after it is taken**: the
    batch you hold and the one before it are never overwritten. Pass ``copy=True`` (or copy
    what you keep) to hold batches longer. ``len(loader)`` is the number of batches of an
    epoch on this rank. Each ``iter(loader)`` is the next epoch; :meth:`set_epoch` chooses.
    """

    def __init__(self, dataset, batch_size, *, shuffle=False, seed=0, num_workers=None,
                 drop_last=False, output="numpy", prefetch=None, rank=0, world_size=1,
                 copy=False, timeout=120.0, start_method=None):
        if isinstance(dataset, (str, os.PathLike)):
            from ..reader import RecordDataset
            dataset = RecordDataset(dataset)
        self.dataset = dataset
        self.plan = EpochPlan(len(dataset), batch_size, shuffle=shuffle, seed=seed, rank=rank,
                              world_size=world_size, drop_last=drop_last)
        self.batch_size = self.plan.batch_size
        self.num_workers = _cores() if num_workers is None else num_workers
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or \
                self.num_workers < 0:
            raise OptionError("num_workers = %r is not valid; expected an integer >= 0"
                              % (num_workers,))
        self.prefetch = 2 * max(self.num_workers, 1) if prefetch is None else prefetch
        if isinstance(self.prefetch, bool) or not isinstance(self.prefetch, int) or \
                self.prefetch < 1:
            raise OptionError("prefetch = %r is not valid; expected an integer >= 1"
                              % (prefetch,))
        self.output = output
        self._convert = converter(output)
        self.copy = bool(copy)
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise OptionError("timeout = %r is not valid; expected seconds > 0" % (timeout,))
        self.timeout = float(timeout)
        self.start_method = start_method
        self.epoch = 0
        self._pool = None
        self._item = None
        self._finalizer = None

    def __len__(self):
        return len(self.plan)

    def set_epoch(self, epoch):
        """Make the next iteration epoch ``epoch`` (its order, on every rank alike)."""
        self.epoch = int(epoch)

    @property
    def slots(self):
        return self.prefetch + 2

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        batches = self.plan.batches(epoch)
        if not batches:
            return iter(())
        if self.num_workers == 0:
            return self._serial(batches, epoch)
        return self._parallel(batches, epoch)

    # -- reading --------------------------------------------------------------------------
    def _probe(self, position):
        """The shape and dtype every item is expected to have: those of the first item."""
        if self._item is None:
            try:
                image = self.dataset[int(position)][0]
            except Exception as exc:  # noqa: BLE001 - named, as a worker would name it
                raise TransformError("the loader failed on %s"
                                     % describe(self.dataset, int(position), exc)) from exc
            self._item = (tuple(image.shape), image.dtype) if isinstance(image, np.ndarray) \
                else False
        return self._item or None

    def _parallel(self, batches, epoch):
        pool = self._start(batches[0][0])
        try:
            pool.new_generation()
            arrived, sent = {}, 0
            for t in range(len(batches)):
                while sent < len(batches) and sent <= t + self.prefetch:
                    pool.submit(sent, sent % self.slots, batches[sent], epoch)
                    sent += 1
                message = pool.wait_for(t, arrived)
                _, _, _, _, slot, count, labels, images = message
                if images is None:
                    images = pool.view(slot, count)
                    if self.copy:
                        images = images.copy()
                yield self._convert(images, labels)
        except (WorkerError, TransformError):
            self.close()  # a broken pool: the next epoch starts new workers
            raise

    def _start(self, first):
        if self._pool is None:
            item = self._probe(first)
            self._pool = Pool(self.dataset, self.num_workers, slots=self.slots,
                              batch_size=self.batch_size, item=item,
                              context=self.start_method, timeout=self.timeout)
            self._finalizer = weakref.finalize(self, self._pool.close)
        return self._pool

    def _serial(self, batches, epoch):
        set_epoch(self.dataset, epoch)
        item = self._probe(batches[0][0])
        ring = None
        if item is not None:
            ring = [np.empty((self.batch_size,) + item[0], item[1]) for _ in range(self.slots)]
        for t, positions in enumerate(batches):
            try:
                images, labels = fetch(self.dataset, positions)
            except ItemFailed as failed:
                raise TransformError("the loader failed on %s" % describe(
                    self.dataset, failed.position, failed.exc)) from failed.exc
            if ring is not None and fits(item, images):
                out = copy_into(ring[t % self.slots][:len(images)], images)
                images = out.copy() if self.copy else out
            yield self._convert(images, stack_labels(labels))

    # -- ending ---------------------------------------------------------------------------
    def close(self):
        """Stop the workers and free the ring (batches already taken stay valid)."""
        if self._finalizer is not None:
            self._finalizer()
        self._pool = self._finalizer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
