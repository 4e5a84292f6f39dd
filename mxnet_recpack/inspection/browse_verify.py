"""``verify`` from ``recpack browse``: a run on request, in a background thread, one at a time
(pages never wait for it), and its findings as a page. The verifier is handed in (the command
line passes :func:`mxnet_recpack.verify`), so this layer does not import the operations."""

import logging
import threading
import time

from ..errors import RecpackError
from .browse_pages import esc, table
from .browse_grid import QueryError
from .browse_views import Response, chrome

__all__ = ["VerifyJobs", "verify_view"]

log = logging.getLogger(__name__)

_PROBLEMS_SHOWN = 200


class VerifyJobs:
    """``verify`` runs in a background thread, one at a time; ``verifier(path, quick=...)``
    returns :meth:`~mxnet_recpack.ops.verify.VerifyResult.as_dict`'s dict."""

    def __init__(self, verifier):
        self.verifier = verifier
        self._jobs, self._busy = {}, None
        self._lock = threading.Lock()

    def start(self, n, path, mode):
        """Start a ``"quick"`` or ``"full"`` run on file ``n``; False while one is running."""
        with self._lock:
            if self._busy is not None:
                return False
            job = {"mode": mode, "started": time.monotonic(), "state": "running"}
            self._jobs[n], self._busy = job, n
        threading.Thread(target=self._run, args=(path, job), daemon=True,
                         name="recpack-browse-verify").start()
        return True

    def _run(self, path, job):
        try:
            job["result"] = self.verifier(path, quick=job["mode"] == "quick")
        except (RecpackError, OSError) as exc:
            job["error"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - shown on the page, not lost in a thread
            log.exception("verify of %s", path)
            job["error"] = "internal error: %s: %s" % (type(exc).__name__, exc)
        finally:
            job["seconds"] = time.monotonic() - job["started"]
            with self._lock:
                job["state"], self._busy = "done", None

    def get(self, n):
        return self._jobs.get(n)


def verify_view(app, n, query):
    """``verify``'s findings on file ``n``; ``?run=quick|full`` starts a run."""
    run = (query.get("run") or [""])[-1]
    if run not in ("", "quick", "full"):
        raise QueryError("run is quick or full; got %r" % run[:40])
    if run and app.jobs.verifier is not None:
        if app.jobs.start(n, app.files[n].path, run):
            return Response(303, b"", "text/plain", {"Location": "/f/%d/verify" % n})
        note = '<p class="bad">Another verify is running; try again when it is done.</p>'
    else:
        note = ""
    job = app.jobs.get(n)
    running = job is not None and job["state"] == "running"
    body = note + _verify_body(app, n, job)
    return chrome(app, n, "verify", "verify", body, refresh=2 if running else None)


def _verify_body(app, n, job):
    runs = ('<p><a class="button" href="/f/%d/verify?run=quick">Check frames, index and '
            'checksums</a> <a class="button" href="/f/%d/verify?run=full">... and decode '
            'every image</a></p>' % (n, n))
    if app.jobs.verifier is None:
        return '<p class="dim">No verifier was given to this browser.</p>'
    if job is None:
        return ('<p class="facts"><code>recpack verify</code> reads the whole file; it runs '
                'in the background while you browse.</p>' + runs)
    if job["state"] == "running":
        return '<p class="facts">Verifying (%s) for %d s...</p>' % (
            job["mode"], time.monotonic() - job["started"])
    if "error" in job:
        return '<p class="bad">verify stopped: %s</p>' % esc(job["error"]) + runs
    return _findings(n, job) + runs


def _findings(n, job):
    r = job["result"]
    problems = r.get("problems") or []
    verdict = ('<b class="ok">OK</b>' if r.get("ok", not problems) else
               '<b class="bad">%d problem(s)</b>' % r.get("problem_count", len(problems)))
    out = ['<p class="facts">%s: %d records (%d images, %d label-only); checksums: %s; %s; '
           '%s check in %.1f s</p>' % (verdict, r.get("records", 0), r.get("images", 0),
                                       r.get("label_only", 0), esc(r.get("checksums")),
                                       "every image decoded" if r.get("decoded") else
                                       "image headers read", job["mode"], job["seconds"])]
    if problems:
        out.append(table([(
            esc(p.get("offset")),
            '<a href="/f/%d/key?k=%d">%d</a>' % (n, p["key"], p["key"])
            if isinstance(p.get("key"), int) else esc(p.get("key")), esc(p.get("message")))
            for p in problems[:_PROBLEMS_SHOWN]], head=("byte offset", "key", "problem")))
    for note in r.get("notes") or []:
        out.append('<p class="dim">note: %s</p>' % esc(note))
    return "".join(out)
