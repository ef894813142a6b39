"""NDArray: a client-side handle (session + server-side name) that behaves like MXNet's NDArray."""
from __future__ import annotations

import base64
import math
import numbers
import os
import struct
import sys

from . import _format
from ._client import _DTYPE_BYTES, Client, Part, get_client, json_number
from ._progress import Progress

# Arrays this large are read as .npy rather than as base64 inside a JSON answer.
_NPY_READ_BYTES = 16 << 20
from ._errors import ConflictError, PayloadTooLargeError, UnprocessableError
from ._names import did_you_mean
from .context import Context, cpu

# numpy is used when it imports (and works); it is never required.
np = None
if os.environ.get('GRADSERVE_NO_NUMPY', '') in ('', '0'):
    try:
        import numpy as np  # type: ignore
        np.zeros(1, dtype=np.float32).tobytes()
    except Exception:  # missing, or broken
        np = None

DEVICE = 'gradserve'
INLINE_MAX = 8  # arrays up to this many (finite) elements travel as JSON numbers; larger as base64
_STRUCT = {'float32': 'f', 'float64': 'd', 'int32': 'i', 'int64': 'q', 'uint8': 'B', 'float16': 'e'}
_INT_BITS = {'int32': (32, True), 'int64': (64, True), 'uint8': (8, False)}
# Other spellings numpy and MXNet code use for the same dtypes.
_ALIASES = {'float': 'float64', 'double': 'float64', 'single': 'float32', 'half': 'float16',
            'f4': 'float32', 'f8': 'float64', 'f2': 'float16', '<f4': 'float32', '<f8': 'float64', '<f2': 'float16',
            'i4': 'int32', '<i4': 'int32', 'i8': 'int64', '<i8': 'int64', 'u1': 'uint8', '|u1': 'uint8',
            'int': 'int64', 'uint8_t': 'uint8'}


def _to_int(v, dtype: str) -> int:
    """A number as an element of an integer dtype: truncated toward zero and wrapped, as the
    server converts (NaN and infinities become 0)."""
    bits, signed = _INT_BITS[dtype]
    if isinstance(v, float):
        if not math.isfinite(v):
            return 0
        v = int(v)
    v = int(v) % (1 << bits)
    return v - (1 << bits) if signed and v >= 1 << (bits - 1) else v


def _dtype_name(dtype) -> str | None:
    """A gradserve dtype name from a string, a numpy dtype or a numpy scalar type."""
    if dtype is None:
        return None
    if isinstance(dtype, str):
        name = dtype
    elif np is not None:
        name = np.dtype(dtype).name
    else:
        name = getattr(dtype, '__name__', None) or str(dtype)
    name = _ALIASES.get(name, name)
    if name not in _STRUCT:
        raise TypeError('gradserve arrays are float32, float64, int32, int64, uint8 or float16, not %r' % (dtype,))
    return name


def _public_dtype(name: str):
    """What `.dtype` answers: numpy's scalar type (as MXNet does) when numpy is there, else the name."""
    if np is not None:
        return getattr(np, name)
    return name


def _flatten(data) -> tuple[list[float], tuple[int, ...]]:
    """Nested lists/tuples (or a number) -> (flat float list, shape), checking they are rectangular."""
    if isinstance(data, numbers.Number):
        return [float(data)], ()

    def shape_of(x):
        if isinstance(x, (list, tuple)):
            if not x:
                return (0,)
            return (len(x),) + shape_of(x[0])
        if isinstance(x, NDArray):
            return tuple(x.shape)
        return ()

    shape = shape_of(data)
    flat: list[float] = []

    def walk(x, depth):
        if depth == len(shape):
            if isinstance(x, (list, tuple)):
                raise ValueError('ragged nested list: more nesting than the first element')
            flat.append(float(x))
            return
        if isinstance(x, NDArray):
            x = x.tolist()
        if not isinstance(x, (list, tuple)) or len(x) != shape[depth]:
            raise ValueError('ragged nested list: expected %d elements at depth %d' % (shape[depth], depth))
        for e in x:
            walk(e, depth + 1)

    walk(data, 0)
    return flat, shape


