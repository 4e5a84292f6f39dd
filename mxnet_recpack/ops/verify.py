"""``recpack verify``: every frame of a ``.rec`` checked against its ``.idx`` and checksum
sidecar, every image checked as MXNet's decoder would read it.

An image record passes when it is in a format MXNet's bundled decoder reads (JPEG, PNG, BMP,
TIFF), non-empty, and decodes without libjpeg reporting damaged data. Label-only records (no
image after the header: InsightFace's header and identity records) are accepted and counted.
Failures: damaged frames and headers, an index that does not describe the file or lists a key
twice, a record whose bytes do not match its CRC32C in ``NAME.crc`` (matched by offset: a
damaged stretch does not shift the others), a record the sidecar lists that is gone, an index
key other than the one the sidecar recorded for that record, or, without a sidecar, a few keys
that break the convention the rest of the file follows (key = header id, as im2rec and recpack
write, or key = position, as ``rec2idx.py`` does). Reported, not failed: a file that keys its
records its own way, a sidecar that describes a file of another length (its entries still
vouch for the records they list), JPEGs whose EXIF orientation MXNet's readers disagree on
(:mod:`~mxnet_recpack.images.exif`).
"""

from __future__ import annotations

import os
from collections import Counter, namedtuple

import numpy as np

from ..errors import IndexFormatError, RecordFormatError
from ..format.checks import walk
from ..format.checksums import Expected, crc32c, read_checksums
from ..format.header import unpack_record
from ..format.index import read_index
from ..format.names import crc_path_for, index_path_for
from ..options import validate
from ..pipeline.executors import run_batches
from ..pipeline.journal import settle
from ..storage import check_regular_file, is_url
from .image_checks import DecodeChecks, ImageNotes, image_problem

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
        ``"match"``, ``"mismatch"``, ``"none"`` (no sidecar) or ``"stale"`` (it describes a
        file of another length; the records it lists were checked against it).
    checked : int
        Records whose bytes matched their CRC32C in the sidecar.
    decoded : bool
        Every image was decoded (not ``quick`` or ``decode=False``).
    """

    def as_dict(self):
        return {"records": self.records, "images": self.images, "label_only": self.label_only,
                "problems": [dict(p) for p in self.problems], "notes": self.notes,
                "checksums": self.checksums, "checked": self.checked, "decoded": self.decoded,
                "ok": not self.problems}


class _Report:
    """Problems and notes, bounded."""

    def __init__(self, limit):
        self.limit, self.problems, self.notes, self.count = limit, [], [], 0
        self.images = ImageNotes(limit)  # the image checks' notes, added last

    def problem(self, offset, key, message):
        self.count += 1
        if len(self.problems) < self.limit:
            self.problems.append(Problem(offset=offset, key=key, message=message))

    def note(self, text):
        if len(self.notes) < self.limit:
            self.notes.append(text)


def _load_index(idx_path, rec_path, report, named):
    try:
        return read_index(idx_path)
    except FileNotFoundError:
        if named:  # --idx said where it is
            report.problem(None, None, "no index file %s; build one with `recpack index %s`"
                           % (idx_path, rec_path))
        else:  # im2rec.cc and MXRecordIO write such files: sequential readers need no .idx
            report.note("no index file %s: checked by scanning the records; readers that "
                        "seek (ImageRecordIter with shuffle, MXIndexedRecordIO, DALI, "
                        "RecordDataset) need one: `recpack index %s`" % (idx_path, rec_path))
    except IndexFormatError as exc:
        report.problem(None, None, str(exc))
    return None


def _load_checksums(rec_path, size, report):
    """The sidecar and what it describes: ``"match"`` (this very file), ``"stale"`` (a file
    of another length: cut short or appended to since; its entries still vouch for the records
    they name), ``"none"``, or ``"mismatch"`` (unreadable)."""
    path = crc_path_for(rec_path)
    try:
        sums = read_checksums(path)
    except RecordFormatError as exc:
        report.problem(None, None, str(exc))
        return None, "mismatch"
    if sums is None:
        return None, "none"
    if sums.length != size:
        report.note("%s is stale: it describes a .rec of %d bytes, this one has %d (cut short, "
                    "or written by another tool since?): only the records it lists are checked "
                    "against it" % (path, sums.length, size))
        return sums, "stale"
    return sums, "match"


class _Sums:
    """The records' bytes against the checksum sidecar, matched by where they start. When the
    sidecar describes a file of another length and not one record it lists matches (the
    sidecar of another file left beside this one), that is a note, not a problem per record."""

    def __init__(self, expected, size):
        self.expected, self.size = expected, size
        self.checked, self.pending, self.recorded = 0, [], {}

    def record(self, n, offset, raw, damaged):
        expected = self.expected
        j = expected.entry(n, offset, damaged)
        if j is not None:
            if crc32c(raw) != expected.crc(j):
                self.pending.append((offset, expected.key(j), "its bytes do not match their "
                                     "CRC32C in the checksum sidecar: the record changed since "
                                     "it was written"))
            else:
                self.checked += 1
            self.recorded[offset] = expected.key(j)
        elif expected.placed and expected.sums.covers == "all" and \
                offset < expected.sums.length:
            self.pending.append((offset, None, "the checksum sidecar lists no record starting "
                                 "here: the records around it changed since they were written"))

    def finish(self, report):
        """Report what was found; False when the sidecar is another file's."""
        missing, sums = self.expected.missing(), self.expected.sums
        if sums is not None and sums.length != self.size and not self.checked and self.pending:
            report.note("not one of the %d records the checksum sidecar lists matches: it "
                        "belongs to another file (the pair was replaced by another tool?) and is "
                        "not used; delete it, or rebuild it with `recpack index`"
                        % len(self.expected.sums))
            self.recorded = {}
            return False
        for problem in self.pending:
            report.problem(*problem)
        for off, key in missing[:report.limit]:
            report.problem(off, key, "the checksum sidecar lists a record here that the file no "
                           "longer holds whole (damaged, cut short or removed)")
        return True


