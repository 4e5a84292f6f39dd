"""Operations on record files that exist: ``merge``, ``split`` and ``shuffle`` (this module),
``filter_records`` and ``relabel`` (:mod:`.select`), ``rewrite`` (:mod:`.rewrite`).

Each reads its inputs without decoding them and writes a new pair through
:class:`~mxnet_recpack.RecordFileWriter` (atomic, resumable, with a failures report and
progress), copying every record byte for byte: header, labels, ``id2`` and image bytes. Inputs
are never changed, and an output that is also an input is refused. Files without an ``.idx``
(im2rec.cc writes none) are read from their records.

InsightFace-layout inputs (a header record at key 0, identity records after the images: see
:mod:`~mxnet_recpack.sources.insightface`) keep their layout: the operations work on the images
and make a new header and identity records for what they write (one per identity that has
images, unless ``keep_empty_identities``), and InsightFace's ``property`` file beside them
(:mod:`~mxnet_recpack.sources.face_property`); or refuse, saying why.
"""

from __future__ import annotations

import logging
import os
import random

import numpy as np

from ..errors import DuplicateKeyError, OptionError
from ..format.header import MAX_KEY
from ..format.names import index_path_for, part_path, rec_path_for, stem
from ..options import D, check_parts, resolve, validate
from ..pipeline.jobs import LOADER_OPTIONS, WRITER_OPTIONS, WriteJob, run_jobs, split_positions
from ..pipeline.journal import settle
from ..sources.discover import split_by_ratio
from ..sources.existing import LabelTable, RecordItems
from ..sources.face_property import folder_of, write_property
from ..sources.insightface import build_layout, face_classes, identity_labels, read_layout
from ..sources.records import RecordSet, expand_paths
from ..storage import check_regular_file, is_url, write_small

__all__ = ["merge", "split", "shuffle", "open_inputs", "EDIT_OPTIONS", "run_edit",
           "face_items", "face_properties", "read_keys_file", "file_layouts", "single_layout",
           "check_output"]

log = logging.getLogger(__name__)

#: The writer and loader options every operation takes (see the option table).
EDIT_OPTIONS = ("overwrite", "resume", "max_failures", "storage_options", "num_workers",
                "batch_size", "thread_pool", "timeout", "progress", "dask")


def open_inputs(inputs, storage_options=None, outputs=()):
    """A RecordSet of ``inputs`` (paths, globs or URLs), after settling an interrupted commit
    of any of them; files without an ``.idx`` are read from their records. ``outputs`` that
    are also inputs are refused first (:func:`check_output`), before any input is read."""
    paths = expand_paths(inputs)
    for output in outputs:
        check_output(output, paths)
    for path in paths:
        if is_url(path):
            from ..storage.remote import settle_url
            settle_url(path, storage_options)
        else:
            if not check_regular_file(path, "an input record file", missing_ok=True):
                raise FileNotFoundError("%s: record file not found" % path)
            settle(path)
    return RecordSet(paths, storage_options=storage_options, scan=True)


def _same_file(a, b):
    if is_url(a) or is_url(b):
        return a.rstrip("/") == b.rstrip("/")
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.abspath(a) == os.path.abspath(b)


def check_output(output, inputs):
    """Refuse an output whose ``.rec`` or ``.idx`` is one of the inputs' (inputs stay as they
    are: write a new file, then rename it over the old one if that is what is wanted)."""
    for path in inputs:
        if _same_file(output, path) or _same_file(index_path_for(output), index_path_for(path)):
            raise OptionError("%s is also an input; the operations never change their inputs: "
                              "write to a new file (and rename it afterwards if you want it in "
                              "place)" % output)