def _decode(desc: dict) -> list[float]:
    data = desc.get('data')
    dtype = desc.get('dtype', 'float32')
    if isinstance(data, str):
        raw = base64.b64decode(data)
        n = len(raw) // struct.calcsize(_STRUCT[dtype])
        return list(struct.unpack('<%d%s' % (n, _STRUCT[dtype]), raw))
    out: list[float] = []

    def walk(x):
        if isinstance(x, list):
            for e in x:
                walk(e)
        elif isinstance(x, str):
            out.append({'NaN': math.nan, 'Infinity': math.inf, '-Infinity': -math.inf}[x])
        else:
            out.append(int(x) if integer else float(x))
    integer = dtype in _INT_BITS
    walk(data)
    return out


def _nest(flat: list[float], shape) -> list:
    shape = list(shape)
    if not shape:
        return flat[0] if flat else []
    if len(shape) == 1:
        return list(flat)
    step = len(flat) // shape[0] if shape[0] else 0
    return [_nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


class NDArray:
    """A handle on an array held by a gradserve session.

    Supports MXNet's operators, indexing, `attach_grad` / `grad` / `backward`, and every op the
    server lists (`x.exp()`, `x.sum(axis=1)`), called as methods."""

    __slots__ = ('_client', '_name', '_owner', '_shape', '_dtype', '_grad_req', '_recorded', '_error', '_stale',
                 '_freed', '__weakref__')
    __array_priority__ = 1000.0  # numpy defers binary operators to us

    def __init__(self, client: Client, name: str, shape=(), dtype: str | None = 'float32', grad_req=None,
                 recorded: bool = False, owner: 'NDArray | None' = None):
        self._client = client
        self._name = name          # server name, or "<name>.grad" for a gradient handle
        self._owner = owner        # for gradient handles: the array whose buffer this is
        # None until the server answers for a queued op (reading .shape waits for it)
        self._shape = tuple(shape) if shape is not None else None
        self._dtype = dtype
        self._error = None         # the error of the program that should have computed it
        self._stale = False        # bound on the server, descriptor not yet known
        self._freed = False        # a backward without retain_graph has run from this head
        self._grad_req = grad_req
        self._recorded = recorded

    @classmethod
    def _from_desc(cls, client: Client, desc: dict) -> 'NDArray':
        return cls(client, desc['name'], desc.get('shape', ()), desc.get('dtype', 'float32'),
                   desc.get('grad_req'), desc.get('recorded', False))

    def _update(self, desc: dict) -> None:
        if desc is None:
            return
        self._stale = False
        self._shape = tuple(desc['shape']) if 'shape' in desc else self._shape
        self._dtype = desc.get('dtype', self._dtype)
        if self._owner is None:
            self._grad_req = desc.get('grad_req', self._grad_req)
        self._recorded = desc.get('recorded', self._recorded)

    def __del__(self):
        try:
            if self._owner is None and self._client is not None:
                self._client.give_back(self._name, Client.nbytes(self._shape or (), self._dtype))
        except Exception:
            pass

    # -- attributes -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The server-side name (an array reference usable in expressions and JSON ops)."""
        return self._name

    @property
    def client(self) -> Client:
        return self._client

    def _known(self) -> None:
        """Waits for the descriptor of a queued array (MXNet infers shapes at once; we ask)."""
        if self._error is not None:
            raise self._error
        if self._shape is None or self._dtype is None or self._stale:
            if self._owner is not None:
                self._owner._known()
                self._shape, self._dtype = self._owner._shape, self._owner._dtype
                return
            self._client.engine.flush()
            if self._error is not None:
                raise self._error
            if self._shape is None or self._dtype is None or self._stale:
                try:
                    desc = self._client.session('GET', '/arrays/%s' % self._name, query={'format': 'base64'})
                except PayloadTooLargeError:
                    # Its data is too large to come with the descriptor: the listing has no data.
                    listing = self._client.session('GET', '/arrays').get('arrays', [])
                    desc = next((d for d in listing if d.get('name') == self._name), None)
                self._update(desc)

    @property
    def shape(self) -> tuple:
        self._known()
        return self._shape

    @property
    def dtype(self):
        self._known()
        return _public_dtype(self._dtype)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def context(self) -> Context:
        return cpu()

    ctx = context

    @property
    def grad_req(self):
        return self._grad_req

    @property
    def _fresh_grad(self) -> bool:
        """MXNet's flag: whether a backward wrote this variable's gradient since it was cleared."""
        if self._grad_req is None:
            return False
        self._client.engine.flush()
        desc = self._client.session('GET', '/arrays/%s' % self._name, query={'format': 'base64'})
        self._update(desc)
        return bool(desc.get('fresh_grad', False))

    @_fresh_grad.setter
    def _fresh_grad(self, fresh: bool) -> None:
        if self._grad_req is None:
            raise ValueError('%s has no gradient buffer: call attach_grad() first' % self._name)
        self._client.engine.enqueue({'op': 'set_grad_state', 'args': [self._name], 'attrs': {'fresh': bool(fresh)}})

    @property
    def stype(self) -> str:
        return 'default'

    @property
    def T(self) -> 'NDArray':
        return _invoke('transpose', [self], {})

    @property
    def grad(self) -> 'NDArray | None':
        """The gradient buffer (a handle on `<name>.grad`), or None when none is attached."""
        if self._owner is not None or self._grad_req is None:
            return None
        return NDArray(self._client, self._name + '.grad', self._shape, self._dtype, None, False, owner=self)

    # -- data -------------------------------------------------------------------------------
    def _read(self) -> dict:
        """Runs the queue and this array's value with it: the sync point of MXNet's engine."""
        if self._error is not None:
            raise self._error
        answer = self._client.engine.flush(fetch=[self._name])
        if self._error is not None:
            raise self._error
        desc = answer['outputs'][self._name]
        if self._owner is None:
            self._update(desc)
        else:
            self._shape, self._dtype = tuple(desc['shape']), desc['dtype']
        return desc

    def _flat(self) -> list[float]:
        return _decode(self._read())

    def tolist(self):
        flat = self._flat()
        return _nest(flat, self._shape)

    def asnumpy(self):
        if np is None:
            raise ImportError('asnumpy() needs numpy, which is not importable here; use tolist()')
        if self._owner is None and self._error is None and Client.nbytes(self._shape or (), self._dtype) >= _NPY_READ_BYTES:
            return self._read_npy()
        try:
            return self.asnumpy_from(self._read())
        except PayloadTooLargeError as e:
            # Too large for base64 in an answer (its size was not known before it ran): the
            # program ran and bound it, so its bytes come as .npy.
            if self._owner is not None or e.problem.get('limit') not in ('base64_bytes', 'answer_length'):
                raise
            self._error = None
            return self._read_npy()

    def _read_npy(self):
        """A large array as .npy: its bytes as they are, with no base64 or JSON around them (the
        server bounds base64 answers, GRADSERVE_MAX_BASE64_BYTES)."""
        import io
        self._client.engine.flush()
        if self._error is not None:
            raise self._error
        data = self._client.session('GET', '/arrays/%s' % self._name, accept='application/x-npy')
        a = np.load(io.BytesIO(data), allow_pickle=False)
        self._shape, self._dtype, self._stale = tuple(a.shape), str(a.dtype), False
        return a

    def __array__(self, dtype=None, copy=None):
        a = self.asnumpy()
        return a.astype(dtype) if dtype is not None else a

    def asscalar(self) -> float:
        vals = self._flat()  # one round trip: the size is checked on what comes back
        if len(vals) != 1:
            raise ValueError('The current array is not a scalar')
        return vals[0]

    def item(self) -> float:
        return self.asscalar()

    def wait_to_read(self) -> None:
        if self._error is not None:
            raise self._error
        self._client.engine.flush()
        if self._error is not None:
            raise self._error

    def __float__(self):
        return float(self.asscalar())

    def __int__(self):
        return int(self.asscalar())

    def __index__(self):
        return int(self.asscalar())

    def __bool__(self):
        n = self.size
        if n == 0:
            return False
        if n == 1:
            return bool(self.asscalar())
        raise ValueError('The truth value of an NDArray with multiple elements is ambiguous.')

    __nonzero__ = __bool__

    def __len__(self):
        if not self.shape:
            raise TypeError('len() of unsized object')
        return self._shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self):
        desc = self._read()
        if np is not None:
            body = str(self.asnumpy_from(desc))
        else:
            body = _format.array2string(_decode(desc), tuple(desc['shape']), desc['dtype'])
        return '\n%s\n%s' % (body, _format.describe(desc['shape'], desc['dtype'], DEVICE))

    __str__ = __repr__

    @staticmethod
    def asnumpy_from(desc):
        data = desc.get('data')
        dt = np.dtype(desc['dtype'])
        if isinstance(data, str):
            arr = np.frombuffer(base64.b64decode(data), dtype=dt.newbyteorder('<')).astype(dt)
        else:
            arr = np.array(_decode(desc), dtype=dt)
        return arr.reshape(tuple(desc['shape']))

    __hash__ = object.__hash__

    # -- autograd ---------------------------------------------------------------------------
    def attach_grad(self, grad_req: str = 'write', stype=None) -> None:
        """Allocates the gradient buffer (MXNet attach_grad); cuts any history of the array."""
        if self._owner is not None:
            raise TypeError('cannot attach a gradient to a gradient buffer')
        if stype not in (None, 'default'):
            raise NotImplementedError('gradserve has dense storage only: sparse gradients (stype=%r) are out of scope' % stype)
        self._client.engine.enqueue({'op': 'attach_grad', 'args': [self._name], 'attrs': {'grad_req': grad_req}})
        self._grad_req = grad_req
        self._recorded = False

    def backward(self, out_grad=None, retain_graph: bool = False, train_mode: bool = True) -> None:
        """Backward from this array (non-scalar heads get ones, i.e. the gradient of their sum)."""
        attrs = {'retain_graph': bool(retain_graph), 'train_mode': bool(train_mode)}
        keep = []
        if out_grad is not None:
            attrs['head_grads'] = [_arg(self._client, out_grad, keep)]
        check_graphs([self])
        self._client.engine.enqueue({'op': 'backward', 'args': [self._name], 'attrs': attrs})
        if not retain_graph:
            self._freed = True
        del keep

    def detach(self) -> 'NDArray':
        return _invoke('detach', [self], {})

    # -- shape ops with MXNet's calling conventions -----------------------------------------
    def reshape(self, *shape, **kwargs) -> 'NDArray':
        if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
            shape = tuple(shape[0])
        if shape:
            kwargs['shape'] = list(shape)
        return _invoke('reshape', [self], kwargs)

    def transpose(self, *axes, **kwargs) -> 'NDArray':
        if len(axes) == 1 and isinstance(axes[0], (list, tuple)):
            axes = tuple(axes[0])
        if axes:
            kwargs['axes'] = list(axes)
        return _invoke('transpose', [self], kwargs)

    def astype(self, dtype, copy: bool = True) -> 'NDArray':
        return _invoke('astype', [self], {'dtype': _dtype_name(dtype)})

    def tostype(self, stype) -> 'NDArray':
        if stype != 'default':
            raise NotImplementedError('gradserve arrays are dense: sparse storage (%r) is out of scope' % (stype,))
        return self

    def copy(self) -> 'NDArray':
        return _invoke('copy', [self], {})

    def as_in_context(self, context) -> 'NDArray':
        return self

    as_in_ctx = as_in_context

    def copyto(self, other):
        if isinstance(other, NDArray):
            other[:] = self
            return other
        return self.copy()

    def norm(self, *args, **kwargs) -> 'NDArray':
        return _invoke('norm', [self] + list(args), kwargs)

    def sum(self, *args, **kwargs) -> 'NDArray':
        return _invoke('sum', [self] + list(args), kwargs)

    def mean(self, *args, **kwargs) -> 'NDArray':
        return _invoke('mean', [self] + list(args), kwargs)

    def __getattr__(self, attr):
        # Any op the server lists is a method: x.exp(), x.sum(axis=1), x.broadcast_to((2, 3)), ...
        if attr.startswith('__') or attr in NDArray.__slots__:
            raise AttributeError(attr)
        client = object.__getattribute__(self, '_client')
        ops = client.ops()
        if attr not in ops:
            names = [n for n in ops if '.' not in n] + [n for n in dir(type(self)) if not n.startswith('_')]
            raise AttributeError("'NDArray' object has no attribute %r (and the server has no op of that name)%s"
                                 % (attr, did_you_mean(attr, names)))

        def method(*args, **kwargs):
            return _invoke(attr, [self] + list(args), kwargs)
        method.__name__ = attr
        method.__doc__ = ops[attr].get('doc')
        return method

    def __dir__(self):
        names = set(object.__dir__(self))
        try:
            names.update(n for n in self._client.ops() if '.' not in n)
        except Exception:
            pass
        return sorted(names)

    # -- operators --------------------------------------------------------------------------
    def __add__(self, o): return _invoke('add', [self, o], {})
    def __radd__(self, o): return _invoke('add', [o, self], {})
    def __sub__(self, o): return _invoke('subtract', [self, o], {})
    def __rsub__(self, o): return _invoke('subtract', [o, self], {})
    def __mul__(self, o): return _invoke('multiply', [self, o], {})
    def __rmul__(self, o): return _invoke('multiply', [o, self], {})
    def __truediv__(self, o): return _invoke('divide', [self, o], {})
    def __rtruediv__(self, o): return _invoke('divide', [o, self], {})
    __div__, __rdiv__ = __truediv__, __rtruediv__
    def __pow__(self, o): return _invoke('power', [self, o], {})
    def __rpow__(self, o): return _invoke('power', [o, self], {})
    def __matmul__(self, o): return _invoke('dot', [self, o], {})
    def __rmatmul__(self, o): return _invoke('dot', [o, self], {})
    def __neg__(self): return _invoke('negative', [self], {})
    def __pos__(self): return self
    def __abs__(self): return _invoke('abs', [self], {})
    def __eq__(self, o):
        return False if o is None else _invoke('equal', [self, o], {})

    def __ne__(self, o):
        return True if o is None else _invoke('not_equal', [self, o], {})

    def __lt__(self, o): return _invoke('lesser', [self, o], {})
    def __le__(self, o): return _invoke('lesser_equal', [self, o], {})
    def __gt__(self, o): return _invoke('greater', [self, o], {})
    def __ge__(self, o): return _invoke('greater_equal', [self, o], {})

    # in place, as MXNet does (the array keeps its identity)
    def __iadd__(self, o): return _invoke('add', [self, o], {'out': self})
    def __isub__(self, o): return _invoke('subtract', [self, o], {'out': self})
    def __imul__(self, o): return _invoke('multiply', [self, o], {'out': self})
    def __itruediv__(self, o): return _invoke('divide', [self, o], {'out': self})

    # -- indexing ---------------------------------------------------------------------------
    def _key(self, key) -> list:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = [j for j, k in enumerate(key) if k is Ellipsis]
            if len(i) > 1:
                raise IndexError('an index can only have a single ellipsis')
            fill = len(self._shape) - (len(key) - 1)
            key = key[:i[0]] + (slice(None),) * max(fill, 0) + key[i[0] + 1:]
        out = []
        for k in key:
            if isinstance(k, slice):
                s = {}
                for f in ('start', 'stop', 'step'):
                    v = getattr(k, f)
                    if v is not None:
                        s[f] = int(v)
                out.append(s)
            elif isinstance(k, bool) or k is None:
                raise TypeError('gradserve indexing takes integers and slices, not %r' % (k,))
            elif isinstance(k, numbers.Integral) or (np is not None and isinstance(k, np.integer)):
                out.append(int(k))
            elif isinstance(k, NDArray) and k.size == 1:
                out.append(int(k.asscalar()))
            else:
                raise TypeError('gradserve indexing takes integers and slices (basic indexing), not %r'
                                % (type(k).__name__,))
        return out

    def __getitem__(self, key) -> 'NDArray':
        return _invoke('getitem', [self], {'key': self._key(key)})

    def __setitem__(self, key, value) -> None:
        """`x[key] = value` in place (MXNet's slice assignment): value an NDArray, array-like or number."""
        key = self._key(key)
        keep: list = []
        if isinstance(value, (NDArray, numbers.Number)) or (np is not None and isinstance(value, np.generic)):
            v = _arg(self._client, value, keep)
        else:
            if self._dtype is None:
                self._known()
            up = array(value, dtype=self._dtype, client=self._client)
            keep.append(up)
            v = up._name
        self._client.engine.enqueue({'op': 'slice_assign', 'args': [self._name, v], 'attrs': {'key': key}, 'into': self._name})
        del keep


