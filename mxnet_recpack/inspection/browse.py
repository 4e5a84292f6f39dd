"""``recpack browse``: a web page on this machine to look through record files, read-only.

:class:`Browser` holds the files (local or URLs; parts are files of their own) and answers
each address (:mod:`.browse_views`); :class:`BrowseServer` serves it with the standard
library's ``ThreadingHTTPServer``. ``verify`` runs on request, one run at a time, in a
background thread (:mod:`.browse_verify`): pages never wait for it.

What it accepts, and nothing else: ``GET`` and ``HEAD`` (other methods: 405) of the fixed
addresses below, whose only variable parts are numbers (a position, a file's number, a key in
the query), checked against the files; no part of a request ever becomes a path. A request
target that is not a path (an absolute URL: 400), a ``Host`` header other than this server's
own names (``127.0.0.1``, ``localhost``, ``[::1]`` and the address it was bound to, with its
port: what a DNS-rebinding page cannot send), and a browser's request from another site
(``Sec-Fetch-Site``) are refused (403). It binds to loopback unless told otherwise.
"""

import logging
import os
import re
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from ..errors import RecpackError
from .browse_files import BrowsedFile
from .browse_images import ThumbnailCache
from .browse_pages import SCRIPT, STYLE, esc, page
from .browse_grid import QueryError
from .browse_verify import VerifyJobs, verify_view
from .browse_views import (Response, failures_view, files_view, grid_view, html,
                           identities_view, key_view, picture_view, record_view)

__all__ = ["Browser", "BrowseServer", "is_loopback"]

log = logging.getLogger(__name__)

_ROUTES = [(re.compile(pattern), name) for pattern, name in (
    (r"/", "files"), (r"/app\.css", "css"), (r"/app\.js", "js"),
    (r"/f/(\d{1,6})", "grid"), (r"/f/(\d{1,6})/r/(\d{1,19})", "record"),
    (r"/f/(\d{1,6})/([ti])/(\d{1,19})", "picture"), (r"/f/(\d{1,6})/key", "key"),
    (r"/f/(\d{1,6})/identities", "identities"), (r"/f/(\d{1,6})/failures", "failures"),
    (r"/f/(\d{1,6})/verify", "verify"))]
_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer", "Cross-Origin-Resource-Policy": "same-origin",
            "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'self'; "
            "script-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"}


def is_loopback(host):
    """Whether ``host`` (a name or an address) is this machine only."""
    if host.lower() == "localhost":
        return True
    import ipaddress
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _error(status, title, message):
    return html(page(title, '<h2>%s</h2><p class="bad">%s</p><p><a href="/">the files</a></p>'
                     % (esc(title), esc(message))), status)


class Browser:
    """The record files being browsed, and the answer to each address.

    Parameters
    ----------
    paths : list of str
        ``.rec`` files or URLs (``s3://``); each is opened by reading its index only.
    page_size : int
        Thumbnails per page (a page may ask for up to 500 with ``?n=``).
    verifier : callable, optional
        ``verifier(path, quick=bool) -> dict``: what the Verify tab runs; None: no such runs.
    scan_budget : int
        Records whose headers a filtered page reads at most (a file without an index: frames
        walked on at most, per page).
    """

    def __init__(self, paths, *, page_size=48, thumb_size=160, verifier=None,
                 storage_options=None, scan_budget=20000, cache_bytes=64 << 20):
        self.files = []
        try:
            for path in paths:
                self.files.append(BrowsedFile(path, storage_options=storage_options))
        except BaseException:
            self.close()
            raise
        self.page_size, self.thumb_size, self.scan_budget = page_size, thumb_size, scan_budget
        self.cache = ThumbnailCache(cache_bytes)
        self.decoding = threading.BoundedSemaphore(os.cpu_count() or 1)
        self.jobs = VerifyJobs(verifier)

    def answer(self, target):
        """The :class:`Response` to a ``GET`` of ``target`` (the request line's target)."""
        if not target.startswith("/"):
            return _error(400, "bad request", "the request target must be a path on this "
                          "server (/...), not %r" % target[:80])
        path, _, query = target.partition("?")
        found = next(((name, m) for pattern, name in _ROUTES for m in [pattern.fullmatch(path)]
                      if m), None)
        if found is None:
            return _error(404, "not found", "there is no page %s here" % path[:200])
        name, match = found
        args = [int(g) if g.isdigit() else g for g in match.groups()]
        if args and args[0] >= len(self.files):
            return _error(404, "not found", "there is no file %d here" % args[0])
        try:
            query = parse_qs(query, keep_blank_values=True, max_num_fields=32)
        except ValueError as exc:
            return _error(400, "bad request", str(exc))
        try:
            response = self._route(name, args, query)
        except QueryError as exc:
            return _error(400, "bad request", str(exc))
        except (RecpackError, OSError) as exc:
            return _error(500, "cannot read the file", str(exc))
        except Exception as exc:  # noqa: BLE001 - one page fails, the server goes on
            log.exception("answering %s", target[:200])
            return _error(500, "internal error", "%s: %s (a bug in recpack: please report it)"
                          % (type(exc).__name__, exc))
        return response or _error(404, "not found", "no such record or page in this file")

    def _route(self, name, args, query):
        if name == "css":
            return Response(200, STYLE.encode(), "text/css; charset=utf-8", {})
        if name == "js":
            return Response(200, SCRIPT.encode(), "text/javascript; charset=utf-8", {})
        if name == "files":
            if len(self.files) == 1:
                return Response(303, b"", "text/plain", {"Location": "/f/0"})
            return files_view(self, query)
        views = {"grid": grid_view, "key": key_view, "identities": identities_view,
                 "failures": failures_view, "verify": verify_view}
        if name == "record":
            return record_view(self, *args)
        if name == "picture":
            return picture_view(self, args[0], args[2], args[1])
        return views[name](self, args[0], query)

    def close(self):
        for bf in self.files:
            bf.close()


