"""Read MDS datasets (a folder with ``index.json`` and its shards) as Samples, by position.

:func:`scan` reads ``index.json`` and each shard's offsets (nothing else) and gives one
:class:`Locator` per sample, in order; :func:`read` reads one sample with one positional read
(safe from several threads and processes); :func:`check` reads every byte and reports the first
damage. Every error is a :class:`~mxnet_recpack.errors.RecordFormatError` naming the file, the
byte offset and sample number, what was expected, what was found, and the fix.

Which column holds what (recpack's own columns, or a dataset ``MDSWriter`` wrote for anything
else): ``image`` (else ``x``: streaming's own image datasets) as ``bytes``, ``jpeg`` or ``png``,
kept byte for byte; ``label`` (else ``y``) as a number, ``ndarray`` or ``json``; ``key`` if
present, else the sample's position in the dataset from 0; ``id`` if present, else the key;
``id2`` if present, else 0; ``flag`` and ``recordio_header`` when present. Other columns are
not read. See ``docs/formats.md``.
"""

import hashlib
import json
import os
import struct
from collections import namedtuple

import numpy as np

from ...errors import RecordFormatError
from ...format.header import HEADER_SIZE, unpack_record
from ..sample import Sample
from .columns import (ENCODINGS, ColumnError, decode_bytes, decode_numbers, fixed_size,
                      is_known)

__all__ = ["Shard", "Locator", "read_index", "scan", "read", "check"]

#: One shard of the set: its file, sample count, columns, where its samples start in the
#: dataset, which column holds each field (``roles``: field -> column position or None), and
#: ``zipped``: the compressed file streaming downloads instead, if any.
Shard = namedtuple("Shard", ["basename", "samples", "names", "encodings", "sizes", "start",
                             "roles", "default_label", "raw_bytes", "hashes", "zipped"])
#: A sample: its shard, its byte range in the shard file, its position in the dataset.
Locator = namedtuple("Locator", ["shard", "begin", "end", "ordinal"])

_ROLES = {"image": ("image", "x"), "label": ("label", "y"), "key": ("key",), "id": ("id",),
          "id2": ("id2",), "flag": ("flag",), "recordio_header": ("recordio_header",)}
_KINDS = {"image": ("bytes",), "recordio_header": ("bytes",), "label": ("number", "numbers")}
_ACCEPTS = {"image": "bytes, jpeg or png (the encoded image file)", "recordio_header": "bytes",
            "label": "a number, ndarray or json encoding"}
_U64 = 2 ** 64
_EXPECTED = "MDS as MosaicML streaming writes it (index.json version 2, format 'mds')"


def _root(path):
    path = os.fspath(path)
    return os.path.dirname(path) if os.path.basename(path) == "index.json" else path


def _load_index(root):
    index = os.path.join(root, "index.json")
    try:
        with open(index, "rb") as f:
            obj = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise RecordFormatError("no index.json: an MDS dataset is a folder holding index.json "
                                "and its shards; give that folder", path=index) from None
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise RecordFormatError("index.json is not JSON (%s); expected %s: write the dataset "
                                "again" % (e, _EXPECTED), path=index) from None
    if not isinstance(obj, dict) or obj.get("version") != 2 or not isinstance(
            obj.get("shards"), list):
        raise RecordFormatError("expected %s with a 'shards' list, found %s" % (
            _EXPECTED, "version %r" % obj.get("version") if isinstance(obj, dict) else
            type(obj).__name__), path=index)
    return index, obj["shards"]


def _roles(index, number, names, encodings, default_label):
    roles = {}
    for role, candidates in _ROLES.items():
        pos = next((names.index(c) for c in candidates if c in names), None)
        roles[role] = pos
        if pos is None:
            continue
        kind = ENCODINGS[encodings[pos].partition(":")[0]]
        if kind not in _KINDS.get(role, ("number",)):
            raise RecordFormatError(
                "shard %d: column %r (the %s) has encoding %r (%s); recpack reads the %s from "
                "%s: write that column so" % (
                    number, names[pos], role, encodings[pos], kind, role, _ACCEPTS.get(
                        role, "an integer encoding (uint64, int, ...)")), path=index)
    if roles["image"] is None:
        raise RecordFormatError("shard %d has no image column: recpack reads images from a "
                                "column named 'image' (or 'x'), found columns %s" % (
                                    number, ", ".join(names)), path=index)
    if roles["label"] is None and default_label is None:
        raise RecordFormatError("shard %d has no label column: recpack reads labels from a "
                                "column named 'label' (or 'y'), found columns %s; pass a "
                                "default label to read it without one" % (
                                    number, ", ".join(names)), path=index)
    return roles


