"""A kept-alive HTTP/1.1 connection, with no more than the client needs.

http.client sends a request's head and body in two writes (the server then wakes twice), joins
a body given in pieces, and parses every answer's headers with the email package: about 0.2 ms
of a small request's 0.45 ms on loopback, and two copies of each uploaded batch. Here a request
is one scatter-gather write of its head and the body's pieces as they are, and an answer's head
is split on CRLF.

Failures are http.client's exceptions (RemoteDisconnected for a kept-alive connection the server
closed, HTTPException for a malformed answer) or OSError, so callers handle them as before.
"""
from __future__ import annotations

import http.client
import re
import socket
import ssl

_SMALL = 64 * 1024  # bodies up to this are joined with the head: one write, one segment
# As http.client refuses them: a space or control character would end the request line or a
# header early, and what follows would be read as another request or header.
_BAD_TARGET = re.compile(r'[\x00-\x20\x7f]')
_BAD_VALUE = re.compile(r'[\r\n\x00]')
_MAX_HEAD = 64 * 1024  # an answer's status line and headers


class Response:
    __slots__ = ('status', 'headers', 'body')

    def __init__(self, status: int, headers: dict, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def getheader(self, name: str, default=None):
        return self.headers.get(name.lower(), default)

    def read(self) -> bytes:
        return self.body


class Connection:
    """One connection to host:port (TLS when `tls`), opened on first use."""

    def __init__(self, host: str, port: int | None, timeout: float, tls: bool = False):
        self.host = host
        self.port = port or (443 if tls else 80)
        self.timeout = timeout
        self.tls = tls
        self.sock: socket.socket | None = None
        self._buf = bytearray()
        self._host_header = host if port is None else '%s:%d' % (host, port)
        if ':' in host and not host.startswith('['):
            self._host_header = '[%s]%s' % (host, '' if port is None else ':%d' % port)

    def _open(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        self.sock = sock
        self._buf = bytearray()
        return sock

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def request(self, method: str, target: str, body: list | None, headers: dict) -> None:
        """Sends one request; body is a list of bytes-like pieces (or None)."""
        if _BAD_TARGET.search(target):
            raise http.client.InvalidURL('the request target %r holds a space or control character' % target[:80])
        for k, v in headers.items():
            if _BAD_VALUE.search(k) or _BAD_VALUE.search(v):
                raise ValueError('header %r holds a line break' % k)
        sock = self.sock or self._open()
        size = sum(len(p) for p in body) if body else 0
        lines = ['%s %s HTTP/1.1' % (method, target), 'Host: ' + self._host_header]
        lines += ['%s: %s' % kv for kv in headers.items()]
        if body is not None or method in ('POST', 'PUT', 'PATCH'):
            lines.append('Content-Length: %d' % size)
        head = ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1')
        if not body:
            sock.sendall(head)
        elif size <= _SMALL or self.tls:
            # TLS sockets have no sendmsg; a join of a large body is one copy of it, still one write.
            sock.sendall(b''.join([head, *body]))
        else:
            _send_pieces(sock, [memoryview(head), *(memoryview(p).cast('B') for p in body)])

    def getresponse(self, method: str = 'GET') -> Response:
        head = self._read_head()
        try:
            status_line, *header_lines = head.decode('latin-1').split('\r\n')
            version, code = status_line.split(' ', 2)[:2]
            status = int(code)
        except ValueError:
            raise http.client.BadStatusLine(head[:80].decode('latin-1', 'replace')) from None
        if not version.startswith('HTTP/1.'):
            raise http.client.BadStatusLine(status_line)
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(':')
            if not sep:
                raise http.client.HTTPException('malformed header line %r' % line[:80])
            key = name.strip().lower()
            value = value.strip()
            headers[key] = headers[key] + ', ' + value if key in headers else value
        if 100 <= status < 200:
            return self.getresponse(method)
        if method == 'HEAD' or status in (204, 304):
            body = b''
        elif 'chunked' in headers.get('transfer-encoding', '').lower():
            body = self._read_chunked()
        elif 'content-length' in headers:
            try:
                n = int(headers['content-length'])
            except ValueError:
                raise http.client.HTTPException('bad Content-Length %r' % headers['content-length']) from None
            body = self._read_exactly(n)
        else:
            body = self._read_to_close()
            headers['connection'] = 'close'
        if version == 'HTTP/1.0' and 'keep-alive' not in headers.get('connection', '').lower():
            headers['connection'] = 'close'
        return Response(status, headers, body)

    # -- reading ----------------------------------------------------------------------------
    def _fill(self) -> bool:
        chunk = self.sock.recv(262144)
        if not chunk:
            return False
        self._buf += chunk
        return True

    def _read_head(self) -> bytes:
        start = 0
        while True:
            end = self._buf.find(b'\r\n\r\n', start)
            if end >= 0:
                head = bytes(self._buf[:end])
                del self._buf[:end + 4]
                return head
            if len(self._buf) > _MAX_HEAD:
                raise http.client.HTTPException('the answer\'s headers are longer than %d bytes' % _MAX_HEAD)
            start = max(0, len(self._buf) - 3)
            if not self._fill():
                if not self._buf:
                    raise http.client.RemoteDisconnected('Remote end closed connection without response')
                raise http.client.IncompleteRead(bytes(self._buf))

    def _read_exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not self._fill():
                raise http.client.IncompleteRead(bytes(self._buf), n - len(self._buf))
        body = bytes(self._buf[:n])
        del self._buf[:n]
        return body

    def _read_line(self) -> bytes:
        while True:
            end = self._buf.find(b'\r\n')
            if end >= 0:
                line = bytes(self._buf[:end])
                del self._buf[:end + 2]
                return line
            if not self._fill():
                raise http.client.IncompleteRead(bytes(self._buf))

    def _read_chunked(self) -> bytes:
        out = []
        while True:
            size_line = self._read_line().split(b';', 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise http.client.HTTPException('bad chunk size %r' % size_line[:20]) from None
            if size == 0:
                while self._read_line():  # trailers, up to the empty line
                    pass
                return b''.join(out)
            out.append(self._read_exactly(size))
            if self._read_exactly(2) != b'\r\n':
                raise http.client.HTTPException('a chunk does not end with CRLF')

    def _read_to_close(self) -> bytes:
        while self._fill():
            pass
        body = bytes(self._buf)
        self._buf = bytearray()
        return body


def _send_pieces(sock: socket.socket, views: list) -> None:
    """Writes every view, in order, with as few system calls as the socket takes."""
    views = [v for v in views if len(v)]
    while views:
        sent = sock.sendmsg(views[:1024])
        while sent:
            if sent >= len(views[0]):
                sent -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][sent:]
                sent = 0
