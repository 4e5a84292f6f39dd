"""Opening a RecordIO output that already holds records: an append (the existing pair,
checked, and its checksum sidecar taken over) and a resumed run (its partial files, cut back to
their last record that still checks out). Both fill in a :class:`~.sink.RecordIOSink`."""

import logging
import os
import shutil

import numpy as np

from ...errors import IndexFormatError, RecordFormatError, RecpackError
from ...format.checks import check_pair
from ...format.framing import RecordReader
from ...format.checksums import crc32c, read_checksums
from ...format.index import IndexEntries, parse_index_line, read_index_arrays
from ...storage.local import io_step, tail_sha256

__all__ = ["open_append", "open_resume", "read_sidecar", "target_fingerprint"]

log = logging.getLogger(__name__)


def target_fingerprint(rec, idx):
    """What an append starts from: the ``.rec``'s length, a hash of its last 64 KiB, and a
    hash of the ``.idx``: a resumed append refuses a target that changed."""
    import hashlib
    length = os.path.getsize(rec)
    with open(idx, "rb") as f:
        index = hashlib.sha256(f.read()).hexdigest()
    return {"length": length, "tail_sha256": tail_sha256(rec, length), "idx_sha256": index}


def read_sidecar(path):
    """The checksum sidecar at ``path``, or None when it is absent or unreadable (logged)."""
    try:
        return read_checksums(path)
    except RecpackError as exc:
        log.warning("%s; it is not used", exc)
        return None


def open_append(out):
    """Check the existing pair of ``out`` and take over its sidecar (an append begins)."""
    if not os.path.exists(out.idx_path):
        raise FileNotFoundError("%s exists but its index %s does not; rebuild it with "
                                "`recpack index %s` before appending"
                                % (out.path, out.idx_path, out.path))
    out.length = out.offset = os.path.getsize(out.path)
    entries = read_index_arrays(out.idx_path)
    vouched = _take_sidecar(out, entries)
    # With a sidecar that describes this very file (its length, records and keys), the pair is
    # the one recpack wrote: its last record ending at the end is enough. Without one, every
    # indexed frame is checked (frame heads only).
    out.entries = check_pair(out.path, out.idx_path, entries=entries, last_only=vouched)
    out.offsets.frombytes(out.entries.offsets.astype(np.int64).tobytes())
    with io_step("copying the index %s" % out.idx_path):
        shutil.copyfile(out.idx_path, out.idx_tmp)
        with open(out.idx_tmp, "rb+") as f:  # an index another tool ended without a newline
            f.seek(0, os.SEEK_END)
            if f.tell() and (f.seek(-1, os.SEEK_END), f.read(1))[1] != b"\n":
                f.write(b"\n")
    log.info("%s: appending after %d existing records (%d bytes)", out.path, len(out.entries),
             out.length)
    return len(out.entries), target_fingerprint(out.path, out.idx_path)


def _take_sidecar(out, entries):
    """Take over the CRCs the target's sidecar has for its records; the others are
    ``out.unchecked`` (the new sidecar vouches only for what it can: the records it listed,
    and what the append adds). True when it vouches for every record."""
    existing = read_sidecar(out.crc_path)
    n = len(entries)
    crcs = np.zeros(n, "<u4")
    known = np.zeros(n, bool)
    if existing is not None and existing.length != out.length:
        log.warning("%s: the checksum sidecar %s describes a file of %d bytes, not this one "
                    "(changed by another tool?): the appended file's sidecar covers the new "
                    "records only", out.path, out.crc_path, existing.length)
    elif existing is not None and existing.version == 1:
        if len(existing) == n:
            crcs, known = existing.crcs.astype("<u4"), np.ones(n, bool)
    elif existing is not None:
        at = {int(o): j for j, o in enumerate(entries.offsets.tolist())}
        for j, (offset, key) in enumerate(zip(existing.offsets.tolist(),
                                              existing.keys.tolist())):
            i = at.get(offset)
            if i is None:
                continue  # a record the index does not list: check_pair says so
            if int(entries.keys[i]) != key:
                raise IndexFormatError(
                    "%s:%d: the index lists key %d at byte %d, where the checksum sidecar "
                    "recorded key %d: the index was changed since the file was written. Check "
                    "the pair with `recpack verify %s` and rebuild the index with `recpack "
                    "index %s`" % (out.idx_path, i + 1, int(entries.keys[i]), offset, key,
                                   out.path, out.path))
            crcs[i], known[i] = existing.crcs[j], True
    out.crcs.frombytes(crcs.tobytes())
    out.unchecked.extend(np.flatnonzero(~known).tolist())
    # it vouches for the file as a whole (so a look at its last record will do) only when it
    # lists exactly the records the index does
    return bool(known.all()) and n > 0 and existing.covers == "all" and len(existing) == n