def _shard_of(index, number, entry, start, default_label):
    try:
        names, encodings = list(entry["column_names"]), list(entry["column_encodings"])
        sizes, samples = list(entry["column_sizes"]), int(entry["samples"])
        raw = entry["raw_data"]
        basename, raw_bytes = str(raw["basename"]), int(raw["bytes"])
        hashes = dict(raw.get("hashes") or {})
        zipped = entry.get("zip_data") and str(entry["zip_data"]["basename"])
        if samples < 0 or raw_bytes < 0:
            raise ValueError("samples %d, bytes %d" % (samples, raw_bytes))
        if entry.get("format") != "mds" or entry.get("version") != 2:
            raise ValueError("format %r, version %r" % (entry.get("format"),
                                                        entry.get("version")))
    except (KeyError, TypeError, ValueError) as e:
        raise RecordFormatError("shard %d's entry is not an MDS shard (%s); expected %s"
                                % (number, e, _EXPECTED), path=index) from None
    if not len(names) == len(encodings) == len(sizes) or os.path.basename(basename) != basename:
        raise RecordFormatError("shard %d: %d column names, %d encodings and %d sizes (one "
                                "each per column), shard file %r" % (
                                    number, len(names), len(encodings), len(sizes), basename),
                                path=index)
    for name, encoding, size in zip(names, encodings, sizes):
        if not is_known(encoding):
            raise RecordFormatError(
                "shard %d: column %r has encoding %r, which MDS does not define (known: %s); "
                "recpack cannot tell its values apart: write the column with one of those"
                % (number, name, encoding, ", ".join(sorted(ENCODINGS))), path=index)
        if size != fixed_size(encoding):
            raise RecordFormatError("shard %d: column %r (%s) has size %r, expected %r"
                                    % (number, name, encoding, size, fixed_size(encoding)),
                                    path=index)
    roles = _roles(index, number, names, encodings, default_label)
    return Shard(basename, samples, tuple(names), tuple(encodings), tuple(sizes), start,
                 roles, default_label, raw_bytes, hashes, zipped or None)


def read_index(path, *, default_label=None):
    """The shards of the MDS dataset at ``path`` (its folder, or its ``index.json``), checked:
    version, format, columns (every encoding known, and one for each field recpack reads)."""
    index, entries = _load_index(_root(path))
    shards, start = [], 0
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise RecordFormatError("shard %d's entry is %s, expected an object"
                                    % (number, type(entry).__name__), path=index)
        shard = _shard_of(index, number, entry, start, default_label)
        shards.append(shard)
        start += shard.samples
    return shards


def _shard_file(root, shard):
    filename = os.path.join(root, shard.basename)
    if os.path.isfile(filename):
        return filename
    if shard.zipped and os.path.isfile(os.path.join(root, shard.zipped)):
        raise RecordFormatError(
            "the shard is stored compressed only (%s); recpack reads uncompressed shards: "
            "read the dataset once with streaming's StreamingDataset(local=...), which leaves "
            "each shard decompressed beside, or decompress them (zstd -d, gunzip, ...)"
            % shard.zipped, path=filename)
    raise RecordFormatError("the shard index.json lists is missing%s: copy the whole dataset "
                            "folder" % ("" if not os.path.exists(filename) else
                                        " (not a file)"), path=filename)


