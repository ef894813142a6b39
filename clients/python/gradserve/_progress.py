"""Progress of long transfers: a bar on a terminal, an updating line in a notebook, nothing when
output goes to a file or a pipe (logs and CI stay clean)."""
from __future__ import annotations

import os
import sys
import time


def _in_notebook() -> bool:
    shell = sys.modules.get('IPython')
    try:
        return shell is not None and type(shell.get_ipython()).__name__ == 'ZMQInteractiveShell'
    except Exception:
        return False


class Progress:
    """Reports `done` of `total` bytes under `label`; shown only after `delay` seconds, so quick
    transfers print nothing. GRADSERVE_PROGRESS=0 turns it off, =1 forces the terminal form at
    once (on any stream)."""

    def __init__(self, label: str, total: int, delay: float = 0.5, stream=None):
        self.label, self.total, self.delay = label, total, delay
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.done = 0
        setting = os.environ.get('GRADSERVE_PROGRESS')
        if setting == '0':
            self.mode = None
        elif _in_notebook():
            self.mode = 'notebook'
        elif setting == '1':
            self.mode, self.delay = 'terminal', 0.0
        elif getattr(self.stream, 'isatty', lambda: False)():
            self.mode = 'terminal'
        else:
            self.mode = None
        self._handle = None

    def _text(self) -> str:
        frac = self.done / self.total if self.total else 1.0
        mb = 1 << 20
        rate = self.done / max(time.monotonic() - self.start, 1e-9) / mb
        return '%s: %5.1f%% (%d of %d MiB, %.0f MiB/s)' % (self.label, 100 * frac, self.done // mb, self.total // mb, rate)

    def update(self, done: int) -> None:
        self.done = done
        if self.mode is None or time.monotonic() - self.start < self.delay:
            return
        if self.mode == 'terminal':
            width = 30
            filled = int(width * self.done / self.total) if self.total else width
            self.stream.write('\r[%s%s] %s' % ('#' * filled, '.' * (width - filled), self._text()))
            self.stream.flush()
        else:
            from IPython.display import display
            if self._handle is None:
                self._handle = display(self._text(), display_id=True)
            else:
                self._handle.update(self._text())

    def close(self) -> None:
        shown = self.mode is not None and time.monotonic() - self.start >= self.delay
        self.update(self.total)
        if shown and self.mode == 'terminal':
            self.stream.write('\n')
            self.stream.flush()
