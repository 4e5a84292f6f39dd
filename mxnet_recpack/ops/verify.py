"""``recpack verify``: every frame of a ``.rec`` checked against its ``.idx`` and checksum
sidecar, every image checked as MXNet's decoder would read it.

An image record passes when it is in a format MXNet's bundled decoder reads (JPEG, PNG, BMP,
TIFF), non-empty, and decodes without libjpeg reporting damaged data. Label-only records (no
image after the header: InsightFace's header and identity records) are accepted and counted.
Failures: damaged frames and headers, an index that does not describe the file or lists a key
twice, a record whose bytes do not match its CRC32C in ``NAME.crc``. Reported, not failed: keys
that differ from header ids (``rec2idx.py`` makes such files on purpose), a stale sidecar.
"""

from __future__ import annotations

import os
from collections import Counter, namedtuple

import numpy as np

from ..errors import IndexFormatError, RecordFormatError
from ..format.checks import walk
from ..format.checksums import crc32c, read_checksums
from ..format.header import unpack_record
from ..format.index import read_index
from ..format.names import crc_path_for, index_path_for
from ..options import validate
from ..pipeline.executors import run_batches
from ..pipeline.journal import settle
from ..storage import check_regular_file, is_url
from .image_checks import DecodeChecks, image_problem

__all__ = ["verify", "Problem", "VerifyResult"]


class Problem(dict):
    """One problem found by :func:`verify`: ``offset``, ``key`` (or None) and ``message``."""

    def __str__(self):
        where = "byte offset %s" % self["offset"] if self["offset"] is not None else "index"
        if self.get("key") is not None:
            where += " (key %s)" % self["key"]
        return "%s: %s" % (where, self["message"])


class VerifyResult(namedtuple("VerifyResult", ["records", "problems"])):
    """``(records, problems)``, as before, and what else ``verify`` found.

    Attributes
    ----------
    images, label_only : int
        Whole records holding an image, and holding only a label.
    notes : list of str
        What is reported but not a failure (keys that differ from ids, a stale sidecar, ...).
    checksums : str
        ``"match"``, ``"mismatch"``, ``"none"`` (no sidecar) or ``"stale"``.
    decoded : bool
        Every image was decoded (not ``quick`` or ``decode=False``).
    """

    def as_dict(self):
        return {"records": self.records, "images": self.images, "label_only": self.label_only,
                "problems": [dict(p) for p in self.problems], "notes": self.notes,
                "checksums": self.checksums, "decoded": self.decoded, "ok": not self.problems}


class _Report:
    """Problems and notes, bounded."""

    def __init__(self, limit):
        self.limit, self.problems, self.notes, self.count = limit, [], [], 0

    def problem(self, offset, key, message):
        self.count += 1
        if len(self.problems) < self.limit:
            self.problems.append(Problem(offset=offset, key=key, message=message))

    def note(self, text):
        if len(self.notes) < self.limit:
            self.notes.append(text)


def _load_index(idx_path, rec_path, report):
    try:
        return read_index(idx_path)
    except FileNotFoundError:
        report.problem(None, None, "no index file %s; build one with `recpack index %s`"
                       % (idx_path, rec_path))
    except IndexFormatError as exc:
        report.problem(None, None, str(exc))
    return None


def _load_checksums(rec_path, size, report):
    path = crc_path_for(rec_path)
    try:
        sums = read_checksums(path)
    except RecordFormatError as exc:
        report.problem(None, None, str(exc))
        return None, "mismatch"
    if sums is None:
        return None, "none"
    if sums.length != size:
        report.note("%s is stale: it describes a .rec of %d bytes, this one has %d (written by "
                    "another tool since?); its checksums are not used" % (path, sums.length,
                                                                         size))
        return None, "stale"
    return sums, "match"


