"""``recpack verify``: every frame of a ``.rec`` checked against its ``.idx``, every image
decoded.

The frame walk is the format layer's (:func:`~mxnet_recpack.format.checks.scan`); this module
adds what needs pixels: whether each payload is an image that decodes.
"""

from __future__ import annotations

import io
import os

import numpy as np

from ..errors import BadImageError, IndexFormatError, RecordFormatError
from ..format.checks import scan
from ..format.header import unpack_record
from ..format.index import read_index
from ..format.names import index_path_for
from ..images.encodings import sniff
from ..images.opencv import load
from ..images.probe import check_image_bytes

__all__ = ["verify", "Problem"]


class Problem(dict):
    """One problem found by :func:`verify`: ``offset``, ``key`` (or None) and ``message``."""

    def __str__(self):
        where = "byte offset %s" % self["offset"] if self["offset"] is not None else "index"
        if self.get("key") is not None:
            where += " (key %s)" % self["key"]
        return "%s: %s" % (where, self["message"])


def _decode_problem(body):
    data = bytes(body)
    if sniff(data) == "npy":
        try:
            np.load(io.BytesIO(data), allow_pickle=False)
            return None
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return "stored .npy array does not load: %s" % exc
    try:
        check_image_bytes(data, max_pixels=None)
    except BadImageError as exc:
        return str(exc)
    cv2 = load()
    if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) is None:
        return "image does not decode"
    return None


def verify(rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None, *,
           decode: bool = True, max_problems: int = 1000) -> tuple[int, list[Problem]]:
    """Read every frame of ``rec_path``, check it against its index, decode every image.

    Returns
    -------
    (int, list of Problem)
        The number of whole records read, and the problems found (at most ``max_problems``).
    """
    idx_path = index_path_for(rec_path) if idx_path is None else idx_path
    problems = []

    def report(offset, key, message):
        if len(problems) < max_problems:
            problems.append(Problem(offset=offset, key=key, message=message))

    try:
        entries = read_index(idx_path)
    except FileNotFoundError:
        entries = None
        report(None, None, "no index file %s; build one with `recpack index %s`"
               % (idx_path, rec_path))
    except IndexFormatError as exc:
        entries = None
        report(None, None, str(exc))
    found = {}
    with open(rec_path, "rb") as f:
        for offset, payload, error in scan(f, path=rec_path):
            if error is not None:
                report(offset, None, str(error).split(": ", 2)[-1])
                continue
            try:
                header, body = unpack_record(payload)
                found[offset] = header.id
                if decode:
                    message = _decode_problem(body)
                    if message:
                        report(offset, header.id, message)
            except RecordFormatError as exc:
                found[offset] = None
                report(offset, None, str(exc))
    if entries is not None:
        listed = set()
        for key, off in entries:
            listed.add(off)
            if off not in found:
                report(off, key, "the index points here but no whole record starts here")
        for off in sorted(set(found) - listed):
            report(off, found[off], "record is not listed in the index %s" % idx_path)
        if len(listed) != len(entries):
            report(None, None, "the index lists some offsets more than once")
    return len(found), problems
