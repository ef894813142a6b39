"""MXNet 1.x's printed form of an NDArray.

MXNet prints ``'\\n%s\\n<NDArray %s @%s>' % (str(self.asnumpy()), 'x'.join(shape), ctx)``, so the body is
NumPy's ``str()`` of a float array.  When NumPy is importable we use NumPy itself; otherwise this
module re-implements the rules of ``numpy.array2string`` for float arrays with NumPy's default print
options (precision 8, ``floatmode='maxprec'``, no small-number suppression, line width 75,
summarisation above 1000 elements with 3 edge items).
"""
from __future__ import annotations

import math
import struct
from decimal import ROUND_HALF_EVEN, Context, Decimal

PRECISION = 8
LINEWIDTH = 75
THRESHOLD = 1000
EDGEITEMS = 3


_NARROW = {'float32': 'f', 'float16': 'e'}
INT_DTYPES = ('int32', 'int64', 'uint8')


def _to_dtype(x: float, dtype: str) -> float:
    """Rounds a Python float to the nearest value of `dtype` (float32 and float16 through struct)."""
    code = _NARROW.get(dtype)
    if code and math.isfinite(x):
        try:
            return struct.unpack('<' + code, struct.pack('<' + code, x))[0]
        except OverflowError:
            return math.copysign(math.inf, x)
    return x


def _shortest(x: float, dtype: str) -> str:
    """The shortest decimal string that reads back as `x` in `dtype` (finite x)."""
    if dtype not in _NARROW:
        return repr(x)
    for p in range(1, 10):
        s = '%.*g' % (p, x)
        if _to_dtype(float(s), dtype) == x:
            return s
    return '%.9g' % x


class _IntFormat:
    """NumPy's IntegerFormat: every element right-aligned to the widest shown one."""

    def __init__(self, values: list, dtype: str):
        self.width = max((len(str(int(v))) for v in values), default=0)

    def __call__(self, x) -> str:
        return str(int(x)).rjust(self.width)


def _positional(x: float, dtype: str, precision: int) -> tuple[str, str]:
    """Dragon4 positional, unique digits, at most `precision` fractional digits, trim '.'.

    Returns (integer part with sign, fractional part without trailing zeros)."""
    d = Decimal(_shortest(x, dtype))
    if d.as_tuple().exponent < -precision:  # too many fractional digits: round the exact value
        d = Decimal(x).quantize(Decimal(1).scaleb(-precision), rounding=ROUND_HALF_EVEN)
    s = format(d, 'f')
    if s.startswith('-') is False and math.copysign(1.0, x) < 0:
        s = '-' + s  # -0.0
    if '.' in s:
        ip, fp = s.split('.')
        fp = fp.rstrip('0')
    else:
        ip, fp = s, ''
    return ip, fp


def _scientific(x: float, dtype: str, precision: int, min_digits: int = 0) -> tuple[str, str, int]:
    """Dragon4 scientific: unique digits, at most `precision` digits after the point; with
    `min_digits`, digits of the exact value past the unique ones up to that many (as NumPy does).

    Returns (sign and leading digit, fractional digits without trailing zeros, exponent)."""
    neg = math.copysign(1.0, x) < 0
    if x == 0:
        return ('-0' if neg else '0'), '', 0
    d = abs(Decimal(_shortest(x, dtype)))
    ndigits = len(d.normalize().as_tuple().digits)
    if ndigits > precision + 1 or ndigits < min_digits + 1:
        # round the exact value to the number of significant digits wanted
        want = precision + 1 if ndigits > precision + 1 else min_digits + 1
        d = Context(prec=want, rounding=ROUND_HALF_EVEN).plus(abs(Decimal(x)))
    t = d.normalize().as_tuple()
    ds = ''.join(map(str, t.digits))
    exp = len(ds) - 1 + t.exponent
    lead, frac = ds[0], ds[1:].rstrip('0')
    return ('-' if neg else '') + lead, frac, exp


