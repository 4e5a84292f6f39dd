"""A run that writes samples into another format's shards: the same lock, journal, run state,
resume, workers and progress as a RecordIO run (:mod:`.commit`, :mod:`.executors`), around a
:class:`~mxnet_recpack.formats.shards.ShardSink`.

A conversion is lossless or nothing: a sample that cannot be read or encoded stops the run,
naming it, and nothing is written. A resume continues after the last whole shard.
"""

import logging
import os
import time
import traceback

from ..errors import OptionError, OutputExistsError, RecpackError, StorageUnreachableError
from .commit import OutputTransaction, keeps_partial
from .executors import run_batches
from .items import as_items
from .runstate import canonical
from .summary import WriteSummary

__all__ = ["write_shards", "SampleEncoder"]

log = logging.getLogger(__name__)


class SampleEncoder:
    """Worker side: position -> ``(key, encoded, size)`` or ``(key, failure dict)``."""

    def __init__(self, samples, encode, size_of, start=0):
        self.dataset = samples
        self.encode, self.size_of = encode, size_of
        self.start = start
        items = as_items(samples)
        self.gil_free, self.gil_bound = items.gil_free, items.gil_bound

    def __len__(self):
        return len(self.dataset) - self.start

    def key(self, i):
        return int(self.dataset.record_keys[self.start + i])

    def describe(self, i):
        return "key %d, %s" % (self.key(i), self.dataset.record_source(self.start + i))

    def __getitem__(self, i):
        key = self.key(i)
        try:
            encoded = self.encode(self.dataset.sample(self.start + i))
            return key, encoded, self.size_of(encoded)
        except StorageUnreachableError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported with the record it belongs to
            log.debug("item %d failed: %s", i, traceback.format_exc())
            return key, {"key": key, "source": self.dataset.record_source(self.start + i),
                         "error": type(exc).__name__, "message": str(exc)}


def _failed(path, failure):
    return RecpackError("%s: record key %d (%s) cannot be converted: %s: %s; nothing was "
                        "written (a conversion keeps every record or writes nothing)" % (
                            path, failure["key"], failure["source"], failure["error"],
                            failure["message"]))


def write_shards(samples, sink, *, description, overwrite=True, resume=False, num_workers=0,
                 batch_size=64, progress=None, timeout=600):
    """Write every sample of ``samples`` (Items with ``sample(i)``) to ``sink``, committed as a
    whole. ``description``: what makes this run what it is (a resume must match it)."""
    started = time.monotonic()
    parent = os.path.dirname(os.path.abspath(sink.path))
    if not os.path.isdir(parent):  # the lock and the staging folder go there
        os.makedirs(parent, exist_ok=True)
    out = OutputTransaction(sink, command="convert")
    out.acquire()
    try:
        if not overwrite and not resume and sink.exists():
            raise OutputExistsError("%s exists; pass overwrite=True (leave out --no-overwrite) "
                                    "to replace it when the new run succeeds" % sink.path)
        out.open(resume=resume)
    except BaseException:
        out.discard(keep=True)
        raise
    if out.mode == "check":
        made = out.made_by(description)
        out.release()
        if not made:
            raise OptionError(out.nothing_to_resume())
        return WriteSummary(sink.path, status="already complete")
    try:
        if out.mode == "resume":
            out.state.check_same_run(description, sink.path)
        if out.state.run is None:  # a new run, or one stopped before it said what it is
            out.state.run = canonical(description)
            out.save_state()
        start = sink.resumed_records
        if start:
            log.info("%s: %d of %d records were done before the interruption; continuing",
                     sink.path, start, len(samples))
        encoder = SampleEncoder(samples, sink.fmt.encoder(sink.options), sink.fmt.size_of,
                                start)
        done, total = start, len(samples)
        with out.naming_errors("could not write the shards"):
            for batch in run_batches(encoder, num_workers=num_workers, batch_size=batch_size,
                                     thread_pool=True if encoder.gil_free else None,
                                     timeout=timeout):
                for record in batch:
                    if isinstance(record[1], dict):
                        raise _failed(sink.path, record[1])
                out.write(batch)
                done += len(batch)
                if progress is not None:
                    progress(done, total)
        out.commit(keys=None)
    except BaseException as exc:
        # an interruption or a full disk keeps the run for resume; so does a resumed run,
        # whatever stopped it (an earlier run's work is never thrown away)
        out.discard(keep=keeps_partial(type(exc)) or out.mode == "resume")
        raise
    return WriteSummary(sink.path, sink.records, 0, sink.offset, time.monotonic() - started)
