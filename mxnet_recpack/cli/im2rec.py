"""``recpack im2rec``: tools/im2rec.py's command line, list making and packing."""

import argparse
import os

from ..errors import OptionError
from ..format.names import strip_suffix
from .flags import add_flags, from_args
from ..storage import is_url
from .progress import Progress

__all__ = ["add_im2rec"]

_LIST_FLAGS = ("exts", "chunks", "train_ratio", "test_ratio", "recursive", "shuffle")
_PACK_FLAGS = ("pass_through", "resize", "center_crop", "quality", "num_thread", "color",
               "encoding", "pack_label")
_OWN_FLAGS = ("inter_method", "reduced_decode", "max_failures", "max_pixels", "any_format",
              "append", "resume", "nsplit", "part", "dask", "batch_size", "allow_outside_root",
              "allow_empty", "overwrite", "detection_labels", "insightface",
              "keep_empty_identities")


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown for options that take a value; a flag's help says what it does."""

    def _get_help_string(self, action):
        if action.nargs == 0 or action.default is None:
            return action.help
        return super()._get_help_string(action)


def add_im2rec(sub):
    p = sub.add_parser(
        "im2rec", help="make .lst files from a folder, or pack .lst files into .rec/.idx "
        "(accepts tools/im2rec.py's command line)",
        description="Create an image list or make a record database by reading from an image "
        "list. Same flags and meaning as MXNet's tools/im2rec.py, plus this package's own.",
        formatter_class=_DefaultsHelp)
    p.add_argument("prefix", help="prefix of input/output lst and rec files")
    p.add_argument("root", help="path to folder containing images (or s3://bucket/prefix)")
    c = p.add_argument_group("Options for creating image lists")
    c.add_argument("--list", action="store_true",
                   help="create image list(s) by traversing root and write <prefix>.lst; "
                   "otherwise read <prefix>*.lst and create <prefix>*.rec")
    add_flags(c, _LIST_FLAGS)
    add_flags(p.add_argument_group("Options for creating database"), _PACK_FLAGS)
    x = p.add_argument_group("mxnet_recpack's own options")
    add_flags(x, _OWN_FLAGS)
    x.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_run_im2rec)
    return p


def _find_lists(prefix):
    """The ``.lst`` files im2rec.py would pack for ``prefix``: ``PREFIX*.lst`` (sorted)."""
    if is_url(prefix):
        from ..storage.remote import filesystem, remote_errors
        fs, path = filesystem(prefix)
        with remote_errors(prefix + "*.lst", "listing the list files"):
            return prefix, sorted(fs.unstrip_protocol(p) for p in fs.glob(path + "*.lst"))
    working_dir = prefix if os.path.isdir(prefix) else os.path.dirname(prefix)
    if not os.path.isdir(working_dir):
        raise FileNotFoundError("folder %s does not exist" % working_dir)
    found = []
    for name in sorted(os.listdir(working_dir)):
        path = os.path.join(working_dir, name)
        # not os.path.isfile: a FIFO or device named like a list is refused by name, not passed
        if not os.path.isdir(path) and path.startswith(prefix) and name.endswith(".lst"):
            found.append(path)
    return working_dir, found


def _no_list(given, prefix, working_dir, root):
    """Why no list was found, and the commands that make one and pack it."""
    name = os.path.basename(prefix)
    if os.path.isdir(prefix) and not is_url(prefix):
        other = os.path.join(os.path.dirname(given.rstrip("/")), name + "_data")
        return ("the prefix %s is a folder, so (as tools/im2rec.py) the lists are looked for "
                "inside it, as %s; none is there. The prefix names the files to write: give "
                "one that is not a folder, e.g. `recpack im2rec --list --recursive %s %s` then "
                "`recpack im2rec %s %s`" % (given, os.path.join(given, "*.lst"), other, root,
                                             other, root))
    return ("no list file %s*.lst in %s: make one first with `recpack im2rec --list "
            "[--recursive] %s %s` (--recursive: one label per subfolder), then run this "
            "again" % (name, working_dir, given, root))


def _run_im2rec(args):
    prefix = args.prefix if is_url(args.prefix) else os.path.abspath(args.prefix)
    if args.list:
        if is_url(args.root) or is_url(args.prefix):
            raise OptionError("--list walks a local folder; make the list locally, then upload "
                              "it or pass its URL when packing")
        from ..sources.discover import make_list
        written = make_list(os.path.abspath(args.root), prefix, **from_args(args, _LIST_FLAGS))
        if not args.quiet:
            for path in written:
                print("wrote %s" % path)
        return 0
    params = from_args(args, _PACK_FLAGS + _OWN_FLAGS)
    working_dir, lists = _find_lists(prefix)
    if not lists:
        raise FileNotFoundError(_no_list(args.prefix, prefix, working_dir, args.root))
    from ..pack import run_im2rec
    for lst in lists:
        progress = Progress(os.path.basename(lst), args.quiet)
        try:
            summaries = run_im2rec(lst, None, dict(params, root=args.root, progress=progress),
                                   strip_suffix(lst, ".lst"))
        finally:
            progress.close()
        if not args.quiet:
            for summary in summaries:
                print(summary.line())
    return 0
