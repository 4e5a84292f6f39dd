"""The RecordIO format, byte-compatible with dmlc-core and MXNet: frames (``framing``), the
image-record header (``header``), the ``.idx`` (``index``), the names that pair files
(``names``), random access (``reader``) and frame-level checks (``checks``).

Owns bytes, not pixels: it may import only the standard library, numpy and ``errors``.
"""

from .framing import MAGIC, MAGIC_BYTES, MAX_RECORD_BYTES, RecordReader, encode_record
from .header import HEADER_SIZE, MAX_KEY, RecordHeader, pack_record, unpack_record
from .index import format_index_line, read_index
from .names import index_path_for, part_path, rec_path_for, report_path_for, stem
from .reader import RecordFile

__all__ = [
    "MAGIC", "MAGIC_BYTES", "MAX_RECORD_BYTES", "RecordReader", "encode_record",
    "HEADER_SIZE", "MAX_KEY", "RecordHeader", "pack_record", "unpack_record",
    "format_index_line", "read_index",
    "index_path_for", "part_path", "rec_path_for", "report_path_for", "stem",
    "RecordFile",
]
