"""`autograd`: MXNet's autograd API over the session's scope stack on the server."""
from __future__ import annotations

import inspect
import json
import re
import sys
import textwrap
import urllib.error
import urllib.parse
import urllib.request

from ._client import Client, get_client
from ._errors import GradserveConnectionError, error_for
from .ndarray import NDArray, _arg, check_graphs


def _client_of(*things) -> Client:
    for t in things:
        if isinstance(t, NDArray):
            return t.client
        if isinstance(t, (list, tuple)):
            for e in t:
                if isinstance(e, NDArray):
                    return e.client
    return get_client()


class _Scope:
    """A `with` scope, kept by the client's engine: its ops become a scope statement of the program."""

    def __init__(self, kind: str, train_mode=None):
        self._kind = kind
        self._train_mode = train_mode
        self._client: Client | None = None

    def __enter__(self):
        self._client = get_client()
        self._client.engine.push(self._kind, self._train_mode)
        return self

    def __exit__(self, exc_type, exc, tb):
        client, self._client = self._client, None
        client.engine.pop()
        return False


def record(train_mode: bool = True) -> _Scope:
    """`with autograd.record():` records the ops run inside for backward (training mode by default)."""
    return _Scope('record', bool(train_mode))


def pause(train_mode: bool = False) -> _Scope:
    """`with autograd.pause():` stops recording inside (prediction mode by default)."""
    return _Scope('pause', bool(train_mode))


def train_mode() -> _Scope:
    """`with autograd.train_mode():` training mode on, recording untouched."""
    return _Scope('train_mode')


def predict_mode() -> _Scope:
    """`with autograd.predict_mode():` training mode off, recording untouched."""
    return _Scope('predict_mode')


def detect_anomaly() -> _Scope:
    """`with autograd.detect_anomaly():` the first op, forward or backward, whose output holds NaN or
    Inf raises UnprocessableError (code `anomaly_detected`), naming the op, its tape node and line."""
    return _Scope('detect_anomaly')


def is_recording() -> bool:
    return get_client().engine.flags()[0]


def is_training() -> bool:
    return get_client().engine.flags()[1]


def _set(recording: bool | None, training: bool | None) -> bool:
    """MXNet's set_recording / set_training: changes the state until changed back; returns the old one."""
    engine = get_client().engine
    rec, train = engine.flags()
    old = rec if recording is not None else train
    if engine.frames[-1].set_by_call:
        engine.pop()
    base_rec, base_train = engine.flags()
    rec = rec if recording is None else recording
    train = train if training is None else training
    if (rec, train) != (base_rec, base_train):
        engine.push('record' if rec else 'pause', train, set_by_call=True)
    return old


def set_recording(is_recording: bool) -> bool:  # noqa: F811
    return _set(bool(is_recording), None)


def set_training(train_mode: bool) -> bool:  # noqa: F811
    return _set(None, bool(train_mode))


class _ServerScopes:
    """Opens the client's scopes on the server around an endpoint that is not a program (grad)."""

    def __init__(self, client: Client):
        self.client = client
        self.opened = 0

    def __enter__(self):
        self.client.engine.flush()
        for f in self.client.engine.frames[1:]:
            body = {'train_mode': bool(f.train_mode)} if f.kind in ('record', 'pause') and f.train_mode is not None else {}
            self.client.session('POST', '/autograd/' + f.kind.replace('_', '-'), body)
            self.opened += 1
        return self

    def __exit__(self, *exc):
        for _ in range(self.opened):
            self.client.session('POST', '/autograd/exit', {})
        return False


def _as_list(x):
    if x is None:
        return None
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _head_grads(client: Client, heads: list, head_grads, keep: list):
    hg = _as_list(head_grads)
    if hg is None:
        return None
    if len(hg) != len(heads):
        raise ValueError('head_grads must be aligned with heads (%d heads, %d head_grads)' % (len(heads), len(hg)))
    return [None if g is None else _arg(client, g, keep) for g in hg]


