"""Which column of a Parquet file (or ``datasets.Dataset``) holds what, and the Samples of its
rows.

The rules, for files this package wrote and for files it did not (``datasets``' own
``to_parquet`` and ``push_to_hub`` files, or any other writer's):

- image: ``image_column``, else ``image``, else the one column ``datasets`` marks ``Image``,
  else the one struct column of ``bytes`` and ``path``. An Image struct gives ``bytes``, or
  when those are null reads ``path`` (relative to the Parquet file's folder); a binary column
  gives its bytes, a string column a path. A null image is a label-only record (``b""``).
- label: ``label_column``, else ``label``, else the one ``ClassLabel`` column. Integers and
  floats are scalar labels (flag 0), lists of numbers vector labels (flag = length). A file
  with no label column, or a null label, needs ``default_label``.
- key: the ``key`` column (``key_column``; ``None`` to ignore it), else the row's position,
  counted from ``first_key``.
- A file with integer ``key``, ``flag``, ``id`` and ``id2`` columns is recpack's layout: its
  ``flag``, ``id``, ``id2`` and ``recordio_header`` come back as they were written. Elsewhere
  ``id`` is the key and ``id2`` 0 (what im2rec writes).
"""

import json
import os
import struct
from collections import namedtuple

import numpy as np

from ...errors import BadImageError, ImageEncodeError, RecordFormatError
from ...format.header import HEADER_SIZE, label_problem, normalize_label
from ..sample import Sample
from .arrays import numbers_of, offsets_of
from .arrow import pyarrow

__all__ = ["Columns", "resolve", "samples_of", "hf_features_of"]

#: ``image_kind``: 'struct', 'binary' or 'path'; ``label_kind``: 'scalar', 'list' or None (no
#: label column: ``default`` for every row); ``own``: recpack's layout (see the module doc).
Columns = namedtuple("Columns", ["image", "image_kind", "label", "label_kind", "default",
                                 "key", "own", "head"])
_HEAD = struct.Struct("<IfQQ")


def hf_features_of(schema):
    """The ``datasets`` features in a schema's ``huggingface`` metadata ({} without them)."""
    raw = (schema.metadata or {}).get(b"huggingface")
    try:
        features = json.loads(raw.decode("utf-8"))["info"]["features"] if raw else {}
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}
    return features if isinstance(features, dict) else {}


def _listing(schema):
    return ", ".join("%s (%s)" % (f.name, f.type) for f in schema)


def _image_kind(pa, field):
    t = field.type
    if pa.types.is_struct(t):
        names = {t.field(i).name: t.field(i).type for i in range(t.num_fields)}
        if names and set(names) <= {"bytes", "path"} and all(
                pa.types.is_binary(v) or pa.types.is_large_binary(v) if k == "bytes" else
                pa.types.is_string(v) or pa.types.is_large_string(v) for k, v in names.items()):
            return "struct"
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "binary"
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        return "path"
    return None


def _pick_image(pa, schema, features, image_column, where):
    if image_column is not None:
        if image_column not in schema.names:
            raise RecordFormatError("no column %r (image_column): the columns are %s"
                                    % (image_column, _listing(schema)), path=where)
        name = image_column
    elif "image" in schema.names:
        name = "image"
    else:
        marked = [n for n in schema.names if (features.get(n) or {}).get("_type") == "Image"]
        structs = [f.name for f in schema if _image_kind(pa, f) == "struct"]
        candidates = marked or structs
        if len(candidates) != 1:
            raise RecordFormatError(
                "%s: the columns are %s. Name the column that holds the images with "
                "image_column= (--image-column)" % (
                    "no image column" if not candidates else "several image columns (%s)"
                    % ", ".join(candidates), _listing(schema)), path=where)
        name = candidates[0]
    kind = _image_kind(pa, schema.field(name))
    if kind is None:
        raise RecordFormatError(
            "column %r has type %s, not images: an image column is a struct of bytes and path "
            "(datasets' Image), binary, or a string of paths; name another with image_column= "
            "(--image-column). The columns are %s" % (name, schema.field(name).type,
                                                       _listing(schema)), path=where)
    return name, kind