def run_edit(items_by_output, options, what):
    """Write ``[(output .rec, RecordItems), ...]``: each output by its own job (here, or as
    Dask tasks); returns their :class:`~mxnet_recpack.WriteSummary` list."""
    opts = resolve(options, EDIT_OPTIONS)
    jobs = []
    for output, items in items_by_output:
        writer = {n: opts.get(n, getattr(D, n)) for n in WRITER_OPTIONS}
        if items.strict:  # a layout's ranges count every image: a skipped one would break them
            writer["max_failures"] = 0
        jobs.append(WriteJob(items, output, writer_options=writer,
                             loader_options={n: opts[n] for n in LOADER_OPTIONS},
                             run_info={"operation": what}))
    return run_jobs(jobs, dask=opts["dask"], progress=opts["progress"])


def face_items(records, positions, what, labels=None, keep_empty=False):
    """RecordItems of the images at ``positions`` in InsightFace's layout: each identity's
    images together (keys from 1), a new header record and identity records (``keep_empty``:
    for every number up to the largest identity). ``labels`` (one per position, or None)
    replaces the stored labels first. ``face_classes`` tells the ``property`` file's count."""
    stored = records.labels(positions)
    if labels is not None:
        stored = [s if n is None else n for s, n in zip(stored, labels)]
    ids = identity_labels(stored)
    order, identities, header = build_layout(ids, validate("keep_empty_identities",
                                                           keep_empty))
    n = len(order)
    chosen = np.asarray(positions, dtype=np.int64)[order]
    made = {n + j: rec for j, rec in enumerate(identities)}
    made[n + len(identities)] = header
    keys = np.concatenate((np.arange(1, n + 1 + len(identities)), [0])).astype(np.uint64)
    table = LabelTable([labels[i] for i in order] + [None] * (len(identities) + 1)) \
        if labels is not None else None
    items = RecordItems(records, np.concatenate((chosen, np.full(len(made), -1))), keys=keys,
                        set_ids=True, labels=table, made=made, what=what)
    items.face_classes = face_classes(ids)
    return items


def face_properties(written, records, storage_options=None):
    """Write InsightFace's ``property`` file for ``[(output .rec, face RecordItems)]`` (the
    images copied from ``records``): one per folder, for all the outputs in it (a split's
    parts: the classes of them all)."""
    folders = {}
    for output, items in written:
        folders.setdefault(folder_of(output), []).append((output, items))
    for group in folders.values():
        positions = np.concatenate([items.positions[items.positions >= 0]
                                    for _, items in group])
        write_property(group[0][0], max(items.face_classes for _, items in group), records,
                       positions, inputs=records.paths, storage_options=storage_options)


def file_layouts(records):
    """The InsightFace layout of each input file (None for a plain file)."""
    if len(records.paths) == 1:
        return [read_layout(records)]
    out = []
    for f in range(len(records.paths)):
        mine = np.flatnonzero(records._file == f)
        one = records.subset(mine)
        layout = read_layout(one)
        if layout is not None:  # positions in the whole set, not in this file's subset
            layout = layout._replace(header=mine[layout.header],
                                     images=_in_whole(mine, layout.images),
                                     identities=_in_whole(mine, layout.identities))
        out.append(layout)
    return out


def single_layout(records, what):
    """The InsightFace layout of a one-file input (None for a plain file). Several inputs are
    refused when any of them has the layout: each file's header and identity records number
    its own images, so taken together their ranges would be wrong."""
    layouts = file_layouts(records)
    if len(layouts) == 1:
        return layouts[0]
    faces = [p for p, layout in zip(records.paths, layouts) if layout is not None]
    if faces:
        raise OptionError("%s %s in InsightFace's layout (a header record at key 0, identity "
                          "records naming ranges of its own image keys): %s takes one such "
                          "file at a time. Merge them first (`recpack merge --identities "
                          "shared|separate`, which makes one layout of them), then %s the "
                          "merged file" % (", ".join(faces), "is" if len(faces) == 1 else
                                           "are", what, what))
    return None


def _in_whole(mine, at):
    return np.where(at >= 0, mine[np.maximum(at, 0)], -1)