def backward(heads, head_grads=None, retain_graph: bool = False, train_mode: bool = True) -> None:
    """Backward from several heads at once; their gradients are summed into the variables' .grad."""
    heads = _as_list(heads)
    client = _client_of(heads)
    keep: list = []
    attrs = {'retain_graph': bool(retain_graph), 'train_mode': bool(train_mode)}
    hg = _head_grads(client, heads, head_grads, keep)
    if hg is not None:
        attrs['head_grads'] = hg
    check_graphs(heads)
    client.engine.enqueue({'op': 'backward', 'args': [_arg(client, h, keep) for h in heads], 'attrs': attrs})
    if not retain_graph:
        for h in heads:
            if isinstance(h, NDArray):
                h._freed = True
    del keep


def mark_variables(variables, gradients, grad_reqs='write') -> None:
    """MXNet's mark_variables: `gradients[i]` becomes the gradient buffer of `variables[i]`.

    The server keeps the buffer with the variable, so the buffer starts as a copy of the given
    array and the given NDArray object then refers to it: reading or writing it reads or writes
    the variable's gradient, as in MXNet, where they are one array."""
    variables = _as_list(variables)
    gradients = _as_list(gradients)
    if len(variables) != len(gradients):
        raise ValueError('variables and gradients must have the same length')
    reqs = [grad_reqs] * len(variables) if isinstance(grad_reqs, str) else list(grad_reqs)
    for v, g, r in zip(variables, gradients, reqs):
        v.attach_grad(r)
        v.client.engine.enqueue({'op': 'copy', 'args': [g.name], 'into': v.name + '.grad'})
        if g._owner is None:
            g._client.give_back(g._name, 0)
        g._name, g._owner = v.name + '.grad', v


def grad(heads, variables, head_grads=None, retain_graph=None, create_graph: bool = False,
         train_mode: bool = True):
    """The gradients of `heads` with respect to `variables`, as new arrays (`.grad` untouched).

    Returns a list aligned with `variables`, even for one NDArray, as MXNet 1.x does (its own tests
    write `autograd.grad(y, x)[0]`)."""
    heads = _as_list(heads)
    variables = _as_list(variables)
    client = _client_of(heads, variables)
    keep: list = []
    for v in variables:
        if not isinstance(v, NDArray) or v._owner is not None:
            raise TypeError('variables must be NDArrays with a gradient buffer')
    outs = [client.new_name() for _ in variables]
    body = {'heads': [_arg(client, h, keep) for h in heads], 'variables': [v.name for v in variables],
            'create_graph': bool(create_graph), 'train_mode': bool(train_mode), 'out': outs}
    if retain_graph is not None:
        body['retain_graph'] = bool(retain_graph)
    hg = _head_grads(client, heads, head_grads, keep)
    if hg is not None:
        body['head_grads'] = hg
    try:
        with _ServerScopes(client):
            answer = client.session('POST', '/grad', body)
    except BaseException:
        for o in outs:
            client.give_back(o)
        raise
    grads = answer.get('grads', {})
    result = []
    for v, o in zip(variables, outs):
        desc = dict(grads.get(v.name) or {})
        desc['name'] = o
        desc.setdefault('shape', v.shape)
        desc.setdefault('dtype', v._dtype)
        result.append(NDArray._from_desc(client, desc))
    return result


class TapeDrawing:
    """A tape drawn by the server (Graphviz): a notebook displays it as the cell's output.

    Attributes: ``tape`` (the tape id), ``svg`` (the SVG text) and ``png`` (the same picture as PNG
    bytes, for untrusted notebooks and exporters that drop SVG); ``save(path)`` writes the PNG
    when the path ends in ``.png``, else the SVG."""

    def __init__(self, tape: str, svg: str, png: bytes = b''):
        self.tape = tape
        self.svg = svg
        self.png = png

    def _repr_svg_(self) -> str:
        return _for_notebook(self.svg)

    def _repr_png_(self):
        # Both forms go in the cell's output: front ends show the SVG where they trust it and
        # fall back on the PNG where they do not (an untrusted notebook, a PNG-only exporter).
        return self.png or None

    def save(self, path: str) -> None:
        if str(path).lower().endswith('.png'):
            with open(path, 'wb') as f:
                f.write(self.png)
            return
        with open(path, 'w', encoding='utf-8') as f:
            f.write(self.svg)

    def __repr__(self) -> str:
        return '<TapeDrawing of tape %s: %d bytes of SVG, %d of PNG>' % (self.tape, len(self.svg), len(self.png))


