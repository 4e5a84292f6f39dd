"""Frame-level checks of a record file and its index: no pixels, no writing.

* :func:`check_pair`: the ``.idx`` lists every record of the ``.rec``, in order, each whole,
  nothing trailing (before an append).
* :func:`recover_partial`: the whole records an interrupted writer left (before a resume).
* :func:`scan`: every record, or the damage found instead, resynchronising after it (for
  ``verify`` and salvage).

Standard library and numpy only.
"""

from ..errors import IndexFormatError, RecordFormatError
from .framing import RecordReader, aligned_magic_offsets
from .header import unpack_record
from .index import complete_lines, parse_index_line, read_index
from .names import index_path_for

__all__ = ["check_pair", "recover_partial", "scan", "next_frame_offset"]

def check_pair(rec_path, idx_path=None):
    """Check that ``idx`` lists every record of ``rec``, in order, each whole, nothing trailing.

    Reads only frame heads (8 bytes a frame), not payloads.

    Returns
    -------
    list of (key, offset)

    Raises
    ------
    RecordFormatError, IndexFormatError
        Naming the first problem, with the fix.
    """
    idx_path = index_path_for(rec_path) if idx_path is None else idx_path
    entries = read_index(idx_path)
    with open(rec_path, "rb") as f:
        reader = RecordReader(f, path=rec_path)
        expected = 0
        for n, (key, offset) in enumerate(entries, start=1):
            if offset != expected:
                raise IndexFormatError(
                    "%s:%d: key %d points at byte %d but the previous record ends at byte %d: "
                    "the index does not describe this .rec; rebuild it with `recpack index %s`"
                    % (idx_path, n, key, offset, expected, rec_path))
            end = reader.skip_next(offset)
            if end is None:
                raise IndexFormatError("%s:%d: key %d points at byte %d, past the end of %s"
                                       % (idx_path, n, key, offset, rec_path))
            expected = end
        if expected != reader.size:
            raise RecordFormatError(
                "%d bytes follow the last indexed record (ends at byte %d): a torn write or "
                "records missing from the index; run `recpack verify %s`"
                % (reader.size - expected, expected, rec_path), path=rec_path, offset=expected)
    return entries


def recover_partial(rec_path, idx_path, *, trusted=0, start=0):
    """Find the whole records of an interrupted write: ``(entries, end)``.

    Index lines are kept while each points at the next whole record; records written after the
    last index line (the ``.rec`` buffer was flushed, the ``.idx`` one not yet) are added back
    with their header id as key. A torn last frame is not included: truncate the file to
    ``end``. The first ``trusted`` lines (an append's existing records, checked when it began)
    are taken as they are, and the walk starts at byte ``start``.
    """
    entries = []
    for line in complete_lines(idx_path):
        try:
            entries.append(parse_index_line(line))
        except ValueError:
            break
    if len(entries) < trusted:
        raise IndexFormatError("%s lists %d records, fewer than the %d it had when the run "
                               "began; start again without resume" % (idx_path, len(entries),
                                                                      trusted))
    kept = entries[:trusted]
    end = start
    with open(rec_path, "rb") as f:
        reader = RecordReader(f, path=rec_path)
        for key, offset in entries[trusted:]:
            if offset != end:
                break
            try:
                nxt = reader.skip_next(offset)
            except RecordFormatError:
                nxt = None
            if nxt is None:
                break
            kept.append((key, offset))
            end = nxt
        while True:
            f.seek(end)
            try:
                got = reader.read_next(end)
                if got is None:
                    break
                header, _ = unpack_record(got[0])
            except RecordFormatError:
                break
            kept.append((int(header.id), end))
            end = got[1]
    return kept, end


def next_frame_offset(f, start, size):
    """Offset of the next 4-byte-aligned magic word at or after ``start`` (where a frame may
    begin), or ``size`` when there is none: how a scan resynchronises after damage."""
    pos = (start + 3) & ~3
    chunk = 1 << 20
    while pos < size:
        f.seek(pos)
        hits = aligned_magic_offsets(f.read(chunk))
        if len(hits):
            return pos + hits[0]
        pos += chunk
    return size


def scan(f, *, path=None, size=None):
    """Walk every frame of an open ``.rec`` from the start, resynchronising after damage.

    Yields
    ------
    (offset, payload, None) for each whole record, or (offset, None, RecordFormatError) where
    no whole record starts; the scan then continues at the next aligned magic word.
    """
    reader = RecordReader(f, path=path, size=size)
    size = reader.size
    offset = 0
    while offset < size:
        f.seek(offset)
        try:
            got = reader.read_next(offset)
        except RecordFormatError as exc:
            yield offset, None, exc
            offset = next_frame_offset(f, offset + 4, size)
            continue
        if got is None:
            return
        yield offset, got[0], None
        offset = got[1]
