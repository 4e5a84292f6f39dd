"""Reading TFRecord files: a cheap scan, random access by position, and a validating walk.

Every read checks both CRCs of the record it reads. Positional reads (``os.pread``) on one
descriptor, so one :class:`ShardReader` serves several threads, and a forked or unpickled
copy opens its own. Standard library, numpy and ``google-crc32c``.
"""

import os
import threading

from ...errors import RecordFormatError
from .example import INT64, decode_example
from .fields import KEY, inconsistency, sample_of
from .framing import _open, check_index, read_frame, scan_file

__all__ = ["scan", "read", "check", "ShardReader"]


def scan(path):
    """The :class:`~.framing.Locator` of every record of ``path``, in file order: ``position``,
    ``offset`` (where its frame starts), ``length`` (of its data). Reads 12 bytes a record and
    checks each length's CRC.

    Raises
    ------
    RecordFormatError
        Naming the file, the byte offset, what was expected and found.
    """
    return scan_file(path)


def _decode(path, locator, data, first_key, default_label):
    try:
        features = decode_example(data)
        return features, sample_of(features, first_key + locator.position,
                                   default_label=default_label)
    except RecordFormatError as exc:
        raise RecordFormatError("record %d: %s" % (locator.position, exc.reason),
                                path=path, offset=locator.offset) from None


class ShardReader:
    """The Samples of one TFRecord file, by position.

    Parameters
    ----------
    path : str
        The file.
    first_key : int
        For records this tool did not write (no ``recordio/key``): the key of the file's
        first record; the others follow in order (give each file of a set the count of the
        files before it).
    default_label : float or sequence, optional
        For such records without ``image/class/label``; None: they are an error.
    locators : list of Locator, optional
        From an earlier :func:`scan` (else the file is scanned when first needed).
    """

    def __init__(self, path, *, first_key=0, default_label=None, locators=None):
        self.path = str(path)
        self.first_key = int(first_key)
        self.default_label = default_label
        self._locators = locators
        self._file = None
        self._pid = None
        self._lock = threading.Lock()

    def _descriptor(self):
        """This process's descriptor of the file (opened on first use, again after a fork)."""
        if self._file is None or self._pid != os.getpid():
            with self._lock:
                if self._file is None or self._pid != os.getpid():
                    self._file = os.fdopen(_open(self.path), "rb", buffering=0)
                    self._pid = os.getpid()
        return self._file.fileno()

    @property
    def locators(self):
        """The records' locators (scanned once, when first asked for)."""
        if self._locators is None:
            self._locators = scan_file(self.path, self._descriptor())
        return self._locators

    def __len__(self):
        return len(self.locators)

    def read(self, locator):
        """The Sample at ``locator`` (from :func:`scan`)."""
        data = read_frame(self.path, self._descriptor(), locator)
        return _decode(self.path, locator, data, self.first_key, self.default_label)[1]

    def __getitem__(self, position):
        return self.read(self.locators[position])

    def key_at(self, position):
        """The key of the record at ``position``: its ``recordio/key`` where this tool wrote it
        (read without parsing the other features), else ``first_key + position``."""
        locator = self.locators[position]
        data = read_frame(self.path, self._descriptor(), locator)
        try:
            found = decode_example(data, only={KEY}).get(KEY)
        except RecordFormatError as exc:
            raise RecordFormatError("record %d: %s" % (locator.position, exc.reason),
                                    path=self.path, offset=locator.offset) from None
        if found is None or found[0] != INT64 or len(found[1]) != 1:
            return self.first_key + locator.position
        return found[1][0]

    def __iter__(self):
        for locator in self.locators:
            yield self.read(locator)

    def close(self):
        f, self._file = self._file, None
        if f is not None:
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        state = dict(self.__dict__, _file=None, _pid=None)
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


def read(path, locator, *, first_key=0, default_label=None):
    """The Sample at ``locator`` of ``path`` (opens the file for this one read: use a
    :class:`ShardReader` for many)."""
    with ShardReader(path, first_key=first_key, default_label=default_label,
                     locators=[]) as reader:
        return reader.read(locator)


def check(path, *, index_path=None, first_key=0, default_label=None):
    """Read every record of ``path`` and check it: the framing and both CRCs, the protobuf,
    the fields a Sample needs, and that ``image/format``, ``image/height``/``width`` and
    ``image/class/label`` agree with the image bytes and the RecordIO fields. With
    ``index_path``, also that the index lists exactly these records (what DALI needs).

    Returns
    -------
    int
        The number of records.

    Raises
    ------
    RecordFormatError
        The first damage found, naming the file, the record and its byte offset, what was
        expected and found, and the fix.
    IndexFormatError
        An index that does not match the file.
    """
    path = str(path)
    with ShardReader(path, first_key=first_key, default_label=default_label) as reader:
        locators = reader.locators
        for locator in locators:
            data = read_frame(path, reader._descriptor(), locator)
            features, sample = _decode(path, locator, data, first_key, default_label)
            why = inconsistency(features, sample)
            if why:
                raise RecordFormatError(
                    "record %d: %s: the file was changed after it was written, or its writer "
                    "filled these features in wrongly; convert it again from its source"
                    % (locator.position, why), path=path, offset=locator.offset)
    if index_path is not None:
        with open(index_path, "rb") as f:
            check_index(str(index_path), f.read(), locators, path)
    return len(locators)
