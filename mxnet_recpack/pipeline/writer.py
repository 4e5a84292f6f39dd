"""RecordFileWriter: the one process that writes a ``.rec``/``.idx`` pair, atomically: only a
successful ``close()`` (the end of a ``with`` block that raised nothing) commits the run's
files (see :mod:`.commit`); an interrupted run can be resumed, an existing file appended to."""

from __future__ import annotations

import logging
import os
import time
import warnings
from typing import Any, Callable, Sequence

from ..errors import OptionError, OutputExistsError, RecpackError, TooManyFailuresError
from ..format.checksums import crc32c
from ..format.framing import encode_record
from ..format.header import check_detection_label, pack_record, unpack_record
from ..format.names import index_path_for, report_path_for
from ..images.codec import ImageEncoder
from ..images.encodings import store_quality
from ..options import D, validate
from ..storage import is_url
from .commit import OutputTransaction, keeps_partial
from .encoder import RecordEncoder, Subset
from .plan import plan_dataset, plan_keys
from .executors import run_batches
from .failures import FailureReport, FailureWatch
from .resume import begin_dataset, check_same_content, resume_position
from .keys import KeyLedger
from .summary import WriteSummary

__all__ = ["RecordFileWriter", "WriteSummary"]

log = logging.getLogger(__name__)


