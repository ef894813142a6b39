"""MXNet's asynchronous engine, over HTTP.

An op call returns at once with an NDArray whose value the server has not computed yet: its
statement waits in a queue. The queue goes to the server as one program (POST /ops) when a value
is read (asnumpy, asscalar, printing, shape of a pending array, wait_to_read, nd.waitall), when it
grows long, or when an endpoint outside programs is called. A training step is then one request.
Errors surface at that sync point, as in MXNet, naming the statement and the line of user code
that queued it. GRADSERVE_EAGER=1 sends every statement at once (for debugging).

`with autograd.record():` blocks live here too: each open block is a frame whose statements become
a `scope` statement of the program. A flush inside an open block sends the block's statements so
far as one scope and goes on in a new one: tapes span scopes on the server, so backward through
both is the same.
"""
from __future__ import annotations

import linecache
import os
import sys
import weakref

from ._errors import GradserveError

def _answer_refused(e: GradserveError) -> bool:
    """A refusal of the answer alone: the server ran the program and bound its names, then found
    the data asked for too large to write (base64, JSON numbers, one string)."""
    p = e.problem or {}
    return e.status == 413 and p.get('statement_path') is None and p.get('limit') in ('base64_bytes', 'json_elements', 'answer_length')


# Flush a queue holding this many statements or this many bytes of uploads.
MAX_STATEMENTS = 1000
MAX_QUEUED_BYTES = 16 << 20
MAX_DELETES = 4096  # the program format's bound on one delete statement

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


def eager_from_env() -> bool:
    return os.environ.get('GRADSERVE_EAGER', '').strip().lower() not in ('', '0', 'false', 'no')


# Whether a source file is this package's, by file name: abspath on every frame of every queued
# statement cost a tenth of a training step's time in the client.
_IN_PKG: dict = {}


def _user_origin():
    """(file, line, function) of the innermost frame outside this package: the user's code."""
    f = sys._getframe(2)
    while f is not None:
        name = f.f_code.co_filename
        inside = _IN_PKG.get(name)
        if inside is None:
            inside = _IN_PKG[name] = os.path.dirname(os.path.abspath(name)) == _PKG_DIR
        if not inside:
            break
        f = f.f_back
    return (f.f_code.co_filename, f.f_lineno, f.f_code.co_name) if f is not None else None


def describe_origin(origin) -> str:
    if not origin:
        return ''
    path, line, func = origin
    text = linecache.getline(path, line).strip()
    return ' (queued at %s:%d in %s%s)' % (path, line, func, ': `%s`' % text if text else '')


class _Frame:
    __slots__ = ('kind', 'train_mode', 'body', 'set_by_call')

    def __init__(self, kind, train_mode, set_by_call=False):
        self.kind = kind
        self.train_mode = train_mode
        self.body: list = []
        self.set_by_call = set_by_call

    def statement(self) -> dict:
        s = {'op': 'scope', 'kind': self.kind, 'body': self.body}
        if self.train_mode is not None and self.kind in ('record', 'pause'):
            s['train_mode'] = bool(self.train_mode)
        return s


def _leaves(program: list, path=()):
    """Every non-scope statement in the order the server runs them, with its path."""
    for i, s in enumerate(program):
        p = path + (i,)
        if s.get('op') == 'scope':
            yield from _leaves(s['body'], p + ('body',))
        else:
            yield p, s