def check_graphs(heads) -> None:
    """MXNet refuses a second backward through a freed graph when it is called; so do we."""
    for h in heads:
        if isinstance(h, NDArray) and h._freed:
            raise ConflictError('graph_freed: %s was already used as the head of a backward pass that freed its '
                                'graph; record it again, or pass retain_graph=True to the first backward' % h._name,
                                status=409, code='graph_freed')


# -- calling ops ----------------------------------------------------------------------------

def _is_arraylike(x) -> bool:
    return isinstance(x, (NDArray, list, tuple)) or (np is not None and isinstance(x, np.ndarray))


def _arg(client: Client, x, keep: list):
    """An op argument on the wire: a name, a number, or an inline constant / uploaded array."""
    if isinstance(x, NDArray):
        if x._client is not client:
            raise ValueError('NDArray %s belongs to another gradserve session' % x._name)
        return x._name
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, numbers.Number) or (np is not None and isinstance(x, np.generic)):
        return json_number(float(x)) if not isinstance(x, numbers.Integral) else int(x)
    if np is not None and isinstance(x, np.ndarray):
        if x.size <= INLINE_MAX and bool(np.isfinite(x).all()) and x.ndim > 0:
            return x.astype(float).tolist()
    elif isinstance(x, (list, tuple)):
        flat, shape = _flatten(x)
        if len(flat) <= INLINE_MAX and all(math.isfinite(v) for v in flat) and shape:
            return _nest(flat, shape)
    up = array(x, client=client)
    keep.append(up)
    return up._name


