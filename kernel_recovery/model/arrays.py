"""Reading the caller's arrays (layouts, ragged batches, dtypes, NaN, arrays of other libraries) and JSON values."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

_T = TypeVar("_T")


@dataclass(frozen=True)
class SequenceBatch:
    """Sequences as float arrays ``(length, channels)``; ``form`` records how to give outputs back."""

    arrays: tuple[np.ndarray, ...]
    form: Literal["1d", "2d", "3d", "list"]
    dtype: np.dtype  # the caller's dtype, before conversion to float64
    item_ndims: tuple[int, ...] = ()  # for a list: the ndim of each sequence
    #: ``max(abs(a))`` of each array where it was checked finite and is not empty (else None), from the finite test's
    #: own reductions: the problem's range check reads it instead of reading the data again.
    magnitudes: tuple[float | None, ...] = dataclasses.field(default=(), compare=False, repr=False)

    @property
    def channels(self) -> int:
        return self.arrays[0].shape[1]


def check_array_dtype(a: np.ndarray, name: str) -> None:
    if a.dtype == object and a.size:
        raise TypeError(f"`{name}` must be a numeric array, got dtype object (ragged or non-numeric values?).")
    if np.issubdtype(a.dtype, np.complexfloating):
        raise TypeError(f"`{name}` must be real, got complex dtype {a.dtype}.")
    if a.dtype == bool:
        raise TypeError(
            f"`{name}` must be numeric, got dtype bool; convert it explicitly, e.g. `{name}.astype(float)`."
        )
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)) and a.dtype != object:
        raise TypeError(f"`{name}` must be a real numeric array, got dtype {a.dtype}.")


def finite_magnitude(a: np.ndarray) -> float | None:
    """``max(abs(a))`` of a non-empty array whose values are all finite, else None.

    Two reductions, no temporaries: NaN propagates through min and max, and an Inf is one of them (neither can
    overflow, so no errstate is needed).
    """
    if not a.size:
        return None
    low, high = float(_MIN(a, None)), float(_MAX(a, None))
    if math.isfinite(low) and math.isfinite(high):
        return max(-low, high)
    return None


_MIN, _MAX = np.minimum.reduce, np.maximum.reduce  # (what ndarray.min/max call, without their Python wrappers)


def check_array_finite(a: np.ndarray, name: str, allow_nan: bool = False) -> None:
    if a.dtype.kind in "fiu":
        if not a.size or finite_magnitude(a) is not None:  # the common case; the element-wise test decides the rest
            return
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(np.sum(a)):  # one pass, no temporaries: NaN and Inf propagate through a sum
                return
    bad = np.isinf(a) if allow_nan else ~np.isfinite(a)
    if bad.any():
        where = tuple(np.argwhere(bad)[0].tolist())
        what = "Inf" if allow_nan else "NaN or Inf"
        hint = (
            "" if allow_nan else "; to drop the equations they touch, pass nan_policy='omit' (recover_kernel, analyze)"
        )
        raise ValueError(f"`{name}` contains {int(bad.sum())} {what} value(s), the first at index {where}{hint}.")


def unmask(a: _T, name: str, allow_nan: bool = False) -> _T | np.ndarray:
    """A masked array's masked entries as NaN (with ``allow_nan``), or an error saying how many; others as given."""
    if not isinstance(a, np.ma.MaskedArray):
        return a
    check_array_dtype(np.asarray(a.data), name)
    n_masked = int(np.ma.count_masked(a))
    if n_masked and not allow_nan:
        raise ValueError(
            f"`{name}` has {n_masked} masked value(s); to drop the equations they touch, pass nan_policy='omit' "
            "(recover_kernel, analyze), or fill them first."
        )
    return np.ma.filled(a.astype(np.float64), np.nan) if n_masked else np.asarray(a.data)


