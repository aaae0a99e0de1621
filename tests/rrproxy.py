"""A small round-robin HTTP/1.1 reverse proxy on 127.0.0.1, for testing replicas the way a load
balancer would use them: every *request* (not every connection) goes to the next replica, so a
client's keep-alive connection still spreads its calls over all of them.

With `tls=(cert, key)` the proxy terminates TLS itself (a certificate from the test CA, which
the clients verify) and opens its own verified TLS connection to each replica (`upstream_ca`):
TLS is exercised on both legs, the way an L7 load balancer in front of HTTPS replicas does it.
A TCP pass-through could only alternate per connection, which keep-alive clients would pin to
one replica for a whole test.

The proxy forwards the request line, the headers (adding nothing: the signature covers Host,
which the replicas see unchanged) and the body: a Content-Length body as is, a
`Transfer-Encoding: chunked` body chunked again (the same chunks; trailers are dropped), so the
replica still reads a chunked request. It answers with the replica's status, headers and body.
A replica that cannot be reached is answered with 502, the way a load balancer does it;
`skip_dead=True` tries the next replica first (a health-checking balancer), for tests that kill
one. `kill()` is the whole service dying (the harness calls it before it kill -9s the
replicas): from then on a request the proxy cannot get an answer for loses its connection
instead of getting a 502, like a client of a killed single server.
"""

from __future__ import annotations

import http.client
import http.server
import socket
import socketserver
import ssl
import threading
from pathlib import Path

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: "RoundRobinProxy"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, fmt, *args):  # quiet
        pass

    def _read_chunked(self) -> list[bytes]:
        """The chunks of a chunked request body (RFC 9112 7.1), extensions and trailers dropped."""
        chunks = []
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise ConnectionError("client closed inside a chunked body")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields
                return chunks
            chunks.append(self.rfile.read(size))
            self.rfile.readline(3)  # the CRLF after the chunk

    def _proxy(self):
        p = self.server.proxy
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        if chunked:
            body = self._read_chunked()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
        resp, data = None, b""
        for attempt in range(len(p.upstreams) if p.skip_dead else 1):
            i = p.next_index()
            try:
                resp, data = p.forward(self, i, self.command, self.path, headers, body)
                break
            except (OSError, http.client.HTTPException) as e:
                p.drop(self, i)
                p.errors.append(f"replica {i}: {e!r}")
        if resp is None and p.dead:
            self.close_connection = True  # the service is gone: the connection goes with it
            return
        if resp is None:
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP_BY_HOP | {"content-length", "transfer-encoding"}:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        if (resp.getheader("Connection") or "").lower() == "close":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _proxy


class RoundRobinProxy:
    def __init__(self, upstreams: list[tuple[str, int]], *, tls: tuple[Path, Path] | None = None,
                 upstream_ca: Path | None = None, skip_dead: bool = False):
        self.upstreams = list(upstreams)
        self.upstream_ctx = None
        if upstream_ca is not None:
            self.upstream_ctx = ssl.create_default_context(cafile=str(upstream_ca))
        self.skip_dead = skip_dead
        self.dead = False
        self.errors: list[str] = []
        self.counts = [0] * len(self.upstreams)
        self._turn = 0
        self._lock = threading.Lock()
        self._conns = threading.local()
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.proxy = self
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def next_index(self) -> int:
        with self._lock:
            i = self._turn
            self._turn = (self._turn + 1) % len(self.upstreams)
            self.counts[i] += 1
            return i

    def _conn(self, handler, i: int) -> http.client.HTTPConnection:
        # one upstream connection per (client connection, replica), reused while both live
        conns = handler.__dict__.setdefault("_upstream", {})
        c = conns.get(i)
        if c is None:
            host, port = self.upstreams[i]
            if self.upstream_ctx is not None:
                c = http.client.HTTPSConnection(host, port, timeout=120, context=self.upstream_ctx)
            else:
                c = http.client.HTTPConnection(host, port, timeout=120)
            conns[i] = c
        return c

    def drop(self, handler, i: int):
        c = handler.__dict__.get("_upstream", {}).pop(i, None)
        if c is not None:
            c.close()

    def forward(self, handler, i, method, path, headers, body):
        for retry in (0, 1):
            c = self._conn(handler, i)
            fresh = c.sock is None
            try:
                c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                for k, v in headers:
                    c.putheader(k, v)
                if isinstance(body, list):  # chunked: Transfer-Encoding is among the headers
                    c.endheaders([ch for ch in body if ch], encode_chunked=True)
                else:
                    if body or method in ("POST", "PUT", "PATCH"):
                        if not any(k.lower() == "content-length" for k, _ in headers):
                            c.putheader("Content-Length", str(len(body)))
                    c.endheaders(body if body else None)
                resp = c.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.drop(handler, i)
                return resp, data
            except (ConnectionError, http.client.RemoteDisconnected, http.client.CannotSendRequest,
                    BrokenPipeError):
                # a kept-alive upstream connection the replica closed meanwhile: once more on
                # a fresh one (only when the old one was reused)
                self.drop(handler, i)
                if fresh or retry:
                    raise
        raise AssertionError("unreachable")

    def kill(self):
        """The service dies (see the module doc); close() still has to follow."""
        self.dead = True

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_port(host: str, port: int, timeout: float = 10) -> bool:
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False