def _attr(v):
    if isinstance(v, NDArray):
        raise TypeError('an NDArray cannot be an attribute; pass it as an input')
    if isinstance(v, tuple):
        return [_attr(e) for e in v]
    if isinstance(v, list):
        return [_attr(e) for e in v]
    if isinstance(v, dict):
        return {k: _attr(e) for k, e in v.items()}
    if np is not None and isinstance(v, np.generic):
        return v.item()
    if isinstance(v, type) or (np is not None and isinstance(v, np.dtype)):
        return _dtype_name(v)
    if isinstance(v, float):
        return json_number(v)
    return v


def _nullable(schema: dict) -> bool:
    if not isinstance(schema, dict):
        return True
    t = schema.get('type')
    if t == 'null' or (isinstance(t, list) and 'null' in t):
        return True
    return any(_nullable_exact(s) for s in schema.get('anyOf', []) + schema.get('oneOf', []))


def _nullable_exact(s) -> bool:
    return isinstance(s, dict) and (s.get('type') == 'null' or (isinstance(s.get('type'), list) and 'null' in s['type']))


class _OpSpec:
    """What _invoke needs of an op's GET /v1/ops entry, worked out once per op (a training step
    calls a few ops thousands of times)."""
    __slots__ = ('name', 'inputs', 'positional', 'props', 'variadic', 'strict', 'dropped_none', 'outputs')

    def __init__(self, info: dict):
        self.name = info['name']
        self.inputs = tuple(info.get('inputs', []))
        self.positional = tuple(info.get('positional', []))
        schema = info.get('attrs') if isinstance(info.get('attrs'), dict) else {}
        self.props = schema.get('properties', {})
        self.variadic = bool(info.get('variadic'))
        self.strict = schema.get('additionalProperties') is False
        # Attributes whose None means MXNet's "not given": not sent.
        self.dropped_none = frozenset(k for k, v in self.props.items() if not _nullable(v))
        self.outputs = info.get('outputs', 1)