def _check_unique_keys(records):
    keys, first, counts = np.unique(records.keys, return_index=True, return_counts=True)
    dup = keys[counts > 1]
    if not len(dup):
        return
    where = {}
    for p in np.flatnonzero(np.isin(records.keys, dup[:5])):
        where.setdefault(int(records.keys[p]), []).append(records.paths[records._file[p]])
    named = "; ".join("key %d in %s" % (k, ", ".join(v)) for k, v in sorted(where.items()))
    raise DuplicateKeyError("%d key(s) are in more than one input (%s%s): keys name records, "
                            "so the merged file cannot hold them twice; pass renumber=True "
                            "(--renumber) to give the records new keys 0, 1, 2... (the "
                            "mapping is written beside the output)"
                            % (len(dup), named, ", ..." if len(dup) > 5 else ""))


def keymap_path_for(rec_path):
    """Where ``merge --renumber`` writes its key mapping: ``NAME.keys.tsv``."""
    return stem(rec_path) + ".keys.tsv"


def merge(output: str | os.PathLike, inputs, *, renumber: bool = False,
          identities: str | None = None,
          keep_empty_identities: bool = D.keep_empty_identities, **options):
    """Merge record files into one, in input order.

    Keys are kept: a key in two inputs is refused up front, naming the keys; ``renumber``
    gives the records keys 0, 1, 2... (header ids too) and writes ``NAME.keys.tsv`` (input,
    old key, new key) beside the output. InsightFace-layout inputs (all of them, then) need
    ``identities``: ``"shared"`` (the inputs number the same people alike: labels kept) or
    ``"separate"`` (different people: each input's identities are numbered on after the
    previous input's); the result has one header, the identity records of all and
    InsightFace's ``property`` file (see :mod:`~mxnet_recpack.sources.face_property`).

    ``options``: :data:`EDIT_OPTIONS`. Returns the :class:`~mxnet_recpack.WriteSummary`.
    """
    opts = resolve(options, EDIT_OPTIONS)  # every option checked before an input is opened
    if identities not in (None, "shared", "separate"):
        raise OptionError("identities = %r is not valid; expected 'shared', 'separate' or "
                          "None" % (identities,))
    output = rec_path_for(os.fspath(output)) if not os.fspath(output).endswith(".rec") \
        else os.fspath(output)
    records = open_inputs(inputs, opts["storage_options"], [output])
    layouts = file_layouts(records)
    if any(layouts):
        items = _merge_faces(records, layouts, identities, keep_empty_identities)
    else:
        if identities is not None:
            raise OptionError("identities= is for merging InsightFace-layout files; these "
                              "inputs have no header record")
        if not renumber:
            _check_unique_keys(records)
        positions = np.arange(len(records))
        items = RecordItems(records, positions, keys=positions if renumber else None,
                            set_ids=renumber, what="merge")
    summary = run_edit([(output, items)], opts, "merge")[0]
    if any(layouts):
        face_properties([(output, items)], records, opts["storage_options"])
    if renumber and not any(layouts):
        lines = ["input\told_key\tnew_key\n"] + [
            "%s\t%d\t%d\n" % (records.paths[records._file[p]], records.keys[p], p)
            for p in range(len(records))]
        write_small(keymap_path_for(output), "".join(lines),
                    storage_options=opts["storage_options"])
    return summary


def _merge_faces(records, layouts, identities, keep_empty):
    if not all(layouts):
        plain = [p for p, lay in zip(records.paths, layouts) if lay is None]
        raise OptionError("some inputs are InsightFace-layout files and some (%s) are not; "
                          "merge files of one kind (`recpack filter --drop-label-only` turns a "
                          "face file into plain images)" % ", ".join(plain))
    if identities not in ("shared", "separate"):
        raise OptionError("the inputs are InsightFace-layout files: say whether they number the "
                          "same people alike, identities='shared' (--identities shared: labels "
                          "kept), or hold different people, identities='separate' (each "
                          "input's identities numbered on after the previous input's)")
    positions, labels, offset = [], [], 0
    for layout in layouts:
        mine = layout.images[layout.images >= 0]
        positions.append(mine)
        stored = records.labels(mine)
        ids = identity_labels(stored)
        if identities == "separate":
            labels.extend(_shifted(label, offset) for label in stored)
            offset += max(layout.end - layout.first, int(ids.max()) + 1 if len(ids) else 0)
        else:
            labels.extend([None] * len(mine))
    return face_items(records, np.concatenate(positions), "merge",
                      labels if identities == "separate" else None, keep_empty)


