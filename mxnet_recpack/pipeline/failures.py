"""The failure report of a run: one JSON line per skipped item, flushed as it happens, so a
resumed run keeps the lines of the items it does not redo."""

import asyncio
import concurrent.futures
import json
import logging

from ..errors import IndexFormatError, RecordFormatError
from ..format.index import complete_lines
from ..storage.local import io_step

__all__ = ["FailureReport", "SystematicFailure", "error_kind"]

log = logging.getLogger(__name__)

#: Errors that mean the input is bad or out of reach (a file missing, damaged, not an image,
#: not a regular file; a storage that does not answer): skipped and listed. OSError covers
#: BadImageError, FileNotFoundError, PermissionError, TimeoutError (fsspec's too),
#: ConnectionError and aiohttp's ClientOSError.
DATA_ERRORS = (OSError, RecordFormatError, IndexFormatError, asyncio.TimeoutError,
               concurrent.futures.TimeoutError)

#: The network errors of the storage libraries that are not OSErrors, as ``(module, class)``
#: of a base class: matched on the error's class hierarchy, so none of them is imported.
NETWORK_ERRORS = {("botocore.exceptions", "BotoCoreError"),  # no endpoint, read timeout...
                  ("botocore.exceptions", "ClientError"),  # an S3 error answer
                  ("aiohttp.client_exceptions", "ClientError"),  # disconnected, bad payload
                  ("urllib3.exceptions", "HTTPError")}


def error_kind(exc):
    """``"data"`` when ``exc`` means the item's input is bad or out of reach (see
    :data:`DATA_ERRORS` and :data:`NETWORK_ERRORS`), ``"code"`` otherwise: the dataset's or
    transform's own code failing. Decided by type, in the worker that caught it."""
    if isinstance(exc, DATA_ERRORS):
        return "data"
    if any((cls.__module__, cls.__name__) in NETWORK_ERRORS for cls in type(exc).__mro__):
        return "data"
    return "code"

#: Known causes of a failing transform, by a piece of its message, and their fix.
_FIXES = (
    ("channel dimension", "Normalize works on a CHW float tensor: put ToTensor() before it, "
     "transforms.Compose([transforms.ToTensor(), transforms.Normalize(...)]), and store the "
     "floats with encoding='.npy'"),
    ("Float tensors", "store float tensors with encoding='.npy' (dataset_params={'encoding': "
     "'.npy'}, CLI: the Python API only)"),
)


class SystematicFailure:
    """Watches the first ``limit`` items: when each failed with the same error type, and not
    one that means bad input (a failure's ``kind`` is ``"data"``: see :func:`error_kind`),
    that error is the dataset's or transform's code failing."""

    def __init__(self, limit=8):
        self.limit = limit
        self.seen = []
        self.done = False

    def success(self):
        self.done = True

    def failure(self, failure):
        """Return the TransformError message once the first items all failed alike."""
        if self.done:
            return None
        self.seen.append(failure)
        kinds = {f["error"] for f in self.seen}
        if len(kinds) > 1 or failure.get("kind") == "data":
            self.done = True
            return None
        if len(self.seen) < self.limit:
            return None
        self.done = True
        first = self.seen[0]
        fix = next((f for key, f in _FIXES if key in first["message"]), None)
        return ("the dataset's or transform's code raised %s on each of the first %d items, so "
                "this is not bad data: stopping now instead of trying them all. First: item %s "
                "(key %s%s): %s%s" % (
                    first["error"], len(self.seen), first["index"], first["key"],
                    ", " + str(first["source"]) if first.get("source") else "",
                    first["message"].strip().splitlines()[0] if first["message"].strip()
                    else "(no message)", ". Fix: " + fix if fix else ""))


class FailureReport:
    """``NAME.failures.jsonl.partial`` while a run is in progress.

    Parameters
    ----------
    tmp_path : str
        Where the report is written until the commit publishes it.
    """

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.count = 0
        self.first = None
        self._file = None

    def _open(self):
        if self._file is None:
            with io_step("writing the failure report %s" % self.tmp_path):
                self._file = open(self.tmp_path, "w", encoding="utf-8")

    def keep_earlier(self, below_index):
        """On resume: keep the interrupted run's lines for items before ``below_index``."""
        lines = []
        for line in complete_lines(self.tmp_path):
            try:
                if json.loads(line)["index"] < below_index:
                    lines.append(line + "\n")
            except (ValueError, KeyError, TypeError):
                break
        if lines:
            self._open()
            with io_step("writing the failure report %s" % self.tmp_path):
                self._file.writelines(lines)
                self._file.flush()
            self.count += len(lines)

    def add(self, failure):
        """Record one :class:`~mxnet_recpack.pipeline.encoder.Failure` (and log it)."""
        self.count += 1
        if self.first is None:
            self.first = "%s: %s" % (failure["error"], failure["message"])
        self._open()
        with io_step("writing the failure report %s" % self.tmp_path):
            self._file.write(json.dumps(failure, sort_keys=True) + "\n")
            self._file.flush()
        log.warning("skipped item %s (key %s%s): %s: %s", failure["index"], failure["key"],
                    ", " + str(failure["source"]) if failure.get("source") else "",
                    failure["error"], failure["message"])

    def close(self):
        """Close the file (idempotent); the commit moves it into place."""
        if self._file is not None:
            try:
                with io_step("writing the failure report %s" % self.tmp_path):
                    self._file.close()
            finally:
                self._file = None
