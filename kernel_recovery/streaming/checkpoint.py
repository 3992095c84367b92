"""The checkpoint format of :class:`~kernel_recovery.NormalEquations`: plain arrays in an ``.npz``, no pickles.

An accumulator's state is a dict of NumPy arrays, plain scalars and strings (``NormalEquations.to_state``);
this module writes such a dict atomically, reads it back, and reads its entries with their types and shapes
checked, so that a corrupted, truncated or foreign file is a ``ValueError`` naming the key, never an object
from a pickle.
"""

from __future__ import annotations

import os
import zipfile
from typing import Any

import numpy as np

from ..model.statistics import Statistics

#: The version of the checkpoint format written by :meth:`NormalEquations.save` (``load`` refuses others).
STATE_VERSION = 1
#: The ``format`` entry of every checkpoint.
STATE_FORMAT = "kernel_recovery.NormalEquations"


def write_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` as an ``.npz`` (no pickles), atomically: a crash leaves the old file."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in state.items()})  # type: ignore[arg-type]
    os.replace(tmp, path)


def read_state(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The entries of a checkpoint file; a ValueError for a file that is not a readable ``.npz`` (no pickles)."""
    try:
        with open(os.fspath(path), "rb") as f, np.load(f, allow_pickle=False) as data:
            state = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{os.fspath(path)!r} is not a readable NormalEquations checkpoint: {exc}") from None
    if not isinstance(state, dict):  # np.load of a .npy file gives an array
        raise ValueError(f"{os.fspath(path)!r} is not a NormalEquations checkpoint (.npz).")
    return state


def pack(arrays: list[np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Stretches of rows as one ``(n, width)`` array and their lengths (:func:`unpack` splits them again)."""
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    return (np.concatenate(arrays) if arrays else np.zeros((0, width))), lengths


def unpack(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """The stretches :func:`pack` joined; a ValueError when the lengths do not add up to the rows."""
    if np.any(lengths < 0) or int(lengths.sum()) != len(flat):
        raise ValueError(
            f"a checkpoint's stretch lengths add up to {int(lengths.sum())}, but it holds {len(flat)} rows."
        )
    return [np.array(a) for a in np.split(flat, np.cumsum(lengths)[:-1])] if len(lengths) else []


def statistics_state(prefix: str, st: Statistics) -> dict[str, Any]:
    """The entries of one group's statistics (:meth:`StateReader.statistics` reads them)."""
    return {
        f"{prefix}gram": np.array(st.gram),
        f"{prefix}cross": np.array(st.cross),
        f"{prefix}yty": np.array(st.yty),
        f"{prefix}n_rows": st.n_rows,
    }


class StateReader:
    """Typed, shape-checked reads of a checkpoint dict; every problem a ValueError naming the key."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def _get(self, key: str) -> np.ndarray:
        if key not in self.state:
            raise ValueError(f"the checkpoint is missing `{key}` (an incomplete or foreign file).")
        return np.asarray(self.state[key])

    def text(self, key: str) -> str:
        v = self._get(key)
        if v.ndim or v.dtype.kind != "U":
            raise ValueError(f"the checkpoint's `{key}` must be a string, got {v.dtype} with shape {v.shape}.")
        return str(v)

    def number(self, key: str) -> float:
        v = self._get(key)
        if v.ndim or v.dtype.kind not in "biuf":
            raise ValueError(f"the checkpoint's `{key}` must be a number, got {v.dtype} with shape {v.shape}.")
        return float(v)

    def integer(self, key: str) -> int:
        v = self._get(key)
        if v.ndim or v.dtype.kind not in "biu":
            raise ValueError(f"the checkpoint's `{key}` must be an integer, got {v.dtype} with shape {v.shape}.")
        return int(v)

    def flag(self, key: str) -> bool:
        return bool(self.integer(key))

    def array(self, key: str, shape: tuple[int | None, ...]) -> np.ndarray:
        v = self._get(key)
        ok = (
            v.dtype.kind in "biuf" and v.ndim == len(shape) and all(s is None or s == n for s, n in zip(shape, v.shape))
        )
        if not ok:
            want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
            raise ValueError(
                f"the checkpoint's `{key}` must be a numeric array of shape {want}, got {v.dtype} {v.shape}."
            )
        if not np.all(np.isfinite(v)):
            raise ValueError(f"the checkpoint's `{key}` holds NaN or Inf values.")
        return np.array(v, dtype=np.int64 if v.dtype.kind in "biu" else np.float64)

    def stretches(self, key: str, width: int) -> list[np.ndarray]:
        """The stretches of rows stored by :func:`pack` under ``key`` and ``key + "_len"``."""
        return unpack(self.array(key, (None, width)), self.array(f"{key}_len", (None,)))

    def statistics(self, prefix: str, p: int, o: int) -> Statistics:
        n = self.number(f"{prefix}n_rows")
        return Statistics(
            self.array(f"{prefix}gram", (p, p)),
            self.array(f"{prefix}cross", (p, o)),
            self.array(f"{prefix}yty", (o,)),
            n if n != int(n) else int(n),  # type: ignore[arg-type]  # (float: the weights' sum, with forgetting)
        )
