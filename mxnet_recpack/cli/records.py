"""``recpack index`` and ``recpack verify``: the command-line side of :mod:`mxnet_recpack.ops`."""

import sys

from ..errors import OptionError
from ..storage import is_url

__all__ = ["add_index", "add_verify"]


def add_index(sub):
    p = sub.add_parser("index", help="rebuild the .idx of a .rec (like MXNet's rec2idx.py), or "
                       "--salvage the intact records of a damaged one",
                       description="Rebuild FILE.idx from FILE.rec. With the default --keys id "
                       "it is identical to the index the writer (and im2rec.py) made. With "
                       "--salvage, write a new pair of every intact record of a truncated or "
                       "damaged FILE.rec instead.")
    p.add_argument("rec", help="the .rec file (or s3:// URL)")
    p.add_argument("--output", "-o", help="where to write the index (default: beside the "
                   ".rec); with --salvage, the new .rec (default FILE.salvaged.rec)")
    p.add_argument("--keys", choices=["id", "position"], default="id",
                   help="key of each record: its header id, or 0, 1, 2... as rec2idx.py does")
    p.add_argument("--salvage", action="store_true",
                   help="copy every intact record into a new, whole pair (keys: header ids)")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    p.set_defaults(func=_run_index)


def _run_index(args):
    from ..format.names import index_path_for
    from ..ops.index import rebuild_index, salvage
    if args.salvage:
        if is_url(args.rec):
            raise OptionError("--salvage reads a local file: copy %s here first" % args.rec)
        result = salvage(args.rec, args.output)
        if not args.quiet:
            for stretch in result["damaged"]:
                print("%s: byte offset %d: left out: %s" % (args.rec, stretch["offset"],
                                                            stretch["reason"]))
            print("%s: %d intact records of %s, %d damaged stretch(es) left out; %s"
                  % (result["path"], result["kept"], args.rec, len(result["damaged"]),
                     _checked(result)))
        return 0
    out = args.output or index_path_for(args.rec)
    if is_url(args.rec):  # index a local copy, then put the index beside the .rec
        from ..storage import write_small
        from .inspect import readable
        with readable(args.rec, ()) as local:
            n = rebuild_index(local.path, keys=args.keys)
            with open(index_path_for(local.path), "rb") as f:
                write_small(out, f.read())
    else:
        n = rebuild_index(args.rec, out, keys=args.keys)
    if not args.quiet:
        print("%s: indexed %d records" % (out, n))
    return 0


def _checked(result):
    if not result["sidecar"]:
        return ("%s has no checksum sidecar, so no record could be checked against one: the new "
                "pair has none (`recpack verify` decodes every image)" % "the input")
    if result["checked"] == result["kept"]:
        return "all %d checked against the input's checksums" % result["kept"]
    return ("%d of them checked against the input's checksums; the new sidecar vouches for "
            "those only" % result["checked"])


def add_verify(sub):
    p = sub.add_parser("verify", help="check every frame against the .idx and the checksum "
                       "sidecar, and every image as MXNet's decoder reads it; exit 1 on any "
                       "problem",
                       description="Check FILE.rec: frames, headers, the .idx (every record "
                       "listed once, keys unique), the CRC32C of every record when FILE.crc "
                       "is there, and every image (a format MXNet decodes, complete, decoding "
                       "without damaged-data warnings). Label-only records are counted.")
    p.add_argument("rec", help="the .rec file (or s3:// URL)")
    p.add_argument("--idx", help="the index (default: beside the .rec)")
    p.add_argument("--quick", action="store_true",
                   help="frames, headers, checksums and image headers, without decoding: at "
                   "disk speed")
    p.add_argument("--no-decode", dest="decode", action="store_false",
                   help="the same as --quick; default: decode every image")
    p.add_argument("--num-thread", type=int, default=1,
                   help="worker processes that decode images")
    p.add_argument("--accept-jpeg-warnings", action="store_true",
                   help="report libjpeg's corrupt-data warnings instead of failing on them")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="print problems only")
    p.set_defaults(func=_run_verify)


def _run_verify(args):
    import json

    from ..ops.verify import verify
    result = verify(args.rec, args.idx, decode=args.decode, quick=args.quick,
                    num_threads=args.num_thread,
                    accept_jpeg_warnings=args.accept_jpeg_warnings)
    if args.json:
        print(json.dumps(dict(result.as_dict(), path=args.rec), indent=2))
        return 1 if result.problems else 0
    for problem in result.problems:
        print("%s: %s" % (args.rec, problem))
    if not args.quiet:
        for note in result.notes:
            print("%s: note: %s" % (args.rec, note))
    if result.problems:
        print("%s: %d problem(s) in %d records" % (args.rec, result.problem_count,
                                                   result.records), file=sys.stderr)
        return 1
    if not args.quiet:
        what = ["%d images" % result.images]
        if result.label_only:
            what.append("%d label-only" % result.label_only)
        print("%s: OK, %d records (%s)%s%s" % (
            args.rec, result.records, ", ".join(what),
            ", all images decode" if result.decoded else ", image headers checked",
            {"match": ", checksums match", "none": ", no checksum sidecar",
             "stale": ", %d records match the checksums of a sidecar that describes a file "
                      "of another length" % result.checked}.get(result.checksums, "")))
    return 0
