"""The connection to a gradserve server: HTTP/JSON over a kept-alive connection, one session,
server-side names for client NDArrays, and their release when the Python objects die."""
from __future__ import annotations

import atexit
import http.client
import json
import math
import os
import re
import threading
import time
import urllib.parse
import uuid

from ._engine import MAX_QUEUED_BYTES, Engine, eager_from_env
from ._http import Connection
from ._errors import GradserveConnectionError, RateLimitError, error_for

DEFAULT_URL = 'http://127.0.0.1:8080'
NAME_PREFIX = '_py'
# Dead names kept bound (for reuse as the next outputs) before they are DELETEd: at most this many
# and this many bytes, so server memory stays bounded in loops.
MAX_DEAD_NAMES = 8
MAX_DEAD_BYTES = 4 << 20
# The POSTs the server answers once per Idempotency-Key: each carries a fresh key, so that sending it
# again (the server restarting from its state directory, a replica taking the session over) is
# answered from the first run's record rather than run twice.
_KEYED = re.compile(r'^/v1/sessions/[^/]+/(ops|backward|grad|arrays/[^/]+/backward)$')
_DTYPE_BYTES = {'float32': 4, 'float64': 8, 'int32': 4, 'int64': 8, 'uint8': 1, 'float16': 2}


def _env_int(name: str) -> int | None:
    v = os.environ.get(name)
    if v is None or v.strip() == '':
        return None
    return int(v)


def _json_default(o):
    # numpy scalars and the like
    if hasattr(o, 'item'):
        return o.item()
    if hasattr(o, 'tolist'):
        return o.tolist()
    raise TypeError('%r is not JSON serialisable' % (o,))


class Part:
    """Array bytes sent beside the JSON program as a part of a multipart body (a `frombuffer`
    statement names it), so a batch of data travels as its bytes, not as base64 inside JSON."""
    __slots__ = ('data',)

    def __init__(self, data: bytes):
        self.data = data


def _multipart(program: bytes, parts: list) -> tuple[list, str]:
    """A multipart/form-data body as pieces to send in order (the parts' bytes are not copied):
    the `program` part, then `u0`, `u1`, ... holding parts' bytes."""
    while True:
        boundary = 'gradserve-' + os.urandom(16).hex()
        mark = boundary.encode('ascii')
        # A boundary inside the data would cut a part short. The program is checked; in array
        # bytes, 128 random bits match at a given place with odds of 2^-128, and a scan of every
        # batch would cost more than the rest of building the request.
        if program.find(mark) < 0:
            break
    pieces = [b'--' + mark + b'\r\nContent-Disposition: form-data; name="program"\r\n'
              b'Content-Type: application/json\r\n\r\n', program]
    for i, data in enumerate(parts):
        pieces += [b'\r\n--' + mark + b'\r\nContent-Disposition: form-data; name="u%d"; filename="u%d"\r\n'
                   b'Content-Type: application/octet-stream\r\n\r\n' % (i, i), data]
    pieces.append(b'\r\n--' + mark + b'--\r\n')
    return pieces, 'multipart/form-data; boundary=' + boundary


def _json_number(v):
    if isinstance(v, float) and not math.isfinite(v):
        return 'NaN' if math.isnan(v) else ('Infinity' if v > 0 else '-Infinity')
    return v


