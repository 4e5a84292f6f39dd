"""``recpack index`` and ``recpack verify``: the command-line side of :mod:`mxnet_recpack.ops`."""

import sys

__all__ = ["add_index", "add_verify"]


def add_index(sub):
    p = sub.add_parser("index", help="rebuild the .idx of a .rec (like MXNet's rec2idx.py)",
                       description="Rebuild FILE.idx from FILE.rec. With the default --keys id "
                       "it is identical to the index the writer (and im2rec.py) made.")
    p.add_argument("rec", help="the .rec file")
    p.add_argument("--output", "-o", help="where to write the index (default: beside the .rec)")
    p.add_argument("--keys", choices=["id", "position"], default="id",
                   help="key of each record: its header id, or 0, 1, 2... as rec2idx.py does")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    p.set_defaults(func=_run_index)


def _run_index(args):
    from ..format.names import index_path_for
    from ..ops.index import rebuild_index
    out = args.output or index_path_for(args.rec)
    n = rebuild_index(args.rec, out, keys=args.keys)
    if not args.quiet:
        print("%s: indexed %d records" % (out, n))
    return 0


def add_verify(sub):
    p = sub.add_parser("verify", help="check every frame against the .idx and decode every "
                       "image; exit 1 on any problem")
    p.add_argument("rec", help="the .rec file")
    p.add_argument("--idx", help="the index (default: beside the .rec)")
    p.add_argument("--no-decode", dest="decode", action="store_false",
                   help="check the structure only, do not decode images")
    p.add_argument("--quiet", "-q", action="store_true", help="print problems only")
    p.set_defaults(func=_run_verify)


def _run_verify(args):
    from ..ops.verify import verify
    n, problems = verify(args.rec, args.idx, decode=args.decode)
    for problem in problems:
        print("%s: %s" % (args.rec, problem))
    if problems:
        print("%s: %d problem(s) in %d records" % (args.rec, len(problems), n), file=sys.stderr)
        return 1
    if not args.quiet:
        print("%s: OK, %d records%s" % (args.rec, n, ", all images decode" if args.decode
                                        else ""))
    return 0
