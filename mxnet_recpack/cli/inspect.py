"""``recpack inspect`` and ``recpack extract``: the command-line side of
:mod:`mxnet_recpack.inspection`.

Each run function takes the parsed arguments and returns the exit status; errors propagate to
``cli.main``, which prints them as one line on stderr.
"""

import json
from contextlib import contextmanager

__all__ = ["add_inspect", "add_extract", "format_summary", "readable"]


@contextmanager
def readable(rec, suffixes=(".idx", ".crc")):
    """A :class:`~mxnet_recpack.storage.readable.Readable` for ``rec``: its ``path`` is the
    file itself, after an interrupted commit there is finished or undone, or for a URL
    (``s3://``) a local copy (removed afterwards); its ``back`` maps a result's paths back to
    the URL (errors raised meanwhile are mapped too)."""
    from ..storage.readable import Readable
    view = Readable(rec, suffixes)
    if view.url is None:
        from ..pipeline.journal import settle
        settle(rec)
    with view:
        yield view

_TOP_LABELS = 10


def add_inspect(sub):
    """Add the ``inspect`` subcommand to an argparse ``add_subparsers()`` object."""
    p = sub.add_parser("inspect", help="summarise a .rec: records, keys, labels, image sizes, "
                       "encodings; optionally draw a contact sheet",
                       description="Summarise FILE.rec (read through its .idx when there is "
                       "one). Image sizes come from the image headers, without decoding.")
    p.add_argument("rec", help="the .rec file (or s3:// URL)")
    p.add_argument("--idx", help="the index (default: FILE.idx beside the .rec, if present)")
    p.add_argument("--sheet", metavar="OUT.png",
                   help="also draw the first images, with key and label, into this PNG")
    p.add_argument("--count", type=int, default=36,
                   help="how many images the contact sheet shows")
    p.add_argument("--json", action="store_true",
                   help="print the summary as JSON (label values become strings)")
    p.set_defaults(func=_run_inspect)
    return p


def add_extract(sub):
    """Add the ``extract`` subcommand to an argparse ``add_subparsers()`` object."""
    p = sub.add_parser("extract", help="write the images of a .rec back out as files, with an "
                       "im2rec .lst",
                       description="Write every image of FILE.rec to OUTDIR/<key>.<ext>, byte "
                       "for byte, and OUTDIR/FILE.lst in im2rec format. `recpack im2rec "
                       "--pass-through [--pack-label] OUTDIR/FILE OUTDIR` packs them again.")
    p.add_argument("rec", help="the .rec file (or s3:// URL)")
    p.add_argument("outdir", help="folder to write into (created; must be empty unless "
                   "--overwrite)")
    p.add_argument("--idx", help="the index (default: FILE.idx beside the .rec, if present)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty folder, replacing files of the same names")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    p.set_defaults(func=_run_extract)
    return p


def _label_value(value):
    return "%g" % value


def _histogram_lines(title, hist, top_n, indent="  "):
    """``title`` and the ``top_n`` labels of a ``{value: count}`` histogram, most frequent
    first, then one line for the rest."""
    top = sorted(hist.items(), key=lambda kv: (-kv[1], kv[0]))
    lines = ["%s (%d distinct):" % (title, len(hist))]
    for value, count in top[:top_n]:
        lines.append("%s%s: %d" % (indent, _label_value(value), count))
    if len(top) > top_n:
        rest = sum(c for _, c in top[top_n:])
        lines.append("%s... %d more values (%d records)" % (indent, len(top) - top_n, rest))
    return lines