class Engine:
    def __init__(self, client, eager: bool):
        self.client = client
        self.eager = eager
        self.frames = [_Frame(None, None)]
        self.count = 0
        self.bytes = 0
        self.origins: dict[int, object] = {}
        # name -> NDArray (weakly) whose descriptor the next answer brings
        self.pending: dict[str, weakref.ref] = {}
        self.queued_outs: set[str] = set()
        self.bound: set[str] = set()

    # -- state of the scopes -----------------------------------------------------------------
    def flags(self) -> tuple[bool, bool]:
        rec, train = False, False
        for f in self.frames[1:]:
            if f.kind == 'record':
                rec, train = True, True if f.train_mode is None else bool(f.train_mode)
            elif f.kind == 'pause':
                rec, train = False, False if f.train_mode is None else bool(f.train_mode)
            elif f.kind == 'train_mode':
                train = True
            elif f.kind == 'predict_mode':
                train = False
        return rec, train

    def push(self, kind: str, train_mode=None, set_by_call=False) -> None:
        self.frames.append(_Frame(kind, train_mode, set_by_call))

    def pop(self) -> None:
        if len(self.frames) == 1:
            raise RuntimeError('no open autograd scope to exit')
        f = self.frames.pop()
        if f.body:
            self.frames[-1].body.append(f.statement())

    # -- the queue ---------------------------------------------------------------------------
    def enqueue(self, stmt: dict, outs=(), nbytes: int = 0) -> None:
        for a in outs:
            self.pending[a._name] = weakref.ref(a)
            self.queued_outs.add(a._name)
        if 'into' in stmt:
            self.queued_outs.add(stmt['into'].split('.')[0])
        self.frames[-1].body.append(stmt)
        self.origins[id(stmt)] = (_user_origin(), stmt)
        self.count += 1
        self.bytes += nbytes
        if self.eager or self.count >= MAX_STATEMENTS or self.bytes >= self.client.max_queued_bytes():
            self.flush()

    def _take_program(self) -> list:
        frames = self.frames
        for i in range(len(frames) - 1, 0, -1):
            if frames[i].body:
                frames[i - 1].body.append(frames[i].statement())
            frames[i].body = []
        program, frames[0].body = frames[0].body, []
        return program

    def flush(self, fetch=None, release_all: bool = False) -> dict | None:
        """Sends the queue (and deletes of collected names) as one program; returns the answer."""
        client = self.client
        with client._lock:
            program = self._take_program()
            origins, self.origins = self.origins, {}
            outs, self.queued_outs = self.queued_outs, set()
            pending, self.pending = self.pending, {}
            self.count = self.bytes = 0
            dead = client.take_dead(release_all)
            deletes = [n for n, _ in dead if n in self.bound or n in outs][:MAX_DELETES]
            if deletes:
                program.append({'op': 'delete', 'args': deletes})
            if not program and not fetch:
                return None
            body: dict = {'ops': program}
            if fetch:
                body['fetch'] = list(fetch)
                body['format'] = 'base64'
            try:
                answer = client.session('POST', '/ops', body)
            except GradserveError as e:
                if _answer_refused(e):
                    self._ran_unanswered(outs, pending, deletes)
                else:
                    self._failed(program, origins, outs, pending, dead, deletes, e)
                raise
            except BaseException as e:
                # the connection broke: what ran is unknown, so nothing queued can be trusted
                for ref in pending.values():
                    a = ref()
                    if a is not None:
                        a._error = e
                client.return_dead(dead)
                raise
            gone = set(deletes)
            self.bound |= outs
            self.bound -= gone
            descs = answer.get('outputs', {})
            for name, desc in descs.items():
                if name not in gone and '.' not in name:
                    self.bound.add(name)
            for name, ref in pending.items():
                a = ref()
                if a is not None and name in descs:
                    a._update(descs[name])
            return answer

    def _ran_unanswered(self, outs, pending, deletes) -> None:
        """The whole program ran but its answer was refused (too large to encode): every name is
        bound as sent, the deletes ran, and the arrays' descriptors are to be asked for."""
        self.bound |= outs
        self.bound -= set(deletes)
        for name, ref in pending.items():
            a = ref()
            if a is not None:
                a._stale = True

    def _failed(self, program, origins, outs, pending, dead, deletes, e: GradserveError) -> None:
        problem = e.problem or {}
        path = problem.get('statement_path')
        if path is None and isinstance(problem.get('statement'), str):
            path = [int(p) if p.isdigit() else p for p in problem['statement'].split('.')]
        leaves = list(_leaves(program))
        failed_at = None
        if path is not None:
            for i, (p, _s) in enumerate(leaves):
                if list(p) == list(path):
                    failed_at = i
                    break
        ran = leaves[:failed_at] if failed_at is not None else []
        for name in problem.get('changed') or []:
            if isinstance(name, str):
                self.bound.add(name.split('.')[0])
        def outs_of(stmts):
            names = set()
            for _p, st in stmts:
                o = st.get('out')
                names.update([o] if isinstance(o, str) else (o or []))
            return names
        ran_outs = outs_of(ran)
        # a name reused by a later statement belongs to that statement's array
        unran_outs = outs_of(leaves[failed_at:]) if failed_at is not None else set(pending)
        self.bound |= ran_outs
        for name, ref in pending.items():
            a = ref()
            if a is None:
                continue
            if name in ran_outs and name not in unran_outs:
                a._stale = True  # bound, but its descriptor did not come back
            else:
                a._error = e
        if failed_at is not None:
            stmt = leaves[failed_at][1]
            where = origins.get(id(stmt))
            if where:
                e.args = (str(e) + describe_origin(where[0]),) + e.args[1:]
                e.origin = where[0]
        # the deletes did not run: those names are still collected and still bound
        self.client.return_dead([(n, b) for n, b in dead if n in deletes and n in self.bound])