def _label_kind(pa, field, where):
    t = field.type
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return "scalar"
    if (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) \
            and (pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type)):
        return "list"
    raise RecordFormatError(
        "label column %r has type %s: labels are numbers or lists of numbers (map class names "
        "to ids first, e.g. with datasets' class_encode_column, or name another column with "
        "label_column= / --label-column)" % (field.name, t), path=where)


def _pick_label(pa, schema, features, label_column, default_label, where):
    if label_column is not None:
        if label_column not in schema.names:
            raise RecordFormatError("no column %r (label_column): the columns are %s"
                                    % (label_column, _listing(schema)), path=where)
        name = label_column
    elif "label" in schema.names:
        name = "label"
    else:
        classes = [n for n in schema.names
                   if (features.get(n) or {}).get("_type") == "ClassLabel"]
        name = classes[0] if len(classes) == 1 else None
        if name is None and default_label is None:
            raise RecordFormatError(
                "no label column%s: the columns are %s. Name it with label_column= "
                "(--label-column), or give every record the same label with label= "
                "(--label)" % (" (several ClassLabel columns: %s)" % ", ".join(classes)
                                      if classes else "", _listing(schema)), path=where)
    if name is None:
        return None, None
    return name, _label_kind(pa, schema.field(name), where)


def resolve(schema, *, image_column=None, label_column=None, key_column="key",
            default_label=None, where=None):
    """The :class:`Columns` of an Arrow ``schema`` (see the module doc), or a
    RecordFormatError naming the columns it has."""
    pa, _ = pyarrow()
    features = hf_features_of(schema)
    image, image_kind = _pick_image(pa, schema, features, image_column, where)
    label, label_kind = _pick_label(pa, schema, features, label_column, default_label, where)
    default = None if default_label is None else normalize_label(default_label)
    key = key_column if key_column and key_column in schema.names else None
    if key_column and key_column != "key" and key is None:
        raise RecordFormatError("no column %r (key_column): the columns are %s"
                                % (key_column, _listing(schema)), path=where)
    if key is not None and not pa.types.is_integer(schema.field(key).type):
        raise RecordFormatError(
            "column %r has type %s, but keys are integers in [0, 2**64): pass key_column=None "
            "(--key-column none) to number the records in order instead"
            % (key, schema.field(key).type), path=where)
    own = key == "key" and all(n in schema.names and pa.types.is_integer(
        schema.field(n).type) for n in ("flag", "id", "id2"))
    head = "recordio_header" if own and "recordio_header" in schema.names else None
    return Columns(image, image_kind, label, label_kind, default, key, own, head)


def _images(table, columns, start, base_dir, where):
    column = table.column(columns.image).combine_chunks()
    if columns.image_kind == "struct":
        parts = dict(zip([f.name for f in column.type], column.flatten()))
        data = parts["bytes"].to_pylist() if "bytes" in parts else [None] * len(column)
        paths = parts["path"].to_pylist() if "path" in parts else [None] * len(column)
    elif columns.image_kind == "binary":
        data, paths = column.to_pylist(), [None] * len(column)
    else:
        data, paths = [None] * len(column), column.to_pylist()
    return [d if d is not None else b"" if p is None else _read_path(p, start + i, base_dir,
                                                                    where)
            for i, (d, p) in enumerate(zip(data, paths))]


