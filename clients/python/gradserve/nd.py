"""`nd`: MXNet's NDArray namespace, served remotely.

Every op listed by the server's ``GET /v1/ops`` is a function here (looked up on first use, so
new server ops need no new client): ``nd.dot(a, b)``, ``nd.arange(4)``, ``nd.zeros((2, 3))``,
``nd.random.normal(shape=1)``. Positional arguments fill the op's array inputs, then its
positional attributes, in the order the server lists them."""
from __future__ import annotations

from ._client import get_client
from ._names import did_you_mean
from .ndarray import NDArray, _invoke, array  # noqa: F401


class _Namespace:
    """A dotted op namespace such as `nd.random` (ops named `random.normal`, ...)."""

    def __init__(self, prefix: str):
        self._prefix = prefix

    def __getattr__(self, attr):
        if attr.startswith('__'):
            raise AttributeError(attr)
        if self._prefix == 'random' and attr == 'seed':  # nd.random.seed is mx.random.seed
            from .random import seed
            return seed
        return _lookup(self._prefix + '.' + attr)

    def __dir__(self):
        p = self._prefix + '.'
        return sorted({n[len(p):].split('.')[0] for n in get_client().ops() if n.startswith(p)})

    def __repr__(self):
        return '<gradserve op namespace %s>' % self._prefix


def _make(opname: str):
    def op(*args, **kwargs):
        return _invoke(opname, list(args), kwargs)
    op.__name__ = opname.rsplit('.', 1)[-1]
    op.__qualname__ = opname
    try:
        op.__doc__ = get_client().ops()[opname].get('doc')
    except Exception:
        pass
    return op


def _lookup(name: str):
    ops = get_client().ops()
    if name in ops:
        return _make(name)
    prefix = name + '.'
    if any(n.startswith(prefix) for n in ops):
        return _Namespace(name)
    raise AttributeError('gradserve.nd has no %r: the server lists no such op (GET /v1/ops)%s'
                         % (name, did_you_mean(name, [n for n in ops if n.count('.') == name.count('.')])))


def waitall() -> None:
    """Runs every queued op (MXNet's engine sync); raises the first error they met."""
    get_client().engine.flush()


def __getattr__(attr):  # PEP 562: nd.<any server op>
    if attr.startswith('__'):
        raise AttributeError(attr)
    return _lookup(attr)


def __dir__():
    names = set(globals())
    try:
        names.update(n.split('.')[0] for n in get_client().ops())
    except Exception:
        pass
    return sorted(names)