def _walk(rec_path, sums, quick, decode, accept, report):
    """Frames, headers, checksums (``sums``, a :class:`_Sums`) and (quick) image structure;
    ``(found, images, label_only)``: ``found`` maps each whole record's offset to its header
    id."""
    found, images, label_only = {}, [], 0
    damaged = False
    with open(rec_path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        n = 0  # whole records so far
        for offset, _, payload, raw, error in walk(f, size, path=rec_path):
            if error is not None:
                report.problem(offset, None, error.reason)
                damaged = True
                continue
            sums.record(n, offset, raw, damaged)
            n += 1
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
                problem, notes = image_problem(body, decode=False, accept_jpeg_warnings=accept)
                if problem:
                    report.problem(offset, int(header.id), problem)
                report.images.add(offset, int(header.id), notes)
                images.append(None)
    return found, images, label_only


def _check_index(entries, found, recorded, idx_path, rec_path, report):
    listed = Counter(off for _, off in entries)
    for key, n in Counter(k for k, _ in entries).items():
        if n > 1:
            report.problem(None, key, "%s lists key %d %d times: keys must be unique (readers "
                           "by key find only one of them)" % (idx_path, key, n))
    for off, n in listed.items():
        if n > 1:
            report.problem(off, None, "%s lists this offset %d times" % (idx_path, n))
    by_position = all(key == n for n, (key, _) in enumerate(entries))
    for line, (key, off) in enumerate(entries, 1):
        if off not in found:
            report.problem(off, key, "the index points here but no whole record starts here")
        elif recorded.get(off) is not None and recorded[off] != key and not by_position:
            report.problem(off, key, "%s:%d lists key %d for the record the checksum sidecar "
                           "recorded as key %d: the index was changed since the file was "
                           "written, so readers by key get the wrong record; rebuild it with "
                           "`recpack index %s`" % (idx_path, line, key, recorded[off], rec_path))
    for off in sorted(set(found) - set(listed)):
        report.problem(off, found[off], "record is not listed in the index %s" % idx_path)
    _check_key_convention(entries, found, recorded, idx_path, rec_path, report, by_position)


def _check_key_convention(entries, found, recorded, idx_path, rec_path, report, by_position):
    """Keys that differ from header ids. im2rec.py, im2rec.cc and recpack key every record by
    its header id, and rec2idx.py by its position: a file that follows one of them except for a
    few keys has an index that was changed (swapped or renumbered keys), which is a problem;
    an index by position, or a file with a convention of its own, gets a note."""
    rows = [(n, key, found[off]) for n, (key, off) in enumerate(entries)
            if found.get(off) is not None and (by_position or recorded.get(off) is None)]
    differ = [(n, key, hid) for n, key, hid in rows if key != hid]
    if not differ:
        return
    if by_position:
        report.note("%d index keys differ from their records' header ids: the index numbers "
                    "records by position, as rec2idx.py does (readers by key use the index's "
                    "keys)" % len(differ))
        return
    if 2 * len(differ) < len(rows):
        for n, key, hid in differ[:report.limit]:
            report.problem(entries[n][1], key, "%s:%d lists key %d for the record whose header "
                           "id is %d, where the file's other records are listed by their ids: "
                           "the index was changed (keys swapped or renumbered), so readers by "
                           "key get the wrong record; rebuild it with `recpack index %s`"
                           % (idx_path, n + 1, key, hid, rec_path))
        return
    report.note("%d index keys differ from their records' header ids (the file keys its records "
                "its own way: readers by key use the index's keys)" % len(differ))


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
    named = idx_path is not None
    idx_path = index_path_for(rec_path) if idx_path is None else os.fspath(idx_path)
    settle(rec_path)
    _check_files(rec_path, idx_path)
    report = _Report(max_problems)
    entries = _load_index(idx_path, rec_path, report, named)
    sums, checksums = _load_checksums(rec_path, os.path.getsize(rec_path), report)
    expected = Expected(sums, [o for _, o in entries] if entries is not None else None)
    sums = _Sums(expected, os.path.getsize(rec_path))
    found, images, label_only = _walk(rec_path, sums, quick, decode, accept_jpeg_warnings,
                                      report)
    if not sums.finish(report):
        checksums = "stale"
    elif checksums in ("match", "stale") and sums.pending:
        checksums = "mismatch"
    recorded, checked = sums.recorded, sums.checked
    if entries is not None:
        _check_index(entries, found, recorded, idx_path, rec_path, report)
    todo = [x for x in images if x is not None]
    if todo:
        checks = DecodeChecks(rec_path, np.array([o for o, _ in todo], np.int64),
                              np.array([k for _, k in todo], np.uint64),
                              accept_jpeg_warnings=accept_jpeg_warnings)
        for batch in run_batches(checks, num_workers=num_threads if num_threads > 1 else 0,
                                 batch_size=64, thread_pool=False):
            for i, (problem, notes) in batch:
                if problem:
                    report.problem(int(checks.offsets[i]), checks.key(i), problem)
                report.images.add(int(checks.offsets[i]), checks.key(i), notes)
    if label_only:
        _check_face_layout(rec_path, idx_path, report)
    for note in report.images.notes():
        report.note(note)
    result = VerifyResult(len(found), report.problems)
    result.images, result.label_only = len(images), label_only
    result.notes, result.checksums = report.notes, checksums
    result.checked = checked
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