def _get_bytes(client: Client, sub: str, query: dict) -> bytes:
    """GET a non-JSON answer (SVG, DOT, PNG) under the session. Client.http parses JSON only, so
    this makes its own request, with the same credentials and the same errors."""
    client.ensure_session()
    path = '/v1/sessions/%s%s' % (client.session_id, sub)
    url = client.url + path + '?' + urllib.parse.urlencode(query)
    headers = {'Authorization': 'Bearer ' + client.token}
    if client.api_key:
        headers['X-API-Key'] = client.api_key
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=client.timeout) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            problem = json.loads(body.decode('utf-8'))
        except ValueError:
            problem = {'detail': body.decode('utf-8', 'replace')[:500]}
        raise error_for(e.code, problem, 'GET', client.url + path) from None
    except (urllib.error.URLError, OSError) as e:
        raise GradserveConnectionError('cannot reach the gradserve server at %s (GET %s): %s'
                                       % (client.url, url, e), method='GET', url=url) from None


def _get_text(client: Client, sub: str, query: dict) -> str:
    return _get_bytes(client, sub, query).decode('utf-8')


def _tape_of(x: NDArray, caller: str, use: str) -> str:
    """The id of the tape that recorded `x`, once the queue has run."""
    if not isinstance(x, NDArray) or x._owner is not None:
        raise TypeError('%s takes an NDArray recorded under autograd.record()' % caller)
    client = x.client
    client.engine.flush()
    # The listing carries descriptors without data, so a large x is not downloaded.
    listing = client.session('GET', '/arrays')
    desc = next((d for d in listing.get('arrays', []) if d.get('name') == x.name), None)
    tape = desc.get('tape') if desc else None
    if not tape:
        raise ValueError('%s has no recorded history: record it under autograd.record() (and %s before '
                         'backward frees the history)' % (x.name, use))
    return tape


_XML_PROLOG = re.compile(r'\A\s*(<\?xml[^>]*\?>\s*)?(<!DOCTYPE[^>]*>\s*)?(<!--.*?-->\s*)*', re.S)
_SIZE = re.compile(r'(<svg\b[^>]*?)\s(width)="([\d.]+)(pt|px)?"\s+height="([\d.]+)(pt|px)?"', re.S)


def _for_notebook(svg: str) -> str:
    """The SVG as an element to put inside HTML: no XML declaration or DOCTYPE (nbconvert's HTML
    export chokes on an encoding declaration inside its page), and as wide as the cell at most,
    scaled down with its aspect kept (the viewBox) instead of cut off at the right edge."""
    svg = _XML_PROLOG.sub('', svg, count=1)

    def fit(m):
        w, unit = m.group(3), m.group(4) or 'px'
        return '%s width="100%%" style="max-width:%s%s;height:auto"' % (m.group(1), w, unit)
    return _SIZE.sub(fit, svg, count=1)


def _user_names(depth: int = 2) -> dict:
    """The caller's variable names for its NDArrays ({server name: Python name}): what a drawing
    should call them. Locals win over globals; a name bound to several arrays keeps the first."""
    frame = sys._getframe(depth)
    out: dict = {}
    for scope in (frame.f_locals, frame.f_globals):
        for var, value in list(scope.items()):
            if isinstance(value, NDArray) and value._owner is None and not var.startswith('_'):
                out.setdefault(value._name, var)
    return out


def show(y: NDArray) -> TapeDrawing:
    """Draws the tape that recorded `y` (its ops as ellipses, its arrays as boxes, variables
    highlighted), its arrays labelled with the names the calling code gave them. In a notebook,
    `autograd.show(y)` as a cell's last line shows the picture.

    `y` must still have its history: after `y.backward()` (without retain_graph) it is freed."""
    labels = _user_names()
    tape = _tape_of(y, 'autograd.show', 'show it')
    client = y.client
    query = {'format': 'svg'}
    if labels:
        query['labels'] = json.dumps(labels)
    svg = _get_text(client, '/tapes/%s' % tape, query)
    # Fetched now, not when displayed: by then backward may have freed the history.
    png = _get_bytes(client, '/tapes/%s' % tape, dict(query, format='png'))
    return TapeDrawing(tape, svg, png)