def _spec(client: Client, opname: str) -> '_OpSpec':
    specs = client._op_specs
    spec = specs.get(opname)
    if spec is None:
        ops = client.ops()
        info = ops.get(opname)
        if info is None:
            raise AttributeError('the gradserve server has no op %r (GET /v1/ops lists them)%s'
                                 % (opname, did_you_mean(opname, ops)))
        spec = specs[opname] = _OpSpec(info)
    return spec


def _invoke(opname: str, args: list, kwargs: dict, client: Client | None = None):
    """Runs one server op: positional arguments fill the op's `inputs`, then its `positional`
    attributes (as listed by GET /v1/ops); keywords name inputs or attributes. `out=` writes into an
    existing NDArray in place. Returns the output NDArray, a list of them for an op with several
    outputs (split, SliceChannel), or a float for `asscalar`."""
    if client is None:
        client = next((a._client for a in list(args) + list(kwargs.values()) if isinstance(a, NDArray)), None)
        if client is None:
            client = get_client()
    spec = _spec(client, opname)
    if spec.name == 'asscalar' and args and isinstance(args[0], NDArray) and len(args) == 1:
        return args[0].asscalar()
    out = None
    if kwargs:
        kwargs = dict(kwargs)
        out = kwargs.pop('out', None)
        kwargs.pop('name', None)
        kwargs.pop('ctx', None)
    inputs, positional = spec.inputs, spec.positional
    args = list(args)
    in_vals: list = []
    if spec.variadic:
        while args and _is_arraylike(args[0]):
            in_vals.append(args.pop(0))
        for nm in inputs:
            if nm in kwargs:
                v = kwargs.pop(nm)
                in_vals.extend(v if isinstance(v, (list, tuple)) else [v])
    else:
        n = min(len(inputs), len(args))
        in_vals, args = args[:n], args[n:]
        if kwargs:
            for nm in inputs[n:]:
                if nm in kwargs:
                    in_vals.append(kwargs.pop(nm))
                else:
                    break
            for nm in inputs:
                if nm in kwargs:
                    raise TypeError('%s() got input %r twice or out of order' % (opname, nm))
    if len(args) > len(positional):
        raise TypeError('%s() takes %d array inputs and %d positional attributes (%s), got %d more arguments'
                        % (opname, len(inputs), len(positional), ', '.join(positional), len(args) - len(positional)))
    attrs = dict(zip(positional, args))
    for k, v in kwargs.items():
        if k in attrs:
            raise TypeError('%s() got multiple values for %r' % (opname, k))
        attrs[k] = v
    if 'stype' in attrs:
        if attrs['stype'] not in (None, 'default'):
            raise NotImplementedError('gradserve arrays are dense: sparse storage (stype=%r) is out of scope' % (attrs['stype'],))
        del attrs['stype']
    if spec.strict:
        # Checked here, as MXNet checks arguments when the op is called, not when it runs.
        props = spec.props
        for k in attrs:
            if k not in props:
                raise UnprocessableError('invalid_attribute: %s() has no argument %r (it takes %s)%s'
                                         % (opname, k, ', '.join(inputs + tuple(sorted(props))) or 'none',
                                            did_you_mean(k, list(inputs) + list(props))),
                                         status=422, code='invalid_attribute')
    wire_attrs = {}
    for k, v in attrs.items():
        if k == 'dtype':
            v = _dtype_name(v)
        if v is None and (k in spec.dropped_none or k not in spec.props):
            continue  # MXNet's "not given"
        wire_attrs[k] = _attr(v)
    keep: list = []
    stmt = {'op': spec.name, 'args': [_arg(client, a, keep) for a in in_vals]}
    if wire_attrs:
        stmt['attrs'] = wire_attrs
    for a in in_vals:
        if isinstance(a, NDArray) and a._error is not None:
            raise a._error
    if out is not None:
        if not isinstance(out, NDArray):
            raise TypeError('out= must be an NDArray')
        stmt['into'] = out._name
        client.engine.enqueue(stmt)
        return out
    count = spec.outputs
    if isinstance(count, str):
        count = wire_attrs.get(count)
        if not isinstance(count, int) or count < 1:
            raise TypeError('%s() needs %s, an integer >= 1' % (opname, spec.outputs))
    names = [client.new_name() for _ in range(count)]
    stmt['out'] = names[0] if count == 1 else names
    outs = [NDArray(client, n, None, None) for n in names]
    client.engine.enqueue(stmt, outs)
    del keep
    return outs[0] if count == 1 else outs


