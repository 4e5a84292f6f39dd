"""What a set of Parquet files holds: their columns, the label column's type, and the Hugging
Face features that ``datasets`` reads from the schema.

Every file of a set has the same schema (``datasets.load_dataset`` takes the features from the
first file and casts the others to them), so what the label column is, and whether a
``recordio_header`` column exists, is decided for the whole set before the first file is
written: :class:`LayoutScan` looks at every record once (a pre-scan; only ``flag``, ``label``
and ``head`` are read, so a Sample made from a record's header alone is enough) and gives the
:class:`Layout` that every :class:`~mxnet_recpack.formats.parquet.codec.ShardWriter` of the
set is opened with.

Standard library and numpy; pyarrow only in :func:`arrow_schema`.
"""

import json
import struct
from collections import namedtuple

from ...errors import ImageEncodeError, OptionError
from .arrow import pyarrow

__all__ = ["Layout", "LayoutScan", "LABEL_KINDS", "hf_features", "arrow_schema",
           "integral_label"]

#: ``int``: int64 (every label an integral scalar); ``float``: float32 (scalars);
#: ``vector``: a list of float32 (the ``flag`` column says which rows were scalars).
LABEL_KINDS = ("int", "float", "vector")
_INT64 = 1 << 63
_F32 = struct.Struct("<f")


class Layout(namedtuple("Layout", ["label_kind", "recordio_header", "class_names"])):
    """The columns of a set of Parquet files.

    Parameters
    ----------
    label_kind : {'int', 'float', 'vector'}
        The label column's type: int64, float32, or a list of float32.
    recordio_header : bool
        Whether the files have a ``recordio_header`` column (binary; null on every row whose
        header re-packs from the other columns).
    class_names : tuple of str, optional
        With ``label_kind='int'``: the ``ClassLabel`` names that ``datasets`` shows (label
        ``i`` is ``class_names[i]``); without them the label is a plain ``int64`` value.
    """

    __slots__ = ()

    def __new__(cls, label_kind="int", recordio_header=False, class_names=None):
        if label_kind not in LABEL_KINDS:
            raise OptionError("label_kind %r is not one of %s" % (label_kind,
                                                                   ", ".join(LABEL_KINDS)))
        if class_names is not None:
            if label_kind != "int":
                raise OptionError("class_names need integral labels (label_kind 'int'), "
                                  "not label_kind %r" % label_kind)
            class_names = tuple(str(n) for n in class_names)
        return super().__new__(cls, label_kind, bool(recordio_header), class_names)


def integral_label(sample):
    """True when ``sample``'s label fits an int64 column and comes back bit for bit: one
    number that is an integer, in int64's range, and not ``-0.0`` (whose sign an integer
    cannot keep)."""
    if sample.flag != 0:
        return False
    x = float(sample.label)
    return x.is_integer() and -_INT64 <= x < _INT64 and _F32.pack(x) != b"\x00\x00\x00\x80"


