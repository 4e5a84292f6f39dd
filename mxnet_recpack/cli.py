"""The ``recpack`` command (and ``im2rec``, which is exactly ``recpack im2rec``).

The CLI owns the terminal: a progress bar on a TTY, a one-line summary, errors as one line on
stderr with a non-zero exit status. The library underneath only logs.
"""

import argparse
import logging
import os
import signal
import sys

from ._version import __version__
from .errors import OptionError, RecpackError
from .probe import DEFAULT_MAX_PIXELS
from .storage import is_url

__all__ = ["main", "im2rec_main", "build_parser"]

log = logging.getLogger("mxnet_recpack")


class _Progress:
    """A tqdm bar on a terminal (nothing elsewhere, or with --quiet)."""

    def __init__(self, desc, quiet):
        self.bar = None
        self.desc = desc
        self.enabled = not quiet and sys.stderr.isatty()

    def __call__(self, done, total):
        if not self.enabled:
            return
        if self.bar is None:
            import shutil
            from tqdm import tqdm
            # A tty that reports no size (0 x 0) would hide the bar: fall back to 100 x 24.
            size = shutil.get_terminal_size((100, 24))
            self.bar = tqdm(total=total, desc=self.desc, unit="img",
                            ncols=min(size.columns, 120), nrows=size.lines)
        self.bar.n = done
        self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _add_im2rec(sub):
    p = sub.add_parser(
        "im2rec", help="make .lst files from a folder, or pack .lst files into .rec/.idx "
        "(accepts tools/im2rec.py's command line)",
        description="Create an image list or make a record database by reading from an image "
        "list. Same flags and meaning as MXNet's tools/im2rec.py, plus this package's own.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("prefix", help="prefix of input/output lst and rec files")
    p.add_argument("root", help="path to folder containing images (or s3://bucket/prefix)")
    c = p.add_argument_group("Options for creating image lists")
    c.add_argument("--list", action="store_true",
                   help="create image list(s) by traversing root and write <prefix>.lst; "
                   "otherwise read <prefix>*.lst and create <prefix>*.rec")
    c.add_argument("--exts", nargs="+", default=[".jpeg", ".jpg", ".png"],
                   help="list of acceptable image extensions")
    c.add_argument("--chunks", type=int, default=1, help="number of chunks")
    c.add_argument("--train-ratio", type=float, default=1.0,
                   help="ratio of images to use for training")
    c.add_argument("--test-ratio", type=float, default=0, help="ratio of images for testing")
    c.add_argument("--recursive", action="store_true",
                   help="walk subfolders and give each folder its own label (the mapping is "
                   "written to <prefix>.classes.tsv)")
    c.add_argument("--no-shuffle", dest="shuffle", action="store_false",
                   help="keep the folder order instead of shuffling the list")
    r = p.add_argument_group("Options for creating database")
    r.add_argument("--pass-through", action="store_true",
                   help="store the image files as they are (no decoding)")
    r.add_argument("--resize", type=int, default=0,
                   help="resize the shorter edge of each image to this size (0: keep)")
    r.add_argument("--center-crop", action="store_true",
                   help="crop the centred square of each image (before resizing)")
    r.add_argument("--quality", type=int, default=95,
                   help="JPEG quality 1-100, or PNG compression 0-9")
    r.add_argument("--num-thread", type=int, default=1,
                   help="parallel reader/encoder processes; unlike im2rec.py, the output order "
                   "never depends on it")
    r.add_argument("--color", type=int, default=1, choices=[-1, 0, 1],
                   help="1: color, 0: grayscale, -1: unchanged (keeps alpha)")
    r.add_argument("--encoding", type=str, default=".jpg", choices=[".jpg", ".png"],
                   help="encoding of the stored images")
    r.add_argument("--pack-label", action="store_true",
                   help="store every label of multi-label lines (else only the first)")
    x = p.add_argument_group("mxnet_recpack's own options")
    x.add_argument("--inter-method", type=int, default=1, choices=[0, 1, 2, 3, 4, 9, 10],
                   help="resize interpolation: 0 nearest, 1 bilinear, 2 bicubic, 3 area, "
                   "4 Lanczos, 9 auto, 10 random (seeded by key)")
    x.add_argument("--reduced-decode", choices=["auto", "on", "off"], default="auto",
                   help="decode JPEGs at least 4x the --resize target at 1/2, 1/4 or 1/8 scale "
                   "first (several times faster): auto = for --inter-method 3 and 9 only, so "
                   "the default keeps im2rec.py's exact pixels; on = for every method")
    x.add_argument("--max-failures", type=float, default=None,
                   help="stop with an error past this many bad images (a fraction of the list "
                   "if below 1); default: skip and report them all")
    x.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="skip images with more pixels than this (decompression bombs); 0: no "
                   "limit")
    x.add_argument("--append", action="store_true",
                   help="add the list's images to the existing .rec/.idx (its keys must be new)")
    x.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its last whole record")
    x.add_argument("--nsplit", type=int, default=1,
                   help="split each list into this many parts by position (as im2rec.cc): "
                   "PREFIX.part000.rec, ...")
    x.add_argument("--part", type=int, default=None,
                   help="write only this part (0-based); default: every part")
    x.add_argument("--dask", metavar="ADDRESS", default=None,
                   help="run each part as a task on this Dask scheduler (tcp://host:8786)")
    x.add_argument("--batch-size", type=int, default=32, help="images per worker task")
    x.add_argument("--allow-outside-root", action="store_true",
                   help="accept list paths that are absolute or leave ROOT with ../")
    x.add_argument("--no-overwrite", dest="overwrite", action="store_false",
                   help="refuse to replace an existing .rec")
    x.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_run_im2rec)
    return p