def jsonable(value: object) -> object:
    """``value`` in plain JSON types, every non-finite number as None (JSON ``null``).

    Arrays become nested lists, NumPy scalars Python numbers, complex values and arrays ``{"real", "imag"}``
    dicts, tuples lists, dict keys strings and dataclasses dicts; anything else (a function, an optax
    transform) its ``repr``.  ``null`` stands for NaN (a number
    that is not available, e.g. a noise estimate with no degrees of freedom left) and for ``inf`` (an
    unbounded one, e.g. the condition number of a rank-deficient design): ``json.dumps`` would write the
    ``NaN``/``Infinity`` tokens, which strict parsers (JavaScript's ``JSON.parse``) refuse.

    Examples
    --------
    >>> import numpy as np
    >>> jsonable({"cond": np.array([1.5, np.inf]), "rank": np.int64(3), "dof": (np.nan, 2)})
    {'cond': [1.5, None], 'rank': 3, 'dof': [None, 2]}
    """
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):  # float and the NumPy floats
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, numbers.Complex):  # a frequency response: {"real", "imag"}
        return {"real": jsonable(value.real), "imag": jsonable(value.imag)}
    if isinstance(value, np.ndarray) and value.dtype.kind == "c":
        return {"real": _array_jsonable(value.real), "imag": _array_jsonable(value.imag)}
    if isinstance(value, np.ndarray):
        return _array_jsonable(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    return repr(value)


def _array_jsonable(a: np.ndarray) -> object:
    if a.dtype.kind in "biu":
        return a.tolist()
    if a.dtype.kind == "f":  # one vectorised pass, not a Python call per element
        finite = np.isfinite(a)
        if finite.all():
            return a.astype(np.float64, copy=False).tolist()
        out = a.astype(np.float64).astype(object)
        out[~finite] = None
        return out.tolist()
    return jsonable(a.tolist())


def _from_library(a: object) -> Any:
    """A torch tensor (detached, on the CPU) or a pandas object as a NumPy array; anything else as given.

    Neither library is imported: they are recognised by the module of the object's class.  ``np.asarray``
    alone refuses a tensor that requires grad (a layer's output, as users pass it) or lives on a GPU, and
    turns a pandas column with missing values (``pd.NA``) into an object array.  JAX arrays, xarray and
    other array-likes go through ``np.asarray`` as they are.
    """
    modules = {c.__module__.partition(".")[0] for c in type(a).__mro__}
    if "torch" in modules and hasattr(a, "detach"):
        tensor = a.detach().cpu()
        try:
            return tensor.numpy()
        except TypeError:  # bfloat16 and the other dtypes NumPy lacks
            return tensor.float().numpy()
    if "pandas" in modules and hasattr(a, "to_numpy"):
        arr = a.to_numpy()
        if arr.dtype == object:  # nullable columns: pd.NA is a missing value, NaN as in NumPy data
            arr = a.to_numpy(dtype=np.float64, na_value=np.nan)
        return arr
    return a


def _to_float_array(a: object, name: str, allow_nan: bool = False) -> np.ndarray:
    a = unmask(a, name, allow_nan)
    try:
        arr = np.asarray(_from_library(a))
    except (ValueError, TypeError, RuntimeError) as exc:  # (torch raises RuntimeError for what it cannot convert)
        raise TypeError(f"`{name}` could not be read as a numeric array: {exc}") from None
    check_array_dtype(arr, name)
    if arr.dtype == object:  # empty object array
        arr = arr.astype(np.float64)
    return arr


def as_sequences(
    data: ArrayLike | Sequence[ArrayLike], name: str, layout: str, *, check_finite: bool = True, allow_nan: bool = False
) -> SequenceBatch:
    """Read ``x`` or ``y`` into a batch of ``(length, channels)`` arrays.

    3-D arrays are ``(batch, length, channels)`` ("nwc") or ``(batch, channels, length)`` ("ncw"); 2-D
    arrays are one sequence; 1-D arrays one single-channel sequence; a list or tuple of arrays (or a ragged
    nested list) is a batch of sequences of different lengths.  The caller's data are never modified;
    the arrays returned are read-only views or copies.  A batch already read (``lags="auto"`` reads the data
    once for the lag search and the problem) is returned as it is.
    """
    if isinstance(data, SequenceBatch):
        return data
    if isinstance(data, (list, tuple)):
        # a list of arrays is a batch; a list of numbers (numpy scalars included) is one sequence
        ragged = any(hasattr(item, "__array__") and np.ndim(item) >= 1 for item in data)
        if not ragged:
            try:
                numbers = np.asarray(data)
                if numbers.dtype.kind in "biuf":  # read once: the array below is this one
                    data = numbers
                elif data:
                    np.asarray(data, dtype=float)
            except (ValueError, TypeError):
                ragged = True
        if ragged:
            if not len(data):
                raise ValueError(f"`{name}` is an empty list: give at least one sequence.")
            arrays, dtypes, ndims, magnitudes = [], [], [], []
            for i, item in enumerate(data):
                arr = _to_float_array(item, f"{name}[{i}]", allow_nan)
                dtypes.append(arr.dtype)
                ndims.append(arr.ndim)
                if arr.ndim not in (1, 2):
                    raise ValueError(
                        f"each sequence in `{name}` must be 1-D or 2-D, got {name}[{i}] with shape {arr.shape}."
                    )
                # a sequence of a ragged batch may be empty (the outputs of one too short for any); the lengths
                # are judged against the configuration with the whole batch (problem._check_lengths)
                seq, magnitude = _sequence_2d(arr, f"{name}[{i}]", layout, check_finite, allow_nan, allow_empty=True)
                arrays.append(seq)
                magnitudes.append(magnitude)
            channels = {a.shape[1] for a in arrays}
            if len(channels) > 1:
                raise ValueError(
                    f"all sequences in `{name}` must have the same number of channels, got {sorted(channels)}."
                )
            return SequenceBatch(tuple(arrays), "list", np.result_type(*dtypes), tuple(ndims), tuple(magnitudes))
    if type(data) is np.ndarray and data.dtype.kind in "fiu" and 0 < data.ndim < 3:
        # the common case (a plain real ndarray, one sequence): what _to_float_array would give back as it is
        form: Literal["1d", "2d"] = "1d" if data.ndim == 1 else "2d"
        seq, magnitude = _sequence_2d(data, name, layout, check_finite, allow_nan)
        return SequenceBatch((seq,), form, data.dtype, (), (magnitude,))
    arr = _to_float_array(data, name, allow_nan)
    if arr.ndim == 3:
        if arr.shape[0] == 0:
            raise ValueError(f"`{name}` has an empty batch (shape {arr.shape}).")
        read = [_sequence_2d(arr[i], f"{name}[{i}]", layout, check_finite, allow_nan) for i in range(arr.shape[0])]
        return SequenceBatch(tuple(s for s, _ in read), "3d", arr.dtype, (), tuple(m for _, m in read))
    if arr.ndim in (1, 2):
        seq, magnitude = _sequence_2d(arr, name, layout, check_finite, allow_nan)
        return SequenceBatch((seq,), "1d" if arr.ndim == 1 else "2d", arr.dtype, (), (magnitude,))
    raise ValueError(
        f"`{name}` must be 1-D (length,), 2-D (one sequence) or 3-D (batch), or a list of sequences; "
        f"got an array with shape {arr.shape}."
    )


def _sequence_2d(
    arr: np.ndarray, name: str, layout: str, check_finite: bool, allow_nan: bool = False, *, allow_empty: bool = False
) -> tuple[np.ndarray, float | None]:
    """One sequence as a read-only float64 ``(length, channels)`` array, and its :func:`finite_magnitude`."""
    if arr.ndim == 1:
        arr = arr[:, None]
    elif layout == "ncw":
        arr = arr.T
    if (arr.shape[0] == 0 and not allow_empty) or arr.shape[1] == 0:
        raise ValueError(f"`{name}` is empty (length {arr.shape[0]}, {arr.shape[1]} channels).")
    out = np.asarray(arr, dtype=np.float64).view()
    out.flags.writeable = False  # the solvers read user data, never write it
    magnitude = None
    if check_finite:
        magnitude = finite_magnitude(out)
        if magnitude is None:
            check_array_finite(out, name, allow_nan)
    return out, magnitude


def restore_form(
    outputs: Sequence[np.ndarray], form: str, layout: str, dtype: DTypeLike, item_ndims: Sequence[int] = ()
) -> np.ndarray | list[np.ndarray]:
    """Give ``(length, channels)`` outputs back in the shape family of the input.

    A 1-D input sequence gives a 1-D output when there is one output channel.
    """

    def one(o: np.ndarray, ndim: int) -> np.ndarray:
        o = o.astype(dtype, copy=False)
        if ndim == 1 and o.shape[1] == 1:
            return np.ascontiguousarray(o[:, 0])
        return np.ascontiguousarray(o if layout == "nwc" else o.T)

    if form == "list":
        return [one(o, n) for o, n in zip(outputs, item_ndims)]
    if form == "3d":
        return np.stack([one(o, 2) for o in outputs])
    return one(outputs[0], 1 if form == "1d" else 2)