class Symbol:
    """What `get_symbol` answers: the recorded graph that computed an array, read from its tape.

    ``list_arguments()`` names the variables it reads (arrays with a gradient buffer), in the order
    the graph first meets them; ``tojson()`` is the graph as JSON (nodes in the order they ran)."""

    def __init__(self, nodes: list, head: str):
        self.nodes = nodes
        self.head = head

    def list_arguments(self) -> list:
        seen, out = set(), []
        for n in self.nodes:
            for i in n.get('inputs', []):
                if i.get('from') == 'variable' and i.get('array') not in seen:
                    seen.add(i.get('array'))
                    out.append(i.get('name') or 'var%d' % len(out))
        return out

    def list_outputs(self) -> list:
        return [self.head + '_output']

    def tojson(self) -> str:
        return json.dumps({'nodes': self.nodes, 'heads': [self.head]})

    def __repr__(self) -> str:
        return '<Symbol %s: %d ops>' % (self.head, len(self.nodes))


def get_symbol(x: NDArray) -> Symbol:
    """MXNet's get_symbol: the graph recorded for `x` (before backward frees it)."""
    tape = _tape_of(x, 'get_symbol', 'ask for it')
    client = x.client
    nodes = client.session('GET', '/tapes/%s' % tape, query={'format': 'json'})['nodes']
    producer = {}
    for n in nodes:
        for o in n.get('outputs', []):
            producer[o.get('array')] = n
    head = next((o.get('array') for n in reversed(nodes) for o in n.get('outputs', []) if o.get('name') == x.name), None)
    keep, stack = set(), [producer.get(head)] if head in producer else []
    while stack:
        n = stack.pop()
        if n is None or n['id'] in keep:
            continue
        keep.add(n['id'])
        for i in n.get('inputs', []):
            if i.get('array') in producer:
                stack.append(producer[i['array']])
    return Symbol([n for n in nodes if n['id'] in keep], x.name)


class Function:
    """MXNet 1.x's custom differentiable function: subclass it with `forward(self, *inputs)` and
    `backward(self, *output_grads)`, call `self.save_for_backward(...)` in forward and read
    `self.saved_tensors` in backward. Each instance is called once.

    The subclass's source (`inspect.getsource`) goes to the server, which runs forward there with
    recording paused and records one node whose gradient is the subclass's backward, run by the
    server's backward walk. So forward and backward are written in the language the server runs:
    NDArray ops, Python numbers and control flow."""

    def __init__(self):
        self._used = False
        self.saved_tensors = ()

    def save_for_backward(self, *args):
        self.saved_tensors = args

    def forward(self, *inputs):
        raise NotImplementedError

    def backward(self, *output_grads):
        raise NotImplementedError

    def __call__(self, *inputs):
        assert not getattr(self, '_used', False), \
            'Each Function instance can only be called once. Please create another instance.'
        self._used = True
        cls = type(self)
        if not all(isinstance(x, NDArray) for x in inputs):
            raise TypeError('the inputs of %s must be NDArrays' % cls.__name__)
        try:
            source = textwrap.dedent(inspect.getsource(cls))
        except (OSError, TypeError) as e:
            raise TypeError('%s: the source of an autograd.Function subclass must be readable by '
                            'inspect.getsource (defined in a file, not typed at a prompt): %s' % (cls.__name__, e))
        client = _client_of(list(inputs))
        engine = client.engine
        # The inputs must exist on the server before the program that reads them.
        engine.flush()
        rec, train = engine.flags()
        args = ', '.join(x._name for x in inputs)
        # The outputs come back as `results` (a last expression that is a tuple of arrays), each
        # under a new name; the intermediate name is deleted.
        expr = ('%s\n_gsfn = %s()(%s)\n_gsfn_out = _gsfn if isinstance(_gsfn, tuple) else (_gsfn,)\n'
                'del _gsfn\n_gsfn_out\n') % (source, cls.__name__, args)
        body = {'expr': expr}
        if rec:
            body['record'] = True
            body['train_mode'] = bool(train)
        elif len(engine.frames) > 1:
            body['train_mode'] = bool(train)
        answer = client.session('POST', '/ops', body)
        outs = [NDArray._from_desc(client, d) for d in answer.get('results') or []]
        engine.bound.update(o._name for o in outs)
        return outs[0] if len(outs) == 1 else tuple(outs)
