"""RecordFileWriter: the one process that writes a ``.rec``/``.idx`` pair, atomically.

Records go to ``NAME.rec.partial`` and ``NAME.idx.partial``; only a successful ``close()`` (the
end of a ``with`` block that raised nothing) moves them to their final names. A run that fails
or is killed never leaves a partial file at the final path and never changes an existing one.
"""

import json
import logging
import os
import time
from array import array

import numpy as np

from .errors import OptionError, OutputExistsError, RecpackError, TooManyFailuresError
from .images import encode_image, normalize_encoding
from .index import format_index_line, index_path_for
from .header import pack_record
from .pipeline import RecordEncoder, failure_limit, resolve_item_info, run_loader
from .recordio import encode_record
from .storage import fsync_dir

__all__ = ["RecordFileWriter", "WriteSummary", "report_path_for"]

log = logging.getLogger(__name__)
_BUFFER = 1 << 20


def report_path_for(rec_path):
    """``train.rec`` -> ``train.failures.jsonl``: where skipped items are listed."""
    return os.path.splitext(os.fspath(rec_path))[0] + ".failures.jsonl"


class WriteSummary:
    """What a run did: records ``written``, items ``failed`` (skipped), ``bytes``, ``seconds``."""

    def __init__(self, path, written=0, failed=0, nbytes=0, seconds=0.0, report_path=None):
        self.path = path
        self.written = written
        self.failed = failed
        self.bytes = nbytes
        self.seconds = seconds
        self.report_path = report_path

    @property
    def images_per_second(self):
        return self.written / self.seconds if self.seconds > 0 else float("nan")

    def __repr__(self):
        return ("WriteSummary(path=%r, written=%d, failed=%d, bytes=%d, seconds=%.2f)"
                % (self.path, self.written, self.failed, self.bytes, self.seconds))

    def line(self):
        """A one-line human summary."""
        text = "%s: wrote %d records (%.1f MB) in %.1f s, %.0f images/s" % (
            self.path, self.written, self.bytes / 1e6, self.seconds, self.images_per_second)
        if self.failed:
            text += "; skipped %d bad item(s), listed in %s" % (self.failed, self.report_path)
        return text


