"""Errors: every problem+json answer of the server becomes a GradserveError carrying its fields."""
from __future__ import annotations


class GradserveError(Exception):
    """An error answered by the server (problem+json) or met while talking to it.

    Attributes: ``status`` (HTTP status, or None for network errors), ``code`` (the server's
    stable machine-readable word, e.g. ``shape_mismatch``), ``title``, ``detail``, ``type`` and
    ``problem`` (the whole problem document)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 title: str | None = None, detail: str | None = None, type: str | None = None,
                 problem: dict | None = None, method: str | None = None, url: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail if detail is not None else message
        self.type = type
        self.problem = problem or {}
        self.method = method
        self.url = url


class GradserveConnectionError(GradserveError, ConnectionError):
    """The server could not be reached (the message names the URL tried)."""


class BadRequestError(GradserveError, ValueError):
    """400: malformed or schema-invalid request."""


class UnauthorizedError(GradserveError, PermissionError):
    """401: no or wrong token / API key."""


class NotFoundError(GradserveError, LookupError):
    """404: unknown session, array or tape."""


class ConflictError(GradserveError):
    """409: autograd state conflict (graph_freed, no_graph, no_grad, inplace_on_recorded, ...)."""


class PayloadTooLargeError(GradserveError):
    """413: body or array too large."""


class UnprocessableError(GradserveError, ValueError):
    """422: a well-formed op that cannot run (shapes, attributes, dtypes, unknown op)."""


class RateLimitError(GradserveError):
    """429: a quota or rate limit; ``retry_after`` holds the server's hint in seconds."""
    retry_after: float | None = None


class ServerError(GradserveError):
    """5xx: the server failed."""


_BY_STATUS = {400: BadRequestError, 401: UnauthorizedError, 403: UnauthorizedError,
              404: NotFoundError, 409: ConflictError, 413: PayloadTooLargeError,
              422: UnprocessableError, 429: RateLimitError}


def error_for(status: int, problem: dict, method: str, url: str) -> GradserveError:
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else GradserveError)
    code = problem.get('code') if isinstance(problem, dict) else None
    detail = problem.get('detail') if isinstance(problem, dict) else None
    title = problem.get('title') if isinstance(problem, dict) else None
    # What went wrong comes first; where (method, URL) is kept on the error's attributes.
    msg = '%s: %s' % (code or title or 'HTTP %d' % status, detail or title or '')
    state = problem.get('session_state') if isinstance(problem, dict) else None
    if status == 404 and (state or (isinstance(detail, str) and detail.startswith('there is no session'))):
        msg += (' (the session %s: its arrays are gone; gradserve.connect() opens a new session on next use)'
                % ({'expired': 'expired', 'deleted': 'was deleted'}.get(state, 'expired or was deleted')))
    return cls(msg, status=status, code=code, title=title, detail=detail,
               type=problem.get('type') if isinstance(problem, dict) else None,
               problem=problem if isinstance(problem, dict) else {}, method=method, url=url)