class RecordFileWriter:
    """Write an indexed RecordIO file that MXNet's image readers read.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.rec`` to create; the ``.idx`` goes beside it (``train.rec`` -> ``train.idx``).
    encoding : {'.jpg', '.png', '.npy'}, default '.jpg'
        How array images are stored (``bytes`` items are stored verbatim). ``.npy`` stores any
        numpy array (float tensors after ``ToTensor``), read back with ``np.load``.
    quality : int, optional
        JPEG quality 1-100 (default 95), or PNG compression level 0-9 (default 9, the level
        im2rec.py's 95 acts as; levels above 9 act as 9, as in ``mx.recordio.pack_img``).
    overwrite : bool, default True
        Replace an existing output when the run succeeds. With ``False`` an existing file raises
        :class:`~mxnet_recpack.errors.OutputExistsError` before anything is written.
    max_failures : None, int or float, default None
        Items that fail (unreadable, undecodable, wrong type) are skipped and listed in
        ``NAME.failures.jsonl``. ``None`` tolerates any number as long as something is written;
        a count ``>= 1`` or a fraction ``< 1`` of the dataset stops the run past that many.
    append : bool, default False
        Add records after the end of an existing ``.rec``/``.idx`` (checked first). The new
        records are staged and copied after the end by the commit, so an append costs what it
        adds and a failed one leaves the file as it was. Dataset keys continue after the
        largest key.
    resume : bool, default False
        Continue an interrupted run from its last whole record (same dataset and options); the
        result is byte-identical to an uninterrupted run. Without a partial run to continue, a
        new run starts.
    storage_options : dict, optional
        For an ``s3://`` (any fsspec URL) ``path``: fsspec options. The files are staged
        locally and uploaded only when complete.
    detection_labels : bool, default False
        Check every label against ImageDetRecordIter's layout; an item that breaks it is
        skipped and reported (``write`` raises).

    Examples
    --------
    >>> with RecordFileWriter("train.rec") as w:
    ...     w.write(image, 3)                  # key 0
    ...     w.write_dataset(dataset, num_workers=2)
    """

    def __init__(self, path: str | os.PathLike, *, encoding: str = D.encoding,
                 quality: int | None = D.quality, overwrite: bool = D.overwrite,
                 max_failures: int | float | None = D.max_failures, append: bool = D.append,
                 resume: bool = D.resume, storage_options: dict | None = D.storage_options,
                 detection_labels: bool = D.detection_labels, _command: str = "pack"):
        self.path = os.fspath(path)
        self.encoding = validate("encoding", encoding)
        self.quality = store_quality(self.encoding, validate("quality", quality))
        self.max_failures = validate("max_failures", max_failures)
        overwrite, append, resume = (validate("overwrite", overwrite),
                                     validate("append", append), validate("resume", resume))
        storage_options = validate("storage_options", storage_options)
        self._image_encoder = ImageEncoder(self.encoding, self.quality)
        self._label_check = check_detection_label if validate(
            "detection_labels", detection_labels) else None
        self._remote = None
        if is_url(self.path):
            from ..storage.remote import RemoteOutput
            self._remote = RemoteOutput(self.path, storage_options=storage_options)
        elif os.path.isdir(self.path):
            raise OptionError("%s is a directory; give the path of the .rec file to write, "
                              "e.g. %s" % (self.path, os.path.join(self.path, "train.rec")))
        self._out = OutputTransaction(self._remote.local if self._remote else self.path,
                                      command=_command)
        self._sink = self._out.sink
        self.idx_path = index_path_for(self.path)
        self.report_path = report_path_for(self.path)
        if not self._remote:
            parent = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(parent):
                raise FileNotFoundError("%s: the output folder %s does not exist; create it "
                                        "first" % (self.path, parent))
        self._out.acquire()  # one owner, and an interrupted commit settled, before all else
        try:
            if self._remote:
                self._remote.settle()  # an interrupted commit at the URL, finished or undone
                exists = self._remote.exists(self._out.path) or self._remote.exists(
                    self._sink.idx_path)
            else:
                exists = os.path.exists(self.path) or os.path.exists(self.idx_path)
            if exists and not (overwrite or append or resume):
                raise OutputExistsError("%s already exists; pass overwrite=True (CLI: drop "
                                        "--no-overwrite) to replace it when the new run "
                                        "succeeds, or append=True (--append) to add to it"
                                        % self.path)
            if self._remote and (append or resume) and not (resume and os.path.exists(
                    self._out.state_path)):
                for member in (self._out.path, self._sink.idx_path, self._sink.crc_path):
                    if append or member == self._sink.crc_path:
                        self._remote.download(member)
            self._out.open(append=append, resume=resume, exists=exists)
        except BaseException:
            self._out.discard(keep=True)
            raise
        self._keys = KeyLedger(self.path, self._sink.entries.keys)
        self._report = FailureReport(self._out.report_tmp)
        self._started = time.monotonic()
        self._closed = False
        self._datasets = 0
        self._complete = False  # the run's dataset was written to its end
        self.summary = WriteSummary(self.path)

    @property
    def resumed(self):
        """True when this writer continues an interrupted run."""
        return self._out.state.resumed

    # -- context manager: commit on success, discard on failure --------------------------
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            # An interruption (Ctrl-C, SIGTERM -> SystemExit) or trouble writing the files (a
            # full disk) keeps the partial files so the run can be resumed; an error of the
            # data or the options discards them.
            self.abort(keep_partial=keeps_partial(exc_type))
        return False

    def __del__(self):
        if not getattr(self, "_closed", True):
            warnings.warn("%s: RecordFileWriter was dropped without close(); nothing was "
                          "written at the final path. The partial output is kept: open it "
                          "again with resume=True to continue, or use `with RecordFileWriter"
                          "(...) as w:`, which commits on success" % self.path, ResourceWarning,
                          stacklevel=2)
            self.abort(keep_partial=True)

    # -- writing ------------------------------------------------------------------------------
    def _check_open(self):
        if self._closed:
            raise RecpackError("%s: the writer is closed; open a new RecordFileWriter" % self.path)

    def _append_batch(self, records, checked=True):
        """Append ``(key, frame buffers, crc)`` records with one ``writev`` for the batch."""
        self._check_started()
        self._out.write(records, checked)
        self._keys.extend([record[0] for record in records])

    def _check_started(self):
        if self._out.mode == "check":
            raise OptionError(self._out.nothing_to_resume())

    def _single_records(self):
        """Records written one by one: such a run is not resumed (nothing says what it was)."""
        self._check_started()
        if self.resumed:
            raise OptionError("%s: resume=True continues an interrupted run: give write_dataset "
                              "the same dataset and options to finish it (single records "
                              "cannot be added to it; nothing was written)" % self.path)
        if self._out.state.resumable:
            self._out.state.resumable = False
            self._out.save_state()

    def write(self, image: Any, label: Any = 0.0, key: int | None = None) -> int:
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
        key = self._keys.next_key if key is None else int(key)
        self._keys.check_one(key)
        if self._label_check is not None:
            self._label_check(label)
        frame = encode_record(pack_record(label, key, bytes(self._image_encoder(image))))
        self._single_records()
        self._append_batch([(key, (frame,), crc32c(frame))])
        return key

    def write_payload(self, payload: bytes, key: int | None = None, *,
                      checked: bool = True) -> int:
        """Append a record payload as it is (header, labels and image bytes: what
        ``mx.recordio.pack`` makes, or what a reader gives back), byte for byte.

        ``key`` defaults to the payload's header id. ``checked=False``: the bytes could not be
        checked against a checksum of the file they come from, so the new checksum sidecar
        does not vouch for them (``recpack index --salvage``). Returns the key used.
        """
        self._check_open()
        header, _ = unpack_record(payload)
        key = int(header.id) if key is None else int(key)
        self._keys.check_one(key)
        frame = encode_record(payload)
        self._single_records()
        self._append_batch([(key, (frame,), crc32c(frame))], checked)
        return key

    def write_dataset(self, dataset: Sequence, *, num_workers: int = D.num_workers,
                      batch_size: int = D.batch_size, thread_pool: bool | None = D.thread_pool,
                      progress: Callable[[int, int], None] | None = D.progress,
                      timeout: float = D.timeout, run_info: dict | None = None,
                      positions: Sequence[int] | None = None) -> WriteSummary:
        """Append every item of a dataset of ``(image, label)``, in dataset order.

        ``dataset`` is any sized, indexable sequence: a Gluon ``Dataset``, an
        :class:`~mxnet_recpack.ImageList`, a list of ``(image, label)``. ``num_workers``
        workers read, transform and encode items; this process only appends the encoded
        records, so the output is the same bytes for any ``num_workers``. ``thread_pool``
        None (default) uses threads when the items are made by OpenCV/numpy alone (lists,
        compiled Gluon ``Resize``/``CenterCrop``), which release the GIL, and processes when
        Python or Gluon code runs per item (started with the default ``multiprocessing``
        start method); True/False force it.

        Keys are the dataset's own (``ImageListDataset``: the ``.lst`` indices) or, for any
        other dataset, positions counted on from the writer's next key.

        Parameters
        ----------
        progress : callable, optional
            Called as ``progress(done, total)`` after every batch.
        run_info : dict, optional
            JSON-able facts that make this run what it is (list file, preprocessing options);
            a resumed run must match them.
        positions : sequence of int, optional
            Write only these dataset positions (ascending), e.g. one part of a split dataset;
            keys stay those of the whole dataset.

        Returns
        -------
        WriteSummary
            For this dataset only.
        """
        self._check_open()
        for name, value in (("num_workers", num_workers), ("batch_size", batch_size),
                            ("thread_pool", thread_pool), ("timeout", timeout),
                            ("progress", progress)):
            validate(name, value)
        self._datasets += 1
        plan = plan_dataset(dataset, positions, run_info, encoding=self.encoding,
                            quality=self.quality)
        if self._out.mode == "check":
            return self._already_complete(plan.description)
        key_base = begin_dataset(self._out, self._keys, plan.description,
                                 resuming=self.resumed, first=self._datasets == 1)
        keys, position_keys = plan_keys(plan, key_base)
        order, total = plan.order, plan.total
        with self._out.naming_errors("cannot resume"):
            start = resume_position(self._out, self._keys, self._report, keys, order) \
                if self.resumed else 0
        self._keys.check_new(keys[start:])
        encoder = RecordEncoder(dataset, keys=position_keys, key_base=key_base,
                                source_of=plan.source_of, encoder=self._image_encoder,
                                label_check=self._label_check)
        if start:
            check_same_content(self._out, self._keys, encoder, int(order[start - 1]))
            log.info("%s: %d of %d items were done before the interruption; continuing",
                     self.path, start, total)
        if start or positions is not None:
            encoder = Subset(encoder, order[start:])
        with self._out.naming_errors("could not write the run's files"):
            summary = self._consume(encoder, total, start, num_workers=num_workers,
                                    batch_size=batch_size, thread_pool=thread_pool,
                                    progress=progress, timeout=timeout)
        self._complete = self._datasets == 1
        return summary

    def _already_complete(self, description):
        """A resume with no interrupted run: a no-op when this very run made the file there
        (and it has not changed since); refused otherwise, never a rebuild."""
        if self._datasets > 1 or not self._out.made_by(description):
            raise OptionError(self._out.nothing_to_resume())
        self.summary = WriteSummary(self.path, status="already complete")
        self._closed = True
        self._out.release()
        return self.summary

    def _consume(self, encoder, total, start, *, num_workers, batch_size, thread_pool,
                 progress, timeout):
        watch = FailureWatch(self._report, self.path, total, self.max_failures)
        t0 = time.monotonic()
        written0, failed0, bytes0 = len(self._keys), self._report.count, self._sink.offset
        done = start
        for batch in run_batches(encoder, num_workers=num_workers,
                                 batch_size=encoder.batch_size(batch_size),
                                 thread_pool=thread_pool, timeout=timeout):
            over = watch.sort(batch, self._append_batch)
            if over:
                self._stop_for_failures(over)
            done += len(batch)
            if progress is not None:
                progress(done, total)
        written, failed = len(self._keys) - written0, self._report.count
        if failed and len(self._keys) == self._out.state.initial_records:
            self._stop_for_failures("all %d items failed, nothing to write" % failed)
        return WriteSummary(self.path, written, failed - failed0, self._sink.offset - bytes0,
                            time.monotonic() - t0, self.report_path if failed else None)

    def _stop_for_failures(self, what):
        """Publish the failure report (it is wanted even now) and stop the run."""
        self._report.close()
        os.replace(self._out.report_tmp, self._out.report_path)
        if self._remote:
            self._remote.upload([self._out.report_path])
        raise TooManyFailuresError(
            "%s: %s; nothing was written at %s. The failures are listed in %s (first: %s)"
            % (self.path, what, self.path, self.report_path, self._report.first),
            failures=self._report.count, report_path=self.report_path)

    # -- finishing ------------------------------------------------------------------------------
    def close(self) -> WriteSummary:
        """Finish the files and move them to their final names (idempotent)."""
        if self._closed:
            return self.summary
        if self._out.mode == "check":  # a resume of a file it did not interrupt: no change
            self._closed = True
            self._out.release()
            self.summary = WriteSummary(self.path, status="unchanged")
            return self.summary
        if self.resumed and not self._complete:
            self.abort(keep_partial=True)
            raise OptionError("%s: resume=True continues an interrupted run: give write_dataset "
                              "the same dataset and options to finish it (nothing was "
                              "committed; the partial run is kept)" % self.path)
        failed = self._report.count
        try:
            try:
                self._report.close()
            except OSError as exc:
                raise self._out.output_error(exc, "the commit could not complete",
                                             kept="finished") from exc
            self._out.commit(keys=self._keys.array(), report=failed > 0,
                             keep_lock=bool(self._remote))
        except BaseException as exc:
            # complete: fix the cause, then resume commits it
            self.abort(keep_partial=keeps_partial(type(exc)))
            raise
        if self._remote:
            self._closed = True
            members = [self._out.path, self._sink.idx_path, self._sink.crc_path,
                       self._out.report_path]
            try:  # still locked: no second run on this URL touches the staged files meanwhile
                self._remote.commit([p for p in members if os.path.exists(p)],
                                    removes=[p for p in members if not os.path.exists(p)])
            finally:
                self._out.release()
        self._closed = True
        self.summary = WriteSummary(self.path, len(self._keys), failed, self._sink.offset,
                                    time.monotonic() - self._started,
                                    self.report_path if failed else None)
        log.info("%s", self.summary.line())
        return self.summary

    def abort(self, *, keep_partial: bool = False) -> None:
        """Stop; existing files stay as they were. The partial files are removed, or kept for a
        later ``resume`` when ``keep_partial`` or when this run was itself resumed."""
        if self._closed:
            return
        self._closed = True
        # A resumed run's partial output is an earlier run's work: never thrown away.
        keep_partial = (keep_partial or self.resumed) and self._out.resumable
        try:
            self._report.close()
        except OSError:
            pass  # the error being handled says more
        self._out.discard(keep=keep_partial)
        if keep_partial and self._out.mode != "check":
            log.warning("%s: stopped; the partial output is kept at %s: run again with "
                        "resume=True (--resume) to continue", self.path, self._sink.rec_tmp)