class RecordFileWriter:
    """Write an indexed RecordIO file that MXNet's image readers read.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.rec`` to create; the ``.idx`` goes beside it (``train.rec`` -> ``train.idx``).
    encoding : {'.jpg', '.png', '.npy'}, default '.jpg'
        How array images are stored (``bytes`` items are stored verbatim). ``.npy`` stores any
        numpy array (float tensors after ``ToTensor``), read back with ``np.load``.
    quality : int, default 95
        JPEG quality 1-100, or PNG compression 0-9 (as ``mx.recordio.pack_img``).
    overwrite : bool, default True
        Replace an existing output when the run succeeds. With ``False`` an existing file raises
        :class:`~mxnet_recpack.errors.OutputExistsError` before anything is written.
    max_failures : None, int or float, default None
        Items that fail (unreadable, undecodable, wrong type) are skipped and listed in
        ``NAME.failures.jsonl``. ``None`` tolerates any number as long as something is written;
        a count ``>= 1`` or a fraction ``< 1`` of the dataset stops the run past that many.

    Examples
    --------
    >>> with RecordFileWriter("train.rec") as w:
    ...     w.write(image, 3)                  # key 0
    ...     w.write_dataset(dataset, num_workers=2)
    """

    def __init__(self, path, *, encoding=".jpg", quality=95, overwrite=True, max_failures=None):
        self.path = os.fspath(path)
        if os.path.isdir(self.path):
            raise OptionError("%s is a directory; give the path of the .rec file to write, "
                              "e.g. %s" % (self.path, os.path.join(self.path, "train.rec")))
        self.idx_path = index_path_for(self.path)
        self.report_path = report_path_for(self.path)
        self.encoding = normalize_encoding(encoding)
        if isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100:
            raise OptionError("quality must be an integer: 1-100 for JPEG, 0-9 for PNG; got %r"
                              % (quality,))
        self.quality = quality
        failure_limit(max_failures, 1)  # validate early
        self.max_failures = max_failures
        if not overwrite and (os.path.exists(self.path) or os.path.exists(self.idx_path)):
            raise OutputExistsError("%s already exists; pass overwrite=True (CLI: --overwrite) "
                                    "to replace it when the new run succeeds" % self.path)
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise FileNotFoundError("%s: the output folder %s does not exist; create it first"
                                    % (self.path, parent))
        self._tmp_rec = self.path + ".partial"
        self._tmp_idx = self.idx_path + ".partial"
        self._tmp_report = self.report_path + ".partial"
        self._rec = open(self._tmp_rec, "wb", buffering=_BUFFER)
        self._idx = open(self._tmp_idx, "w", encoding="ascii", newline="\n")
        self._report = None
        self._first_failure = None
        self._offset = 0
        self._keys = array("Q")
        self._next_key = 0
        self._failed = 0
        self._started = time.monotonic()
        self._closed = False
        self.summary = WriteSummary(self.path)

    # -- context manager: commit on success, discard on failure --------------------------
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def __del__(self):
        if not getattr(self, "_closed", True):
            self.abort()

    # -- writing ------------------------------------------------------------------------------
    def _check_open(self):
        if self._closed:
            raise RecpackError("%s: the writer is closed; open a new RecordFileWriter" % self.path)

    def _append(self, key, payload):
        frame = encode_record(payload)
        self._rec.write(frame)
        self._idx.write(format_index_line(key, self._offset))
        self._offset += len(frame)
        self._keys.append(key)
        if key >= self._next_key:
            self._next_key = key + 1

    def _fail(self, failure):
        self._failed += 1
        if self._first_failure is None:
            self._first_failure = "%s: %s" % (failure["error"], failure["message"])
        if self._report is None:
            self._report = open(self._tmp_report, "w", encoding="utf-8")
        self._report.write(json.dumps(failure, sort_keys=True) + "\n")
        log.warning("skipped item %s (key %s%s): %s: %s", failure["index"], failure["key"],
                    ", " + str(failure["source"]) if failure.get("source") else "",
                    failure["error"], failure["message"])

    def write(self, image, label=0.0, key=None):
        """Encode one image in this process and append it.

        Parameters
        ----------
        image : numpy.ndarray, NDArray or bytes
            HWC RGB (or HW gray) uint8 array, or already-encoded bytes stored verbatim.
        label : number or 1-D sequence
            A vector is stored whole (``flag = len(label)``).
        key : int, optional
            The record key (``.idx`` key and header id); default: one past the largest so far.

        Returns
        -------
        int
            The key used.
        """
        self._check_open()
        key = self._next_key if key is None else int(key)
        payload = pack_record(label, key, encode_image(image, self.encoding, self.quality))
        self._append(key, payload)
        return key

    def write_dataset(self, dataset, *, num_workers=0, batch_size=32, thread_pool=False,
                      progress=None, timeout=600):
        """Append every item of a Gluon ``Dataset`` of ``(image, label)``, in dataset order.

        A ``gluon.data.DataLoader`` with ``num_workers`` processes (threads with
        ``thread_pool=True``) reads, transforms and encodes items; this process only appends
        the encoded records, so the output is the same bytes for any ``num_workers``.

        Keys are the dataset's own (``ImageListDataset``: the ``.lst`` indices) or, for any
        other dataset, positions counted on from the writer's next key.

        Parameters
        ----------
        progress : callable, optional
            Called as ``progress(done, total)`` after every batch.

        Returns
        -------
        WriteSummary
            For this dataset only.
        """
        self._check_open()
        key_of, source_of = resolve_item_info(dataset)
        total = len(dataset)
        if key_of is not None and total:
            keys = np.fromiter((key_of(i) for i in range(total)), dtype=np.uint64, count=total)
            self._check_new_keys(keys)
        encoder = RecordEncoder(dataset, key_of=key_of, key_base=self._next_key,
                                source_of=source_of, encoding=self.encoding,
                                quality=self.quality)
        return self._consume(encoder, total, num_workers=num_workers, batch_size=batch_size,
                             thread_pool=thread_pool, progress=progress, timeout=timeout)

    def _check_new_keys(self, keys):
        uniq, counts = np.unique(keys, return_counts=True)
        if len(uniq) != len(keys):
            dup = uniq[counts > 1][:5]
            raise OptionError("%s: the dataset repeats record keys %s; keys must be unique"
                              % (self.path, ", ".join(str(int(k)) for k in dup)))
        if len(self._keys):
            clash = np.intersect1d(uniq, np.frombuffer(self._keys, dtype=np.uint64))
            if len(clash):
                raise OptionError("%s: keys %s are already in this file; keys must be unique"
                                  % (self.path, ", ".join(str(int(k)) for k in clash[:5])))

    def _consume(self, encoder, total, *, num_workers, batch_size, thread_pool, progress,
                 timeout):
        limit = failure_limit(self.max_failures, total)
        start = time.monotonic()
        written0, failed0, bytes0 = len(self._keys), self._failed, self._offset
        done = 0
        for batch in run_loader(encoder, num_workers=num_workers, batch_size=batch_size,
                                thread_pool=thread_pool, timeout=timeout):
            for key, payload in batch:
                if isinstance(payload, dict):
                    self._fail(payload)
                    if limit is not None and self._failed - failed0 > limit:
                        self._publish_report()
                        raise TooManyFailuresError(
                            "%s: %d of %d items failed, more than max_failures=%r allows; "
                            "nothing was written at %s. The failures are listed in %s (first: "
                            "%s)" % (self.path, self._failed - failed0, total, self.max_failures,
                                     self.path, self.report_path, self._first_failure),
                            failures=self._failed - failed0, report_path=self.report_path)
                else:
                    self._append(key, payload)
            done += len(batch)
            if progress is not None:
                progress(done, total)
        written = len(self._keys) - written0
        failed = self._failed - failed0
        if failed and not written:
            self._publish_report()
            raise TooManyFailuresError(
                "%s: all %d items failed, nothing to write. The failures are listed in %s "
                "(first: %s)" % (self.path, failed, self.report_path, self._first_failure),
                failures=failed, report_path=self.report_path)
        return WriteSummary(self.path, written, failed, self._offset - bytes0,
                            time.monotonic() - start,
                            self.report_path if failed else None)

    def _publish_report(self):
        """Move the failure report to its final name (it is wanted even when the run fails)."""
        if self._report is not None:
            self._report.close()
            self._report = None
            os.replace(self._tmp_report, self.report_path)

    # -- finishing ------------------------------------------------------------------------------
    def close(self):
        """Finish the files and move them to their final names (idempotent)."""
        if self._closed:
            return self.summary
        try:
            if len(self._keys) != len(np.unique(np.frombuffer(self._keys, dtype=np.uint64))):
                raise OptionError("%s: some record keys were written twice; keys must be "
                                  "unique" % self.path)
            for f in (self._rec, self._idx):
                f.flush()
                os.fsync(f.fileno())
                f.close()
            if self._failed:
                self._publish_report()
            elif os.path.exists(self.report_path):
                os.remove(self.report_path)  # a stale report of an earlier run
            # .rec first: an old .idx still describes a prefix of an appended .rec.
            os.replace(self._tmp_rec, self.path)
            os.replace(self._tmp_idx, self.idx_path)
            fsync_dir(self.path)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self.summary = WriteSummary(self.path, len(self._keys), self._failed, self._offset,
                                    time.monotonic() - self._started,
                                    self.report_path if self._failed else None)
        log.info("%s", self.summary.line())
        return self.summary

    def abort(self):
        """Discard everything written by this writer; existing files stay as they were."""
        if self._closed:
            return
        self._closed = True
        for f in (self._rec, self._idx, self._report):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        for p in (self._tmp_rec, self._tmp_idx, self._tmp_report):
            try:
                os.remove(p)
            except FileNotFoundError:
                pass