def _offsets(root, shard):
    """The ``samples + 1`` offsets of ``shard``'s file, checked against its size."""
    filename = _shard_file(root, shard)
    n = shard.samples
    with open(filename, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(min(size, 4 * (n + 2)))
    if size != shard.raw_bytes:
        raise RecordFormatError("the shard has %d bytes, index.json says %d (truncated, or "
                                "from another write?): copy or write it again"
                                % (size, shard.raw_bytes), path=filename,
                                offset=min(size, shard.raw_bytes))
    if len(head) < 4 * (n + 2) or struct.unpack_from("<I", head)[0] != n:
        raise RecordFormatError("the shard header should hold the sample count %d and %d "
                                "offsets, found %s: write the shard again" % (
                                    n, n + 1, "a count of %d" % struct.unpack_from("<I", head)[0]
                                    if len(head) >= 4 * (n + 2) else "only %d bytes" % size),
                                path=filename, offset=0)
    offsets = np.frombuffer(head, "<u4", n + 1, 4).astype(np.int64)
    bad = np.flatnonzero(np.diff(offsets) < 0)
    if offsets[0] < 4 * (n + 2) or offsets[-1] != size or len(bad):
        where = int(bad[0]) + 1 if len(bad) else 0 if offsets[0] < 4 * (n + 2) else n
        raise RecordFormatError(
            "%s offset %d is out of order (offsets run from the end of the header, %d, up to "
            "the file size, %d); the shard is damaged: write it again"
            % ("sample %d's" % (shard.start + where) if where < n else "the end", int(
                offsets[where]), 4 * (n + 2), size),
            path=filename, offset=4 * (1 + where))
    return offsets


def scan(path, *, default_label=None):
    """One :class:`Locator` per sample of the MDS dataset at ``path``, in dataset order.

    Reads ``index.json`` and each shard's offsets only. ``default_label`` (a number or a
    sequence of numbers) is the label of every sample when the dataset has no label column.
    """
    root = _root(path)
    locators = []
    for shard in read_index(root, default_label=default_label):
        offsets = _offsets(root, shard)
        locators.extend(Locator(shard, b, e, shard.start + i) for i, (b, e) in
                        enumerate(zip(offsets[:-1].tolist(), offsets[1:].tolist())))
    return locators


def read(path, locator):
    """The :class:`~mxnet_recpack.formats.sample.Sample` at ``locator`` (from :func:`scan`)."""
    filename = os.path.join(_root(path), locator.shard.basename)
    fd = os.open(filename, os.O_RDONLY)
    try:
        data = os.pread(fd, locator.end - locator.begin, locator.begin)
    finally:
        os.close(fd)
    if len(data) != locator.end - locator.begin:
        raise RecordFormatError("sample %d: expected %d bytes, found %d before the end of the "
                                "shard (truncated since it was scanned?)" % (
                                    locator.ordinal, locator.end - locator.begin, len(data)),
                                path=filename, offset=locator.begin)
    try:
        return _sample(locator, data)
    except ColumnError as e:
        raise RecordFormatError("sample %d: %s; the shard is damaged or was written with other "
                                "columns: write it again" % (locator.ordinal, e),
                                path=filename, offset=locator.begin) from None


def _columns(shard, data):
    """The value bytes of each column of one sample."""
    view, pos, lengths = memoryview(data), 0, []
    for size in shard.sizes:
        if size is None:
            if pos + 4 > len(view):
                raise ColumnError("the sample ends inside its column lengths")
            size = struct.unpack_from("<I", view, pos)[0]
            pos += 4
        lengths.append(size)
    if pos + sum(lengths) != len(view):
        raise ColumnError("its columns add up to %d bytes, the sample has %d"
                          % (pos + sum(lengths), len(view)))
    values = []
    for size in lengths:
        values.append(view[pos:pos + size])
        pos += size
    return values


def _integer(value, field):
    if isinstance(value, float):
        if not value.is_integer():
            raise ColumnError("%s %r is not an integer" % (field, value))
        value = int(value)
    if not 0 <= value < _U64:
        raise ColumnError("%s %d is out of range [0, 2**64)" % (field, value))
    return value


def _label(value, flag):
    """(flag, label) of a Sample from a decoded label and the ``flag`` column (or None)."""
    values = np.asarray(value)
    if values.ndim > 1:
        raise ColumnError("the label has shape %s; RecordIO labels are one number or a 1-D "
                          "vector" % (values.shape,))
    values = values.reshape(-1)
    if values.dtype.kind not in "iuf":   # integers past 2**64 (str_int, json)
        raise ColumnError("label %s is not a float32 (RecordIO labels are float32)"
                          % values.tolist())
    labels = values.astype(np.float32)
    if values.dtype.kind in "iu" and not np.array_equal(labels.astype(values.dtype), values):
        raise ColumnError("label %s is not a float32 (RecordIO labels are float32: integers "
                          "above 2**24 do not survive)" % values.tolist())
    if flag is None:
        flag = 0 if np.ndim(value) == 0 else len(labels)
    if len(labels) != max(flag, 1):
        raise ColumnError("flag %d needs %s, the label has %d values" % (
            flag, "one label" if flag == 0 else "%d labels" % flag, len(labels)))
    return flag, float(labels[0]) if flag == 0 else labels


def _sample(locator, data):
    shard, roles = locator.shard, locator.shard.roles
    values = _columns(shard, data)

    def get(role, decoder):
        pos = roles[role]
        return None if pos is None else decoder(shard.encodings[pos], values[pos])

    key = get("key", decode_numbers)
    key = locator.ordinal if key is None else _integer(key, "key")
    ident = get("id", decode_numbers)
    id2 = get("id2", decode_numbers)
    flag = get("flag", decode_numbers)
    label = get("label", decode_numbers)
    flag, label = _label(shard.default_label if label is None else label,
                         None if flag is None else _integer(flag, "flag"))
    head = get("recordio_header", decode_bytes) or None
    sample = Sample(key, flag, label, key if ident is None else _integer(ident, "id"),
                    0 if id2 is None else _integer(id2, "id2"), get("image", decode_bytes), head)
    if head is not None:
        _check_head(sample)
    return sample


def _check_head(sample):
    """The stored header must say what the columns say (it replaces them in the payload)."""
    if len(sample.head) != HEADER_SIZE + 4 * sample.flag:
        raise ColumnError("recordio_header has %d bytes, a header with flag %d has %d"
                          % (len(sample.head), sample.flag, HEADER_SIZE + 4 * sample.flag))
    header, _ = unpack_record(sample.head)
    stored = np.asarray(header.label, "<f4").reshape(-1).tobytes()
    if (header.flag, header.id, header.id2) != (sample.flag, sample.id, sample.id2) or (
            sample.flag and stored != np.asarray(sample.label, "<f4").tobytes()):
        raise ColumnError("recordio_header (flag %d, id %d, id2 %d) disagrees with the flag, "
                          "id, id2 or label columns (%d, %d, %d)" % (
                              header.flag, header.id, header.id2, sample.flag, sample.id,
                              sample.id2))


def _check_shard(root, shard, first):
    """The configuration a shard repeats after its offsets (before ``first``, its first
    sample), and the digests index.json lists for it."""
    filename = os.path.join(root, shard.basename)
    start = 4 * (shard.samples + 2)
    with open(filename, "rb") as f:
        f.seek(start)
        text = f.read(max(0, first - start))
        digests = {a: hashlib.new(a) for a in sorted(shard.hashes)
                   if a in hashlib.algorithms_available}
        if digests:
            f.seek(0)
            for chunk in iter(lambda: f.read(1 << 20), b""):
                for d in digests.values():
                    d.update(chunk)
    try:
        config = json.loads(text.decode("utf-8"))
        embedded = (tuple(config["column_names"]), tuple(config["column_encodings"]),
                    tuple(config["column_sizes"]))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        embedded = None
    if embedded != (shard.names, shard.encodings, shard.sizes):
        raise RecordFormatError("the configuration after the offsets should repeat index.json's "
                                "columns %s, found %s: the shard is damaged or belongs to "
                                "another dataset" % (list(shard.names), "columns %s" % list(
                                    embedded[0]) if embedded else "no readable JSON"),
                                path=filename, offset=start)
    for algo, d in digests.items():   # xxhash's (streaming's own) are not in hashlib
        if d.hexdigest() != shard.hashes[algo]:
            raise RecordFormatError("the %s digest is %s, index.json says %s: the shard is "
                                    "damaged; copy or write it again"
                                    % (algo, d.hexdigest(), shard.hashes[algo]),
                                    path=filename, offset=0)


def check(path, *, default_label=None):
    """Read the whole MDS dataset at ``path`` and raise at the first damage: the index, each
    shard's size, header, offsets, configuration and digests (those hashlib computes), every
    sample.

    Returns
    -------
    dict
        ``{"shards": N, "samples": N}``.
    """
    root = _root(path)
    shards = read_index(root, default_label=default_label)
    samples = 0
    for shard in shards:
        offsets = _offsets(root, shard)
        _check_shard(root, shard, int(offsets[0]))
        for i, (begin, end) in enumerate(zip(offsets[:-1].tolist(), offsets[1:].tolist())):
            read(root, Locator(shard, begin, end, shard.start + i))
        samples += shard.samples
    return {"shards": len(shards), "samples": samples}
