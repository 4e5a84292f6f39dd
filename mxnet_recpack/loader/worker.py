"""A loader worker: takes batches of positions, reads and decodes their items with the
dataset's own ``__getitem__`` (its transforms included), and puts each batch into its slot of
the shared ring; only the labels (and, when the items' shapes differ, the images) travel back
through the result queue.

Messages to the training process: ``("ready", worker, pid)`` once the ring is mapped;
``("batch", generation, batch, worker, slot, count, labels, images)`` with ``images`` None when
they are in the slot; ``("error", generation, batch, worker, message)`` when an item failed.
"""

import os
import signal

import numpy as np

from .ring import attach, slot_view

__all__ = ["work", "fetch", "describe", "stack_labels", "fill", "fits", "copy_into",
           "set_epoch", "ItemFailed"]


def describe(dataset, position, exc):
    """What failed, naming the record (file, byte offset, key) where the dataset knows it."""
    where = "position %d" % position
    records = getattr(dataset, "records", None)
    try:
        path, offset = records.where(position)
        where = "%s, byte offset %d (key %d, position %d)" % (
            path, offset, int(records.keys[position]), position)
    except Exception:  # noqa: BLE001 - not a RecordDataset: the position is all there is
        pass
    return "%s: %s: %s" % (where, type(exc).__name__, exc)


def fetch(dataset, positions):
    """The ``(images, labels)`` of ``positions``; :class:`ItemFailed` (the position and the
    exception) when an item fails."""
    getitems = getattr(dataset, "__getitems__", None)
    if getitems is not None:  # one pass over the batch (at a URL: coalesced requests)
        try:
            items = getitems([int(p) for p in positions])
            return [im for im, _ in items], [label for _, label in items]
        except Exception:  # noqa: BLE001 - item by item below, to name the one that fails
            pass
    images, labels = [], []
    for p in positions:
        try:
            image, label = dataset[int(p)]
        except Exception as exc:  # noqa: BLE001 - any item's failure ends the batch, named
            raise ItemFailed(int(p), exc) from exc
        images.append(image)
        labels.append(label)
    return images, labels


class ItemFailed(Exception):
    """An item's ``dataset[i]`` raised."""

    def __init__(self, position, exc):
        super().__init__(position, exc)
        self.position, self.exc = position, exc


def set_epoch(dataset, epoch):
    """Tell a dataset with epoch-dependent items (``RecordDataset``'s seeded crops) the epoch."""
    setter = getattr(dataset, "set_epoch", None)
    if callable(setter):
        setter(epoch)


def stack_labels(labels):
    """One float32 array (N, or N x L for vectors of one length), else the list."""
    try:
        out = np.asarray(labels, dtype=np.float32)
    except (ValueError, TypeError):
        return list(labels)
    return out if out.ndim in (1, 2) else list(labels)


def fill(mapping, slot, slot_bytes, item, images):
    """Copy ``images`` into the ring's ``slot`` when every one is an array of the ring's item
    shape and dtype; False (nothing copied) otherwise."""
    if mapping is None or not fits(item, images):
        return False
    copy_into(slot_view(mapping, slot, slot_bytes, (len(images),) + item[0], item[1]), images)
    return True


def fits(item, images):
    """Every image is an array of the ring's item ``(shape, dtype)``."""
    return item is not None and all(isinstance(im, np.ndarray) and im.shape == item[0] and
                                    im.dtype == item[1] for im in images)


def copy_into(out, images):
    for j, image in enumerate(images):
        out[j] = image
    return out


def work(worker, dataset, ring_path, ring_bytes, slot_bytes, item, tasks, results):
    """The worker process's loop, until a ``None`` task."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the training process
    mapping = attach(ring_path, ring_bytes) if ring_path else None
    results.put(("ready", worker, os.getpid()))
    epoch = None
    while True:
        task = tasks.get()
        if task is None:
            break
        generation, batch, slot, positions, task_epoch = task
        if task_epoch != epoch:  # the dataset's random crops and flips follow the epoch
            epoch = task_epoch
            set_epoch(dataset, epoch)
        try:
            images, labels = fetch(dataset, positions)
        except ItemFailed as failed:
            results.put(("error", generation, batch, worker,
                         describe(dataset, failed.position, failed.exc)))
            continue
        in_slot = fill(mapping, slot, slot_bytes, item, images)
        results.put(("batch", generation, batch, worker, slot, len(positions),
                     stack_labels(labels), None if in_slot else images))
