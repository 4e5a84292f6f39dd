"""``contact_sheet``: draw the first images of a record file, each with its key and label,
into one PNG."""

from __future__ import annotations

import io
import logging
import os

import numpy as np

from ..errors import OptionError, RecpackError
from ..images.opencv import load
from ..options import is_int
from .common import encoding_of, open_records, records

__all__ = ["contact_sheet", "format_label", "SHEET_GAP", "SHEET_LABEL_HEIGHT"]

log = logging.getLogger(__name__)

#: Pixels between the cells of a contact sheet (and around the sheet).
SHEET_GAP = 4
#: Height in pixels of the text strip under each contact-sheet cell.
SHEET_LABEL_HEIGHT = 16
_BACKGROUND = (40, 40, 40)  # BGR
_EMPTY_CELL = (128, 128, 128)
_TEXT = (255, 255, 255)


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
    cv2 = load()
    encoding, _ = encoding_of(data)
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
    cv2 = load()
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
    cv2 = load()
    font = cv2.FONT_HERSHEY_SIMPLEX
    while len(text) > 2 and cv2.getTextSize(text, font, scale, 1)[0][0] > width:
        text = text[:-3] + ".."
    return text


def _put_text(canvas, text, x, y, width, scale):
    cv2 = load()
    text = _fit_text(text, width, scale)
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, _TEXT, 1, cv2.LINE_AA)


def _check_positive(name, value, minimum=1):
    if not is_int(value) or value < minimum:
        raise OptionError("%s must be an integer >= %d; got %r" % (name, minimum, value))


def contact_sheet(rec_path: str | os.PathLike, out_png: str | os.PathLike, *, count: int = 36,
                  columns: int = 6, thumb: int = 128,
                  idx_path: str | os.PathLike | None = None) -> str:
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
    cv2 = load()
    rf, _ = open_records(rec_path, idx_path)
    cells = []
    with rf:
        for key, header, data in records(rf):
            if len(cells) == count:
                break
            if not len(data):
                continue  # a label-only record: nothing to draw
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