def open_resume(out, initial_records, target, sidecar):
    """Continue an interrupted run (``target``: what its append began on, or None): its records
    are kept up to the first one that is missing, torn, unlisted or no longer matches the CRC32C
    it was written with; the files are cut back there (truncations, never a rewrite a kill
    could leave half done)."""
    if target is not None:
        _check_append_target(out, target, initial_records, sidecar)
    for path in (out.rec_tmp, out.idx_tmp):
        if not os.path.exists(path):
            raise RecpackError("%s: cannot resume: the interrupted run's file %s is not there "
                               "(removed by hand?); start again without resume"
                               % (out.path, path))
    with io_step("cutting %s back to its last whole record" % out.rec_tmp):
        entries, lengths = _index_lines(out, initial_records)
        kept, end, crcs = _kept(out, entries[initial_records:])
        keep = initial_records + len(kept)
        out.rec = os.fdopen(os.open(out.rec_tmp, os.O_RDWR), "r+b", buffering=0)
        out.rec.truncate(end)
        out.rec.seek(end)
        os.truncate(out.idx_tmp, int(sum(lengths[:keep])))
        out.idx = _append_only(out.idx_tmp)
        if os.path.exists(out.sums_tmp):
            os.truncate(out.sums_tmp, 4 * len(kept))
        out.sums = _append_only(out.sums_tmp)
    out.entries = IndexEntries.from_pairs(entries[:initial_records] + kept)
    out.offset = out.length + end
    out.offsets.frombytes(out.entries.offsets.astype(np.int64).tobytes())
    if sidecar:
        out.crcs.frombytes(np.asarray(crcs, "<u4").tobytes())
    log.info("%s: resuming an interrupted run after %d whole records (%d bytes)", out.path,
             len(out.entries), out.offset)


def _append_only(path):
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666), "ab",
                     buffering=0)


def _index_lines(out, trusted):
    """The partial index's ``(key, offset)`` entries, up to its first line that is torn or
    malformed, and the byte length of each line."""
    with open(out.idx_tmp, "rb") as f:
        data = f.read()
    entries, lengths = [], []
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            entries.append(parse_index_line(line.decode("ascii").rstrip("\n")))
        except (ValueError, UnicodeDecodeError):
            break
        lengths.append(len(line))
    if len(entries) < trusted:
        raise IndexFormatError("%s lists %d records, fewer than the %d it had when the run "
                               "began; start again without resume" % (out.idx_tmp, len(entries),
                                                                      trusted))
    return entries, lengths


def _kept(out, entries):
    """``(kept entries, end, their CRCs)``: the records of the run itself that are whole, in
    order, listed, and match the CRC32C written for each."""
    sums = np.zeros(0, "<u4")
    if os.path.exists(out.sums_tmp):
        with open(out.sums_tmp, "rb") as f:
            data = f.read()
        sums = np.frombuffer(data[:len(data) // 4 * 4], "<u4")
    kept, crcs, end = [], [], 0
    with open(out.rec_tmp, "rb") as f:
        reader = RecordReader(f, path=out.rec_tmp)
        for (key, offset), crc in zip(entries, sums.tolist()):
            if offset - out.length != end:
                break
            try:
                nxt = reader.skip_next(end)
            except RecordFormatError:
                nxt = None
            if nxt is None:
                break
            f.seek(end)
            if crc32c(f.read(nxt - end)) != crc:
                log.warning("%s: record %d (key %d) of the interrupted run no longer matches the "
                            "checksum it was written with: it and what follows are made again",
                            out.path, len(kept), key)
                break
            kept.append((key, offset))
            crcs.append(crc)
            end = nxt
    return kept, end, crcs


def _check_append_target(out, target, initial_records, sidecar):
    """Resuming an append: the target must be the file the append began on."""
    out.length = target["length"]
    if not os.path.exists(out.path) or not os.path.exists(out.idx_path) or \
            os.path.getsize(out.path) != out.length or \
            target_fingerprint(out.path, out.idx_path) != target:
        raise RecpackError(
            "%s: cannot resume the interrupted append: the file changed since it began "
            "(replaced or written by another tool?). Append again without resume" % out.path)
    if sidecar:
        _take_sidecar(out, read_index_arrays(out.idx_path))