def _shifted(label, offset):
    if np.ndim(label) == 0:
        return float(label) + offset
    out = np.array(label, dtype=np.float32)
    out[0] += offset
    return out


def read_keys_file(path):
    """The keys in a keys file: one per line, the first tab- or space-separated column (so an
    im2rec ``.lst`` is a keys file too); blank lines and ``#`` comments are skipped."""
    keys = []
    check_regular_file(path, "a keys file")
    with open(os.fspath(path), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            field = line.split("#", 1)[0].split(None, 1)
            if not field:
                continue
            text = field[0][:-2] if field[0].endswith(".0") else field[0]  # "12.0" from a .lst
            try:
                value = int(text)
                if not 0 <= value <= MAX_KEY:
                    raise ValueError
            except ValueError:
                raise OptionError("%s:%d: %r is not a record key (an integer in [0, 2**64))"
                                  % (path, n, field[0])) from None
            keys.append(value)
    return np.array(keys, dtype=np.uint64)


def split(input, output_prefix: str | os.PathLike, *, train_ratio: float | None = None,
          test_ratio: float = 0.0, seed: int = D.seed, shuffle: bool = D.shuffle,
          nsplit: int | None = None, keys_files=None,
          keep_empty_identities: bool = D.keep_empty_identities, **options):
    """Split a record file into several, each record in exactly one.

    One of: ``train_ratio``/``test_ratio`` (membership as ``im2rec.py --list`` computes it for
    a list in the file's order: shuffled with ``seed``, then cut; files
    ``PREFIX_train.rec``, ``PREFIX_val.rec``, ``PREFIX_test.rec``); ``nsplit`` (parts of equal
    record counts, ``PREFIX.part000.rec``...); ``keys_files`` (one output
    ``PREFIX_<file name>.rec`` per keys file, the rest in ``PREFIX_rest.rec``). Records keep
    their input order and keys. An InsightFace-layout input gives outputs in that layout (each
    with its own header and identity records) and one ``property`` file for them. Returns the
    list of summaries.
    """
    prefix = os.fspath(output_prefix)
    opts = resolve(options, EDIT_OPTIONS)  # every option checked before an input is opened
    modes = [train_ratio is not None or test_ratio, nsplit is not None, keys_files is not None]
    if sum(bool(m) for m in modes) != 1:
        raise OptionError("split needs exactly one of: train_ratio/test_ratio (--train-ratio, "
                          "--test-ratio), nsplit (--nsplit) or keys_files (--keys)")
    if keys_files is not None:
        keys_files = _keys_files(keys_files)
    elif nsplit is not None:
        nsplit = validate("nsplit", nsplit)
    else:
        train_ratio = 1.0 - validate("test_ratio", test_ratio) if train_ratio is None \
            else train_ratio
        split_by_ratio((), train_ratio=train_ratio, test_ratio=test_ratio, shuffle=shuffle,
                       seed=seed)  # checks the ratios, seed and shuffle (of no items)
    records = open_inputs(input, opts["storage_options"])
    layout = single_layout(records, "split")
    units = layout.images[layout.images >= 0] if layout else np.arange(len(records))
    if keys_files is not None:
        pieces = _split_by_keys(records, units, keys_files, prefix)
    elif nsplit is not None:
        pieces = [(k, units[split_positions(len(units), nsplit, k)]) for k in check_parts(
            nsplit, None)]
        pieces = [(part_path(prefix + ".rec", k), p) for k, p in pieces]
    else:
        cut = split_by_ratio(range(len(units)), train_ratio=train_ratio,
                             test_ratio=test_ratio, shuffle=shuffle, seed=seed)
        pieces = [(prefix + suffix + ".rec", units[np.sort(np.asarray(p, np.int64))])
                  for suffix, p in cut]
    for output, _ in pieces:
        check_output(output, records.paths)
    jobs = [(out, face_items(records, p, "split", keep_empty=keep_empty_identities) if layout
             else RecordItems(records, p, what="split")) for out, p in pieces if len(p)]
    for out, p in pieces:
        if not len(p):
            log.warning("%s: no records fall in this part; it is not written", out)
    summaries = run_edit(jobs, opts, "split")
    if layout:
        face_properties(jobs, records, opts["storage_options"])
    return summaries


def _keys_files(keys_files):
    """``[(path, output name, keys), ...]`` of the keys files split takes, each read and
    checked (before the input is opened)."""
    keys_files = [keys_files] if isinstance(keys_files, (str, os.PathLike)) else list(keys_files)
    out, names = [], []
    for path in keys_files:
        name = os.path.splitext(os.path.basename(os.fspath(path)))[0]
        if name in names or name == "rest":
            raise OptionError("two keys files are named %r (or one is named 'rest'): each names "
                              "its output, PREFIX_<name>.rec" % name)
        names.append(name)
        out.append((path, name, read_keys_file(path)))
    return out


def _split_by_keys(records, units, keys_files, prefix):
    """``[(output, positions)]``: one output per keys file, the other records in ``_rest``."""
    owner = np.full(len(records), -1, np.int64)
    is_unit = np.zeros(len(records), bool)
    is_unit[units] = True
    for j, (path, _, keys) in enumerate(keys_files):
        found = records.positions_of(keys)
        bad = (found < 0) | ~is_unit[np.maximum(found, 0)]
        if bad.any():
            raise OptionError("%s lists key(s) %s, which the input has no record (or no image "
                              "record to split) for" % (path, ", ".join(map(str, keys[bad][:5]))))
        taken = owner[found] >= 0
        if taken.any():
            k = int(records.keys[found[taken][0]])
            raise OptionError("key %d is in %s and in %s: split outputs must not overlap"
                              % (k, keys_files[owner[found[taken][0]]][0], path))
        owner[found] = j
    pieces = [("%s_%s.rec" % (prefix, name), units[owner[units] == j])
              for j, (_, name, _) in enumerate(keys_files)]
    return pieces + [("%s_rest.rec" % prefix, units[owner[units] < 0])]


def shuffle(input, output: str | os.PathLike, *, seed: int = D.seed, renumber: bool = False,
            **options):
    """Write the records of ``input`` in a random order (``random.Random(seed)``): the same
    records, keys kept (``renumber``: keys 0, 1, 2... in the new order). InsightFace-layout
    files are refused: their identity records name ranges of consecutive keys, and their
    readers shuffle at load time. Returns the summary."""
    output = os.fspath(output)
    opts = resolve(options, EDIT_OPTIONS)  # every option checked before an input is opened
    seed = validate("seed", seed)
    records = open_inputs(input, opts["storage_options"], [output])
    if single_layout(records, "shuffle") is not None:
        raise OptionError("%s has InsightFace's layout (a header record at key 0, identity "
                          "records naming ranges of consecutive image keys): shuffled, those "
                          "ranges would be wrong. Its readers shuffle at load time; to feed a "
                          "reader that takes every record (DALI), use `recpack filter "
                          "--drop-label-only` and shuffle that" % records.paths[0])
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    order = np.asarray(order, np.int64)
    items = RecordItems(records, order, keys=np.arange(len(order)) if renumber else None,
                        set_ids=renumber, what="shuffle seed=%d" % seed)
    return run_edit([(output, items)], opts, "shuffle")[0]
