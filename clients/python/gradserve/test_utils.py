"""`mx.test_utils`: the comparisons MXNet's own tests use, on NDArrays, numpy arrays or numbers."""
from __future__ import annotations

from .ndarray import NDArray, np


def _values(a):
    if isinstance(a, NDArray):
        return a.asnumpy()
    return np.asarray(a)


def assert_almost_equal(a, b, rtol=None, atol=None, names=('a', 'b'), equal_nan=False, **_ignored):
    """Raises AssertionError unless |a - b| <= atol + rtol * |b| everywhere (MXNet's defaults:
    rtol 1e-5, atol 1e-20)."""
    if np is None:
        raise ImportError('assert_almost_equal needs numpy')
    a, b = _values(a), _values(b)
    np.testing.assert_allclose(a, b, rtol=1e-5 if rtol is None else rtol, atol=1e-20 if atol is None else atol,
                               equal_nan=equal_nan, err_msg='%s and %s differ' % tuple(names[:2]))


def same(a, b) -> bool:
    return bool(np.array_equal(_values(a), _values(b)))