# Copies of uploaded numpy arrays, reused by size. A training loop uploads a batch of the same
# size every step, and a fresh 800 KB bytes object per batch was mapped and page-faulted anew
# (cProfile of the book's softmax epoch: 0.125 s for its 470 uploads, 0.024 s with this). A buffer
# is reused only once nothing else holds it (the queued statement that sends it, a retry, the
# socket's write): its reference count says so.
_SNAPSHOTS: dict[int, list[bytearray]] = {}
_SNAPSHOT_MIN = 1 << 16  # smaller copies cost less than the bookkeeping
_SNAPSHOT_SIZES = 8      # distinct sizes kept, the least recently used dropped
_SNAPSHOT_PER_SIZE = 4


def _snapshot(arr):
    """The bytes of the C-contiguous numpy array `arr`, copied now (a later change to `arr` must
    not reach the server, as MXNet's nd.array copies at once)."""
    n = arr.nbytes
    if n < _SNAPSHOT_MIN:
        return arr.tobytes()
    free = _SNAPSHOTS.pop(n, [])
    _SNAPSHOTS[n] = free  # now the most recently used size
    if len(_SNAPSHOTS) > _SNAPSHOT_SIZES:
        del _SNAPSHOTS[next(iter(_SNAPSHOTS))]
    for buf in free:
        # References: the list, the loop variable and getrefcount's argument; any more is a user.
        if sys.getrefcount(buf) == 3:
            break
    else:
        if len(free) >= _SNAPSHOT_PER_SIZE:
            return arr.tobytes()
        buf = bytearray(n)
        free.append(buf)
    view = memoryview(buf)
    try:
        view[:] = memoryview(arr).cast('B')
    finally:
        view.release()
    return buf