class _Handler(BaseHTTPRequestHandler):
    server_version = "recpack-browse"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle connection is closed after this long

    def do_GET(self):  # noqa: N802 - http.server's names
        self._answer(True)

    def do_HEAD(self):  # noqa: N802
        self._answer(False)

    def __getattr__(self, name):
        if name.startswith("do_"):  # POST, PUT, DELETE...: this server only reads
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self):
        self.close_connection = True
        self._send(Response(405, b"this server is read-only: GET and HEAD only\n",
                            "text/plain; charset=utf-8", {"Allow": "GET, HEAD",
                                                          "Connection": "close"}), True)

    def _answer(self, body):
        refusal = self.server.refusal(self.headers)
        if refusal is not None:
            self.close_connection = True
        self._send(refusal or self.server.browser.answer(self.path), body)

    def _send(self, response, body):
        try:
            self.send_response(response.status)
            headers = dict(_HEADERS, **{"Content-Type": response.type,
                                        "Content-Length": str(len(response.body)),
                                        "Cache-Control": "no-store"})
            headers.update(response.headers)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if body:
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        log.debug("%s %s", self.address_string(), format % args)


class BrowseServer(ThreadingHTTPServer):
    """:class:`Browser` served on ``host:port`` (port 0: a free one; see :attr:`url`)."""

    daemon_threads = True

    def __init__(self, browser, host="127.0.0.1", port=0):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host.strip("[]"), port), _Handler)
        self.browser = browser
        self.host, self.port = host.strip("[]"), self.server_address[1]
        names = {"127.0.0.1", "localhost", "[::1]", self._bracketed(self.host)}
        self.allowed_hosts = {"%s:%d" % (name, self.port) for name in names}
        if self.port == 80:
            self.allowed_hosts |= names

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)  # no reverse DNS look-up of the address
        self.server_name, self.server_port = self.server_address[:2]

    @staticmethod
    def _bracketed(host):
        return "[%s]" % host if ":" in host else host.lower()

    @property
    def url(self):
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self._bracketed(self.host)
        if self.host == "::":
            host = "[::1]"
        return "http://%s:%d/" % (host, self.port)

    def refusal(self, headers):
        """The :class:`Response` refusing a request with these headers, or None."""
        hosts = headers.get_all("Host") or []
        if len(hosts) != 1 or hosts[0].strip().lower() not in self.allowed_hosts:
            return _error(403, "forbidden", "this server answers requests for %s only, not "
                          "for Host %s" % (", ".join(sorted(self.allowed_hosts)),
                                           ", ".join(map(repr, hosts)) or "(none)"))
        site = (headers.get("Sec-Fetch-Site") or "").lower()
        if site not in ("", "same-origin", "none"):
            return _error(403, "forbidden", "requests from other sites are refused")
        return None

    def server_close(self):
        super().server_close()
        self.browser.close()
