"""One-thread BLAS/OpenMP sections, so floating-point results do not depend on core count.

Private. A single :class:`threadpoolctl.ThreadpoolController` is built on first use (after
numpy, scipy and scikit-learn have loaded their native libraries) because building one scans
every loaded library, which costs about a millisecond; reusing it makes a limit ~15 µs.
The limit is process-wide while it is held: a service that trains in several threads at once
should also start with ``OMP_NUM_THREADS=1`` and ``OPENBLAS_NUM_THREADS=1``.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from typing import Any

from threadpoolctl import ThreadpoolController

__all__ = ["single_thread"]

_lock = threading.Lock()
_controller: ThreadpoolController | None = None


def single_thread() -> AbstractContextManager[Any]:
    """A context manager that limits native thread pools to one thread."""
    global _controller
    with _lock:
        if _controller is None:
            _controller = ThreadpoolController()
        controller = _controller
    return controller.limit(limits=1)