def _walk(rec_path, sums, quick, decode, accept, report):
    """Frames, headers, checksums and (quick) image structure; ``(found, to_decode, counts)``."""
    found, images, label_only = {}, [], 0
    with open(rec_path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        n = -1  # whole records so far: the sidecar lists them in file order
        for offset, _, payload, raw, error in walk(f, size, path=rec_path):
            if error is not None:
                report.problem(offset, None, error.reason)
                continue
            n += 1
            if sums is not None:
                if n >= len(sums) or crc32c(raw) != int(sums.crcs[n]):
                    report.problem(offset, None, "its bytes do not match their CRC32C in the "
                                   "checksum sidecar: the record changed since it was written")
            try:
                header, body = unpack_record(payload, offset=offset, path=rec_path)
            except RecordFormatError as exc:
                found[offset] = None
                report.problem(offset, None, exc.reason)
                continue
            found[offset] = int(header.id)
            if not len(body):
                label_only += 1
            elif decode and not quick:
                images.append((offset, int(header.id)))
            else:
                problem, note = image_problem(body, decode=False, accept_jpeg_warnings=accept)
                if problem:
                    report.problem(offset, int(header.id), problem)
                images.append(None)
        if sums is not None and len(found) != len(sums):
            report.problem(None, None, "the checksum sidecar lists %d records, the file holds "
                           "%d" % (len(sums), len(found)))
    return found, images, label_only


def _check_index(entries, found, idx_path, report):
    listed = Counter(off for _, off in entries)
    for key, n in Counter(k for k, _ in entries).items():
        if n > 1:
            report.problem(None, key, "%s lists key %d %d times: keys must be unique (readers "
                           "by key find only one of them)" % (idx_path, key, n))
    for off, n in listed.items():
        if n > 1:
            report.problem(off, None, "%s lists this offset %d times" % (idx_path, n))
    differ = 0
    for key, off in entries:
        if off not in found:
            report.problem(off, key, "the index points here but no whole record starts here")
        elif found[off] is not None and found[off] != key:
            differ += 1
    for off in sorted(set(found) - set(listed)):
        report.problem(off, found[off], "record is not listed in the index %s" % idx_path)
    if differ:
        report.note("%d index keys differ from their records' header ids (rec2idx.py numbers "
                    "records by position: readers by key use the index's keys)" % differ)


def verify(rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None, *,
           decode: bool = True, quick: bool = False, num_threads: int = 1,
           accept_jpeg_warnings: bool = False, max_problems: int = 1000,
           storage_options: dict | None = None) -> VerifyResult:
    """Check a record file as MXNet's readers would read it; see the module docstring.

    Parameters
    ----------
    decode : bool
        Decode every image (``False``: frames, headers, checksums and image headers only).
    quick : bool
        The same as ``decode=False``: at disk speed.
    num_threads : int
        Worker processes that decode (1: this process).
    accept_jpeg_warnings : bool
        Count libjpeg's corrupt-data warnings as notes instead of failures.
    storage_options : dict, optional
        For an ``s3://`` (any fsspec URL) ``rec_path``, read through a local copy.

    Returns
    -------
    VerifyResult
        ``(records, problems)`` (at most ``max_problems``), with ``images``, ``label_only``,
        ``notes`` and ``checksums``.
    """
    rec_path = os.fspath(rec_path)
    num_threads = validate("num_thread", num_threads)  # before a URL is copied here
    if is_url(rec_path):
        from ..storage.readable import readable
        with readable(rec_path, (".idx", ".crc"), storage_options=storage_options) as local:
            return local.back(verify(local.path, idx_path, decode=decode, quick=quick,
                                     num_threads=num_threads, max_problems=max_problems,
                                     accept_jpeg_warnings=accept_jpeg_warnings))
    idx_path = index_path_for(rec_path) if idx_path is None else os.fspath(idx_path)
    settle(rec_path)
    _check_files(rec_path, idx_path)
    report = _Report(max_problems)
    entries = _load_index(idx_path, rec_path, report)
    sums, checksums = _load_checksums(rec_path, os.path.getsize(rec_path), report)
    found, images, label_only = _walk(rec_path, sums, quick, decode, accept_jpeg_warnings,
                                      report)
    if checksums == "match" and any("CRC32C" in p["message"] for p in report.problems):
        checksums = "mismatch"
    if entries is not None:
        _check_index(entries, found, idx_path, report)
    todo = [x for x in images if x is not None]
    if todo:
        checks = DecodeChecks(rec_path, np.array([o for o, _ in todo], np.int64),
                              np.array([k for _, k in todo], np.uint64),
                              accept_jpeg_warnings=accept_jpeg_warnings)
        for batch in run_batches(checks, num_workers=num_threads if num_threads > 1 else 0,
                                 batch_size=64, thread_pool=False):
            for i, (problem, note) in batch:
                if problem:
                    report.problem(int(checks.offsets[i]), checks.key(i), problem)
                if note:
                    report.note("byte offset %d (key %d): %s" % (checks.offsets[i],
                                                                 checks.key(i), note))
    if label_only:
        _check_face_layout(rec_path, idx_path, report)
    result = VerifyResult(len(found), report.problems)
    result.images, result.label_only = len(images), label_only
    result.notes, result.checksums = report.notes, checksums
    result.decoded = decode and not quick
    result.problem_count = report.count
    return result


def _check_files(rec_path, idx_path):
    """Refuse a ``.rec``, ``.idx`` or ``.crc`` that is a directory, a FIFO or a device."""
    check_regular_file(rec_path, "the record file")
    check_regular_file(idx_path, "the index", missing_ok=True)
    check_regular_file(crc_path_for(rec_path), "the checksum sidecar", missing_ok=True)


def _check_face_layout(rec_path, idx_path, report):
    """InsightFace's layout, when key 0 is its header record: its ranges checked."""
    from ..sources.insightface import check_layout, read_layout
    from ..sources.records import RecordSet
    if report.count or not os.path.exists(idx_path) or idx_path != index_path_for(rec_path):
        return
    try:
        records = RecordSet(rec_path)
        layout = read_layout(records)
    except (RecordFormatError, IndexFormatError) as exc:
        report.problem(None, 0, str(exc))
        return
    if layout is None:
        return
    problems, notes = check_layout(records, layout)
    for key, message in problems:
        report.problem(None, key, message)
    for note in notes:
        report.note(note)
    if not problems:
        report.note("InsightFace layout: %d images, %d identities (header record at key 0)"
                    % (layout.first - 1, layout.end - layout.first))
