"""gradserve: MXNet's `autograd` and `nd` against a gradserve server.

    from gradserve import autograd, nd

The server is $GRADSERVE_URL (default http://127.0.0.1:8080) or the one given to
`gradserve.connect(url, api_key=None, seed=None)`. A session is opened on first use and deleted at
interpreter exit. $GRADSERVE_SEED seeds the session's random stream, $GRADSERVE_API_KEY is sent
as X-API-Key."""
from ._client import Client, connect, disconnect, get_client
from ._errors import (BadRequestError, ConflictError, GradserveConnectionError, GradserveError,
                      NotFoundError, PayloadTooLargeError, RateLimitError, ServerError,
                      UnauthorizedError, UnprocessableError)
from . import autograd, nd
from .ndarray import NDArray

__version__ = '0.1.0'

__all__ = ['autograd', 'nd', 'NDArray', 'Client', 'connect', 'disconnect', 'get_client',
           'GradserveError', 'GradserveConnectionError', 'BadRequestError', 'UnauthorizedError',
           'NotFoundError', 'ConflictError', 'PayloadTooLargeError', 'UnprocessableError',
           'RateLimitError', 'ServerError']
