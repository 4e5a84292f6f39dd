"""``tf.train.Example`` in the protocol-buffer wire format, encoded and decoded here (no
``protobuf`` dependency: the three messages are small and fixed).

The messages (TensorFlow's ``core/example/{example,feature}.proto``)::

    message Example   { Features features = 1; }
    message Features  { map<string, Feature> feature = 1; }
    message Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                                     Int64List int64_list = 3; } }
    message BytesList { repeated bytes value = 1; }
    message FloatList { repeated float value = 1 [packed = true]; }
    message Int64List { repeated int64 value = 1 [packed = true]; }

A map is a repeated entry message (key = 1, value = 2). The encoder writes the features in
sorted name order and packed lists, so the bytes are deterministic. The decoder follows the
protobuf parsing rules a reader of foreign files needs: unknown fields (and groups) are
skipped, a field of a known number but another wire type is an unknown field, packed and
unpacked repeated numbers are both read, a later map entry with the same name wins, a message
that occurs twice is merged (a oneof keeps its last kind; lists of the same kind concatenate).

Standard library and numpy only.
"""


import numpy as np

from ...errors import RecordFormatError

__all__ = ["BYTES", "FLOAT", "INT64", "encode_example", "decode_example", "as_int64"]

#: The three kinds of feature, by the field number of their list in ``Feature``.
BYTES, FLOAT, INT64 = "bytes", "float", "int64"
_KIND_FIELD = {BYTES: 1, FLOAT: 2, INT64: 3}
_FIELD_KIND = {1: BYTES, 2: FLOAT, 3: INT64}
_U64 = (1 << 64) - 1
_VARINT, _FIXED64, _LEN, _START, _END, _FIXED32 = 0, 1, 2, 3, 4, 5
_TAG_LIST_ENTRY = b"\x0a"        # field 1, length-delimited: Example.features, map entry, value
_TAG_VALUE = b"\x12"             # field 2, length-delimited: the map entry's Feature
_TAG_KIND = {kind: bytes([field << 3 | _LEN]) for kind, field in _KIND_FIELD.items()}
_SMALL = [bytes([i]) for i in range(128)]
#: protobuf's own default limit on nesting (groups here: Example's messages are flat).
_MAX_DEPTH = 100


def _varint(value):
    """The varint bytes of an unsigned 64-bit ``value``."""
    if value < 128:
        return _SMALL[value]
    out = bytearray()
    while value > 127:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


#: Values this long stay chunks of their own (not copied into the small parts around them).
_BIG = 4096


def _list_body(kind, values):
    """``(parts, length)`` of one ``*List`` message's body."""
    if kind == BYTES:
        parts, length = [], 0
        for v in values:
            size = _varint(len(v))
            parts += (_TAG_LIST_ENTRY, size, v)
            length += 1 + len(size) + len(v)
        return parts, length
    if kind == FLOAT:
        packed = np.asarray(values, "<f4").tobytes()
    else:
        packed = b"".join([_varint(int(v) & _U64) for v in values])
    if not packed:
        return [], 0
    size = _varint(len(packed))
    return [_TAG_LIST_ENTRY, size, packed], 1 + len(size) + len(packed)


def encode_example(features):
    """A serialized ``Example`` as a few chunks: long values (the image) are chunks of their
    own, everything between them is joined (join the chunks, or checksum them one by one).

    Parameters
    ----------
    features : iterable of (str, str, sequence)
        ``(name, kind, values)``: kind :data:`BYTES` (bytes-like values), :data:`FLOAT` (float32
        values) or :data:`INT64` (ints; a uint64 is stored as its int64 bit pattern). Written
        in sorted name order.

    Returns
    -------
    list of bytes-like
    """
    parts, total = [], 0
    for name, kind, values in sorted(features, key=lambda f: f[0]):
        body, length = _list_body(kind, values)
        key = name.encode("utf-8")
        feature = _TAG_KIND[kind] + _varint(length)
        inner = len(feature) + length
        entry = b"".join([_TAG_LIST_ENTRY, _varint(len(key)), key, _TAG_VALUE, _varint(inner),
                          feature])
        size = _varint(len(entry) + length)
        parts += [_TAG_LIST_ENTRY, size, entry] + body
        total += 1 + len(size) + len(entry) + length
    parts[:0] = [_TAG_LIST_ENTRY, _varint(total)]
    chunks, small = [], []
    for part in parts:
        if len(part) >= _BIG:
            if small:
                chunks.append(b"".join(small))
                small = []
            chunks.append(part)
        else:
            small.append(part)
    if small:
        chunks.append(b"".join(small))
    return chunks


