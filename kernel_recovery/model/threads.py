"""Thread use: BLAS threads scoped to a block of code, and the number of worker threads to start.

The BLAS thread count is process-wide state, so scopes opened from several threads at once (a Dask threaded
run, a user's thread pool) share one setting: a module-level lock and depth counter make the first scope in
save the count and the last scope out restore it, however the threads interleave.  A *serial region* marks
code that already runs in parallel with copies of itself (a Dask task): inside it the BLAS is serial and
:func:`workers` and :func:`fft_workers` return 1, so nested parallelism does not oversubscribe the cores.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
from collections.abc import Iterator
from typing import Literal

import threadpoolctl
from threadpoolctl import OpenBLASController, ThreadpoolController

_lock = threading.Lock()
_depth = 0  # SerialBLAS scopes open in the process, all threads together
_limiter = None  # threadpoolctl's record of the counts to restore, held while _depth > 0
_controller = None
_modules_seen = -1  # len(sys.modules) when _controller was built: new imports may load new BLAS libraries
_in_serial_region = contextvars.ContextVar("kernel_recovery_serial_region", default=False)
_tiny = contextvars.ContextVar("kernel_recovery_tiny_problem", default=False)

#: A problem whose design has at most this many entries (rows x columns, all blocks) is *tiny*: its BLAS and
#: LAPACK calls are far below the sizes at which OpenBLAS starts threads, so :class:`SerialBLAS` leaves the
#: thread count alone inside :func:`tiny_problem` (switching it costs more than such a fit).
TINY_DESIGN = 1 << 14


def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries (called under ``_lock``)."""
    global _controller, _modules_seen
    if _controller is None or len(sys.modules) != _modules_seen:
        _modules_seen = len(sys.modules)
        _controller = ThreadpoolController().select(user_api="blas")
    return _controller


def _release_control() -> None:
    """Let any thread set OpenBLAS's count next (threadpoolctl >= 3.8 ignores all but the last thread to set it).

    The last scope out, in whatever thread, must be able to restore what the first scope in saved.  A thread
    inside its own ``threadpool_limits`` block keeps control (the user's limit stays in charge).
    """
    own_blocks = getattr(getattr(threadpoolctl, "CONTROLLING_THREAD_OWNERSHIP", None), "count", 0)
    if own_blocks == 0 and hasattr(OpenBLASController, "clear_controlling_thread"):
        OpenBLASController.clear_controlling_thread()  # a no-op unless this thread holds control


class SerialBLAS:
    """Context manager: the BLAS libraries (OpenBLAS, MKL, BLIS, ...) run single-threaded inside the block.

    Small LAPACK/BLAS calls (``eigh`` of a few-hundred-square Gram, the GEMMs of the lagged correlations) gain
    nothing from BLAS threads and slow down many-fold when the cores are shared; the lagged-correlation chunks
    are spread over Python threads instead (``matmul`` releases the GIL).

    Notes
    -----
    The count is process-wide, so it is 1 while *any* thread is inside a scope; the first scope entered saves
    the counts (through threadpoolctl) and the last one left restores them. Scopes nest and may be entered
    and left from any threads in any order; an instance holds no state and can be reused. While another
    thread is inside a ``threadpoolctl.threadpool_limits`` block, threadpoolctl (>= 3.8) keeps OpenBLAS at
    that block's count: the user's explicit limit wins.
    """

    def __enter__(self) -> SerialBLAS:
        global _depth, _limiter
        if _tiny.get():  # BLAS runs such calls on one thread anyway
            return self
        with _lock:
            if _depth == 0:
                controller = _blas_controller()
                # no BLAS found, or every BLAS already serial (a one-thread build, *_NUM_THREADS=1): nothing to
                # switch, so a small call does not pay threadpoolctl's save and restore (~15 us) each time
                if any(lib.get_num_threads() != 1 for lib in controller.lib_controllers):
                    _limiter = controller.limit(limits=1)
                    _release_control()
            _depth += 1
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        global _depth, _limiter
        if _tiny.get():  # (set on entry too: the scopes of tiny_problem nest with these)
            return False
        with _lock:
            _depth -= 1
            if _depth == 0 and _limiter is not None:
                _limiter.restore_original_limits()
                _release_control()
                _limiter = None
        return False


@contextlib.contextmanager
def serial_region() -> Iterator[None]:
    """Mark code that runs in parallel with other work (a Dask task): serial BLAS, ``workers() == 1``.

    Usable as ``with serial_region():`` or as a decorator. The mark is a context variable, so it covers the
    current thread (or asyncio task) only, not threads started inside the region.

    Examples
    --------
    >>> from kernel_recovery.model.threads import fft_workers, serial_region, workers
    >>> with serial_region():
    ...     workers(), fft_workers()
    (1, 1)
    """
    token = _in_serial_region.set(True)
    try:
        with SerialBLAS():
            yield
    finally:
        _in_serial_region.reset(token)


@contextlib.contextmanager
def tiny_problem(tiny: bool = True) -> Iterator[None]:
    """Mark the work of one tiny problem (see :data:`TINY_DESIGN`): :class:`SerialBLAS` scopes opened in it, in this
    thread, do not switch the BLAS thread count.  ``tiny=False`` marks nothing (so callers need not branch)."""
    if not tiny:
        yield
        return
    token = _tiny.set(True)
    try:
        yield
    finally:
        _tiny.reset(token)


def _usable_cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def workers() -> int:
    """Python threads worth running for parallel numpy work here (the usable cores, at most 8; 1 in a serial region)."""
    return 1 if _in_serial_region.get() else min(_usable_cores(), 8)


def fft_workers() -> int:
    """The ``workers`` argument for ``scipy.fft`` here: the usable cores, 1 in a serial region."""
    return 1 if _in_serial_region.get() else _usable_cores()