class LayoutScan:
    """Decides a :class:`Layout` from every record of a set (call :meth:`add` on each).

    Parameters
    ----------
    label_kind : {None, 'int', 'float', 'vector'}
        ``None`` (the default) chooses: ``int`` when every label is an integral scalar,
        ``float`` when every label is a scalar, ``vector`` when every label is a vector; a set
        that mixes scalar and vector labels is refused (an
        :class:`~mxnet_recpack.errors.ImageEncodeError` naming a record of each kind), unless
        ``label_kind='vector'`` is given: every label is then a list of float32, and the
        ``flag`` column keeps which rows were scalars (0) so nothing is lost. A kind given
        explicitly is checked against every record.
    class_names : sequence of str, optional
        See :class:`Layout`; the labels must then lie in ``[0, len(class_names))``.
    """

    def __init__(self, label_kind=None, class_names=None):
        if label_kind is not None and label_kind not in LABEL_KINDS:
            raise OptionError("label_kind %r is not one of %s (or None to choose from the "
                              "labels)" % (label_kind, ", ".join(LABEL_KINDS)))
        self.label_kind = label_kind
        self.class_names = None if class_names is None else tuple(class_names)
        self.count = 0
        self.first_scalar = self.first_vector = self.first_fraction = None
        self.recordio_header = False
        self._low = self._high = None

    def add(self, sample):
        """Take one record into account (only ``flag``, ``label`` and ``head`` are read)."""
        key = sample.key
        if sample.flag:
            if self.first_vector is None:
                self.first_vector = key
        else:
            if self.first_scalar is None:
                self.first_scalar = key
            if integral_label(sample):
                x = int(sample.label)
                self._low = x if self._low is None else min(self._low, x)
                self._high = x if self._high is None else max(self._high, x)
            elif self.first_fraction is None:
                self.first_fraction = key
        if sample.head is not None:
            self.recordio_header = True
        self.count += 1

    def add_all(self, samples):
        for sample in samples:
            self.add(sample)
        return self

    def _chosen_kind(self):
        if self.first_vector is not None:
            if self.first_scalar is not None and self.label_kind != "vector":
                raise ImageEncodeError(
                    "labels of mixed kinds: record key %d has a scalar label (flag 0) and "
                    "record key %d a vector label (flag > 0), but a Parquet label column has "
                    "one type. Store every label as a list of float32 with label_kind "
                    "'vector' (--label-kind vector: the flag column keeps which rows were "
                    "scalars, so the records come back exactly)"
                    % (self.first_scalar, self.first_vector))
            return "vector"
        if self.label_kind is None:
            return "int" if self.first_fraction is None else "float"
        return self.label_kind

    def layout(self):
        """The :class:`Layout` of the set, or an ImageEncodeError saying why there is none."""
        kind = self._chosen_kind()
        if kind == "int" and self.first_fraction is not None:
            raise ImageEncodeError(
                "label_kind 'int' needs integral labels, but record key %d has a label that "
                "is not an integer in int64's range (or is -0.0): use label_kind 'float' (or "
                "leave it to be chosen)" % self.first_fraction)
        if kind in ("int", "float") and self.first_vector is not None:
            raise ImageEncodeError(
                "label_kind %r holds one number a record, but record key %d has a vector "
                "label: use label_kind 'vector'" % (kind, self.first_vector))
        names = self.class_names
        if names is not None and self._low is not None and not (
                0 <= self._low and self._high < len(names)):
            raise ImageEncodeError(
                "%d class names cover labels 0..%d, but the labels run from %d to %d: give "
                "a name for every class id" % (len(names), len(names) - 1, self._low,
                                               self._high))
        return Layout(kind, self.recordio_header, names if kind == "int" else None)


def _value(dtype):
    return {"dtype": dtype, "_type": "Value"}


def hf_features(layout):
    """The ``datasets`` features of ``layout``'s columns, as ``datasets.Features.to_dict()``
    writes them (the label vector as ``Sequence``, which every ``datasets`` version reads; the
    newer ones read it as ``List``)."""
    if layout.label_kind == "vector":
        label = {"feature": _value("float32"), "_type": "Sequence"}
    elif layout.label_kind == "float":
        label = _value("float32")
    elif layout.class_names is not None:
        label = {"names": list(layout.class_names), "_type": "ClassLabel"}
    else:
        label = _value("int64")
    features = {"image": {"_type": "Image"}, "label": label, "key": _value("uint64"),
                "flag": _value("uint32"), "id": _value("uint64"), "id2": _value("uint64")}
    if layout.recordio_header:
        features["recordio_header"] = _value("binary")
    return features


def arrow_schema(layout):
    """The Arrow schema of ``layout``'s files, with the ``huggingface`` metadata key that
    ``datasets`` writes (``{"info": {"features": ...}}``) so ``load_dataset`` shows an
    ``Image()`` column and the label's type without configuration."""
    pa, _ = pyarrow()
    label = {"int": pa.int64(), "float": pa.float32(),
             "vector": pa.list_(pa.float32())}[layout.label_kind]
    fields = [("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
              ("label", label), ("key", pa.uint64()), ("flag", pa.uint32()),
              ("id", pa.uint64()), ("id2", pa.uint64())]
    if layout.recordio_header:
        fields.append(("recordio_header", pa.binary()))
    metadata = {"huggingface": json.dumps({"info": {"features": hf_features(layout)}})}
    return pa.schema(fields, metadata=metadata)