class Client:
    """One server and one session on it (opened on first use, deleted at interpreter exit)."""

    def __init__(self, url: str | None = None, api_key: str | None = None, seed: int | None = None,
                 default_dtype: str | None = None, ttl_seconds: int | None = None,
                 timeout: float = 120.0):
        self.url = (url or os.environ.get('GRADSERVE_URL') or DEFAULT_URL).rstrip('/')
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme not in ('http', 'https') or not parsed.hostname:
            raise ValueError('gradserve URL must be http(s)://host[:port][/prefix], got %r' % self.url)
        self._https = parsed.scheme == 'https'
        self._host = parsed.hostname
        self._port = parsed.port
        self._prefix = parsed.path.rstrip('/')
        self.api_key = api_key if api_key is not None else os.environ.get('GRADSERVE_API_KEY')
        self.seed = seed if seed is not None else _env_int('GRADSERVE_SEED')
        self.default_dtype = default_dtype or os.environ.get('GRADSERVE_DTYPE') or None
        self.ttl_seconds = ttl_seconds
        self.timeout = timeout
        # How long a request of an existing session is sent again while its server cannot be
        # reached or says the session is moving (a restart, a replica taking it over).
        retry = os.environ.get('GRADSERVE_RETRY_SECONDS')
        self.retry_seconds = float(retry) if retry else 30.0
        self.session_id: str | None = None
        self.token: str | None = None
        self.session_info: dict | None = None
        self._queue_bytes: tuple | None = None  # (session id, bytes): see max_queued_bytes
        self._conn: Connection | None = None
        self._lock = threading.RLock()
        self._next = 0
        self._dead: list[tuple[str, int]] = []  # (name, bytes) of collected NDArrays, still bound
        self._closed = False
        self._ops: dict | None = None
        self._op_specs: dict = {}  # ndarray._OpSpec by op name or alias, made from _ops
        self.requests = 0  # number of HTTP requests sent (for tests and curiosity)
        self.engine = Engine(self, eager_from_env())

    # -- HTTP -------------------------------------------------------------------------------
    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = Connection(self._host, self._port, self.timeout, tls=self._https)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    def http(self, method: str, path: str, body=None, *, auth: bool = True, query: dict | None = None,
             ok_missing: bool = False, accept: str | None = None):
        """Sends one request; returns the parsed JSON answer (None for 204), or the answer's bytes
        when `accept` names another media type. Raises GradserveError."""
        full = self._prefix + path
        if query:
            full += '?' + urllib.parse.urlencode(query)
        headers = {'Accept': accept or 'application/json'}
        payload = None
        if body is not None:
            parts: list[bytes] = []

            def default(o):
                if isinstance(o, Part):
                    parts.append(o.data)
                    return 'u%d' % (len(parts) - 1)
                return _json_default(o)
            program = json.dumps(body, default=default, allow_nan=False, separators=(',', ':')).encode('utf-8')
            if parts:
                payload, headers['Content-Type'] = _multipart(program, parts)
            else:
                payload, headers['Content-Type'] = [program], 'application/json'
        if auth and self.token:
            headers['Authorization'] = 'Bearer ' + self.token
        if self.api_key:
            headers['X-API-Key'] = self.api_key
        where = self.url + path
        rate_retries = 0
        # A request of a session this server held: it may be restarting, or a replica may be taking
        # the session over. Reads and keyed POSTs are safe to send again until retry_seconds pass.
        keyed = method == 'POST' and _KEYED.match(path) is not None
        if keyed:
            headers['Idempotency-Key'] = uuid.uuid4().hex
        resend = (keyed or method == 'GET') and path.startswith('/v1/sessions/') and self.retry_seconds > 0
        give_up = time.monotonic() + self.retry_seconds
        pause = 0.05

        def wait_to_resend(after: float | None = None) -> bool:
            nonlocal pause
            if not resend or time.monotonic() >= give_up:
                return False
            time.sleep(min(after if after is not None else pause, max(0.0, give_up - time.monotonic())))
            pause = min(pause * 2, 1.0)
            return True

        with self._lock:
            while True:
                attempt = 0
                while True:
                    conn = self._connection()
                    reused = getattr(conn, 'sock', None) is not None
                    try:
                        self.requests += 1
                        try:
                            conn.request(method, full, payload, headers)
                        except (BrokenPipeError, ConnectionResetError):
                            # The server may have answered (a 413) and closed before the body was
                            # all sent: its answer says what happened, a broken pipe does not.
                            if payload is None or sum(len(p) for p in payload) < 65536:
                                raise
                        resp = conn.getresponse(method)
                        data = resp.read()
                        break
                    except (http.client.HTTPException, OSError) as e:
                        self._drop_connection()
                        # A kept-alive connection the server closed: try once more on a new one.
                        if reused and attempt == 0 and isinstance(
                                e, (http.client.RemoteDisconnected, ConnectionResetError,
                                    BrokenPipeError, http.client.CannotSendRequest)):
                            attempt += 1
                            continue
                        if wait_to_resend():
                            continue
                        raise GradserveConnectionError(
                            'cannot reach the gradserve server at %s (%s %s): %s'
                            % (self.url, method, where, e), method=method, url=where) from None
                if resp.getheader('Connection', '').lower() == 'close':
                    self._drop_connection()
                status = resp.status
                # A proxy with no replica to reach (502), a session moving between replicas (503),
                # or the first try of this key still running where it was sent (409).
                if resend and (status in (502, 503) or (status == 409 and b'idempotency_conflict' in data)):
                    try:
                        after = float(resp.getheader('Retry-After') or pause)
                    except ValueError:
                        after = pause
                    if wait_to_resend(min(after, 5.0)):
                        continue
                # A rate limit, or a server momentarily out of room for bodies (503): both say
                # when to come back.
                if status in (429, 503) and rate_retries < 3 and resp.getheader('Retry-After'):
                    try:
                        wait = float(resp.getheader('Retry-After') or 1)
                    except ValueError:
                        wait = 1.0
                    if wait <= 5:
                        rate_retries += 1
                        time.sleep(max(wait, 0.05))
                        continue
                break
        if accept and status < 400:
            return data
        if status == 204 or not data:
            if status >= 400:
                raise error_for(status, {}, method, where)
            return None
        try:
            answer = json.loads(data.decode('utf-8'))
        except ValueError:
            answer = {'detail': data.decode('utf-8', 'replace')[:500]}
            if status < 400:
                raise error_for(502, answer, method, where)
        if status >= 400:
            if ok_missing and status == 404:
                return None
            err = error_for(status, answer, method, where)
            if isinstance(err, RateLimitError):
                try:
                    err.retry_after = float(resp.getheader('Retry-After') or 0) or None
                except ValueError:
                    pass
            raise err
        return answer

    # -- session ----------------------------------------------------------------------------
    def ensure_session(self) -> str:
        if self.session_id is None:
            with self._lock:
                if self.session_id is None:
                    if self._closed:
                        raise GradserveConnectionError('this gradserve client was closed')
                    body = {}
                    if self.seed is not None:
                        body['seed'] = int(self.seed)
                    if self.default_dtype:
                        body['default_dtype'] = self.default_dtype
                    if self.ttl_seconds:
                        body['ttl_seconds'] = int(self.ttl_seconds)
                    info = self.http('POST', '/v1/sessions', body, auth=False)
                    self.session_info = info
                    self.token = info['token']
                    self.session_id = info['id']
        return self.session_id

    def session(self, method: str, sub: str, body=None, **kw):
        """A request under /v1/sessions/{sid}."""
        sid = self.ensure_session()
        return self.http(method, '/v1/sessions/%s%s' % (sid, sub), body, **kw)

    def close(self) -> None:
        """Deletes the session (freeing every array on the server) and closes the connection."""
        with self._lock:
            self._closed = True
            sid, self.session_id = self.session_id, None
            self._dead.clear()
            self.engine = Engine(self, self.engine.eager)
            if sid is not None:
                try:
                    self.http('DELETE', '/v1/sessions/%s' % sid, ok_missing=True)
                except Exception:
                    pass
            self.token = None
            self._drop_connection()

    # -- op list ----------------------------------------------------------------------------
    def ops(self) -> dict:
        """GET /v1/ops once: {name or alias: op info}."""
        if self._ops is None:
            answer = self.http('GET', '/v1/ops', auth=False)
            table = {}
            for info in answer['ops']:
                table[info['name']] = info
            for info in answer['ops']:
                for alias in info.get('aliases', []):
                    table.setdefault(alias, info)
            self._ops = table
        return self._ops

    # -- names ------------------------------------------------------------------------------
    def body_limit(self) -> int:
        """The server's largest request body (from the session's limits; 64 MiB if it does not say)."""
        self.ensure_session()
        limits = (self.session_info or {}).get('limits') or {}
        return int(limits.get('body_bytes') or (64 << 20))

    def max_queued_bytes(self) -> int:
        """Upload bytes a queue may hold before it is sent: a quarter of the body limit (so one more
        upload piece still fits), at most 16 MiB. Asked at every queued statement, so it is
        worked out once per session."""
        if self._queue_bytes is None or self._queue_bytes[0] != self.session_id:
            limit = min(MAX_QUEUED_BYTES, self.body_limit() // 4)
            self._queue_bytes = (self.session_id, limit)
        return self._queue_bytes[1]

    def new_name(self) -> str:
        """A server name for a new NDArray: a collected NDArray's name when one is waiting
        (binding it again frees its old array), otherwise a fresh `_py<N>`."""
        with self._lock:
            if self._dead:
                return self._dead.pop(0)[0]
            self._next += 1
            return '%s%d' % (NAME_PREFIX, self._next)

    def give_back(self, name: str, nbytes: int = 0) -> None:
        """Called by NDArray.__del__: the name is no longer referenced by Python."""
        if self._closed:
            return
        self._dead.append((name, nbytes))  # list.append is atomic; no lock in __del__

    def take_dead(self, everything: bool = False) -> list[tuple[str, int]]:
        """Collected names to delete now: all of them, or those beyond the few kept for reuse."""
        with self._lock:
            dead = self._dead
            if everything:
                self._dead = []
                return dead
            total = sum(b for _, b in dead)
            out = []
            while dead and (len(dead) > MAX_DEAD_NAMES or total > MAX_DEAD_BYTES):
                n, b = dead.pop(0)
                total -= b
                out.append((n, b))
            return out

    def return_dead(self, names: list[tuple[str, int]]) -> None:
        self._dead.extend(names)

    def flush(self) -> None:
        """Runs every queued op and deletes the server bindings of every collected NDArray now."""
        if self.session_id is not None or self.engine.count:
            self.engine.flush(release_all=True)

    @staticmethod
    def nbytes(shape, dtype) -> int:
        n = 1
        for d in shape:
            n *= d
        return n * _DTYPE_BYTES.get(dtype, 4)


_default: Client | None = None
_default_lock = threading.Lock()


def get_client() -> Client:
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Client()
    return _default


def connect(url: str | None = None, api_key: str | None = None, seed: int | None = None, **kw) -> Client:
    """Points the default client at `url` (default: $GRADSERVE_URL or http://127.0.0.1:8080).

    Closes the session of the previous default client, if any; arrays created through it become
    unusable. The new session is opened on first use."""
    global _default
    with _default_lock:
        old, _default = _default, Client(url, api_key=api_key, seed=seed, **kw)
    if old is not None:
        old.close()
    return _default


def disconnect() -> None:
    """Deletes the default client's session now (also done at interpreter exit)."""
    global _default
    with _default_lock:
        old, _default = _default, None
    if old is not None:
        old.close()


@atexit.register
def _close_at_exit() -> None:
    c = _default
    if c is not None:
        c.close()


json_number = _json_number
