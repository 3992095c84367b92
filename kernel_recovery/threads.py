"""Thread use: BLAS threads scoped to a block of code, and the number of worker threads to start."""

from __future__ import annotations

import numpy as np


class SerialBLAS:
    """Context manager: NumPy's OpenBLAS runs single-threaded inside the block (restored after), where found.

    Small LAPACK/BLAS calls (``eigh`` of a few-hundred-square Gram, the GEMMs below) gain nothing from OpenBLAS
    threads and slow down many-fold when the cores are shared; the lagged-correlation chunks are spread over
    Python threads instead (``matmul`` releases the GIL).
    """

    _funcs: tuple | None = None
    _searched = False

    @classmethod
    def _find(cls):
        if cls._searched:
            return cls._funcs
        cls._searched = True
        try:
            import ctypes
            import pathlib

            libs = pathlib.Path(np.__file__).resolve().parent.parent / "numpy.libs"
            for path in sorted(libs.glob("*openblas*")):
                lib = ctypes.CDLL(str(path))
                for get, put in (
                    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
                    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
                    ("openblas_get_num_threads", "openblas_set_num_threads"),
                ):
                    if hasattr(lib, get) and hasattr(lib, put):
                        getter, setter = getattr(lib, get), getattr(lib, put)
                        getter.restype = ctypes.c_int
                        setter.argtypes = [ctypes.c_int]
                        cls._funcs = (getter, setter)
                        return cls._funcs
        except OSError:  # no bundled OpenBLAS (MKL, Accelerate, a system BLAS): leave threading alone
            pass
        return None

    def __enter__(self):
        funcs = self._find()
        self._saved = None
        if funcs is not None:
            self._saved = funcs[0]()
            funcs[1](1)
        return self

    def __exit__(self, *exc):
        if self._saved is not None:
            self._funcs[1](self._saved)
        return False


def workers() -> int:
    """Python threads worth running for parallel numpy work here (the usable cores, at most 8)."""
    import os

    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8))
