"""``recpack merge | split | shuffle | filter | relabel | rewrite``: the command-line side of
:mod:`mxnet_recpack.ops.edit`, :mod:`~mxnet_recpack.ops.select` and
:mod:`~mxnet_recpack.ops.rewrite`. Every command writes new files and leaves its inputs as they
are."""

import os

from .flags import add_flags, from_args
from .progress import Progress

__all__ = ["add_edit_commands"]

_COMMON = ("overwrite", "resume", "num_thread", "batch_size")
_IMAGE = ("resize", "center_crop", "quality", "color", "encoding", "inter_method",
          "reduced_decode", "max_pixels")
_FACES = ("keep_empty_identities",)  # for InsightFace-layout inputs


def _common(p):
    add_flags(p.add_argument_group("writing"), _COMMON)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")


def _options(args, what):
    opts = from_args(args, _COMMON)
    threads = opts.pop("num_thread")
    opts["num_workers"] = threads if threads > 1 else 0
    opts["progress"] = Progress(what, args.quiet)
    return opts


def _run(args, what, fn, *a, **kw):
    opts = _options(args, what)
    try:
        result = fn(*a, **kw, **opts)
    finally:
        opts["progress"].close()
    if not args.quiet:
        for summary in result if isinstance(result, list) else [result]:
            print(summary.line())
    return 0


def add_edit_commands(sub):
    for add in (_add_merge, _add_split, _add_shuffle, _add_filter, _add_relabel, _add_rewrite):
        add(sub)


def _add_merge(sub):
    p = sub.add_parser("merge", help="merge record files into one (keys kept, or --renumber)",
                       description="Write the records of IN... into OUT, in order, byte for "
                       "byte. A key in two inputs is refused unless --renumber, which gives "
                       "keys 0, 1, 2... and writes OUT's stem + .keys.tsv (input, old key, new "
                       "key).")
    p.add_argument("output", help="the .rec to write (not one of the inputs)")
    p.add_argument("inputs", nargs="+", help=".rec files (globs too); with or without .idx")
    p.add_argument("--renumber", action="store_true", help="new keys 0, 1, 2... in output order")
    p.add_argument("--identities", choices=["shared", "separate"],
                   help="for InsightFace-layout inputs: the same people numbered alike "
                   "(shared), or different people (separate: numbered on)")
    add_flags(p, _FACES)
    _common(p)
    p.set_defaults(func=lambda a: _run(a, os.path.basename(a.output), _ops().merge, a.output,
                                       a.inputs, renumber=a.renumber, identities=a.identities,
                                       **from_args(a, _FACES)))


def _add_split(sub):
    p = sub.add_parser("split", help="split a record file: by ratios (like im2rec --list), "
                       "into --nsplit parts, or by --keys files",
                       description="Every record goes to exactly one output, in input order, "
                       "keys kept. Ratios: PREFIX_train/_val/_test.rec, membership as "
                       "im2rec.py --list computes it (shuffled with --seed, then cut). "
                       "--nsplit N: PREFIX.part000.rec ... of equal record counts. --keys "
                       "A.txt B.txt: PREFIX_A.rec, PREFIX_B.rec and PREFIX_rest.rec.")
    p.add_argument("input", help="the .rec to split")
    p.add_argument("prefix", help="output prefix")
    p.add_argument("--train-ratio", type=float, help="share of records in PREFIX_train")
    p.add_argument("--test-ratio", type=float, default=0.0, help="share in PREFIX_test")
    add_flags(p, ("seed", "shuffle"))
    p.add_argument("--nsplit", type=int, help="this many parts of equal record counts")
    p.add_argument("--keys", nargs="+", metavar="FILE",
                   help="keys files (one key per line; a .lst works): one output each")
    add_flags(p, _FACES)
    _common(p)
    p.set_defaults(func=lambda a: _run(
        a, os.path.basename(a.prefix), _ops().split, a.input, a.prefix,
        train_ratio=a.train_ratio, test_ratio=a.test_ratio, seed=a.seed, shuffle=a.shuffle,
        nsplit=a.nsplit, keys_files=a.keys, **from_args(a, _FACES)))


