"""``inspect_file``: count a record file's records, keys, labels, image sizes and encodings,
mostly from headers (JPEG/PNG sizes come from the image headers, without decoding)."""

from __future__ import annotations

import os
import statistics
from collections import Counter

from ..format.names import index_path_for
from ..images.exif import mxnet_decodes_as_stored
from ..sources.insightface import layout_summary, read_layout
from ..sources.records import RecordSet
from ..storage import is_url
from .common import encoding_of, image_size, open_records, records

__all__ = ["inspect_file", "ENCODING_NAMES"]

#: The encodings ``inspect_file`` counts ('other' is anything unrecognised).
ENCODING_NAMES = ("jpeg", "png", "npy", "other")


def _sorted_hist(counter):
    return {k: counter[k] for k in sorted(counter)}


def _spread(values):
    return {"min": int(min(values)), "max": int(max(values)),
            "median": float(statistics.median(values))}


def inspect_file(rec_path: str | os.PathLike, *, idx_path: str | os.PathLike | None = None,
                 storage_options: dict | None = None) -> dict:
    """Summarise a record file: records, keys, labels, image sizes and encodings.

    Image sizes of JPEG and PNG records come from their headers (no decoding); ``.npy`` sizes
    from the array header; anything else is decoded with OpenCV.

    Parameters
    ----------
    rec_path : str or os.PathLike
        The ``.rec`` file.
    idx_path : str, optional
        Its index. Default: the ``.idx`` beside it if there is one, else the ``.rec`` is read
        sequentially (keys are then the headers' ids).
    storage_options : dict, optional
        For an ``s3://`` (any fsspec URL) ``rec_path``, read through a local copy.

    Returns
    -------
    dict
        ``path``, ``file_size`` (bytes), ``has_index``, ``index_path`` (None without one),
        ``records``, ``keys`` (``{"min", "max"}`` or None when empty),
        ``labels``: ``{"scalar": {value: count}`` for records with one label (``flag == 0``),
        ``"vector_lengths": {flag: count}`` and ``"first_label": {value: count}`` (histogram
        of the first element) for records with vector labels``}``,
        ``sizes``: ``{"width": {"min", "max", "median"}, "height": {...}, "most_common":
        [[width, height, count], ...] (up to 10), "unknown": count}`` (``width``/``height`` None
        when no size is known), ``encodings``: ``{"jpeg", "png", "npy", "other"}`` counts,
        ``label_only`` (records holding only a label: count and the first ones), ``layout``
        (``{"insightface": {images, identities, images_per_identity, ...}}`` for InsightFace's
        face layout, else None), ``exif_orientation`` (``{"jpegs", "as_stored_by_imdecode",
        "first"}``: the JPEGs whose EXIF orientation turns or mirrors them, on which MXNet's
        readers disagree; how many of them ``mx.image.imdecode`` decodes as stored; the first
        five keys, in index order) and ``readers`` (the label settings MXNet's iterators need).

    Raises
    ------
    FileNotFoundError
        When the ``.rec`` (or an explicitly given index) is missing.
    RecordFormatError, IndexFormatError
        When the file or its index is damaged (the message names the byte offset or line).

    Examples
    --------
    >>> info = inspect_file("train.rec")
    >>> info["records"], info["labels"]["scalar"]
    (60, {0.0: 20, 1.0: 20, 2.0: 20})
    """
    if is_url(rec_path):
        from ..storage.readable import readable
        with readable(rec_path, (".idx",), storage_options=storage_options) as local:
            return local.back(inspect_file(local.path, idx_path=idx_path))
    rf, found_idx = open_records(rec_path, idx_path)
    keys_min = keys_max = None
    n = 0
    scalar, lengths, first = Counter(), Counter(), Counter()
    encodings = Counter({name: 0 for name in ENCODING_NAMES})
    sizes = Counter()
    unknown = 0
    label_only = []
    oriented = {"jpegs": 0, "as_stored_by_imdecode": 0, "first": []}
    with rf:
        for key, header, data in records(rf):
            n += 1
            keys_min = key if keys_min is None or key < keys_min else keys_min
            keys_max = key if keys_max is None or key > keys_max else keys_max
            if not len(data):  # a label-only record: its labels are not an image's
                label_only.append((key, header))
                continue
            if header.flag == 0:
                scalar[float(header.label)] += 1
            else:
                lengths[int(header.flag)] += 1
                first[float(header.label[0])] += 1
            encoding, info = encoding_of(data)
            encodings[encoding] += 1
            if encoding == "jpeg" and info.orientation in range(2, 9):
                _count_oriented(oriented, key, data)
            w, h = image_size(encoding, info, data)
            if w is None:
                unknown += 1
            else:
                sizes[(int(w), int(h))] += 1
    widths = [w for (w, _), c in sizes.items() for _ in range(c)]
    heights = [h for (_, h), c in sizes.items() for _ in range(c)]
    return {
        "path": rf.path,
        "file_size": os.path.getsize(rf.path),
        "has_index": found_idx is not None,
        "index_path": found_idx,
        "records": n,
        "keys": None if n == 0 else {"min": int(keys_min), "max": int(keys_max)},
        "labels": {"scalar": _sorted_hist(scalar), "vector_lengths": _sorted_hist(lengths),
                   "first_label": _sorted_hist(first)},
        "sizes": {
            "width": _spread(widths) if widths else None,
            "height": _spread(heights) if heights else None,
            "most_common": [[w, h, c] for (w, h), c in
                            sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))[:10]],
            "unknown": unknown,
        },
        "encodings": dict(encodings),
        "label_only": {"records": len(label_only), "first": [
            {"key": int(k), "flag": int(h.flag), "label": _label_list(h)}
            for k, h in sorted(label_only, key=lambda kh: kh[0])[:5]]},
        "layout": _layout(rf.path, found_idx) if label_only else None,
        "exif_orientation": oriented,
        "readers": _reader_settings(scalar, lengths, len(label_only)),
    }


def _count_oriented(counts, key, data):
    """Count a JPEG whose EXIF orientation turns or mirrors it (the first five keys kept)."""
    counts["jpegs"] += 1
    counts["as_stored_by_imdecode"] += mxnet_decodes_as_stored(data)
    if len(counts["first"]) < 5:
        counts["first"].append(int(key))


def _layout(rec_path, idx_path):
    """InsightFace's layout, when the file has it (key 0 its header record)."""
    if idx_path is None or idx_path != index_path_for(rec_path):
        return None
    records = RecordSet(rec_path)
    layout = read_layout(records)
    return None if layout is None else {"insightface": layout_summary(records, layout)}


def _label_list(header):
    return [float(header.label)] if header.flag == 0 else [float(v) for v in header.label]


def _reader_settings(scalar, lengths, label_only=0):
    """The label settings MXNet's iterators need to read the image records."""
    widths = sorted(lengths) if lengths else []
    if scalar and widths:
        width = None  # ImageRecordIter checks every record against one label_width
    else:
        width = widths[0] if len(widths) == 1 else (1 if not widths else None)
    return {"label_width": width, "label_pad_width": max(widths) if widths else 1,
            "note": None if width is not None else
            "image records carry labels of different lengths (%s): ImageRecordIter needs one "
            "label_width for all; ImageDetRecordIter pads to label_pad_width"
            % ", ".join(str(w) for w in ([1] if scalar else []) + widths),
            "label_only": None if not label_only else
            "ImageRecordIter and DALI take every record as a sample, label-only ones too "
            "(DALI gives them as 0-byte images that its decoder rejects); `recpack filter "
            "--drop-label-only` writes the images alone"}
