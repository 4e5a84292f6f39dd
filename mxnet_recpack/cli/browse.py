"""``recpack browse``: the command-line side of :mod:`mxnet_recpack.inspection.browse`.

It settles an interrupted commit of each file (as every command that reads one does), opens
the files, prints the address and serves until Ctrl-C, which ends it quietly.
"""

import glob
import os
import sys

from ..errors import OptionError
from ..storage import is_url

__all__ = ["add_browse", "browse_paths"]


def add_browse(sub):
    """Add the ``browse`` subcommand to an argparse ``add_subparsers()`` object."""
    p = sub.add_parser("browse", help="look through .rec files in a web browser: thumbnails, "
                       "labels, records, identities, failures, verify",
                       description="Serve a read-only web page on this machine (127.0.0.1, a "
                       "free port unless --port) to page through the thumbnails of FILE.rec "
                       "with key, label and class name (NAME.classes.tsv), filter by label or "
                       "key range, open a record (header, format, size, byte offset, the "
                       "image), list InsightFace identities, the failure report and verify's "
                       "findings. It reads only what a page shows. Ctrl-C stops it.")
    p.add_argument("rec", nargs="+", help="the .rec file(s) or s3:// URLs; parts as "
                   "'train.part*.rec' (or train.rec when only its parts exist)")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only); requests must "
                   "name it (or 127.0.0.1, localhost, [::1]) in their Host header")
    p.add_argument("--open", action="store_true",
                   help="open the page in the default web browser")
    p.add_argument("--page-size", type=int, default=48, help="thumbnails per page")
    p.set_defaults(func=_run_browse)
    return p


def browse_paths(paths):
    """The files to browse: each path, a glob's matches, or for a missing ``NAME.rec`` whose
    parts exist, ``NAME.part000.rec``... in order."""
    from ..format.names import stem
    from ..sources.records import expand_paths
    out = []
    for path in paths:
        path = os.fspath(path)
        parts = sorted(glob.glob(glob.escape(stem(path)) + ".part[0-9][0-9][0-9].rec")) \
            if not is_url(path) and not os.path.exists(path) else []
        out.extend(parts or expand_paths(path))
    return out


def _verifier(path, quick):
    from ..ops.verify import verify
    result = verify(path, quick=quick, max_problems=200)
    return dict(result.as_dict(), problem_count=result.problem_count)


def _settle(path):
    if is_url(path):
        from ..storage.remote import settle_url
        settle_url(path)
    else:
        from ..pipeline.journal import settle
        settle(path)


def _run_browse(args):
    from ..inspection.browse import Browser, BrowseServer, is_loopback
    if not 1 <= args.page_size <= 500:
        raise OptionError("--page-size must be 1 to 500; got %d" % args.page_size)
    if not 0 <= args.port <= 65535:
        raise OptionError("--port must be 0 (a free one) to 65535; got %d" % args.port)
    paths = browse_paths(args.rec)
    for path in paths:
        _settle(path)
    browser = Browser(paths, page_size=args.page_size, verifier=_verifier)
    try:
        server = BrowseServer(browser, args.host, args.port)
    except BaseException:
        browser.close()
        raise
    if not is_loopback(server.host):
        print("recpack: WARNING: serving on %s: anyone who can reach this machine on port %d "
              "can see these records (and nothing stops them). Use --host 127.0.0.1 unless "
              "that is what you want." % (server.host, server.port), file=sys.stderr)
    print("recpack browse: %d file(s) at %s (Ctrl-C stops)" % (len(paths), server.url),
          flush=True)
    if args.open:
        import webbrowser
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
