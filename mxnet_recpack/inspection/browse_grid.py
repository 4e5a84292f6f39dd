"""Which records a page of ``recpack browse`` shows: a page by position, or among a key range
(from the index, at once), or those whose label matches, found by reading headers from where
the last page stopped, at most ``budget`` of them (and a few seconds) per page. A file without
an index is walked frame by frame only as far as that.
"""

import time
from collections import namedtuple

import numpy as np

from ..errors import RecpackError

__all__ = ["QueryError", "Grid", "labels_of", "plain_page", "scan_page"]

_SCAN_SECONDS = 3.0  # a filtered page stops reading headers after this long
_WALK_CHUNK = 1024  # records a file without an index is walked on by at a time

#: The records of a page (:class:`~.browse_files.Head` each), how many records there are
#: (``known``: all of them, or those found so far), where a filtered page stopped reading
#: (``next_at``) and whether that is the end of the file (``done``).
Grid = namedtuple("Grid", ["rows", "total", "known", "next_at", "done"])


class QueryError(RecpackError, ValueError):
    """A query value the page does not take (answered with 400 and the reason)."""


def labels_of(text, classes):
    """The label values of ``"3"``, ``"3, 7"`` or class names (``"cat"``), float32-rounded."""
    values = set()
    for token in filter(None, (t.strip() for t in text.split(","))):
        try:
            value = float(token)
        except ValueError:
            named = [label for label, name in classes.items() if name == token]
            if not named:
                raise QueryError("no class is named %r%s: give label numbers (3 or 3,7) or "
                                 "class names" % (token, "" if classes else
                                                  " (this file has no classes.tsv)"))
            value = float(named[0])
        with np.errstate(over="ignore"):
            stored = np.float32(value)  # labels are float32
        if not np.isfinite(stored):
            raise QueryError("a label to filter by must be a finite float32 number; got %r"
                             % token)
        values.add(float(stored))
    return frozenset(values) or None


def _matches(head, labels, lo, hi):
    """Whether a record is shown: its key in ``lo .. hi``, and with ``labels``, an image whose
    label (a vector label's first value: an identity, as InsightFace reads it) is one of
    them."""
    header = head.header
    if header is None or (labels is not None and not head.has_image):
        return False
    if lo is not None and (head.key is None or head.key < lo):
        return False
    if hi is not None and (head.key is None or head.key > hi):
        return False
    if labels is None:
        return True
    value = header.label if header.flag == 0 else float(header.label[0])
    return value in labels


def plain_page(bf, start, size, lo, hi, budget):
    """The records of one page, no label filter: by position, or among a key range."""
    if bf.indexed:
        chosen = None if lo is None and hi is None else bf.key_range(lo, hi)
        total = len(bf.keys) if chosen is None else len(chosen)
        chosen = range(start, min(total, start + size)) if chosen is None else \
            chosen[start:start + size]
        known = True
    else:
        total, known = bf.count(start + size + 1, budget)
        chosen = range(start, min(total, start + size))
    reader = bf.reader()
    return Grid([bf.head(int(p), reader) for p in chosen], total, known, None, True)


def _exhausted(bf, chosen, i):
    if chosen is not None:
        return i >= len(chosen)
    n, known = bf.count()
    return known and i >= n


def scan_page(bf, at, size, labels, lo, hi, budget):
    """Up to ``size`` records from position ``at`` on that match, reading at most ``budget``
    headers (and for at most a few seconds)."""
    chosen = bf.key_range(lo, hi) if bf.indexed and (lo, hi) != (None, None) else None
    rows, i, reader = [], at, bf.reader()
    deadline = time.monotonic() + _SCAN_SECONDS
    while len(rows) < size and i - at < budget and time.monotonic() < deadline:
        if chosen is not None:
            if i >= len(chosen):
                break
            pos = int(chosen[i])
        else:
            n, known = bf.count()
            if i >= n and not known:
                n, known = bf.count(i + _WALK_CHUNK, _WALK_CHUNK)
            if i >= n:
                break
            pos = i
        head = bf.head(pos, reader)
        i += 1
        if _matches(head, labels, lo, hi):
            rows.append(head)
    total, known = (len(chosen), True) if chosen is not None else bf.count()
    return Grid(rows, total, known, i, _exhausted(bf, chosen, i))
