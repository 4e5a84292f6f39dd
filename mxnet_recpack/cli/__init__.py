"""The ``recpack`` command (and ``im2rec``, which is exactly ``recpack im2rec``).

The CLI owns the terminal: a progress bar on a TTY, a one-line summary, errors as one line on
stderr with a non-zero exit status. The library underneath only logs. One module per group of
subcommands: ``im2rec``, ``records`` (index, verify), ``inspect`` (inspect, extract), ``browse``,
``edit`` (merge, split, shuffle, filter, relabel, rewrite).
"""

import argparse
import logging
import os
import signal
import sys

from .._version import __version__
from ..errors import RecpackError
from .browse import add_browse
from .convert import add_convert
from .edit import add_edit_commands
from .im2rec import add_im2rec
from .inspect import add_extract, add_inspect
from .records import add_index, add_verify

__all__ = ["main", "im2rec_main", "build_parser"]

log = logging.getLogger("mxnet_recpack")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="recpack", description="Turn image datasets into MXNet RecordIO (.rec/.idx) files.")
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="log progress details (and show tracebacks of internal errors)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (add_im2rec, add_index, add_verify, add_inspect, add_extract, add_browse,
                add_edit_commands, add_convert):
        add(sub)
    return parser


def main(argv=None):
    """Entry point of ``recpack``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="recpack: %(levelname)s: %(message)s")
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return status
    except BrokenPipeError:  # `recpack inspect ... | head`: the reader has all it wanted
        _quiet_stdout()
        return 128 + signal.SIGPIPE  # what a tool killed by SIGPIPE gives, as cat's 141
    except (RecpackError, OSError) as exc:
        print("recpack: error: %s" % exc, file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemExit) as exc:
        if isinstance(exc, SystemExit) and exc.code != 143:
            raise
        print("recpack: interrupted; " + _after_interrupt(args), file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - anything else: one line, not a traceback
        from ..storage.remote import cause_of, is_network_error
        if is_network_error(exc):  # a network fault no layer named: still not a bug
            print("recpack: error: the storage server could not be reached or stopped "
                  "answering (%s); check that it is up and reachable (AWS_ENDPOINT_URL), then "
                  "run the command again" % cause_of(exc), file=sys.stderr)
            return 1
        if args.verbose:
            log.exception("internal error")
        print("recpack: internal error: %s: %s (this is a bug in recpack: please report it "
              "with the output of --verbose)" % (type(exc).__name__, exc), file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)


def _after_interrupt(args):
    """What an interrupted command left, and what to do next: ``--resume`` only where the
    command has it."""
    if hasattr(args, "resume"):  # im2rec and the file operations: they write a new pair
        return ("the output is as it was (if this stopped its commit, the next recpack command "
                "on it finishes the commit); continue with --resume")
    if args.command == "index" and args.salvage:
        return "the input is as it was and the salvaged pair was not written; run it again"
    if args.command == "index":
        return ("the index is as it was (if this stopped its commit, the next recpack command "
                "on the file finishes the commit); run the command again")
    if args.command == "extract":
        return ("the files written so far are in %s; run the command again with --overwrite"
                % args.outdir)
    return "nothing was changed"


def _quiet_stdout():
    """Point stdout at /dev/null, so the interpreter's last flush finds no closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _terminate(signum, frame):
    """SIGTERM: unwind like Ctrl-C, so partial output is kept (for --resume, where the
    command has it)."""
    raise SystemExit(143)


def im2rec_main(argv=None):
    """Entry point of the ``im2rec`` script: ``recpack im2rec`` with the same arguments."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["--version"],):
        return main(argv)
    return main(["im2rec"] + argv)