def format_summary(info):
    """The human-readable summary of :func:`~mxnet_recpack.inspection.inspect_file`'s dict.

    Returns
    -------
    list of str
        At most 22 lines: the top 10 labels (top 5 of each histogram when the file holds
        both scalar and vector labels) and the 5 most common vector lengths.
    """
    lines = ["%s: %d records, %.1f MB (%d bytes), %s"
             % (info["path"], info["records"], info["file_size"] / 1e6, info["file_size"],
                "index %s" % info["index_path"] if info["has_index"]
                else "no index (read sequentially)")]
    if not info["records"]:
        return lines
    lines.append("keys: %d .. %d" % (info["keys"]["min"], info["keys"]["max"]))
    only = info["label_only"]
    if only["records"]:
        lines.append("label-only records (no image): %d, e.g. %s" % (only["records"], "; ".join(
            "key %d: [%s]" % (r["key"], ", ".join("%g" % v for v in r["label"]))
            for r in only["first"][:2])))
    face = (info.get("layout") or {}).get("insightface")
    if face:
        per = face["images_per_identity"]
        lines.append("InsightFace layout: %d images, %d identities%s; header record key 0 = "
                     "[%d, %d]" % (face["images"], face["identities"], (
                         ", images per identity %d .. %d (median %g)" % (
                             per["min"], per["max"], per["median"])) if per else "",
                         face["first_identity_key"], face["end_key"]))
    lines.append("encodings: " + ", ".join("%s %d" % kv for kv in info["encodings"].items()
                                           if kv[1]))
    sizes = info["sizes"]
    if sizes["width"] is not None:
        w, h = sizes["width"], sizes["height"]
        lines.append("width: %d .. %d (median %g); height: %d .. %d (median %g)"
                     % (w["min"], w["max"], w["median"], h["min"], h["max"], h["median"]))
        lines.append("most common sizes (w x h): " + ", ".join(
            "%dx%d (%d)" % tuple(s) for s in sizes["most_common"][:5]))
    if sizes["unknown"]:
        lines.append("size unknown: %d records" % sizes["unknown"])
    turned = info.get("exif_orientation") or {}
    if turned.get("jpegs"):
        lines.append("EXIF orientation: %d JPEG(s) carry one that turns or mirrors them (keys "
                     "%s%s): ImageRecordIter, DALI and RecordDataset apply it, "
                     "mx.image.imdecode (ImageRecordDataset, InsightFace, GluonCV) leaves %d "
                     "of them as stored" % (turned["jpegs"], ", ".join(map(str, turned["first"])),
                                            ", ..." if turned["jpegs"] > 5 else "",
                                            turned["as_stored_by_imdecode"]))
    labels = info["labels"]
    # Top 10 labels; top 5 of each when a file holds both scalar and vector labels.
    top_n = _TOP_LABELS // 2 if labels["scalar"] and labels["vector_lengths"] else _TOP_LABELS
    if labels["scalar"]:
        lines.extend(_histogram_lines("scalar labels", labels["scalar"], top_n))
    if labels["vector_lengths"]:
        lengths = sorted(labels["vector_lengths"].items(), key=lambda kv: (-kv[1], kv[0]))
        text = ", ".join("%d values: %d records" % kv for kv in lengths[:5])
        if len(lengths) > 5:
            text += ", ... %d more lengths" % (len(lengths) - 5)
        lines.append("vector labels, by length: " + text)
        lines.extend(_histogram_lines("first label of the vectors", labels["first_label"],
                                      top_n))
    readers = info["readers"]
    if readers["label_width"] is not None:
        lines.append("readers: ImageRecordIter(label_width=%d), ImageDetRecordIter("
                     "label_pad_width=%d)" % (readers["label_width"],
                                              readers["label_pad_width"]))
    else:
        lines.append("readers: %s" % readers["note"])
    if readers.get("label_only"):
        lines.append("readers: %s" % readers["label_only"])
    return lines


def _run_inspect(args):
    from ..inspection import contact_sheet, inspect_file
    with readable(args.rec) as rec:
        info = inspect_file(rec.path, idx_path=args.idx)
        if args.sheet:
            info["contact_sheet"] = contact_sheet(rec.path, args.sheet, count=args.count,
                                                  idx_path=args.idx)
        info = rec.back(info)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for line in format_summary(info):
        print(line)
    if args.sheet:
        print("contact sheet of the first %d images: %s"
              % (min(args.count, info["records"]), args.sheet))
    return 0


def _run_extract(args):
    from ..inspection import extract
    with readable(args.rec) as rec:
        lst = extract(rec.path, args.outdir, idx_path=args.idx, overwrite=args.overwrite)
    if not args.quiet:
        with open(lst, "rb") as f:
            n = sum(1 for _ in f)
        print("%s: extracted %d images to %s, list %s" % (args.rec, n, args.outdir, lst))
    return 0
