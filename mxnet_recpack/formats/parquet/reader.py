"""Reading Parquet files as Samples: random access by position (row group, row), a validating
walk, and the files ``datasets`` or any other writer made (the rules: :mod:`.columns`).

A record is read with its row group (Parquet's unit of reading), which each thread keeps until
it reads another: reading in order costs one decode a row group. Every thread opens the file
itself, so readers are safe to share between threads, and pickle without their open files for
worker processes.
"""

import os
import threading
from collections import OrderedDict

from ...errors import DuplicateKeyError, RecordFormatError
from ...images.encodings import sniff
from .arrow import pyarrow
from .columns import resolve, samples_of

__all__ = ["ParquetReader", "scan", "read", "check", "is_parquet", "list_files"]

_MAGIC = b"PAR1"
_FIX = "convert it again from its source (the file was damaged or cut short after it was written)"


def _file_error(path, exc):
    size = os.path.getsize(path) if os.path.exists(path) else None
    return RecordFormatError(
        "not a readable Parquet file: %s (expected the footer that ends with %r at the end of "
        "the file); %s" % (exc, _MAGIC.decode(), _FIX), path=path, offset=size)


class ParquetReader:
    """The records of one Parquet file, by position.

    Parameters
    ----------
    path : str or os.PathLike
    image_column, label_column : str, optional
        Where the images and labels are (defaults: see :mod:`.columns`).
    key_column : str or None, default 'key'
        The column of record keys; ``None`` numbers the records in order instead.
    default_label : number or sequence, optional
        The label of rows without one (and of every row of a file without a label column).
    first_key : int, default 0
        The key of the first row when keys come from positions (the count of the files before
        this one, when a set is read as one).

    ``locators()`` gives one ``(row_group, row)`` a record, in order; ``read(locator)`` its
    Sample; iterating gives every Sample in order.
    """

    def __init__(self, path, *, image_column=None, label_column=None, key_column="key",
                 default_label=None, first_key=0):
        self.path = os.fspath(path)
        self.rules = {"image_column": image_column, "label_column": label_column,
                      "key_column": key_column, "default_label": default_label}
        self.first_key = int(first_key)
        self._local = threading.local()
        self._meta = None

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_local"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    def _file(self):
        pf = getattr(self._local, "file", None)
        if pf is None:
            _, pq = pyarrow()
            try:
                pf = pq.ParquetFile(self.path, page_checksum_verification=True)
            except FileNotFoundError:
                raise RecordFormatError("no such file: give the path of a Parquet file",
                                        path=self.path) from None
            except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
                raise _file_error(self.path, exc) from None
            if self._meta is None:
                self._meta = self._describe(pf)
            self._local.file, self._local.cached = pf, (None, None)
        return pf

    def _describe(self, pf):
        meta = pf.metadata
        starts, offsets, total = [], [], 0
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            starts.append(total)
            total += rg.num_rows
            first = rg.column(0) if rg.num_columns else None
            offsets.append(None if first is None else min(
                o for o in (first.dictionary_page_offset, first.data_page_offset)
                if o is not None))
        columns = resolve(pf.schema_arrow, where=self.path, **self.rules)
        return {"starts": starts, "offsets": offsets, "rows": total, "columns": columns,
                "sizes": [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]}

    @property
    def meta(self):
        if self._meta is None:
            self._file()
        return self._meta

    @property
    def columns(self):
        """The :class:`~.columns.Columns` this file is read with."""
        return self.meta["columns"]

    def __len__(self):
        return self.meta["rows"]

    @property
    def num_row_groups(self):
        return len(self.meta["starts"])

    def locators(self):
        """One ``(row_group, row)`` a record, in file order (from the footer alone)."""
        return [(g, i) for g, n in enumerate(self.meta["sizes"]) for i in range(n)]

    def row_group(self, group):
        """The Samples of row group ``group``."""
        pf = self._file()
        cached_group, samples = self._local.cached
        if cached_group == group:
            return samples
        meta = self.meta
        if not 0 <= group < len(meta["starts"]):
            raise IndexError("%s has %d row groups, not %d" % (self.path, len(meta["starts"]),
                                                               group + 1))
        start = meta["starts"][group]
        try:
            table = pf.read_row_group(group, use_threads=False)
        except (OSError, ValueError) as exc:
            raise RecordFormatError(
                "row group %d (rows %d..%d) cannot be read: %s; %s"
                % (group, start, start + meta["sizes"][group] - 1, exc, _FIX),
                path=self.path, offset=meta["offsets"][group]) from None
        samples = samples_of(table, meta["columns"], start=start, first_key=self.first_key,
                             base_dir=os.path.dirname(os.path.abspath(self.path)),
                             where=self.path)
        self._local.cached = (group, samples)
        return samples

    def read(self, locator):
        """The Sample at ``locator`` = ``(row_group, row)``."""
        group, row = locator
        samples = self.row_group(group)
        if not 0 <= row < len(samples):
            raise IndexError("%s: row group %d has %d rows, not %d" % (
                self.path, group, len(samples), row + 1))
        return samples[row]

    def __iter__(self):
        for group in range(self.num_row_groups):
            yield from self.row_group(group)

    def close(self):
        """Release this thread's open file (others close when their thread ends)."""
        self._local.file, self._local.cached = None, (None, None)