class _FloatFormat:
    """NumPy's FloatingFormat for one array (maxprec, sign='-')."""

    def __init__(self, values: list[float], dtype: str):
        self.dtype = dtype
        finite = [v for v in values if math.isfinite(v)]
        nonzero = [abs(v) for v in finite if v != 0]
        self.exp_format = False
        if nonzero:
            mx, mn = max(nonzero), min(nonzero)
            ratio = _to_dtype(mx / mn, dtype) if mn else math.inf
            # NumPy >= 2.2: 10**min(8, finfo(dtype).precision), i.e. 1e3 for float16, 1e6 for
            # float32, 1e8 for float64 (NumPy 1.x, which MXNet 1.x used, had 1e8 for all).
            cutoff = {'float16': 1e3, 'float32': 1e6}.get(dtype, 1e8)
            if (mx >= cutoff or mn < _to_dtype(0.0001, dtype)
                    or ratio > 1000.0):
                self.exp_format = True
        if not finite:
            self.pad_left = self.pad_right = 0
            self.precision = PRECISION
            self.min_digits = 0
            self.exp_size = -1
        elif self.exp_format:
            parts = [_scientific(v, dtype, PRECISION) for v in finite]
            self.precision = self.min_digits = max(len(f) for _, f, _ in parts)
            self.exp_size = max(len('%02d' % abs(e)) for _, _, e in parts)
            self.pad_left = max(len(i) for i, _, _ in parts)
            self.pad_right = self.exp_size + 2 + self.precision
        else:
            parts = [_positional(v, dtype, PRECISION) for v in finite]
            self.pad_left = max(len(i) for i, _ in parts)
            self.pad_right = max(len(f) for _, f in parts)
            self.precision = PRECISION
            self.min_digits = 0
            self.exp_size = -1
        if len(finite) != len(values):
            neginf = any(v == -math.inf for v in values)
            offset = self.pad_right + 1
            self.pad_left = max(self.pad_left, 3 - offset, 3 + neginf - offset)

    def __call__(self, x: float) -> str:
        if not math.isfinite(x):
            ret = 'nan' if math.isnan(x) else ('-inf' if x < 0 else 'inf')
            return ' ' * (self.pad_left + self.pad_right + 1 - len(ret)) + ret
        if self.exp_format:
            ip, fp, e = _scientific(x, self.dtype, self.precision, self.min_digits)
            fp = fp[:self.precision].ljust(self.min_digits, '0')
            es = str(abs(e)).rjust(max(self.exp_size, 0), '0')
            return ip.rjust(self.pad_left) + '.' + fp + 'e' + ('-' if e < 0 else '+') + es
        ip, fp = _positional(x, self.dtype, self.precision)
        return ip.rjust(self.pad_left) + '.' + fp.ljust(self.pad_right)


def _extend_line(s: str, line: str, word: str, width: int, prefix: str) -> tuple[str, str]:
    needs_wrap = len(line) + len(word) > width
    if len(line) <= len(prefix):  # wrapping would not help
        needs_wrap = False
    if needs_wrap:
        s += line.rstrip() + '\n'
        line = prefix
    return s, line + word


def array2string(flat: list[float], shape: tuple[int, ...], dtype: str = 'float32') -> str:
    """``str(numpy.array(flat, dtype).reshape(shape))`` without NumPy (float arrays)."""
    shape = tuple(shape)
    size = 1
    for n in shape:
        size *= n
    if size == 0:
        return '[]'
    Format = _IntFormat if dtype in INT_DTYPES else _FloatFormat
    if not shape:
        return Format(flat, dtype)(flat[0])
    summarise = size > THRESHOLD
    strides = []
    acc = 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    strides.reverse()

    def shown(axis: int) -> list[int]:
        n = shape[axis]
        if summarise and n > 2 * EDGEITEMS:
            return list(range(EDGEITEMS)) + list(range(n - EDGEITEMS, n))
        return list(range(n))

    # The values the format is fitted to: the shown ones only (NumPy's _leading_trailing).
    offsets = [0]
    for axis in range(len(shape)):
        offsets = [o + i * strides[axis] for o in offsets for i in shown(axis)]
    fmt = Format([flat[o] for o in offsets], dtype)
    sep = ' '

    def rec(axis: int, offset: int, hanging: str, width: int) -> str:
        axes_left = len(shape) - axis
        n = shape[axis]
        show_summary = summarise and 2 * EDGEITEMS < n
        lead = EDGEITEMS if show_summary else 0
        trail = EDGEITEMS if show_summary else n
        next_hanging = hanging + ' '
        next_width = width - 1
        idx = list(range(lead)) + list(range(n - trail, n))
        if axes_left == 1:
            elem_width = width - max(len(sep.rstrip()), 1)
            s, line = '', hanging
            for k, i in enumerate(idx):
                word = fmt(flat[offset + i * strides[axis]])
                last = k == len(idx) - 1
                if show_summary and k == lead:
                    s, line = _extend_line(s, line, '...', elem_width, hanging)
                    line += sep
                s, line = _extend_line(s, line, word, elem_width, hanging)
                if not last:
                    line += sep
            s += line
        else:
            s = ''
            line_sep = sep.rstrip() + '\n' * (axes_left - 1)
            for k, i in enumerate(idx):
                if show_summary and k == lead:
                    s += hanging + '...' + line_sep
                nested = rec(axis + 1, offset + i * strides[axis], next_hanging, next_width)
                s += hanging + nested
                if k != len(idx) - 1:
                    s += line_sep
        return '[' + s[len(hanging):] + ']'

    return rec(0, 0, ' ', LINEWIDTH)


def describe(shape, dtype: str, device: str = 'gradserve') -> str:
    return '<NDArray %s @%s>' % ('x'.join('%d' % n for n in shape), device)
