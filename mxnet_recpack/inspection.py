"""Look inside a record file: what it holds, what its images look like, and the images back out.

* :func:`inspect_file` counts records, keys, labels, image sizes and encodings, mostly from
  headers (JPEG/PNG sizes come from the image headers, without decoding).
* :func:`contact_sheet` draws the first images, each with its key and label, into one PNG.
* :func:`extract` writes every stored image back out as a file, with an im2rec ``.lst`` that
  ``recpack im2rec --pass-through`` packs into the same ``.rec``/``.idx`` bytes again.

OpenCV (imported only when an image must be decoded or drawn) and numpy: this module never
imports mxnet.
"""

import io
import logging
import os
import statistics
from collections import Counter

import numpy as np

from .errors import OptionError, OutputExistsError, RecordFormatError, RecpackError
from .header import unpack_record
from .index import RecordFile, index_path_for
from .probe import probe_image

__all__ = [
    "ENCODING_EXTENSIONS",
    "SHEET_GAP",
    "SHEET_LABEL_HEIGHT",
    "inspect_file",
    "contact_sheet",
    "extract",
    "format_label",
]

log = logging.getLogger(__name__)

#: File extension :func:`extract` gives each stored encoding ('other' is anything unrecognised).
ENCODING_EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "npy": ".npy", "other": ".bin"}
#: Pixels between the cells of a contact sheet (and around the sheet).
SHEET_GAP = 4
#: Height in pixels of the text strip under each contact-sheet cell.
SHEET_LABEL_HEIGHT = 16

_NPY_MAGIC = b"\x93NUMPY"
_PROBE_PREFIX = 1 << 16  # JPEG SOF / PNG IHDR are near the start; probe only this much first
_BACKGROUND = (40, 40, 40)  # BGR
_EMPTY_CELL = (128, 128, 128)
_TEXT = (255, 255, 255)


def _cv2():
    import cv2  # lazily: counting JPEG/PNG records needs no decoder
    return cv2


# -- reading ------------------------------------------------------------------------------------

def _open(rec_path, idx_path):
    """Open ``rec_path``; returns ``(RecordFile, index path or None)``.

    Without an explicit ``idx_path``, the ``.idx`` beside the ``.rec`` is used when it exists;
    otherwise the file is read sequentially.
    """
    rec_path = os.fspath(rec_path)
    if not os.path.isfile(rec_path):
        raise FileNotFoundError("%s: record file not found (expected a .rec file written by "
                                "recpack or im2rec)" % rec_path)
    if idx_path is None:
        candidate = index_path_for(rec_path)
        idx_path = candidate if os.path.isfile(candidate) else False
    elif idx_path is not False:
        idx_path = os.fspath(idx_path)
    return RecordFile(rec_path, idx_path=idx_path), (idx_path or None)


def _records(rf):
    """Yield ``(key, RecordHeader, image memoryview)`` in index order (file order without one).

    Without an index the key is the header's id; a repeated id raises, since keys must be
    unique to name records (and extracted files).
    """
    if rf.idx_path:
        for key in rf.keys:
            header, data = rf.read_image(key)
            yield key, header, data
        return
    seen = set()
    for offset, payload in rf.scan():
        header, data = unpack_record(payload, offset=offset, path=rf.path)
        if header.id in seen:
            raise RecordFormatError(
                "record id %d is used by an earlier record too, and there is no .idx to give "
                "the records unique keys; build one with `recpack index --keys position %s` "
                "and pass it as idx_path" % (header.id, rf.path), path=rf.path, offset=offset)
        seen.add(header.id)
        yield header.id, header, data


def _encoding_of(data):
    """``('jpeg' | 'png' | 'npy' | 'other', ImageInfo or None)`` from the magic bytes."""
    if bytes(data[:6]) == _NPY_MAGIC:
        return "npy", None
    info = probe_image(bytes(data[:_PROBE_PREFIX]))
    if info.format in ("jpeg", "png"):
        if info.width is None and len(data) > _PROBE_PREFIX:
            info = probe_image(bytes(data))
        return info.format, info
    return "other", info


