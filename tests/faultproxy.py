"""A loopback TCP proxy that understands HTTP/1.1 well enough to count request/response
exchanges, placed between an S3 client and a real S3 server to make real network faults.

``FaultProxy(upstream_port)`` listens on a free loopback port and forwards every request on its
own upstream connection (keep-alive kept). It records each exchange (method, target, copy
source) and, when told, fails one:

- ``die_before(n)``: requests 1..n are answered; request n+1 is never sent on, and the proxy
  dies: every connection is closed and new ones are refused (nothing listens any more);
- ``die_after(n)``: request n+1 reaches the server (which acts on it), its response is dropped,
  and the proxy dies: the client cannot know whether the request was done;
- ``refuse(n, status, code, then_die_before=None)``: request n+1 is answered by the proxy with
  an S3 error (``403 AccessDenied``), not sent on; the proxy goes on working (or, with
  ``then_die_before=m``, dies before request m+1); ``n`` may also be a function of
  ``(method, target, copy source)``: the first request it is true for is refused;
- ``revive()``: listens again on the same port, the fault plan cleared;
- ``hook``: a callable given ``(method, target, headers)`` before each request is sent on
  (e.g. to stop the server at a chosen request).

Bodies are read by ``Content-Length`` or chunked encoding. A request with ``Expect:
100-continue`` (botocore's uploads of files) goes on as the client sends it: its head, then its
body once the server answered ``100 Continue`` (relayed), so a stopped server is met where the
client would meet it.
"""
import socket
import threading


