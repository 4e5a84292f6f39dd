"""``filter_records`` and ``relabel``: a new file of some of the records of an existing one, or
of all of them with new labels; payloads copied byte for byte. See :mod:`.edit`."""

from __future__ import annotations

import os

import numpy as np

from ..errors import OptionError
from ..format.header import normalize_label
from ..options import D, resolve
from ..sources.existing import LabelTable, RecordItems
from ..sources.lists import parse_list
from ..storage import check_regular_file
from .edit import (EDIT_OPTIONS, face_items, face_properties, open_inputs, read_keys_file,
                   run_edit, single_layout)

__all__ = ["filter_records", "relabel"]


def _keys(value, name):
    """Keys from a keys file (path) or an iterable of ints (None stays None)."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return read_keys_file(value)
    try:
        keys = [int(k) for k in value]
        if any(k < 0 or k >= 1 << 64 or k != v for k, v in zip(keys, value)):
            raise ValueError
    except (TypeError, ValueError):
        raise OptionError("%s = %r is not valid; expected a keys file or record keys (integers "
                          "in [0, 2**64))" % (name, value)) from None
    return np.asarray(keys, dtype=np.uint64)


def _first_values(records, positions):
    """The label of each position as one number (a vector's first value)."""
    return np.array([float(v) if np.ndim(v) == 0 else (float(v[0]) if len(v) else np.nan)
                     for v in records.labels(positions)], dtype=np.float64)


def _as_stored(values, name):
    """Label values as a record stores them (float32), to compare with stored labels: 0.1
    given matches the 0.1 that was stored (None stays None)."""
    if values is None:
        return None
    try:
        return np.asarray(list(values), dtype=np.float32).astype(np.float64)
    except (TypeError, ValueError):
        raise OptionError("%s = %r is not valid; expected label values (numbers)"
                          % (name, values)) from None


def _flagged(records, options):
    """Positions of records that ``verify`` reports a problem with (decoding every image)."""
    from .verify import verify
    flagged = []
    for f, path in enumerate(records.paths):
        result = verify(path, num_threads=max(1, options.get("num_workers") or 1),
                        max_problems=len(records) + 1000,
                        storage_options=options.get("storage_options"))
        has_index = f not in records.scanned
        mine = np.flatnonzero(records._file == f)
        at = {int(records._offsets[p]): int(p) for p in mine}
        for problem in result.problems:
            if problem["offset"] is None and not has_index:
                continue  # "no index file": the records were found by scanning instead
            p = at.get(problem["offset"])
            if p is None:
                raise OptionError("%s: verify found a problem that dropping records cannot fix "
                                  "(%s); make a whole pair of the intact records first with "
                                  "`recpack index --salvage %s`" % (path, problem, path))
            flagged.append(p)
    return np.asarray(sorted(set(flagged)), np.int64)


def filter_records(input, output: str | os.PathLike, *, keep_keys=None, drop_keys=None,
                   labels=None, drop_labels=None, drop_label_only: bool = False,
                   drop_flagged: bool = False,
                   keep_empty_identities: bool = D.keep_empty_identities, **options):
    """Write the records of ``input`` that pass every given test, in their order, keys kept.

    Parameters
    ----------
    keep_keys, drop_keys : path or iterable of int, optional
        A keys file (one key per line; an im2rec ``.lst`` works) or the keys themselves.
    labels, drop_labels : iterable of numbers, optional
        Keep (drop) records whose label (a vector label's first value) is one of these.
    drop_label_only : bool
        Drop records that hold only a label (InsightFace's header and identity records, which
        DALI would count as samples): the result is the images alone.
    drop_flagged : bool
        Drop what ``recpack verify`` reports (images that do not decode, damaged data,
        formats MXNet cannot read, changed checksums).

    An InsightFace-layout input keeps its layout (its images are filtered, then a new header,
    identity records for the identities left and the ``property`` file are made; with
    ``keep_empty_identities``, also an empty record for each identity filtered out), unless
    ``drop_label_only``. Returns the summary.
    """
    output = os.fspath(output)
    opts = resolve(options, EDIT_OPTIONS)  # every option checked before an input is opened
    keep_keys, drop_keys = _keys(keep_keys, "keep_keys"), _keys(drop_keys, "drop_keys")
    labels, drop_labels = _as_stored(labels, "labels"), _as_stored(drop_labels, "drop_labels")
    records = open_inputs(input, opts["storage_options"], [output])
    layout = single_layout(records, "filter")
    keep = np.zeros(len(records), bool)
    units = layout.images[layout.images >= 0] if layout else np.arange(len(records))
    keep[units] = True
    if drop_label_only:
        keep &= records.has_image
        layout = None  # the images alone, keys kept: no header or identity records
    if keep_keys is not None:
        wanted = np.zeros(len(records), bool)
        found = records.positions_of(keep_keys)
        wanted[found[found >= 0]] = True
        keep &= wanted
    if drop_keys is not None:
        found = records.positions_of(drop_keys)
        keep[found[found >= 0]] = False
    if labels is not None or drop_labels is not None:
        values = np.full(len(records), np.nan)
        values[keep] = _first_values(records, np.flatnonzero(keep))
        if labels is not None:
            keep &= np.isin(values, labels)
        if drop_labels is not None:
            keep &= ~np.isin(values, drop_labels)
    if drop_flagged:
        keep[_flagged(records, opts)] = False
    chosen = np.flatnonzero(keep)
    if not len(chosen):
        raise OptionError("no record of %s passes the filter; nothing was written"
                          % ", ".join(records.paths))
    items = face_items(records, chosen, "filter", keep_empty=keep_empty_identities) \
        if layout else RecordItems(records, chosen, what="filter")
    summary = run_edit([(output, items)], opts, "filter")[0]
    if layout:
        face_properties([(output, items)], records, opts["storage_options"])
    return summary


def _read_mapping(mapping):
    if not isinstance(mapping, (str, os.PathLike)):
        return {float(np.float32(k)): normalize_label(v) for k, v in dict(mapping).items()}
    out = {}
    check_regular_file(mapping, "a label mapping file")
    with open(os.fspath(mapping), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            try:
                old, new = float(np.float32(fields[0])), [float(v) for v in fields[1:]]
                if not new:
                    raise ValueError
            except ValueError:
                raise OptionError("%s:%d: expected 'OLD_LABEL NEW_LABEL [...]', got %r"
                                  % (mapping, n, line.strip())) from None
            if old in out:
                raise OptionError("%s:%d: label %g is mapped twice" % (mapping, n, old))
            out[old] = normalize_label(new[0] if len(new) == 1 else new)
    return out


def _labels_from_list(records, positions, entries):
    at = records.positions_of(entries.keys)
    new = {int(p): entries.labels(i) for i, p in enumerate(at) if p >= 0}
    missing = [int(records.keys[p]) for p in positions if int(p) not in new]
    out = [None if int(p) not in new else (float(new[int(p)][0]) if len(new[int(p)]) == 1
                                           else new[int(p)].copy()) for p in positions]
    return out, missing, "the keys %s" % ", ".join(map(str, missing[:5]))


def _mapped(stored, new):
    """The new label of a record whose label is ``stored``, by the mapping rule: a number
    becomes ``new``; a vector whose first value is mapped to one number keeps its other
    values; to several numbers, it becomes them."""
    if new is None or not isinstance(stored, np.ndarray) or not isinstance(new, float):
        return new
    out = stored.astype(np.float32)
    out[0] = new
    return out


def _labels_from_mapping(records, positions, table):
    stored = records.labels(positions)  # floats, or float32 vectors (flag >= 1 values)
    keys = [float(s[0]) if isinstance(s, np.ndarray) else float(s) for s in stored]
    out = [_mapped(s, table.get(k)) for s, k in zip(stored, keys)]
    missing = sorted({k for k, n in zip(keys, out) if n is None})
    return out, missing, "the labels %s" % ", ".join("%g" % v for v in missing[:5])


def relabel(input, output: str | os.PathLike, *, list_file=None, mapping=None,
            keep_missing: bool = False,
            keep_empty_identities: bool = D.keep_empty_identities, **options):
    """Write every record of ``input`` with a new label; image bytes, keys and ``id2`` kept.

    Parameters
    ----------
    list_file : str, optional
        An im2rec ``.lst``: each record gets the label(s) of the line with its key (several
        labels: a vector).
    mapping : str or dict, optional
        ``{old label: new label}``, or a file of ``OLD NEW [NEW...]`` lines. A number label
        becomes the new label (several new values: a vector). A vector label (InsightFace's
        ``[identity, aligned]``) is looked up by its first value, the identity: one new
        number replaces that value and keeps the others; several make the new label whole.
    keep_missing : bool
        Keep the stored label of a record the list or mapping does not cover (default: refuse,
        naming them, before anything is written).

    An InsightFace-layout input gets a new header, identity records and ``property`` file
    for its new labels (``keep_empty_identities``: see :func:`filter_records`). Returns the
    summary.
    """
    if (list_file is None) == (mapping is None):
        raise OptionError("relabel needs exactly one of list_file= (--list) or mapping= "
                          "(--mapping)")
    output = os.fspath(output)
    opts = resolve(options, EDIT_OPTIONS)  # every option checked before an input is opened
    # the new labels, read and checked before the input is opened
    new = parse_list(list_file, storage_options=opts["storage_options"]) \
        if list_file is not None else _read_mapping(mapping)
    records = open_inputs(input, opts["storage_options"], [output])
    layout = single_layout(records, "relabel")
    units = layout.images[layout.images >= 0] if layout else np.arange(len(records))
    if list_file is not None:
        labels, missing, named = _labels_from_list(records, units, new)
    else:
        labels, missing, named = _labels_from_mapping(records, units, new)
    if missing and not keep_missing:
        raise OptionError("%s gives no label for %d record(s) (%s%s); add them, or pass "
                          "keep_missing=True (--keep-missing) to keep their stored labels"
                          % (list_file or "the mapping", len(missing), named,
                             ", ..." if len(missing) > 5 else ""))
    if layout:
        items = face_items(records, units, "relabel", labels, keep_empty_identities)
    else:
        items = RecordItems(records, units, labels=LabelTable(labels), what="relabel")
    summary = run_edit([(output, items)], opts, "relabel")[0]
    if layout:
        face_properties([(output, items)], records, opts["storage_options"])
    return summary
