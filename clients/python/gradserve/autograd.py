"""`autograd`: MXNet's autograd API over the session's scope stack on the server."""
from __future__ import annotations

from ._client import Client, get_client
from .ndarray import NDArray, _arg


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
    """A `with` scope: POST autograd/<kind> on entry, POST autograd/exit on exit (always)."""

    def __init__(self, endpoint: str, body: dict | None):
        self._endpoint = endpoint
        self._body = body
        self._client: Client | None = None

    def __enter__(self):
        self._client = get_client()
        self._client.session('POST', '/autograd/' + self._endpoint, self._body if self._body is not None else {})
        return self

    def __exit__(self, exc_type, exc, tb):
        client, self._client = self._client, None
        try:
            client.session('POST', '/autograd/exit', {})
        except Exception:
            if exc_type is None:
                raise
        return False


def record(train_mode: bool = True) -> _Scope:
    """`with autograd.record():` records the ops run inside for backward (training mode by default)."""
    return _Scope('record', {'train_mode': bool(train_mode)})


def pause(train_mode: bool = False) -> _Scope:
    """`with autograd.pause():` stops recording inside (prediction mode by default)."""
    return _Scope('pause', {'train_mode': bool(train_mode)})


def train_mode() -> _Scope:
    """`with autograd.train_mode():` training mode on, recording untouched."""
    return _Scope('train-mode', None)


def predict_mode() -> _Scope:
    """`with autograd.predict_mode():` training mode off, recording untouched."""
    return _Scope('predict-mode', None)


def _state() -> dict:
    return get_client().session('GET', '/autograd')


def is_recording() -> bool:
    return bool(_state()['is_recording'])


def is_training() -> bool:
    return bool(_state()['is_training'])


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
    body = {'heads': [_arg(client, h, keep) for h in heads], 'retain_graph': bool(retain_graph),
            'train_mode': bool(train_mode)}
    hg = _head_grads(client, heads, head_grads, keep)
    if hg is not None:
        body['head_grads'] = hg
    client.session('POST', '/backward', body)


def grad(heads, variables, head_grads=None, retain_graph=None, create_graph: bool = False,
         train_mode: bool = True):
    """The gradients of `heads` with respect to `variables`, as new arrays (`.grad` untouched).

    Returns one NDArray when `variables` is one NDArray, else a list aligned with it."""
    single = isinstance(variables, NDArray)
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
    return result[0] if single else result


def set_recording(is_recording: bool):  # noqa: D401
    raise NotImplementedError('gradserve has scopes only: use `with autograd.record():` / `pause()`')


def set_training(train_mode: bool):
    raise NotImplementedError('gradserve has scopes only: use `with autograd.train_mode():` / `predict_mode()`')