_OPEN = threading.local()
_KEEP = 4  # readers (and their cached row group) kept open per thread


def _reader(path, rules):
    path = os.fspath(path)
    pyarrow()
    try:
        st = os.stat(path)
    except OSError as exc:
        raise RecordFormatError("cannot be read: %s; give the path of a Parquet file"
                                % (exc.strerror or exc), path=path) from None
    ident = (path, tuple(sorted((k, repr(v)) for k, v in rules.items())))
    readers = getattr(_OPEN, "readers", None)
    if readers is None:
        readers = _OPEN.readers = OrderedDict()
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
    found = readers.get(ident)
    if found is None or found[0] != stamp:
        found = readers[ident] = (stamp, ParquetReader(path, **rules))
    readers.move_to_end(ident)
    while len(readers) > _KEEP:
        readers.popitem(last=False)
    return found[1]


def scan(path, **rules):
    """One locator ``(row_group, row)`` a record of ``path``, in order (``rules``: those of
    :class:`ParquetReader`)."""
    return _reader(path, rules).locators()


def read(path, locator, **rules):
    """The Sample at ``locator`` in ``path`` (a thread keeps the files it reads open, and the
    row group it read last, until the file changes)."""
    return _reader(path, rules).read(locator)


def check(path, **rules):
    """Read every row of ``path`` and check it: Parquet's magic at both ends, the footer, every
    page's checksum (where the writer stored them: this package always does), the columns and
    every row's fields, and that no key repeats. Returns ``{"rows", "row_groups",
    "encodings"}`` (records by image format; ``"none"``: label-only); raises
    RecordFormatError (or DuplicateKeyError) naming the file, row group or row, and byte
    offset."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise RecordFormatError("cannot be read: %s" % (exc.strerror or exc), path=path) from None
    if head != _MAGIC:
        raise RecordFormatError("starts with %r, not Parquet's magic %r; %s" % (
            head, _MAGIC, _FIX), path=path, offset=0)
    reader = ParquetReader(path, **rules)
    encodings, seen = {}, {}
    for group in range(reader.num_row_groups):
        for i, sample in enumerate(reader.row_group(group)):
            name = sniff(sample.image) if sample.image else "none"
            encodings[name] = encodings.get(name, 0) + 1
            row = reader.meta["starts"][group] + i
            if seen.setdefault(sample.key, row) != row:
                raise DuplicateKeyError("%s: key %d is at rows %d and %d: keys must be unique"
                                        % (path, sample.key, seen[sample.key], row))
    return {"rows": len(reader), "row_groups": reader.num_row_groups,
            "encodings": dict(sorted(encodings.items()))}


def is_parquet(path):
    """True when ``path`` is a file that starts with Parquet's magic."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == _MAGIC
    except OSError:
        return False


def list_files(folder):
    """The ``.parquet`` files under ``folder``, sorted by path (a ``datasets`` split such as
    ``data/train-00000-of-00002.parquet`` ... sorts into its order)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(os.path.join(root, n) for n in sorted(files) if n.endswith(".parquet"))
    return sorted(found)
