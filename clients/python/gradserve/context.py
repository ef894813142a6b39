"""MXNet's device contexts: every gradserve array lives on the server's CPU."""
from __future__ import annotations


class Context:
    """MXNet's device context: every gradserve array lives on the server's CPU."""

    def __init__(self, device_type: str = 'cpu', device_id: int = 0):
        self.device_type, self.device_id = device_type, device_id

    def __repr__(self) -> str:
        return '%s(%d)' % (self.device_type, self.device_id)

    def __eq__(self, other) -> bool:
        return isinstance(other, Context) and (other.device_type, other.device_id) == (self.device_type, self.device_id)

    def __hash__(self) -> int:
        return hash((self.device_type, self.device_id))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def cpu(device_id: int = 0) -> Context:
    return Context('cpu', device_id)


def gpu(device_id: int = 0):
    raise NotImplementedError('gradserve computes on the server\'s CPU: there is no gpu() context')


def current_context() -> Context:
    return cpu()
