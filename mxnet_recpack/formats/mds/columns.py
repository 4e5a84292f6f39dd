"""MDS column encodings: their fixed sizes, and how the values recpack uses are decoded.

MosaicML streaming names each column's encoding in ``index.json`` (``column_encodings``) and
gives fixed-size columns a size (``column_sizes``; ``null`` for variable-size ones, whose length
each sample stores as a uint32). The table here holds every encoding streaming 0.13 defines;
recpack decodes those that can hold a record's fields (numbers, number arrays, bytes, encoded
images) and names the reason for the rest (``pil``: raw pixels, ``pkl``: pickles run code). An
encoding that MDS does not define is refused when the dataset is opened.

Standard library and numpy only: the encoded bytes are read as they are; images stay bytes.
"""

import json

import numpy as np

__all__ = ["ENCODINGS", "NDARRAY_DTYPES", "ColumnError", "fixed_size", "decode_number",
           "decode_numbers", "decode_bytes", "encode_ndarray", "is_known"]

_SCALARS = {name: np.dtype(name).newbyteorder("<") for name in (
    "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
    "float16", "float32", "float64")}

#: ``ndarray`` value dtypes by their one-byte code (streaming's ``NDArray`` encoding).
NDARRAY_DTYPES = {8: "uint8", 9: "int8", 16: "uint16", 17: "int16", 18: "float16",
                  32: "uint32", 33: "int32", 34: "float32", 64: "uint64", 65: "int64",
                  66: "float64"}
_NDARRAY_CODES = {name: code for code, name in NDARRAY_DTYPES.items()}
_SHAPE_DTYPES = ("<u1", "<u2", "<u4", "<u8")

#: Every encoding streaming defines, and what recpack reads from it: ``number`` (one value),
#: ``numbers`` (one or more), ``bytes`` (kept byte for byte), or why it is not read.
ENCODINGS = {
    **{name: "number" for name in _SCALARS}, "int": "number", "str_int": "number",
    "str_float": "number", "str_decimal": "number",
    "ndarray": "numbers", "json": "numbers",
    "bytes": "bytes", "jpeg": "bytes", "png": "bytes", "str": "text",
    "pil": "raw pixels (width, height, mode, then pixels), not an encoded image",
    "pkl": "a pickle (unpickling runs code)",
    "jpeg_array": "several images in one value", "jpegarray": "several images in one value",
    "list[pil]": "several images in one value", "list[jpeg]": "several images in one value",
    "list[png]": "several images in one value",
}


class ColumnError(ValueError):
    """A value that does not decode under its column's encoding (the caller adds the file)."""


def _split(encoding):
    name, _, args = str(encoding).partition(":")
    return name, args


def is_known(encoding):
    """True when ``encoding`` is one MDS defines (``ndarray`` with a valid dtype and shape)."""
    name, args = _split(encoding)
    if name not in ENCODINGS:
        return False
    if name != "ndarray":
        return args == ""
    try:
        _ndarray_args(args)
    except ColumnError:
        return False
    return True


def _ndarray_args(args):
    """``'float32:2,3'`` -> ``('float32', (2, 3))``; ``''`` -> ``(None, None)``."""
    if not args:
        return None, None
    parts = args.split(":")
    if len(parts) > 2 or parts[0] not in _NDARRAY_CODES:
        raise ColumnError("ndarray takes ndarray[:DTYPE[:SHAPE]] with DTYPE one of %s"
                          % ", ".join(sorted(_NDARRAY_CODES)))
    shape = None
    if len(parts) == 2:
        try:
            shape = tuple(int(d) for d in parts[1].split(","))
        except ValueError:
            shape = ()
        if not shape or min(shape) < 1:
            raise ColumnError("ndarray's SHAPE is a list of positive integers, found %r"
                              % parts[1])
    return parts[0], shape


def fixed_size(encoding):
    """The size in bytes every value of ``encoding`` has, or None for a variable size."""
    name, args = _split(encoding)
    if name in _SCALARS:
        return _SCALARS[name].itemsize
    if name == "int":
        return 8
    if name == "ndarray":
        dtype, shape = _ndarray_args(args)
        if dtype is not None and shape is not None:
            return int(np.prod(shape)) * np.dtype(dtype).itemsize
    return None


def decode_number(encoding, data):
    """One number stored as ``encoding`` (``int``, ``uint64``, ``str_float``, ...)."""
    name, _ = _split(encoding)
    if name == "int":
        name = "int64"
    if name in _SCALARS:
        if len(data) != _SCALARS[name].itemsize:
            raise ColumnError("a %s value is %d bytes, found %d"
                              % (name, _SCALARS[name].itemsize, len(data)))
        return np.frombuffer(data, _SCALARS[name])[0].item()
    try:
        text = bytes(data).decode("utf-8")
        return int(text) if name == "str_int" else float(text)
    except (UnicodeDecodeError, ValueError):
        raise ColumnError("a %s value holds %r, not a number" % (name, bytes(data[:40])))


def decode_numbers(encoding, data):
    """A number or a 1-D array of numbers stored as ``ndarray[...]``, ``json`` or a scalar
    encoding: a Python number, or a numpy array (of the stored dtype)."""
    name, args = _split(encoding)
    if ENCODINGS.get(name) == "number":
        return decode_number(encoding, data)
    if name == "json":
        return _json_numbers(data)
    dtype, shape = _ndarray_args(args)
    view = memoryview(data)
    pos = 0
    if dtype is None:
        if len(view) < 1 or view[0] not in NDARRAY_DTYPES:
            raise ColumnError("an ndarray value starts with an unknown dtype code %s"
                              % (view[0] if len(view) else "(empty)"))
        dtype, pos = NDARRAY_DTYPES[view[0]], 1
    if shape is None:
        if len(view) < pos + 1:
            raise ColumnError("an ndarray value ends before its shape")
        ndim, width = view[pos] >> 2, 1 << (view[pos] & 3)
        end = pos + 1 + ndim * width
        if len(view) < end:
            raise ColumnError("an ndarray value ends inside its shape")
        shape = tuple(np.frombuffer(view[pos + 1:end], _SHAPE_DTYPES[view[pos] & 3]).tolist())
        pos = end
    item = np.dtype(dtype).itemsize
    if len(view) - pos != int(np.prod(shape)) * item:
        raise ColumnError("an ndarray of shape %s (%s) needs %d bytes of values, found %d"
                          % (shape, dtype, int(np.prod(shape)) * item, len(view) - pos))
    return np.frombuffer(view[pos:], np.dtype(dtype).newbyteorder("<")).reshape(shape)


def _json_numbers(data):
    try:
        value = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ColumnError("a json value is not JSON: %r" % bytes(data[:40]))
    if isinstance(value, list):
        if value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return np.array(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise ColumnError("a json label is a number or a non-empty list of numbers, found %r"
                      % (value,))


def decode_bytes(encoding, data):
    """The bytes of a ``bytes``, ``jpeg`` or ``png`` value (image files are kept as stored);
    ``str`` gives its UTF-8 bytes."""
    return bytes(data)


def encode_ndarray(values):
    """``values`` (a 1-D float32 array of at least one value) as ``ndarray:float32``: the
    shape header (ndim 1, the smallest unsigned width that holds the length), then the values."""
    n = len(values)
    code = 0 if n < 1 << 8 else 1 if n < 1 << 16 else 2 if n < 1 << 32 else 3
    return b"".join((bytes([(1 << 2) | code]), np.array([n], _SHAPE_DTYPES[code]).tobytes(),
                     np.asarray(values, "<f4").tobytes()))