def _read_path(path, row, base_dir, where):
    if "://" in path:
        raise BadImageError("%s, row %d: the image is given by %r, which is not a local path "
                            "(only paths relative to the Parquet file, or absolute ones, are "
                            "read): embed the images (datasets' embed_table_storage) first"
                            % (where, row, path))
    full = path if os.path.isabs(path) or base_dir is None else os.path.join(base_dir, path)
    try:
        with open(full, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise BadImageError("%s, row %d: the image path %r (%s) cannot be read: %s; put the "
                            "image there or embed the images in the file"
                            % (where, row, path, full, exc.strerror or exc)) from exc
    if not data:
        raise BadImageError("%s, row %d: the image file %s is empty" % (where, row, full))
    return data


def _uints(table, name, start, where):
    values = table.column(name).to_pylist()
    for i, v in enumerate(values):
        if v is None or v < 0:
            raise RecordFormatError("row %d: column %r holds %r, but it needs an integer in "
                                    "[0, 2**64)" % (start + i, name, v), path=where)
    return values


def _raw_labels(table, columns):
    """Per row: None, a Python number, or a numpy array (the list's values as stored)."""
    column = table.column(columns.label).combine_chunks()
    if columns.label_kind == "scalar":
        return column.to_pylist()
    valid = column.is_valid().to_pylist()
    offsets, values = offsets_of(column), numbers_of(column.values)
    return [values[offsets[i]:offsets[i + 1]] if ok else None for i, ok in enumerate(valid)]


def _foreign_label(raw, columns, row, where):
    if raw is None:
        if columns.default is None:
            raise RecordFormatError("row %d: the label (column %r) is null: give a label to "
                                    "every row, or pass label= (--label)"
                                    % (row, columns.label), path=where)
        label = columns.default
    else:
        if isinstance(raw, np.ndarray) and raw.size == 0:
            raise RecordFormatError("row %d: the label (column %r) is an empty list: a vector "
                                    "label has at least one value" % (row, columns.label),
                                    path=where)
        problem = label_problem(raw.astype(np.float64) if isinstance(raw, np.ndarray) else
                                float(raw))
        if problem:
            raise ImageEncodeError("%s, row %d (column %r): %s" % (where, row, columns.label,
                                                                   problem))
        label = (raw.astype(np.float32) if isinstance(raw, np.ndarray) else
                 float(np.float32(raw)))
    if isinstance(label, float):
        return 0, label
    return len(label), np.asarray(label, np.float32)


def _own_label(raw, flag, columns, row, where):
    if raw is None:
        raise RecordFormatError("row %d: the label (column %r) is null" % (row, columns.label),
                                path=where)
    values = raw if isinstance(raw, np.ndarray) else None
    if flag == 0 and (values is None or len(values) == 1):
        return float(np.float32(raw if values is None else values[0]))
    if values is not None and len(values) == flag:
        return values.astype(np.float32)
    raise RecordFormatError("row %d: flag %d says %s, but the label is %r" % (
        row, flag, "one scalar label" if flag == 0 else "%d labels" % flag, raw), path=where)


def _checked_head(head, sample, row, where):
    """The ``recordio_header`` bytes, if they still describe the row's other columns."""
    flag = sample.flag
    fine = len(head) == HEADER_SIZE + 4 * flag
    if fine:
        hflag, hlabel, hid, hid2 = _HEAD.unpack_from(head)
        fine = (hflag, hid, hid2) == (flag, sample.id, sample.id2)
        if fine and flag:
            fine = head[HEADER_SIZE:] == np.asarray(sample.label, "<f4").tobytes()
        elif fine:
            fine = hlabel == sample.label or (hlabel != hlabel and sample.label != sample.label)
    if not fine:
        raise RecordFormatError(
            "row %d: recordio_header (the record's original header) no longer matches the "
            "flag, label, id and id2 columns: they were changed after the conversion. Set "
            "recordio_header to null on changed rows (or drop the column) so the header is "
            "built from the columns" % row, path=where)
    return head


def samples_of(table, columns, *, start=0, first_key=0, base_dir=None, where=None):
    """The Samples of the rows of an Arrow ``table`` (rows ``start..`` of the file)."""
    n = table.num_rows
    images = _images(table, columns, start, base_dir, where)
    raws = _raw_labels(table, columns) if columns.label else [None] * n
    keys = (_uints(table, columns.key, start, where) if columns.key else
            list(range(first_key + start, first_key + start + n)))
    if columns.own:
        flags = _uints(table, "flag", start, where)
        ids, id2s = _uints(table, "id", start, where), _uints(table, "id2", start, where)
        heads = table.column(columns.head).to_pylist() if columns.head else [None] * n
    out = []
    for i in range(n):
        row = start + i
        if columns.own:
            label = _own_label(raws[i], flags[i], columns, row, where)
            sample = Sample(keys[i], flags[i], label, ids[i], id2s[i], images[i], None)
            if heads[i] is not None:
                sample = sample._replace(head=_checked_head(heads[i], sample, row, where))
        else:
            flag, label = _foreign_label(raws[i], columns, row, where)
            sample = Sample(keys[i], flag, label, keys[i], 0, images[i], None)
        out.append(sample)
    return out
