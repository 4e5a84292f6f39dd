"""The Parquet codec: what a runner calls to write and read this format.

Writing: :class:`~.layout.LayoutScan` (a pre-scan of every record: the label column's type and
whether a ``recordio_header`` column is needed are decided for the whole set of files), then
per record :func:`encode` (in workers) and per file :class:`ShardWriter`. No files beyond the
shards are needed: each file's footer holds its schema and the ``datasets`` features.

Reading: :func:`scan` (locators from the footer), :func:`read` (one record, by position),
:func:`check` (a validating walk), :class:`ParquetReader`, and :class:`DatasetReader` for a
``datasets.Dataset``.
"""

from .dataset import DatasetReader, is_hf_dataset
from .layout import LABEL_KINDS, Layout, LayoutScan, arrow_schema, hf_features
from .reader import ParquetReader, check, is_parquet, list_files, read, scan
from .writer import ROW_GROUP_BYTES, ROW_GROUP_ROWS, Encoded, ShardWriter, encode

__all__ = ["Layout", "LayoutScan", "LABEL_KINDS", "hf_features", "arrow_schema", "Encoded",
           "encode", "ShardWriter", "ROW_GROUP_ROWS", "ROW_GROUP_BYTES", "ParquetReader",
           "scan", "read", "check", "is_parquet", "list_files", "DatasetReader",
           "is_hf_dataset"]
