"""The two seams of the pipeline: ``Items`` (what a run writes) and ``Sink`` (where it goes).

A run (:mod:`mxnet_recpack.pipeline`) owns everything a format need not know: the lock on the
target, the commit journal, the run state that ``resume`` continues, the failure report,
progress, workers, parts, ``s3://`` staging and Dask. A format brings a sink (and, to be read,
items): the files of a run and what the commit must move into place. Adding a format is one
folder (its codec, sink and items) and one row of :data:`mxnet_recpack.formats.FORMATS`.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any, Protocol, Sequence

__all__ = ["Items", "Sink", "CommitPlan"]

#: What a sink's finished run asks of the commit: ``members`` ``[(temporary, final), ...]``
#: moved into place as a whole, ``removes`` finals that must not outlive it (a stale sidecar,
#: the shards of a longer earlier version), ``append`` ``(file, original length, tail)`` for a
#: sink that appends in place (RecordIO), and ``owned`` temporary files removed with the
#: journal once the commit is whole.
CommitPlan = namedtuple("CommitPlan", ["members", "removes", "append", "owned"])


class Items(Protocol):
    """What a run writes, by position (a ``typing.Protocol``: duck-typed, nothing to inherit).

    Every member but ``__len__`` and ``__getitem__`` is optional: a plain list of
    ``(image, label)`` or a Gluon ``Dataset`` is Items too. What is missing is filled in by
    :func:`mxnet_recpack.pipeline.items.as_items`, the one place that asks (keys counting on
    from the output's, no sources, no fingerprint, reading by ``__getitem__``).
    """

    #: The record key of every position (uint64).
    record_keys: Sequence[int]
    #: ``record_item`` is OpenCV/numpy code that releases the GIL (threads read in parallel).
    record_item_gil_free: bool
    #: Reading an item is mostly Python holding the GIL (copying stored bytes): threads beyond
    #: one a core only contend (the runner caps them, see ``executors.copy_threads``).
    record_item_gil_bound: bool
    #: Items are files' bytes stored as they are (pass-through): the writer reads a batch of
    #: them straight into one buffer with ``record_bytes_into`` and ``record_label``.
    record_item_bytes: bool

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> Any: ...

    def record_item(self, i: int) -> Any:
        """Item ``i`` as numpy or bytes (no framework arrays): ``(image, label)``, or a stored
        record (``FramedRecord``, ``RecordPayload``), stored as it is."""

    def record_bytes_into(self, i: int, buffer: bytearray, offset: int) -> int:
        """With ``record_item_bytes``: item ``i``'s bytes written into ``buffer`` from
        ``offset`` (growing it as needed), raising what ``record_item`` would; their count."""

    def record_nbytes(self, i: int) -> int | None:
        """With ``record_item_bytes``: how many bytes ``record_bytes_into(i, ...)`` will write,
        if known (the runner sizes its batches by it)."""

    def record_label(self, i: int) -> Any:
        """With ``record_item_bytes``: item ``i``'s label (what ``record_item`` pairs with
        its bytes)."""

    def record_source(self, i: int) -> str | None:
        """Where item ``i`` comes from, for failure reports."""

    def fingerprint(self) -> dict | None:
        """What identifies the items' content: a resumed run must match it."""

    def pickle_parts(self) -> list:
        """``(description, object)`` pairs worker processes receive by pickle (to name the
        one that cannot be pickled)."""


class Sink(Protocol):
    """Where a run's records go. The runner calls, in order: ``open_fresh`` (or
    ``open_append`` then ``open_fresh(append=True)``, or ``open_resume``), ``write`` per batch
    with what the workers encoded (RecordIO: frames and their CRC32C, made by
    :class:`~mxnet_recpack.pipeline.encoder.RecordEncoder`; a shard format: its
    ``encoder(options)``, see :class:`~mxnet_recpack.formats.shards.ShardFormat`), then
    ``finish``, whose :data:`CommitPlan` the journal commits. Two sinks:
    :class:`~mxnet_recpack.formats.recordio.sink.RecordIOSink` and
    :class:`~mxnet_recpack.formats.shards.ShardSink`."""

    name: str
    can_append: bool
    path: str  # the target: the lock, journal and run state are named after it
    report_path: str  # where the run's failure report goes, beside the output
    offset: int  # bytes written so far (the output's size once committed)
    as_made: str  # what made_by checks, for the "already complete" message

    def exists(self) -> bool: ...

    def has_partial(self) -> bool: ...

    def temp_files(self) -> list: ...

    def fds(self) -> list: ...

    def open_fresh(self, *, append: bool = False) -> None: ...

    def open_append(self) -> tuple:
        """``(records there, the target's fingerprint)``; sinks that cannot append refuse."""

    def open_resume(self, initial_records: int, target: dict | None, sidecar: bool) -> None: ...

    def write(self, records: list, checked: bool = True) -> None: ...

    def stored_record(self, i: int) -> bytes: ...

    def finish(self, *, keys, run: str | None, append: bool) -> CommitPlan: ...

    def made_by(self, run: str) -> bool: ...

    def close_files(self) -> None: ...
