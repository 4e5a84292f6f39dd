"""Operations on record files that already exist: rebuild an index (``index``), check a pair
(``verify``), and make new files from existing ones without decoding them (``edit``: merge,
split, shuffle; ``select``: filter, relabel) or re-encoding their images (``rewrite``).

Front doors: they may import ``format``, ``storage``, ``images``, ``sources`` and ``pipeline``;
never mxnet.
"""

from .edit import merge, shuffle, split
from .rewrite import rewrite
from .select import filter_records, relabel

__all__ = ["merge", "split", "shuffle", "filter_records", "relabel", "rewrite"]