def _npy_shape(data):
    """The array shape and dtype stored in ``.npy`` bytes, from the header only."""
    f = io.BytesIO(bytes(data[:4096]))
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    except (ValueError, EOFError):
        return None, None
    return shape, dtype


def _npy_size(shape, dtype):
    """``(width, height)`` of an HW, HWC or CHW array, else ``(None, None)``.

    A 3-D shape is HWC when only its last axis looks like channels (1, 3 or 4), CHW when only
    its first does; when both do, uint8 arrays are taken as HWC images and others as CHW
    tensors (what ``ToTensor`` makes).
    """
    if shape is None:
        return None, None
    if len(shape) == 2:
        return shape[1], shape[0]
    if len(shape) != 3:
        return None, None
    last, first = shape[2] in (1, 3, 4), shape[0] in (1, 3, 4)
    if last and (not first or dtype == np.uint8):
        return shape[1], shape[0]
    if first:
        return shape[2], shape[1]
    return None, None


def _image_size(encoding, info, data):
    """``(width, height)`` from the header when it says, else by decoding; Nones if neither."""
    if encoding == "npy":
        return _npy_size(*_npy_shape(data))
    if info is not None and info.width is not None and info.height is not None:
        return info.width, info.height
    cv2 = _cv2()
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        return None, None
    return img.shape[1], img.shape[0]


def _sorted_hist(counter):
    return {k: counter[k] for k in sorted(counter)}


def _spread(values):
    return {"min": int(min(values)), "max": int(max(values)),
            "median": float(statistics.median(values))}


def inspect_file(rec_path, *, idx_path=None):
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
        when no size is known), and ``encodings``: ``{"jpeg", "png", "npy", "other"}`` counts.

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
    rf, found_idx = _open(rec_path, idx_path)
    keys_min = keys_max = None
    n = 0
    scalar, lengths, first = Counter(), Counter(), Counter()
    encodings = Counter({name: 0 for name in ENCODING_EXTENSIONS})
    sizes = Counter()
    unknown = 0
    with rf:
        for key, header, data in _records(rf):
            n += 1
            keys_min = key if keys_min is None or key < keys_min else keys_min
            keys_max = key if keys_max is None or key > keys_max else keys_max
            if header.flag == 0:
                scalar[float(header.label)] += 1
            else:
                lengths[int(header.flag)] += 1
                first[float(header.label[0])] += 1
            encoding, info = _encoding_of(data)
            encodings[encoding] += 1
            w, h = _image_size(encoding, info, data)
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
    }


# -- contact sheet ------------------------------------------------------------------------------

def format_label(header, *, max_values=4):
    """A short text for a record's label: ``'3'``, ``'0.25'`` or ``'[2,5,0,0.1,..]'``."""
    if header.flag == 0:
        return "%g" % header.label
    values = ["%g" % v for v in header.label[:max_values]]
    if header.flag > max_values:
        values.append("..")
    return "[" + ",".join(values) + "]"


def _thumbnail_source(data):
    """The record's image as a BGR (or gray) uint8 array for drawing, or a text for the cell."""
    cv2 = _cv2()
    encoding, _ = _encoding_of(data)
    if encoding == "npy":
        try:
            arr = np.load(io.BytesIO(bytes(data)), allow_pickle=False)
        except (ValueError, OSError, EOFError):
            return None, "npy"
        if arr.dtype == np.uint8 and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 1)):
            return np.ascontiguousarray(arr.reshape(arr.shape[:2])), None
        if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3:
            return np.ascontiguousarray(arr[:, :, ::-1]), None  # stored RGB -> OpenCV BGR
        return None, "npy"
    # OpenCV decodes to BGR, the order cv2.imencode expects: no channel flip on this path.
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None, "?" if encoding == "other" else encoding
    return img, None


def _letterbox(img, thumb):
    """``img`` scaled to fit a ``thumb`` x ``thumb`` square (aspect kept), centred on black."""
    cv2 = _cv2()
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    h, w = img.shape[:2]
    scale = thumb / max(h, w)
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    inter = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(img, (nw, nh), interpolation=inter)
    cell = np.zeros((thumb, thumb, 3), np.uint8)
    y, x = (thumb - nh) // 2, (thumb - nw) // 2
    cell[y:y + nh, x:x + nw] = small
    return cell