class _Wire:
    """A cursor over one serialized message; every problem is a :class:`RecordFormatError`
    whose ``reason`` says where in the message (the caller adds the file and offset)."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def fail(self, what):
        raise RecordFormatError(
            "the tf.train.Example protobuf is malformed at byte %d of the record's %d: %s; the "
            "record is not a tf.train.Example (a TFRecord may hold any bytes), or it was "
            "damaged before its CRC was taken: only files of tf.train.Example records can be "
            "read" % (self.pos, len(self.buf), what))

    def varint(self, end):
        buf, pos, result, shift = self.buf, self.pos, 0, 0
        while True:
            if pos >= end:
                self.fail("a varint runs past the end of its message")
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                self.pos = pos
                return result & _U64
            shift += 7
            if shift >= 70:
                self.fail("a varint longer than 10 bytes")

    def field(self, end, depth=0):
        """One field: ``(number, wire type, a, b)``; the value is ``buf[a:b]``, or ``a`` for a
        varint; a group is skipped whole (``a``, ``b`` None). Called with ``pos < end``."""
        buf, pos = self.buf, self.pos
        tag = buf[pos]
        if tag < 0x80:  # a one-byte tag: fields 1-15, every field of these messages
            self.pos = pos + 1
        else:
            tag = self.varint(end)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            self.fail("field number 0")
        if wire == _VARINT:
            return number, wire, self.varint(end), None
        if wire in (_START, _END):
            if wire == _START:
                self._skip_group(number, end, depth)
            return number, wire, None, None
        if wire == _LEN:
            pos = self.pos
            if pos < end and buf[pos] < 0x80:
                size, self.pos = buf[pos], pos + 1
            else:
                size = self.varint(end)
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
        else:
            self.fail("wire type %d does not exist" % wire)
        start = self.pos
        if start + size > end:
            self.fail("a field of %d bytes runs past the end of its message" % size)
        self.pos = start + size
        return number, wire, start, self.pos

    def _skip_group(self, number, end, depth):
        if depth >= _MAX_DEPTH:
            self.fail("groups nested more than %d deep" % _MAX_DEPTH)
        while self.pos < end:
            inner, wire, _, _ = self.field(end, depth + 1)
            if wire == _END:
                if inner != number:
                    self.fail("group %d ends as group %d" % (number, inner))
                return
        self.fail("group %d has no end" % number)

    def fields(self, end):
        """Each field up to ``end`` (see :meth:`field`). A caller that parses a nested message
        in between leaves ``pos`` at its end, where the next field starts."""
        while self.pos < end:
            number, wire, a, b = self.field(end)
            if wire == _END:
                self.fail("an end-group without a start")
            yield number, wire, a, b


# A nested message's reader is given its bounds ``a, b``; it starts at ``a`` and stops at ``b``
# exactly, where the enclosing ``fields`` loop goes on.

def _read_list(w, kind, a, b, values):
    """Append the values of a ``*List`` message ``buf[a:b]`` to ``values``."""
    buf, w.pos = w.buf, a
    for number, wire, c, d in w.fields(b):
        if number != 1:
            continue
        if kind == BYTES and wire == _LEN:
            values.append(buf[c:d])
        elif kind == FLOAT and wire in (_LEN, _FIXED32):
            if (d - c) % 4:
                w.fail("a packed float list of %d bytes (not a multiple of 4)" % (d - c))
            values.append(np.frombuffer(buf[c:d], "<f4"))
        elif kind == INT64 and wire == _LEN:
            w.pos = c
            while w.pos < d:
                values.append(w.varint(d))
        elif kind == INT64 and wire == _VARINT:
            values.append(c)


def _read_feature(w, a, b, acc):
    """Merge a ``Feature`` message into ``acc = [kind, values]`` (a oneof keeps its last
    kind; lists of the same kind concatenate)."""
    w.pos = a
    for number, wire, c, d in w.fields(b):
        kind = _FIELD_KIND.get(number)
        if kind is None or wire != _LEN:
            continue
        if acc[0] != kind:
            acc[0], acc[1] = kind, []
        _read_list(w, kind, c, d, acc[1])


def _read_entry(w, a, b, features, only=None):
    """One map entry (``key = 1``, ``value = 2``) into ``features``; a later entry of the same
    name replaces an earlier one. With ``only`` (a set of names), other entries' values are
    passed over unparsed."""
    acc = [None, []]
    fast = _plain_entry(w.buf, a, b)
    if fast is not None:  # the usual layout: the name, then the value, each once
        name, values = fast
    else:
        w.pos, name, values = a, b"", []
        for number, wire, c, d in w.fields(b):
            if wire != _LEN:
                continue
            if number == 1:
                name = w.buf[c:d]
            elif number == 2:
                values.append((c, d))
    try:
        key = bytes(name).decode("utf-8")
    except UnicodeDecodeError:
        w.fail("a feature name that is not UTF-8: %r" % bytes(name[:40]))
    if only is not None and key not in only:
        return
    for c, d in values:
        _read_feature(w, c, d, acc)
    w.pos = b
    features[key] = _finish(acc)


def _plain_entry(buf, a, b):
    """``(name, [(start, end)])`` of a map entry laid out as writers lay it out (field 1 with
    a one-byte length, then field 2, ending at ``b``); None for anything else."""
    if b - a < 4 or buf[a] != 0x0A or buf[a + 1] >= 0x80:
        return None
    at = a + 2 + buf[a + 1]
    if at >= b or buf[at] != 0x12:
        return None
    size, shift, at = 0, 0, at + 1
    while at < b and shift < 35:
        byte = buf[at]
        at += 1
        size |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (buf[a + 2:a + 2 + buf[a + 1]], [(at, at + size)]) if at + size == b \
                else None
        shift += 7
    return None


def _finish(acc):
    kind, values = acc
    if kind == FLOAT:
        if len(values) == 1:
            return kind, values[0]
        return kind, np.concatenate(values) if values else np.zeros(0, "<f4")
    return kind, values


def decode_example(data, only=None):
    """The features of a serialized ``Example`` (with ``only``, a set of names: those alone).

    Returns
    -------
    dict
        ``name -> (kind, values)``: for :data:`BYTES` a list of memoryviews into ``data``, for
        :data:`FLOAT` a float32 array, for :data:`INT64` a list of ints as unsigned 64-bit bit
        patterns (see :func:`as_int64`); kind None for a feature with no list at all.

    Raises
    ------
    RecordFormatError
        When the bytes are not a protobuf message (``reason`` says what and where).
    """
    w = _Wire(memoryview(data))
    features = {}
    for number, wire, a, b in w.fields(len(w.buf)):
        if number == 1 and wire == _LEN:
            w.pos = a
            for inner, kind, c, d in w.fields(b):
                if inner == 1 and kind == _LEN:
                    _read_entry(w, c, d, features, only)
    return features


def as_int64(value):
    """The signed int64 of an unsigned 64-bit bit pattern (what TensorFlow's readers show)."""
    return value - (1 << 64) if value >= 1 << 63 else value
