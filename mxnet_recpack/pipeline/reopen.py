"""Opening an output that already holds records: an append (the existing pair, checked, and its
checksum sidecar taken over) and a resumed run (its partial files, cut back to their last whole
record). Both fill in an :class:`~.commit.OutputTransaction`."""

import logging
import os
import shutil

import numpy as np

from ..errors import IndexFormatError, RecpackError
from ..format.checks import check_pair, recover_partial
from ..format.checksums import crc32c, read_checksums
from ..format.index import IndexEntries, format_index_line, read_index_arrays
from ..storage.local import io_step
from .runstate import RunState, target_fingerprint

__all__ = ["open_append", "open_resume", "read_sidecar"]

log = logging.getLogger(__name__)


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
    sidecar = _take_sidecar(out, entries)
    # With a sidecar that describes this very file (its length, records and keys), the pair is
    # the one recpack wrote: its last record ending at the end is enough. Without one, every
    # indexed frame is checked (frame heads only).
    out.entries = check_pair(out.path, out.idx_path, entries=entries, last_only=sidecar)
    out.offsets.frombytes(out.entries.offsets.astype(np.int64).tobytes())
    with io_step("copying the index %s" % out.idx_path):
        shutil.copyfile(out.idx_path, out.idx_tmp)
    out.state = RunState(initial_records=len(out.entries), append=True,
                         target=target_fingerprint(out.path, out.idx_path), sidecar=sidecar)
    log.info("%s: appending after %d existing records (%d bytes)", out.path, len(out.entries),
             out.length)


def _take_sidecar(out, entries):
    """Take over the target's sidecar when it describes it; True if there is one."""
    existing = read_sidecar(out.crc_path)
    if existing is None:
        return False
    if existing.length != out.length or len(existing) != len(entries) or \
            existing.covers != "all":
        log.warning("%s: the checksum sidecar %s is stale (it describes %d records, %d bytes); "
                    "the appended file gets none", out.path, out.crc_path, len(existing),
                    existing.length)
        return False
    if existing.version == 2 and not (np.array_equal(existing.offsets, entries.offsets) and
                                      np.array_equal(existing.keys, entries.keys)):
        wrong = int(np.flatnonzero((existing.offsets != entries.offsets) |
                                   (existing.keys != entries.keys))[0])
        raise IndexFormatError(
            "%s:%d: the index lists key %d at byte %d, where the checksum sidecar recorded "
            "key %d at byte %d: the index was changed since the file was written. Check the "
            "pair with `recpack verify %s` and rebuild the index with `recpack index %s`"
            % (out.idx_path, wrong + 1, int(entries.keys[wrong]), int(entries.offsets[wrong]),
               int(existing.keys[wrong]), int(existing.offsets[wrong]), out.path, out.path))
    out.crcs.frombytes(existing.crcs.astype("<u4").tobytes())
    return True


def open_resume(out):
    """Continue the interrupted run whose state is at ``out.state_path``."""
    try:
        with open(out.state_path, encoding="utf-8") as f:
            state = RunState.from_json(f.read())
    except (OSError, ValueError, TypeError) as exc:
        raise RecpackError("%s: cannot resume, the run description %s is unreadable (%s); "
                           "start again without resume" % (out.path, out.state_path, exc))
    out.state = state
    if state.append:
        _check_append_target(out)
    if not os.path.exists(out.rec_tmp):
        raise RecpackError("%s: cannot resume: the run description %s is there but the partial "
                           "records %s are not (removed by hand?); start again without resume"
                           % (out.path, out.state_path, out.rec_tmp))
    with io_step("cutting %s back to its last whole record" % out.rec_tmp):
        out.rec = os.fdopen(os.open(out.rec_tmp, os.O_RDWR), "r+b", buffering=0)
        kept, end = recover_partial(out.rec_tmp, out.idx_tmp, trusted=state.initial_records,
                                    shift=out.length)
        out.entries = IndexEntries.from_pairs(kept)
        out.offset = out.length + end
        out.rec.truncate(end)
        out.rec.seek(end)
    with io_step("rewriting the index %s" % out.idx_tmp):
        with open(out.idx_tmp, "w", encoding="ascii", newline="\n") as f:
            f.writelines(format_index_line(k, o) for k, o in out.entries)
        out.idx = open(out.idx_tmp, "a", encoding="ascii", newline="\n")
    out.offsets.frombytes(out.entries.offsets.astype(np.int64).tobytes())
    if state.sidecar:
        _crc_records(out, state.initial_records)
    log.info("%s: resuming an interrupted run after %d whole records (%d bytes)", out.path,
             len(out.entries), out.offset)


def _check_append_target(out):
    """Resuming an append: the target must be the file the append began on."""
    target = out.state.target
    out.length = target["length"]
    if not os.path.exists(out.path) or not os.path.exists(out.idx_path) or \
            os.path.getsize(out.path) != out.length or \
            target_fingerprint(out.path, out.idx_path) != target:
        raise RecpackError(
            "%s: cannot resume the interrupted append: the file changed since it began "
            "(replaced or written by another tool?). Append again without resume" % out.path)
    if out.state.sidecar:
        entries = read_index_arrays(out.idx_path)
        if not _take_sidecar(out, entries):
            out.state.sidecar = False


def _crc_records(out, skip):
    """The CRCs of the records a resumed run keeps (read once from its temporary file)."""
    offsets = [o - out.length for o in out.entries.offsets[skip:].tolist()] + [
        out.offset - out.length]
    with open(out.rec_tmp, "rb") as f:
        for a, b in zip(offsets, offsets[1:]):
            f.seek(a)
            out.crcs.append(crc32c(f.read(b - a)))
