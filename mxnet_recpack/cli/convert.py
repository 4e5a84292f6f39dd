"""``recpack convert SRC DST``: the command-line side of :mod:`mxnet_recpack.ops.convert`."""

import os

from ..formats.registry import FORMATS
from ..options import D, validate
from .flags import add_flags, from_args
from .progress import Progress

__all__ = ["add_convert"]

_COMMON = ("overwrite", "resume", "num_thread", "batch_size")
_IMAGE = ("resize", "center_crop", "quality", "color", "encoding", "inter_method",
          "reduced_decode", "max_pixels")


def _size(text):
    """``1000``, ``512M``, ``1G``: bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    text = text.strip().lower().rstrip("b")
    scale = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    try:
        value = int(float(number) * scale)
    except ValueError:
        import argparse
        raise argparse.ArgumentTypeError("%r is not a size (bytes, or 512M, 1G)" % text)
    return value


def add_convert(sub):
    names = ", ".join(FORMATS)
    p = sub.add_parser(
        "convert", help="convert records between RecordIO, webdataset, TFRecord, Parquet and "
        "MDS, losslessly",
        description="Copy every record of SRC into DST in another format: images byte for "
        "byte (never re-encoded), keys, labels, ids and label-only records kept, so .rec -> X "
        "-> .rec gives back the same .rec and .idx. Formats are told from the paths (a .rec; "
        "a folder of .tar or NAME-{000000..000099}.tar; .tfrecord; .parquet or a folder of "
        "them; a folder with MDS's index.json); name them with --from / --to where a path "
        "does not say (a new folder). The mappings: docs/formats.md.")
    p.add_argument("src", help="what to read (a .rec, shards, a file or a folder)")
    p.add_argument("dst", help="what to write (a .rec, a folder, a pattern or a file)")
    p.add_argument("--to", choices=list(FORMATS), help="the format of DST (%s)" % names)
    p.add_argument("--from", dest="from_", choices=list(FORMATS),
                   help="the format of SRC")
    p.add_argument("--shard-size", type=int, metavar="N", help="records per shard")
    p.add_argument("--shard-bytes", type=_size, metavar="SIZE",
                   help="bytes per shard at most (512M, 1G; default: 1G tars and TFRecords, "
                   "500M Parquet files, 64M MDS shards)")
    p.add_argument("--label", type=float, help="the label of samples that have none (other "
                   "writers' files); without it they are refused")
    p.add_argument("--image-column", help="Parquet input: the column of the images")
    p.add_argument("--label-column", help="Parquet input: the column of the labels")
    p.add_argument("--label-kind", choices=["int", "float", "vector"],
                   help="Parquet output: the label column's type (default: from the labels)")
    p.add_argument("--image-encoding", choices=["bytes", "jpeg", "png"],
                   help="MDS output: the encoding the image column declares (default bytes)")
    add_flags(p.add_argument_group("re-encoding the images on the way (as rewrite; default: "
                                   "copied byte for byte)"), _IMAGE)
    add_flags(p.add_argument_group("writing"), _COMMON)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_run)


def _run(args):
    from ..ops.convert import convert
    opts = from_args(args, _COMMON)
    image = from_args(args, _IMAGE)
    defaults = {n: validate(n, getattr(D, n)) for n in _IMAGE}
    reencode = {n: v for n, v in image.items() if v != defaults[n]}
    threads = opts.pop("num_thread")
    progress = Progress(os.path.basename(args.dst.rstrip("/")), args.quiet)
    try:
        summary = convert(args.src, args.dst, to=args.to, from_=args.from_,
                          shard_size=args.shard_size, shard_bytes=args.shard_bytes,
                          label=args.label, image_column=args.image_column,
                          label_column=args.label_column, label_kind=args.label_kind,
                          image_encoding=args.image_encoding, reencode=reencode or None,
                          num_workers=threads if threads > 1 else 0, progress=progress, **opts)
    finally:
        progress.close()
    if not args.quiet:
        print(summary.line())
    return 0
