"""The failure report of a run: one JSON line per skipped item, flushed as it happens, so a
resumed run keeps the lines of the items it does not redo."""

import asyncio
import concurrent.futures
import json
import logging
import os

from ..errors import IndexFormatError, RecordFormatError
from ..errors import TransformError
from ..options import failure_limit
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
    ("pixels in 0-255", "convert the images to uint8 before they are written (in the "
     "dataset or its transform): image.astype(np.uint8), np.rint first for fractions"),
    ("16-bit pixels", "store them with encoding='.png', or scale them to uint8"),
    ("are in 0-1:", "scale them to uint8 pixels, (image * 255).round().astype(np.uint8), or "
     "store the floats with encoding='.npy'"),
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
                self._file = open(self.tmp_path, "a", encoding="utf-8")

    def keep_earlier(self, below_index):
        """On resume: keep the interrupted run's lines for items before ``below_index``. They
        come first (items fail in dataset order), so the file is cut after them: one
        truncation, which a kill cannot leave half done."""
        try:
            with open(self.tmp_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        keep, kept = 0, 0
        for line in data.splitlines(keepends=True):
            try:
                if not line.endswith(b"\n") or json.loads(line)["index"] >= below_index:
                    break
            except (ValueError, KeyError, TypeError):
                break
            keep += len(line)
            kept += 1
        with io_step("cutting the failure report %s back" % self.tmp_path):
            if data:
                os.truncate(self.tmp_path, keep)
            if kept:
                self._file = open(self.tmp_path, "a", encoding="utf-8")
        self.count += kept

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


class FailureWatch:
    """The failures of one dataset run: each batch's records sorted into the ones to write
    (in order) and the failures to report, the systematic-error watch, and the limit."""

    def __init__(self, report, path, total, max_failures):
        self.report, self.path, self.total = report, path, total
        self.max_failures = max_failures
        self.limit = failure_limit(max_failures, total)
        self.systematic = SystematicFailure(min(8, total))

    def sort(self, batch, append):
        """``append(records)`` the good ones, report the others; the reason to stop when more
        failed than the limit allows (None otherwise)."""
        good = []
        for record in batch:
            failure = record[1]
            if not isinstance(failure, dict):
                good.append(record)
                self.systematic.success()
                continue
            stop = self.systematic.failure(failure)
            if stop:
                raise TransformError("%s: %s" % (self.path, stop))
            if good:  # keep record order: what came before this failure is written first
                append(good)
                good = []
            self.report.add(failure)
            if self.limit is not None and self.report.count > self.limit:
                return ("%d of %d items failed, more than max_failures=%r allows"
                        % (self.report.count, self.total, self.max_failures))
        if good:
            append(good)
        return None
