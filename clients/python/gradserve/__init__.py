"""gradserve: MXNet's `autograd` and `nd` against a gradserve server.

    from gradserve import autograd, nd
    import gradserve as mx      # code written for `import mxnet as mx` runs as written

The server is $GRADSERVE_URL (default http://127.0.0.1:8080) or the one given to
`gradserve.connect(url, api_key=None, seed=None)`. A session is opened on first use and deleted at
interpreter exit. $GRADSERVE_SEED seeds the session's random stream, $GRADSERVE_API_KEY is sent
as X-API-Key."""
from ._client import Client, connect, disconnect, get_client
from ._errors import (BadRequestError, ConflictError, GradserveConnectionError, GradserveError,
                      NotFoundError, PayloadTooLargeError, RateLimitError, ServerError,
                      UnauthorizedError, UnprocessableError)
from . import autograd, nd
from . import random, test_utils
from .ndarray import NDArray

__version__ = '0.1.0'
ndarray = nd


from .context import Context, cpu, current_context, gpu  # noqa: E402


def waitall() -> None:
    nd.waitall()


def __getattr__(attr):
    if attr in ('gluon', 'sym', 'symbol', 'module', 'mod', 'init', 'initializer', 'optimizer'):
        raise AttributeError('mxnet.%s is out of scope for gradserve (nd and autograd only; Gluon and '
                             'symbols are not served)' % attr)
    raise AttributeError('module gradserve has no attribute %r' % attr)

__all__ = ['autograd', 'nd', 'ndarray', 'random', 'test_utils', 'cpu', 'gpu', 'Context', 'waitall', 'NDArray', 'Client', 'connect', 'disconnect', 'get_client',
           'GradserveError', 'GradserveConnectionError', 'BadRequestError', 'UnauthorizedError',
           'NotFoundError', 'ConflictError', 'PayloadTooLargeError', 'UnprocessableError',
           'RateLimitError', 'ServerError']
