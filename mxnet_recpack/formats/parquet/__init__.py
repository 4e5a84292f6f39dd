"""Parquet in Hugging Face ``datasets``' image layout, both ways.

Columns: ``image`` (a struct of ``bytes`` and ``path``: ``datasets``' ``Image()``; null for a
label-only record), ``label`` (int64, float32, or a list of float32: one type for the whole
set of files, see :class:`LayoutScan`), ``key`` (uint64, the ``.idx`` key), ``flag``
(uint32), ``id``, ``id2`` (uint64) and, only when some record's header would not re-pack,
``recordio_header`` (binary). The schema's ``huggingface`` metadata holds the ``datasets``
features, so ``datasets.load_dataset("parquet", data_files=...)`` gives an ``Image()`` column
without configuration. Needs pyarrow (``pip install "mxnet_recpack[parquet]"``), imported
when a file is first read or written. The mapping and the rules for other writers' files:
``docs/formats.md``, "Parquet".
"""

from .codec import *  # noqa: F401,F403
from .codec import __all__  # noqa: F401
