"""`mx.random`: the session's random stream (seed) and its draws (`random.normal`, `random.uniform`)."""
from __future__ import annotations

from ._client import get_client
from . import nd


def seed(seed_state: int, ctx=None) -> None:
    """Restarts the session's random stream from `seed_state` (MXNet's mx.random.seed)."""
    client = get_client()
    client.engine.flush()  # draws queued before the call come from the old stream
    client.session('POST', '/random/seed', {'seed': int(seed_state)})


def __getattr__(attr):  # normal, uniform, ... as nd.random has them
    if attr.startswith('__'):
        raise AttributeError(attr)
    return getattr(nd.random, attr)
