"""Which positions each batch of an epoch holds, on each rank: a pure function of the dataset's
length, the options, the seed and the epoch number.

Shuffling permutes all positions with a generator seeded by ``(seed, epoch)``: the same on every
rank, so the ranks split one permutation. The split is ``DistributedSampler``'s: the positions
are made a multiple of ``world_size`` (padded by repeating the first ones, or, with
``drop_last``, cut), and rank ``r`` takes every ``world_size``-th from ``r``. Then batches of
``batch_size`` in that order; the last one shorter, or dropped with ``drop_last``.
"""

import math

import numpy as np

from ..errors import OptionError

__all__ = ["EpochPlan"]


def _count(value, name, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise OptionError("%s = %r is not valid; expected an integer >= %d" % (name, value, low))
    return int(value)


class EpochPlan:
    """The batches of one rank, epoch by epoch."""

    def __init__(self, length, batch_size, *, shuffle=False, seed=0, rank=0, world_size=1,
                 drop_last=False):
        self.length = _count(length, "the dataset's length", 0)
        self.batch_size = _count(batch_size, "batch_size", 1)
        self.world_size = _count(world_size, "world_size", 1)
        self.rank = _count(rank, "rank", 0)
        if self.rank >= self.world_size:
            raise OptionError("rank = %d is not valid for world_size = %d: ranks are 0..%d"
                              % (self.rank, self.world_size, self.world_size - 1))
        self.seed = _count(seed, "seed", 0)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        if self.drop_last:
            self.per_rank = self.length // self.world_size
        else:
            self.per_rank = math.ceil(self.length / self.world_size) if self.length else 0

    def __len__(self):
        """Batches per epoch."""
        if self.drop_last:
            return self.per_rank // self.batch_size
        return math.ceil(self.per_rank / self.batch_size)

    def positions(self, epoch):
        """This rank's positions in ``epoch``, in order (pads repeat the first positions)."""
        order = np.arange(self.length, dtype=np.int64)
        if self.shuffle:
            order = np.random.default_rng([self.seed, int(epoch)]).permutation(self.length)
        total = self.per_rank * self.world_size
        if total > self.length:  # pad, as DistributedSampler does: repeat from the start
            order = np.concatenate([order, np.resize(order, total - self.length)])
        return order[:total][self.rank::self.world_size]

    def batches(self, epoch):
        """The positions of each batch of ``epoch``."""
        mine = self.positions(epoch)
        return [mine[b * self.batch_size:(b + 1) * self.batch_size] for b in range(len(self))]
