"""The one error hierarchy of mxnet_recpack.

Every class also inherits the built-in exception it means, so callers that already catch
``ValueError`` or ``FileNotFoundError`` keep working. Messages name the file, the line or byte
offset, what was expected and what was found, and how to fix it.
"""

__all__ = [
    "RecpackError",
    "RecordFormatError",
    "IndexFormatError",
    "ListFormatError",
    "ImageEncodeError",
    "OptionError",
    "TooManyFailuresError",
    "OutputExistsError",
    "BadImageError",
    "WorkerError",
    "MissingDependencyError",
    "DuplicateKeyError",
    "OutputLockedError",
    "CommitError",
    "OutputError",
    "TransformError",
    "NotAFileError",
    "StorageError",
    "StorageUnreachableError",
    "MissingObjectError",
]


class RecpackError(Exception):
    """Base class of every error raised by mxnet_recpack."""


class RecordFormatError(RecpackError, ValueError):
    """A ``.rec`` file is damaged: bad magic, impossible length, truncated frame, bad header.

    Attributes
    ----------
    path : str or None
        The file being read.
    offset : int or None
        Byte offset of the frame where the problem was found.
    reason : str
        What is wrong, without the file and offset.
    """

    def __init__(self, message, *, path=None, offset=None):
        self.path = path
        self.offset = offset
        #: the message without the file and offset in front
        self.reason = message
        where = []
        if path is not None:
            where.append(str(path))
        if offset is not None:
            where.append("byte offset %d" % offset)
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)


class IndexFormatError(RecpackError, ValueError):
    """A ``.idx`` file is malformed or does not match its ``.rec``."""


class ListFormatError(RecpackError, ValueError):
    """An im2rec ``.lst`` file has a malformed line (the message names file and line number)."""


class ImageEncodeError(RecpackError, ValueError):
    """An item cannot be stored with the requested encoding (wrong dtype, shape, ...)."""


class OptionError(RecpackError, ValueError):
    """An option has an unknown name or an invalid value; the message lists the valid ones."""


class TooManyFailuresError(RecpackError, RuntimeError):
    """More items failed than ``max_failures`` allows; nothing was written at the final path.

    Attributes
    ----------
    failures : int
        How many items failed before the run stopped.
    report_path : str or None
        Where the machine-readable failure report was written.
    """

    def __init__(self, message, *, failures=0, report_path=None):
        self.failures = failures
        self.report_path = report_path
        super().__init__(message)


class OutputExistsError(RecpackError, FileExistsError):
    """The output exists and neither ``overwrite``, ``append`` nor ``resume`` was asked for."""


class BadImageError(RecpackError, OSError):
    """An image file that exists but cannot be stored: empty, truncated, not an image, too large.

    Raised per item by the datasets; the writer skips the item and lists it in the report.
    """


class WorkerError(RecpackError, RuntimeError):
    """A worker died (killed, out of memory) or stopped answering; the message names the items
    it held. Nothing is written at the final path."""


class MissingDependencyError(RecpackError, ImportError):
    """A feature needs a package that is not installed (or does not import); the message says
    which, and how to install it."""


class DuplicateKeyError(RecpackError, ValueError):
    """A record key that the output (or the dataset itself) already has: keys must be unique.
    The message names the keys."""


class OutputLockedError(RecpackError, BlockingIOError):
    """Another command is writing the same output right now (the message names it); a lock
    is released when its process ends, even when it is killed."""


class CommitError(RecpackError, OSError):
    """A step of the commit failed (a rename refused, the disk full). The message names the
    file, the step and the cause, and says where the files are: the previous ones intact or back
    in place as a whole (the new ones kept for ``resume``), or, when even undoing failed, that
    the journal remains for the next command to settle. ``errno`` is the system's, ``step``
    what was being done."""


class OutputError(RecpackError, OSError):
    """Writing a run's files failed (a full disk, an I/O error, a file-size limit): the message
    names the file, the step, whether the existing output is intact and whether the run can be
    continued with ``resume``. ``errno`` is the system's."""


class TransformError(RecpackError, RuntimeError):
    """The dataset's or transform's own code raised the same error on each of the first items:
    user code failing is not bad data, so the run stops at once (the message has the error,
    the item, and the fix where it is known)."""


class NotAFileError(RecpackError, OSError):
    """A path given as a file to read (a ``.rec``, ``.idx``, list, keys or mapping file, an
    image) is a directory, a FIFO, a device or a socket: refused before it is read, since a
    FIFO would block forever and a device such as ``/dev/zero`` never ends. The message names
    the path and what it is.

    Attributes
    ----------
    path : str
    kind : str
        What the path is: ``"a directory"``, ``"a FIFO (named pipe)"``, ...
    """

    def __init__(self, message, *, path=None, kind=None):
        self.path = path
        self.kind = kind
        super().__init__(message)
class StorageError(RecpackError, OSError):
    """A request to an object store (``s3://``) failed: refused (access denied, a quota), or
    answered with an error. The message names the URL, what was being done, the cause and
    the fix."""


class StorageUnreachableError(StorageError, ConnectionError):
    """The object store could not be reached or stopped answering (connection refused or
    reset, a timeout after the retries): a network fault, not bad data. The message names the
    URL, what was being done and, during a commit, exactly which objects at the URL are new."""


class MissingObjectError(StorageError, FileNotFoundError):
    """An object that was to be read at a URL does not exist (the message names the URL)."""
