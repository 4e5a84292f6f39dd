"""The plan of one dataset run: which positions, in what order, under which keys, and the
description a resumed run must match (and a finished one is recognised by)."""

from types import SimpleNamespace

import numpy as np

from ..errors import OptionError
from .items import as_items

__all__ = ["plan_dataset", "plan_keys"]


def plan_dataset(dataset, positions, run_info, *, encoding, quality):
    """``order`` (the dataset positions to write, ascending), ``total``, ``key_of`` and
    ``source_of`` (see :class:`~.items.DatasetItems`) and ``description`` of a run."""
    items = as_items(dataset)
    key_of, source_of = items.key_of, items.source_of
    order = np.arange(len(dataset), dtype=np.int64) if positions is None else \
        np.asarray(positions, dtype=np.int64).reshape(-1)
    if len(order) and (order[0] < 0 or order[-1] >= len(dataset) or
                       (len(order) > 1 and (np.diff(order) <= 0).any())):
        raise OptionError("positions must be ascending dataset positions in [0, %d)"
                          % len(dataset))
    description = dict(run_info or {}, items=len(order), encoding=encoding, quality=quality,
                       own_keys=key_of is not None, dataset=type(dataset).__name__,
                       fingerprint=items.fingerprint())
    return SimpleNamespace(dataset=dataset, positions=positions, order=order, total=len(order),
                           key_of=key_of, source_of=source_of, description=description)


def plan_keys(plan, key_base):
    """``(keys, position_keys)``: the key of each item of ``plan.order``, and what the workers
    look keys up in (the key of every dataset position, or None for ``key_base + position``)."""
    order, key_of = plan.order, plan.key_of
    if key_of is not None:
        keys = np.fromiter((key_of(int(i)) for i in order), dtype=np.uint64, count=len(order))
    else:
        keys = order.astype(np.uint64) + np.uint64(key_base)
    position_keys = keys  # looked up by the workers instead of walking the wrappers again
    if key_of is not None and plan.positions is not None:
        position_keys = np.zeros(len(plan.dataset), np.uint64)
        position_keys[order] = keys
    elif key_of is None:
        position_keys = None
    return keys, position_keys
