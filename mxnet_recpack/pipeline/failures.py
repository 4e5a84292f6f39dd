"""The failure report of a run: one JSON line per skipped item, flushed as it happens, so a
resumed run keeps the lines of the items it does not redo."""

import json
import logging

from ..format.index import complete_lines

__all__ = ["FailureReport"]

log = logging.getLogger(__name__)


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
            self._file.writelines(lines)
            self._file.flush()
            self.count += len(lines)

    def add(self, failure):
        """Record one :class:`~mxnet_recpack.pipeline.encoder.Failure` (and log it)."""
        self.count += 1
        if self.first is None:
            self.first = "%s: %s" % (failure["error"], failure["message"])
        self._open()
        self._file.write(json.dumps(failure, sort_keys=True) + "\n")
        self._file.flush()
        log.warning("skipped item %s (key %s%s): %s: %s", failure["index"], failure["key"],
                    ", " + str(failure["source"]) if failure.get("source") else "",
                    failure["error"], failure["message"])

    def close(self):
        """Close the file (idempotent); the commit moves it into place."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