def _find_lists(prefix):
    """The ``.lst`` files im2rec.py would pack for ``prefix``: ``PREFIX*.lst`` (sorted)."""
    if is_url(prefix):
        import fsspec
        fs, path = fsspec.core.url_to_fs(prefix)
        return prefix, sorted(fs.unstrip_protocol(p) for p in fs.glob(path + "*.lst"))
    working_dir = prefix if os.path.isdir(prefix) else os.path.dirname(prefix)
    if not os.path.isdir(working_dir):
        raise FileNotFoundError("folder %s does not exist" % working_dir)
    found = []
    for name in sorted(os.listdir(working_dir)):
        path = os.path.join(working_dir, name)
        if os.path.isfile(path) and path.startswith(prefix) and name.endswith(".lst"):
            found.append(path)
    return working_dir, found


def _run_im2rec(args):
    prefix = args.prefix if is_url(args.prefix) else os.path.abspath(args.prefix)
    if args.list:
        if is_url(args.root) or is_url(args.prefix):
            raise OptionError("--list walks a local folder; make the list locally, then upload "
                              "it or pass its URL when packing")
        from .discover import make_list
        written = make_list(os.path.abspath(args.root), prefix, recursive=args.recursive,
                            exts=args.exts, train_ratio=args.train_ratio,
                            test_ratio=args.test_ratio, chunks=args.chunks,
                            shuffle=args.shuffle)
        if not args.quiet:
            for path in written:
                print("wrote %s" % path)
        return 0
    working_dir, lists = _find_lists(prefix)
    if not lists:
        raise FileNotFoundError("no list file %s*.lst in %s; create one with `recpack im2rec "
                                "--list %s ROOT`" % (os.path.basename(prefix), working_dir,
                                                     args.prefix))
    from .api import run_im2rec
    from .writer import WriteSummary
    max_failures = args.max_failures
    if max_failures is not None and max_failures >= 1:
        max_failures = int(max_failures)
    for lst in lists:
        progress = _Progress(os.path.basename(lst), args.quiet)
        params = dict(root=args.root, resize=args.resize, center_crop=args.center_crop,
                      quality=args.quality, color=args.color, encoding=args.encoding,
                      inter_method=args.inter_method, pass_through=args.pass_through,
                      reduced_decode={"auto": "auto", "on": True, "off": False}[
                          args.reduced_decode],
                      pack_label=args.pack_label, num_thread=args.num_thread,
                      batch_size=args.batch_size, max_failures=max_failures,
                      allow_outside_root=args.allow_outside_root, overwrite=args.overwrite,
                      max_pixels=args.max_pixels or None, append=args.append,
                      resume=args.resume, nsplit=args.nsplit, part=args.part,
                      dask=args.dask, progress=progress)
        try:
            summaries = run_im2rec(lst, None, params, lst[:-4])
        finally:
            progress.close()
        if not args.quiet:
            for summary in summaries:
                print(WriteSummary(summary["path"], summary["written"], summary["failed"],
                                   summary["bytes"], summary["seconds"],
                                   summary["report_path"]).line())
    return 0


def _add_index(sub):
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
    from .index import index_path_for
    from .repair import rebuild_index
    out = args.output or index_path_for(args.rec)
    n = rebuild_index(args.rec, out, keys=args.keys)
    if not args.quiet:
        print("%s: indexed %d records" % (out, n))
    return 0


def _add_verify(sub):
    p = sub.add_parser("verify", help="check every frame against the .idx and decode every "
                       "image; exit 1 on any problem")
    p.add_argument("rec", help="the .rec file")
    p.add_argument("--idx", help="the index (default: beside the .rec)")
    p.add_argument("--no-decode", dest="decode", action="store_false",
                   help="check the structure only, do not decode images")
    p.add_argument("--quiet", "-q", action="store_true", help="print problems only")
    p.set_defaults(func=_run_verify)


def _run_verify(args):
    from .repair import verify
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


def build_parser():
    parser = argparse.ArgumentParser(
        prog="recpack", description="Turn image datasets into MXNet RecordIO (.rec/.idx) files.")
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    parser.add_argument("--verbose", "-v", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_im2rec(sub)
    _add_index(sub)
    _add_verify(sub)
    from .cli_inspect import add_extract, add_inspect
    add_inspect(sub)
    add_extract(sub)
    return parser


def main(argv=None):
    """Entry point of ``recpack``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="recpack: %(levelname)s: %(message)s")
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except (RecpackError, OSError) as exc:
        print("recpack: error: %s" % exc, file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemExit) as exc:
        if isinstance(exc, SystemExit) and exc.code != 143:
            raise
        print("recpack: interrupted; nothing was written at the final paths (continue with "
              "--resume)", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum, frame):
    """SIGTERM: unwind like Ctrl-C, so partial output is kept for --resume."""
    raise SystemExit(143)


def im2rec_main(argv=None):
    """Entry point of the ``im2rec`` script: ``recpack im2rec`` with the same arguments."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["--version"],):
        return main(argv)
    return main(["im2rec"] + argv)
