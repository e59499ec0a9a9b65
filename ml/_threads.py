"""One-thread BLAS/OpenMP, so floating-point results do not depend on core count.

Private. :func:`pin_one_thread` limits the process's native thread pools (OpenBLAS, OpenMP...)
to one thread *from then on*, before the first fit or prediction. It used to be a limit held
around each fit and prediction, then lifted; that was wrong twice over in a service that
predicts in several threads at once:

* the limit is process-wide, so a thread that lifted it at the end of its prediction gave the
  pools their threads back while another thread was still inside its own, whose result could
  then depend on the core count after all;
* each limit and lift made about a dozen ``ctypes`` calls, each of which gives up the GIL: with
  four request threads and the event loop contending for it, that cost ~80 µs of CPU per
  prediction (measured: 4 threads predicting 100 rows with a ridge, 190 µs a call with the
  limit against 105 without), 7% of a 100-row request's CPU in the service.

Pinning once is what the old docstring already asked of a service that trains in several
threads (``OMP_NUM_THREADS=1``, ``OPENBLAS_NUM_THREADS=1``). Training runs in processes of its
own (:mod:`ml.training_pool`), so nothing in a service wants the pools' other threads. A
library loaded after the pin is not limited (as before: the controller was always built once,
at first use, after numpy, scipy and scikit-learn have loaded theirs).
"""

from __future__ import annotations

import threading

from threadpoolctl import ThreadpoolController

__all__ = ["pin_one_thread"]

_lock = threading.Lock()
_pinned = False


def pin_one_thread() -> None:
    """Limit the process's native thread pools to one thread, for good (idempotent, cheap
    after the first call)."""
    global _pinned
    if _pinned:
        return
    with _lock:
        if not _pinned:
            ThreadpoolController().limit(limits=1)  # never lifted: see the module docstring
            _pinned = True