def _fit_text(text, width, scale):
    """``text`` shortened (ending in '..') until it fits ``width`` pixels at ``scale``."""
    cv2 = _cv2()
    font = cv2.FONT_HERSHEY_SIMPLEX
    while len(text) > 2 and cv2.getTextSize(text, font, scale, 1)[0][0] > width:
        text = text[:-3] + ".."
    return text


def _put_text(canvas, text, x, y, width, scale):
    cv2 = _cv2()
    text = _fit_text(text, width, scale)
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, _TEXT, 1, cv2.LINE_AA)


def _check_positive(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OptionError("%s must be an integer >= %d; got %r" % (name, minimum, value))


def contact_sheet(rec_path, out_png, *, count=36, columns=6, thumb=128, idx_path=None):
    """Draw the first ``count`` images of a record file into one PNG, with key and label.

    Each image is scaled to fit a ``thumb`` x ``thumb`` cell (aspect ratio kept, black bars),
    and ``"key: label"`` is written under it. ``.npy`` records that hold H x W or H x W x 3
    uint8 images are drawn too; other arrays (float tensors) get a grey cell marked ``npy``.
    Colours are the stored ones: a red image is red on the sheet.

    Parameters
    ----------
    rec_path : str or os.PathLike
        The ``.rec`` file.
    out_png : str or os.PathLike
        Where to write the sheet; it is PNG-encoded whatever the file name says.
    count : int, default 36
        How many images, in index order (file order without an index).
    columns : int, default 6
        Cells per row (fewer when the file holds fewer images).
    thumb : int, default 128
        Cell size in pixels (at least 16).
    idx_path : str, optional
        See :func:`inspect_file`.

    Returns
    -------
    str
        ``out_png``. The sheet is ``c * (thumb + SHEET_GAP) + SHEET_GAP`` pixels wide and
        ``r * (thumb + SHEET_LABEL_HEIGHT + SHEET_GAP) + SHEET_GAP`` high, for ``c`` columns and
        ``r`` rows in use.

    Raises
    ------
    OptionError
        For a ``count``, ``columns`` or ``thumb`` that is not a positive integer.
    RecpackError
        When the file holds no records.
    """
    _check_positive("count", count)
    _check_positive("columns", columns)
    _check_positive("thumb", thumb, 16)
    out_png = os.fspath(out_png)
    parent = os.path.dirname(os.path.abspath(out_png))
    if not os.path.isdir(parent):
        raise FileNotFoundError("%s: the output folder %s does not exist; create it first"
                                % (out_png, parent))
    cv2 = _cv2()
    rf, _ = _open(rec_path, idx_path)
    cells = []
    with rf:
        for key, header, data in _records(rf):
            if len(cells) == count:
                break
            img, text = _thumbnail_source(data)
            cells.append((key, format_label(header), img, text))
    if not cells:
        raise RecpackError("%s holds no records: there is nothing to draw" % rf.path)
    cols = min(columns, len(cells))
    rows = (len(cells) + cols - 1) // cols
    cell_h = thumb + SHEET_LABEL_HEIGHT
    sheet = np.empty((rows * (cell_h + SHEET_GAP) + SHEET_GAP,
                      cols * (thumb + SHEET_GAP) + SHEET_GAP, 3), np.uint8)
    sheet[:] = _BACKGROUND
    scale = 0.4 if thumb >= 64 else 0.3
    for i, (key, label, img, text) in enumerate(cells):
        y = SHEET_GAP + (i // cols) * (cell_h + SHEET_GAP)
        x = SHEET_GAP + (i % cols) * (thumb + SHEET_GAP)
        if img is not None:
            sheet[y:y + thumb, x:x + thumb] = _letterbox(img, thumb)
        else:
            sheet[y:y + thumb, x:x + thumb] = _EMPTY_CELL
            _put_text(sheet, text, x + 4, y + thumb // 2 + 4, thumb - 8, scale)
        _put_text(sheet, "%d: %s" % (key, label), x + 1, y + thumb + SHEET_LABEL_HEIGHT - 4,
                  thumb - 2, scale)
    ok, buf = cv2.imencode(".png", sheet)
    if not ok:  # pragma: no cover - a uint8 BGR array always encodes
        raise OSError("OpenCV could not encode the contact sheet for %s" % out_png)
    with open(out_png, "wb") as f:
        f.write(buf.tobytes())
    log.info("%s: contact sheet of %d images from %s", out_png, len(cells), rf.path)
    return out_png


# -- extract ------------------------------------------------------------------------------------

def _label_text(value):
    """A label as im2rec.py writes it (``'%f'``), or with 9 significant digits when ``'%f'``
    would change the float32 value (tiny or very precise labels), so a round trip is exact."""
    text = "%f" % value
    if np.float32(float(text)) != np.float32(value) and not np.isnan(value):
        text = "%.9g" % value
    return text


def extract(rec_path, out_dir, *, idx_path=None, overwrite=False):
    """Write every stored image back out as a file, with an im2rec ``.lst`` describing them.

    Images go to ``out_dir/<key>.<ext>`` (``.jpg``, ``.png``, ``.npy`` or ``.bin`` from the
    bytes' format), byte for byte as stored. The list, ``out_dir/<name>.lst`` for
    ``<name>.rec``, has one ``key<TAB>label[<TAB>label...]<TAB>file`` line per record in
    record order, labels written with ``'%f'`` as im2rec.py does (vector labels as several
    columns). So ``recpack im2rec --pass-through [--pack-label] OUT_DIR/<name> OUT_DIR``
    rebuilds the same ``.rec`` and ``.idx`` bytes for a file made by pass-through of JPEG/PNG
    files (header ``id2`` is not kept, and a one-element vector label comes back as a scalar).

    Parameters
    ----------
    rec_path : str or os.PathLike
        The ``.rec`` file.
    out_dir : str or os.PathLike
        Created if missing; must be empty unless ``overwrite``.
    idx_path : str, optional
        See :func:`inspect_file`.
    overwrite : bool, default False
        Write into a non-empty folder, replacing files of the same names (others are kept).

    Returns
    -------
    str
        The path of the ``.lst`` written.

    Raises
    ------
    OutputExistsError
        When ``out_dir`` is not empty and ``overwrite`` is False.
    RecordFormatError
        Without an index, when two records have the same header id.
    """
    out_dir = os.fspath(out_dir)
    rec_path = os.fspath(rec_path)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise OutputExistsError("%s exists and is not a folder; give a new or empty folder to "
                                "extract into" % out_dir)
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise OutputExistsError("%s is not empty; extract into a new or empty folder, or pass "
                                "overwrite=True (CLI: --overwrite) to write into it anyway"
                                % out_dir)
    rf, _ = _open(rec_path, idx_path)  # before creating anything: a missing .rec makes no folder
    os.makedirs(out_dir, exist_ok=True)
    name = os.path.basename(rec_path)
    lst_path = os.path.join(out_dir, (name[:-4] if name.endswith(".rec") else name) + ".lst")
    lines = []
    flag_one = 0
    with rf:
        for key, header, data in _records(rf):
            encoding, _ = _encoding_of(data)
            filename = "%d%s" % (key, ENCODING_EXTENSIONS[encoding])
            with open(os.path.join(out_dir, filename), "wb") as f:
                f.write(data)
            if header.flag == 0:
                labels = [float(header.label)]
            else:
                labels = [float(v) for v in header.label]
                flag_one += header.flag == 1
            lines.append("%d\t%s\t%s\n" % (key, "\t".join(_label_text(v) for v in labels),
                                           filename))
    tmp = lst_path + ".partial"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(lines)
    os.replace(tmp, lst_path)
    if flag_one:
        log.warning("%s: %d record(s) have a one-element vector label (flag 1); the list holds "
                    "it as a single label, which im2rec stores as a scalar (flag 0)",
                    lst_path, flag_one)
    log.info("%s: extracted %d images from %s", lst_path, len(lines), rec_path)
    return lst_path
