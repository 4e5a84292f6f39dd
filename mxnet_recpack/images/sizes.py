"""The sizes of many JPEGs at once, from their first bytes: the header walk of
:func:`~mxnet_recpack.images.probe.probe_image`, done with numpy on a whole batch of records
(InsightFace's ``property`` file needs the size of every image, and face datasets hold
millions).
"""

import numpy as np

from .probe import SOF_MARKERS

__all__ = ["jpeg_sizes"]

_FRAMES = np.array(sorted(SOF_MARKERS))
_MAX_SEGMENTS = 32  # segments before the frame header (JFIF, EXIF, ICC, DQT...): more is rare


def jpeg_sizes(buf, starts, ends):
    """``(height, width)`` of the JPEG in each row of ``buf``.

    Parameters
    ----------
    buf : numpy.ndarray
        ``(n, width)`` uint8: row ``i`` holds a JPEG from column ``starts[i]`` to ``ends[i]``
        (exclusive; it may go on past what the row holds).
    starts, ends : numpy.ndarray
        int64 columns.

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` int64; ``-1`` where the walk leaves the row (a frame header further in),
        meets anything unusual (fill bytes, a marker without a length, no JPEG at all) or
        finds an empty size: probe those one by one.
    """
    n, width = buf.shape
    rows = np.arange(n)
    ends = np.minimum(np.asarray(ends, np.int64), width)

    def at(cols):
        return buf[rows, np.clip(cols, 0, width - 1)].astype(np.int64)

    pos = np.asarray(starts, np.int64) + 2
    active = (pos <= ends) & (at(pos - 2) == 0xFF) & (at(pos - 1) == 0xD8)
    out = np.full((n, 2), -1, np.int64)
    for _ in range(_MAX_SEGMENTS):
        active &= pos + 9 <= ends  # room for a frame header's size fields
        if not active.any():
            break
        active &= at(pos) == 0xFF
        marker = at(pos + 1)
        frame = active & np.isin(marker, _FRAMES)
        out[frame, 0] = ((at(pos + 5) << 8) | at(pos + 6))[frame]
        out[frame, 1] = ((at(pos + 7) << 8) | at(pos + 8))[frame]
        # on past segments that have a length (not SOI/EOI/SOS/RSTn, not a fill byte)
        active &= ~frame & (marker >= 0xC0) & (marker <= 0xFE) & ~(
            (marker >= 0xD0) & (marker <= 0xDA))
        pos = pos + 2 + ((at(pos + 2) << 8) | at(pos + 3))
    out[(out <= 0).any(axis=1)] = -1
    return out
