"""Operations on record files that already exist: rebuild an index (``index``), check a pair
(``verify``).

Front doors: they may import ``format``, ``storage``, ``images``, ``sources`` and ``pipeline``;
never mxnet.
"""