def _read_head(sock, buf):
    """``(head bytes, rest)`` of one HTTP message head, or (None, b"") at the end."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head + b"\r\n\r\n", rest


def _headers(head):
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            fields[name.strip().lower()] = value.strip()
    return lines[0], fields


def _read_exactly(sock, buf, n):
    while len(buf) < n:
        chunk = sock.recv(max(65536, n - len(buf)))
        if not chunk:
            raise ConnectionError("closed in the middle of a body")
        buf += chunk
    return buf[:n], buf[n:]


def _read_chunked(sock, buf):
    """The raw bytes of a chunked body (trailers included) and what follows it."""
    out = b""
    while True:
        while b"\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed in the middle of a chunked body")
            buf += chunk
        line, buf = buf.split(b"\r\n", 1)
        size = int(line.split(b";")[0], 16)
        out += line + b"\r\n"
        if size == 0:
            while not buf.startswith(b"\r\n") and b"\r\n\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed in the trailers of a chunked body")
                buf += chunk
            end = 2 if buf.startswith(b"\r\n") else buf.index(b"\r\n\r\n") + 4
            return out + buf[:end], buf[end:]
        data, buf = _read_exactly(sock, buf, size + 2)
        out += data


def _read_body(sock, fields, buf, *, response_to=None, status=None):
    if response_to == "HEAD" or (status is not None and (status < 200 or status in (204, 304))):
        return b"", buf
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return _read_chunked(sock, buf)
    if "content-length" in fields:
        return _read_exactly(sock, buf, int(fields["content-length"]))
    if status is None:
        return b"", buf  # a request without a length has no body
    while True:  # a response delimited by the end of the connection
        chunk = sock.recv(65536)
        if not chunk:
            return buf, b""
        buf += chunk


class FaultProxy:
    """See the module docstring. ``url`` is the endpoint to give the client."""

    def __init__(self, upstream_port, upstream_host="127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.exchanges = []  # (method, target, copy source or None), in order
        self._lock = threading.Lock()
        self._sockets = set()
        self._plan = None
        self.hook = None
        self.dead = False
        self._listener = None
        self.port = None
        self._listen()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    # -- the fault plan -----------------------------------------------------------------------
    def die_before(self, n):
        self._set_plan("before", n)

    def die_after(self, n):
        self._set_plan("after", n)

    def refuse(self, n, status=403, code="AccessDenied", then_die_before=None):
        self._set_plan("refuse", n, status, code, then_die_before)

    def _set_plan(self, mode, n, *extra):
        with self._lock:
            self.exchanges = []
            self._plan = (mode, n) + extra

    def revive(self):
        """Listen again on the same port; no fault planned; the counts start again."""
        self._die()  # closes what is still open
        with self._lock:
            self._plan, self.exchanges, self.dead, self.hook = None, [], False, None
        self._listen()

    def close(self):
        self._die()

    # -- serving ------------------------------------------------------------------------------
    def _listen(self):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port or 0))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: the proxy died
            with self._lock:
                if self.dead:
                    client.close()
                    return
                self._sockets.add(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _die(self):
        with self._lock:
            self.dead = True
            sockets, self._sockets = list(self._sockets), set()
            listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (Linux)
            except OSError:
                pass
            listener.close()
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _decide(self, method, target, fields):
        """What to do with the next request: 'forward', 'drop', 'forward-drop' or a refusal."""
        with self._lock:
            if self.dead:
                return "drop"
            self.exchanges.append((method, target, fields.get("x-amz-copy-source")))
            number = len(self.exchanges)
            plan = self._plan
            if plan is not None and callable(plan[1]):
                if not plan[1](method, target, fields.get("x-amz-copy-source")):
                    return "forward"
                self._plan = None  # the first match only
            elif plan is None or number != plan[1] + 1:
                return "forward"
            if plan[0] == "refuse" and plan[4] is not None:
                self._plan = ("before", plan[4])
        return {"before": "drop", "after": "forward-drop"}.get(plan[0], plan)

    def _serve(self, client):
        upstream = None
        cbuf = ubuf = b""
        try:
            while True:
                head, cbuf = _read_head(client, cbuf)
                if head is None:
                    return
                line, fields = _headers(head)
                method, target = line.split(" ")[:2]
                expect = fields.get("expect", "").lower() == "100-continue"
                action = self._decide(method, target, fields)
                if action == "drop":
                    self._die()
                    return
                if self.hook is not None:
                    self.hook(method, target, fields)
                if isinstance(action, tuple):  # refuse: an S3 error answer from "the server"
                    status, code = action[2:4]
                    xml = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
                           "<Message>Access Denied</Message></Error>" % code
                           ).encode()
                    if not expect:
                        _, cbuf = _read_body(client, fields, cbuf)
                    client.sendall(b"HTTP/1.1 %d Refused\r\nContent-Type: application/xml\r\n"
                                   b"Content-Length: %d\r\n%s\r\n%s" % (
                                       status, len(xml),
                                       b"Connection: close\r\n" if expect else b"", xml))
                    if expect:  # the body was never sent: this connection is done
                        return
                    continue
                if upstream is None:
                    upstream = socket.create_connection(self.upstream)
                    with self._lock:
                        self._sockets.add(upstream)
                if expect:  # as the client does: the head, then the body once "100 Continue"
                    upstream.sendall(head)
                    rhead, ubuf = _read_head(upstream, ubuf)
                    if rhead is None:
                        return
                    if int(_headers(rhead)[0].split(" ")[1]) == 100:
                        client.sendall(rhead)
                        body, cbuf = _read_body(client, fields, cbuf)
                        upstream.sendall(body)
                        rhead, ubuf = _read_head(upstream, ubuf)
                        if rhead is None:
                            return
                else:
                    body, cbuf = _read_body(client, fields, cbuf)
                    upstream.sendall(head + body)
                    rhead, ubuf = _read_head(upstream, ubuf)
                    if rhead is None:
                        return
                rline, rfields = _headers(rhead)
                status = int(rline.split(" ")[1])
                rbody, ubuf = _read_body(upstream, rfields, ubuf, response_to=method,
                                         status=status)
                if action == "forward-drop":
                    self._die()
                    return
                client.sendall(rhead + rbody)
        except OSError:
            return
        finally:
            for s in (client, upstream):
                if s is not None:
                    with self._lock:
                        self._sockets.discard(s)
                    s.close()
