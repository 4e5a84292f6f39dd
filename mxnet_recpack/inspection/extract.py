"""``extract``: write every stored image back out as a file, with an im2rec ``.lst`` that
``recpack im2rec --pass-through`` packs into the same ``.rec``/``.idx`` bytes again."""

from __future__ import annotations

import logging
import os

import numpy as np

from ..errors import OutputExistsError
from ..format.names import stem
from ..images.encodings import extension
from ..storage import is_url, write_small
from .common import encoding_of, open_records, records

__all__ = ["extract"]

log = logging.getLogger(__name__)


def _label_text(value):
    """A label as im2rec.py writes it (``'%f'``), or with 9 significant digits when ``'%f'``
    would change the float32 value (tiny or very precise labels), so a round trip is exact."""
    text = "%f" % value
    if np.float32(float(text)) != np.float32(value) and not np.isnan(value):
        text = "%.9g" % value
    return text


def extract(rec_path: str | os.PathLike, out_dir: str | os.PathLike, *,
            idx_path: str | os.PathLike | None = None, overwrite: bool = False,
            storage_options: dict | None = None) -> str:
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
    storage_options : dict, optional
        For an ``s3://`` (any fsspec URL) ``rec_path``, read through a local copy.

    Records that hold only a label (InsightFace's header and identity records) have no image
    to write and no place in a ``.lst`` (its lines need a file): their labels go to
    ``out_dir/<name>.label_only.tsv``, one ``key<TAB>flag<TAB>label...`` line each.

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
    if is_url(rec_path):  # checked above first: a URL is copied here before it is read
        from ..storage.readable import readable
        with readable(rec_path, (".idx",), storage_options=storage_options) as local:
            return local.back(extract(local.path, out_dir, idx_path=idx_path,
                                      overwrite=overwrite))
    # opened before anything is created: a missing .rec makes no folder
    rf, _ = open_records(rec_path, idx_path)
    os.makedirs(out_dir, exist_ok=True)
    name = os.path.basename(rec_path)
    lst_path = os.path.join(out_dir, stem(name) + ".lst")
    lines, label_only = [], []
    flag_one = 0
    with rf:
        for key, header, data in records(rf):
            if not len(data):
                values = [header.label] if header.flag == 0 else list(header.label)
                label_only.append("%d\t%d\t%s\n" % (key, header.flag, "\t".join(
                    _label_text(float(v)) for v in values)))
                continue
            encoding, _ = encoding_of(data)
            filename = "%d%s" % (key, extension(encoding))
            with open(os.path.join(out_dir, filename), "wb") as f:
                f.write(data)
            if header.flag == 0:
                labels = [float(header.label)]
            else:
                labels = [float(v) for v in header.label]
                flag_one += header.flag == 1
            lines.append("%d\t%s\t%s\n" % (key, "\t".join(_label_text(v) for v in labels),
                                           filename))
    if label_only:
        sidecar = os.path.join(out_dir, stem(name) + ".label_only.tsv")
        write_small(sidecar, "".join(label_only))
        log.warning("%s: %d label-only record(s) have no image; their labels are in %s",
                    rec_path, len(label_only), sidecar)
    write_small(lst_path, "".join(lines))
    if flag_one:
        log.warning("%s: %d record(s) have a one-element vector label (flag 1); the list holds "
                    "it as a single label, which im2rec stores as a scalar (flag 0)",
                    lst_path, flag_one)
    log.info("%s: extracted %d images from %s", lst_path, len(lines), rec_path)
    return lst_path