def _add_shuffle(sub):
    p = sub.add_parser("shuffle", help="write the records in a random order (seeded)",
                       description="The same records in the order random.Random(SEED) "
                       "shuffles them to; keys kept unless --renumber.")
    p.add_argument("input")
    p.add_argument("output")
    add_flags(p, ("seed",))
    p.add_argument("--renumber", action="store_true", help="keys 0, 1, 2... in the new order")
    _common(p)
    p.set_defaults(func=lambda a: _run(a, os.path.basename(a.output), _ops().shuffle,
                                       a.input, a.output, seed=a.seed, renumber=a.renumber))


def _add_filter(sub):
    p = sub.add_parser("filter", help="keep or drop records by key, label, label-only, or "
                       "what verify flags",
                       description="Write the records of INPUT that pass every given test, "
                       "in order, keys kept, byte for byte.")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--keep-keys", metavar="FILE", help="keep only the keys in FILE")
    p.add_argument("--drop-keys", metavar="FILE", help="drop the keys in FILE")
    p.add_argument("--labels", type=float, nargs="+", help="keep only these labels (a vector "
                   "label's first value)")
    p.add_argument("--drop-labels", type=float, nargs="+", help="drop these labels")
    p.add_argument("--drop-label-only", action="store_true",
                   help="drop records without an image (InsightFace's header and identity "
                   "records, which DALI counts as samples)")
    p.add_argument("--drop-flagged", action="store_true",
                   help="drop what `recpack verify` reports (undecodable or damaged images, "
                   "formats MXNet cannot read, changed checksums)")
    add_flags(p, _FACES)
    _common(p)
    p.set_defaults(func=lambda a: _run(
        a, os.path.basename(a.output), _ops().filter_records, a.input, a.output,
        keep_keys=a.keep_keys, drop_keys=a.drop_keys, labels=a.labels,
        drop_labels=a.drop_labels, drop_label_only=a.drop_label_only,
        drop_flagged=a.drop_flagged, **from_args(a, _FACES)))


def _add_relabel(sub):
    p = sub.add_parser("relabel", help="new labels from a .lst (by key) or a label mapping",
                       description="Write every record with a new label; image bytes, keys "
                       "and id2 kept. A record the list or mapping misses is refused unless "
                       "--keep-missing.")
    p.add_argument("input")
    p.add_argument("output")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--list", dest="list_file", metavar="LST",
                     help="im2rec .lst: the labels of the line with each record's key")
    how.add_argument("--mapping", metavar="FILE",
                     help="lines 'OLD NEW [NEW...]': map each label (a vector label by its "
                     "first value, the identity of InsightFace's [identity, aligned]: one NEW "
                     "replaces that value, several the whole label)")
    p.add_argument("--keep-missing", action="store_true",
                   help="keep the stored label where the list or mapping has none")
    add_flags(p, _FACES)
    _common(p)
    p.set_defaults(func=lambda a: _run(
        a, os.path.basename(a.output), _ops().relabel, a.input, a.output,
        list_file=a.list_file, mapping=a.mapping, keep_missing=a.keep_missing,
        **from_args(a, _FACES)))


def _add_rewrite(sub):
    p = sub.add_parser("rewrite", help="re-encode the images (im2rec's image options), in "
                       "parallel; keys and labels kept",
                       description="Decode every image, apply --center-crop then --resize as "
                       "im2rec does, and encode it again. Detection boxes follow a crop with "
                       "--detection-labels; a crop of boxes is refused otherwise.")
    p.add_argument("input")
    p.add_argument("output")
    add_flags(p.add_argument_group("images (as im2rec)"), _IMAGE)
    labels = p.add_mutually_exclusive_group()
    labels.add_argument("--detection-labels", action="store_true", default=None,
                        help="the labels are ImageDetRecordIter boxes: move them with the crop")
    labels.add_argument("--keep-labels", dest="detection_labels", action="store_false",
                        help="keep the labels as they are (they are not boxes)")
    _common(p)

    def run(a):
        image = from_args(a, _IMAGE)
        return _run(a, os.path.basename(a.output), _ops().rewrite, a.input, a.output,
                    detection_labels=a.detection_labels, **image)
    p.set_defaults(func=run)


def _ops():
    from .. import ops
    return ops