def array(source, dtype=None, ctx=None, client: Client | None = None) -> NDArray:
    """An NDArray holding `source` (nested lists, a number, a numpy array or an NDArray).

    dtype defaults to float32 unless `source` is an NDArray, whatever a numpy source's dtype (as
    MXNet 1.x: `nd.array(np.zeros(3))` is float32)."""
    client = client or (source._client if isinstance(source, NDArray) else None) or get_client()
    if isinstance(source, NDArray):
        a = _invoke('copy', [source], {}, client=client)
        return a.astype(dtype) if dtype is not None and _dtype_name(dtype) != a._dtype else a
    if np is not None and isinstance(source, np.ndarray):
        dt = _dtype_name(dtype) if dtype is not None else 'float32'
        arr = np.ascontiguousarray(source, dtype=np.dtype(dt).newbyteorder('<'))
        shape = tuple(arr.shape) or (1,)
        raw = _snapshot(arr)
    else:
        dt = _dtype_name(dtype) if dtype is not None else 'float32'
        flat, shape = _flatten(source)
        shape = shape or (1,)
        if dt in _INT_BITS:
            flat = [_to_int(v, dt) for v in flat]
        elif dt == 'float16':
            # struct refuses what rounds past 65504; the server's conversion makes it infinite.
            flat = [v if not math.isfinite(v) or abs(v) < 65520 else math.copysign(math.inf, v) for v in flat]
        raw = struct.pack('<%d%s' % (len(flat), _STRUCT[dt]), *flat)
    piece = client.max_queued_bytes()
    if len(raw) <= piece:
        name = client.new_name()
        out = NDArray(client, name, shape, dt)
        client.engine.enqueue({'op': 'frombuffer', 'attrs': {'part': Part(raw), 'shape': list(shape), 'dtype': dt},
                               'out': name}, [out], len(raw))
        return out
    # Larger than a request body may be: sent in pieces (the queue goes out as they fill it),
    # joined on the server, so the array's size is bounded by the session's quota, not the body's.
    item = _DTYPE_BYTES[dt]
    step = max(1, piece // item) * item
    parts = []
    progress = Progress('uploading %s %s' % ('x'.join(map(str, shape)), dt), len(raw))
    for off in range(0, len(raw), step):
        chunk = raw[off:off + step]
        p = NDArray(client, client.new_name(), (len(chunk) // item,), dt)
        # Each piece that fills the queue sends it: progress counts what has left.
        client.engine.enqueue({'op': 'frombuffer', 'attrs': {'part': Part(chunk), 'shape': [len(chunk) // item],
                                                             'dtype': dt}, 'out': p._name}, [p], len(chunk))
        parts.append(p)
        progress.update(off + len(chunk) - client.engine.bytes)
    out = _invoke('reshape', [_invoke('concat', parts, {'dim': 0})], {'shape': list(shape)})
    client.engine.flush()
    progress.close()
    return out
