"""Validation and the canonical reduction shared by every solver.

Any Conv1D configuration (padding, stride, dilation, groups, layout, flip, bias, ragged batches) is
turned here, in one place, into a :class:`CanonicalProblem`: per group, a *valid, stride-1, undilated*
multichannel cross-correlation

    Y_i[t, o] = bias[o] + sum_j sum_c X_i[t + j, c] * W[j, c, o],    0 <= t < len(X_i) - taps + 1,

with some coefficients of ``W`` fixed at zero (``mask``), plus the map between ``W`` and the user's
kernel.  The factorization, for stride ``s`` and dilation ``d`` with ``g = gcd(s, d)``:

* padding becomes explicit zeros;
* dilation: the outputs split into ``d' = d / g`` interleaved subsequences (a batch) whose inputs are
  ``x[r*s + i*d]``; each is a conv with stride ``s' = s / g`` and no dilation;
* stride: ``s'`` polyphase components ``x_r[i*s' + q]`` become ``s' * Cin`` channels, so kernel tap
  ``k = j*s' + q`` becomes tap ``j`` of channel ``q``; taps ``k >= kernel_size`` are the masked zeros;
* groups become independent blocks; layout and flip become a transpose and a reversal.

The total number of samples is unchanged (each input sample lands in at most one subsequence), so
the reduction costs one copy of the data.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

PaddingMode = Literal["valid", "same", "causal", "full"]
Padding = Union[PaddingMode, int, "tuple[int, int]"]
Layout = Literal["nwc", "ncw"]

PADDING_MODES: tuple[PaddingMode, ...] = ("valid", "same", "causal", "full")
LAYOUTS: tuple[Layout, ...] = ("nwc", "ncw")

_T = TypeVar("_T")


# ----------------------------------------------------------------------------------------------
# Scalar arguments
# ----------------------------------------------------------------------------------------------


def check_positive_int(value: object, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum``; a 1-tuple (Keras style) is accepted."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value!r}.")
    return int(value)


def check_layout(layout: object) -> Layout:
    if isinstance(layout, str):
        for name in LAYOUTS:
            if layout.lower() == name:
                return name
    raise ValueError(f"`layout` must be 'nwc' (channels-last) or 'ncw' (channels-first), got {layout!r}.")


def check_padding(padding: object) -> PaddingMode | tuple[int, int]:
    """Normalise ``padding`` to a mode string or an explicit ``(left, right)`` pair."""
    if isinstance(padding, str):
        for mode in PADDING_MODES:
            if padding.lower() == mode:
                return mode
        raise ValueError(
            f"`padding` must be one of {', '.join(map(repr, PADDING_MODES))}, an int or a (left, right) "
            f"pair, got {padding!r}."
        )
    if isinstance(padding, numbers.Integral) and not isinstance(padding, (bool, np.bool_)):
        padding = (padding, padding)
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        left, right = padding
        for side in (left, right):
            if isinstance(side, (bool, np.bool_)) or not isinstance(side, numbers.Integral):
                raise TypeError(f"`padding` entries must be integers, got {padding!r}.")
            if side < 0:
                raise ValueError(f"`padding` must be non-negative, got {padding!r}.")
        return (int(left), int(right))
    raise TypeError(
        f"`padding` must be 'valid', 'same', 'causal', 'full', an int or a (left, right) pair, got {padding!r}."
    )


def check_lags(lags: object) -> tuple[int, int]:
    """Normalise ``lags`` to a ``(first, last)`` pair of integers with ``first <= last``."""
    if isinstance(lags, (tuple, list)) and len(lags) == 2:
        if all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in lags):
            first, last = int(lags[0]), int(lags[1])
            if first > last:
                raise ValueError(f"`lags` must be (first, last) with first <= last, got {lags!r}.")
            return first, last
    raise TypeError(f"`lags` must be a (first, last) pair of integers (first may be negative), got {lags!r}.")


def lag_alignment(
    lags: tuple[int, int], kernel_size: object, padding: PaddingMode | tuple[int, int], stride: int, dilation: int
) -> tuple[int, tuple[int, int]]:
    """The Conv1D alignment of a lag range: ``kernel_size = last - first + 1``, padding ``(last, -first)``.

    With ``y`` on ``x``'s time axis and ``x`` zero before it starts, ``y[t] = sum_l h[l] x[t - l]`` over
    ``first <= l <= last`` is a correlation with ``last`` zeros on the left and ``-first`` on the right (a
    negative padding crops: a pure delay ``first > 0`` never reads the last ``first`` input samples).
    """
    first, last = lags
    size = last - first + 1
    if kernel_size is not None and kernel_size != size:
        raise ValueError(
            f"`kernel_size` (={kernel_size!r}) must be None or last - first + 1 = {size} with lags={lags}."
        )
    if padding not in ("valid", (last, -first)):
        raise ValueError(
            f"`padding` (={padding!r}) cannot be combined with `lags`: lags={lags} sets the alignment "
            "(y on x's time axis, x zero before it starts)."
        )
    if stride != 1 or dilation != 1:
        raise ValueError(f"`lags` needs stride=1 and dilation=1, got stride={stride}, dilation={dilation}.")
    return size, (last, -first)


def check_alignment(
    kernel_size: object, padding: object, lags: object, stride: int, dilation: int
) -> tuple[int, PaddingMode | tuple[int, int], tuple[int, int] | None]:
    """``kernel_size``, ``padding`` and ``lags`` checked together (``stride``, ``dilation`` already checked).

    A lag range spells out the other two (:func:`lag_alignment`); its own padding ``(last, -first)`` is accepted
    back, so a configuration can be rebuilt from its fields.
    """
    if lags is not None:
        lags = check_lags(lags)
        pad = padding if padding == (lags[1], -lags[0]) else check_padding(padding)
        kernel_size, pad = lag_alignment(lags, kernel_size, pad, stride, dilation)
    else:
        pad = check_padding(padding)
    if kernel_size is None:
        raise TypeError("`kernel_size` must be an integer, got None (only `lags=(first, last)` replaces it).")
    return check_positive_int(kernel_size, "kernel_size"), pad, lags


def check_bool(value: object, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False, got {value!r}.")
    return bool(value)


# ----------------------------------------------------------------------------------------------
# The configuration
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvConfig:
    """A validated Conv1D configuration (kernel layout ``(kernel_size, in_channels // groups, out_channels)``)."""

    kernel_size: int
    in_channels: int
    out_channels: int
    stride: int = 1
    padding: PaddingMode | tuple[int, int] = "valid"
    dilation: int = 1
    groups: int = 1
    use_bias: bool = False
    layout: Layout = "nwc"
    flip: bool = False
    #: ``(first, last)``: the kernel covers these physical lags, ``y`` is on ``x``'s time axis (None: Conv1D).
    lags: tuple[int, int] | None = None

    @classmethod
    def create(
        cls,
        kernel_size: int | None,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        padding: Padding = "valid",
        dilation: int = 1,
        groups: int = 1,
        use_bias: bool = False,
        layout: Layout = "nwc",
        flip: bool = False,
        lags: tuple[int, int] | None = None,
    ) -> ConvConfig:
        stride = check_positive_int(stride, "stride")
        dilation = check_positive_int(dilation, "dilation")
        groups = check_positive_int(groups, "groups")
        kernel_size, pad, lags = check_alignment(kernel_size, padding, lags, stride, dilation)
        if in_channels % groups:
            raise ValueError(f"`in_channels` (={in_channels}) must be divisible by `groups` (={groups}).")
        if out_channels % groups:
            raise ValueError(f"`out_channels` (={out_channels}) must be divisible by `groups` (={groups}).")
        return cls(
            kernel_size=kernel_size,
            in_channels=in_channels,
            out_channels=out_channels,
            stride=stride,
            padding=pad,
            dilation=dilation,
            groups=groups,
            use_bias=check_bool(use_bias, "use_bias"),
            layout=check_layout(layout),
            flip=check_bool(flip, "flip"),
            lags=lags,
        )

    @property
    def span(self) -> int:
        """Receptive field of one output sample, ``(kernel_size - 1) * dilation + 1``."""
        return (self.kernel_size - 1) * self.dilation + 1

    def pads(self, length: int) -> tuple[int, int]:
        """Zeros added on the (left, right) of a sequence of ``length`` samples."""
        p = self.padding
        if p == "valid":
            return (0, 0)
        if p == "causal":
            return (self.span - 1, 0)
        if p == "full":
            return (self.span - 1, self.span - 1)
        if p == "same":  # TensorFlow's rule: asymmetric, extra zero on the right
            out = -(-length // self.stride)
            total = max((out - 1) * self.stride + self.span - length, 0)
            return (total // 2, total - total // 2)
        return p

    def output_length(self, length: int) -> int:
        """Number of output samples for an input of ``length`` samples (may be <= 0 when too short).

        valid: ``floor((L - span) / stride) + 1``; same and causal: ``ceil(L / stride)``;
        full: ``floor((L + span - 2) / stride) + 1``; explicit ``(l, r)``: ``floor((L + l + r - span) / stride) + 1``,
        with ``span = (kernel_size - 1) * dilation + 1``.
        """
        left, right = self.pads(length)
        return (length + left + right - self.span) // self.stride + 1

    @property
    def in_per_group(self) -> int:
        return self.in_channels // self.groups

    @property
    def out_per_group(self) -> int:
        return self.out_channels // self.groups

    @property
    def kernel_shape(self) -> tuple[int, int, int]:
        return (self.kernel_size, self.in_per_group, self.out_channels)

    def tap_lags(self) -> np.ndarray:
        """The physical lag (delay in samples from input to output) of each kernel index, shape ``(kernel_size,)``.

        In the convolution order (``flip=True``) index ``i`` is lag ``i * dilation`` from the start of the response;
        in the cross-correlation order (``flip=False``, Keras/PyTorch) the order is reversed, since index ``j``
        multiplies the input ``(kernel_size - 1 - j) * dilation`` samples before the newest one.  Padding moves the
        output's time axis, not the response, so it does not change these lags.
        """
        start = 0 if self.lags is None else self.lags[0]
        lags = start + np.arange(self.kernel_size) * self.dilation
        return lags if self.flip else lags[::-1].copy()

    @property
    def unknowns_per_output(self) -> int:
        """Free coefficients of one output channel: its taps, plus the bias."""
        return self.kernel_size * self.in_per_group + int(self.use_bias)

    def describe(self) -> str:
        parts = [f"kernel_size={self.kernel_size}" if self.lags is None else f"lags={self.lags}"]
        for name, default in (("stride", 1), ("padding", "valid"), ("dilation", 1), ("groups", 1)):
            if getattr(self, name) != default and not (name == "padding" and self.lags is not None):
                parts.append(f"{name}={getattr(self, name)!r}")
        if self.use_bias:
            parts.append("use_bias=True")
        if self.flip:
            parts.append("flip=True")
        return ", ".join(parts)


# ----------------------------------------------------------------------------------------------
# Arrays
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceBatch:
    """Sequences as float arrays ``(length, channels)``; ``form`` records how to give outputs back."""

    arrays: tuple[np.ndarray, ...]
    form: Literal["1d", "2d", "3d", "list"]
    dtype: np.dtype  # the caller's dtype, before conversion to float64
    item_ndims: tuple[int, ...] = ()  # for a list: the ndim of each sequence

    @property
    def channels(self) -> int:
        return self.arrays[0].shape[1]


def _check_dtype(a: np.ndarray, name: str) -> None:
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


def _check_finite(a: np.ndarray, name: str, allow_nan: bool = False) -> None:
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
    _check_dtype(np.asarray(a.data), name)
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
    _check_dtype(arr, name)
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
    the arrays returned are read-only views or copies.
    """
    if isinstance(data, (list, tuple)):
        # a list of arrays is a batch; a list of numbers (numpy scalars included) is one sequence
        ragged = any(hasattr(item, "__array__") and np.ndim(item) >= 1 for item in data)
        if not ragged:
            try:
                np.asarray(data, dtype=float) if data else None
            except (ValueError, TypeError):
                ragged = True
        if ragged:
            if not len(data):
                raise ValueError(f"`{name}` is an empty list: give at least one sequence.")
            arrays, dtypes, ndims = [], [], []
            for i, item in enumerate(data):
                arr = _to_float_array(item, f"{name}[{i}]", allow_nan)
                dtypes.append(arr.dtype)
                ndims.append(arr.ndim)
                if arr.ndim not in (1, 2):
                    raise ValueError(
                        f"each sequence in `{name}` must be 1-D or 2-D, got {name}[{i}] with shape {arr.shape}."
                    )
                arrays.append(_sequence_2d(arr, f"{name}[{i}]", layout, check_finite, allow_nan))
            channels = {a.shape[1] for a in arrays}
            if len(channels) > 1:
                raise ValueError(
                    f"all sequences in `{name}` must have the same number of channels, got {sorted(channels)}."
                )
            return SequenceBatch(tuple(arrays), "list", np.result_type(*dtypes), tuple(ndims))
    arr = _to_float_array(data, name, allow_nan)
    if arr.ndim == 3:
        if arr.shape[0] == 0:
            raise ValueError(f"`{name}` has an empty batch (shape {arr.shape}).")
        seqs = tuple(_sequence_2d(arr[i], f"{name}[{i}]", layout, check_finite, allow_nan) for i in range(arr.shape[0]))
        return SequenceBatch(seqs, "3d", arr.dtype)
    if arr.ndim in (1, 2):
        return SequenceBatch(
            (_sequence_2d(arr, name, layout, check_finite, allow_nan),), "1d" if arr.ndim == 1 else "2d", arr.dtype
        )
    raise ValueError(
        f"`{name}` must be 1-D (length,), 2-D (one sequence) or 3-D (batch), or a list of sequences; "
        f"got an array with shape {arr.shape}."
    )


def _sequence_2d(arr: np.ndarray, name: str, layout: str, check_finite: bool, allow_nan: bool = False) -> np.ndarray:
    if arr.ndim == 1:
        arr = arr[:, None]
    elif layout == "ncw":
        arr = arr.T
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"`{name}` is empty (length {arr.shape[0]}, {arr.shape[1]} channels).")
    out = np.asarray(arr, dtype=np.float64).view()
    out.flags.writeable = False  # the solvers read user data, never write it
    if check_finite:
        _check_finite(out, name, allow_nan)
    return out


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


# ----------------------------------------------------------------------------------------------
# The canonical problem
# ----------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Block:
    """One group as a valid, stride-1, undilated cross-correlation (see the module docstring).

    ``xs[i]`` is ``(len_i, channels)``; ``ys[i]`` (or None) is ``(len_i - taps + 1, len(out_channels))``.
    ``mask[j, c]`` is True where the coefficient ``W[j, c, o]`` is free.  ``out_channels`` are the indices
    of the user's output channels that this group produces; a solver returns, per block, a kernel of shape
    ``(taps, channels, len(out_channels))`` with zeros where ``mask`` is False.
    """

    xs: list[np.ndarray]
    ys: list[np.ndarray] | None
    taps: int
    mask: np.ndarray
    out_channels: np.ndarray
    cache: dict = field(default_factory=dict, repr=False)

    @property
    def channels(self) -> int:
        return self.mask.shape[1]

    @property
    def n_free(self) -> int:
        return int(self.mask.sum())

    @property
    def n_equations(self) -> int:
        return sum(len(x) - self.taps + 1 for x in self.xs)

    @property
    def outputs(self) -> list[np.ndarray]:
        """``ys``, for code that needs them (a problem handed to a solver always has them)."""
        if self.ys is None:
            raise ValueError("this needs the outputs `y`: the problem was built without them (y=None).")
        return self.ys

    @property
    def retains_rows(self) -> bool:
        """Whether ``xs``/``ys`` hold every equation (False for streamed statistics that kept only a sample)."""
        return True

@dataclass(eq=False)
class CanonicalProblem:
    """A validated problem: the user's configuration and one :class:`Block` per group.

    This is what a solver receives (``solve(problem, **options) -> Solution``).

    Attributes
    ----------
    config : ConvConfig
        The user's configuration (kernel_size, channels, stride, padding, ..., use_bias).
    blocks : list of Block
        One per group: the canonical inputs, outputs, taps and mask.
    lengths, out_lengths : tuple of int
        Input and output length of each of the user's sequences.
    x_form, x_item_ndims, dtype
        The form, item dimensions and dtype of the user's ``x``, to give outputs back in the same form.
    inputs : tuple or None
        The caller's sequences as read, for the post-fit checks; None for streamed problems.
    """

    config: ConvConfig
    blocks: list[Block]
    lengths: tuple[int, ...]  # user input length of each sequence
    out_lengths: tuple[int, ...]
    x_form: str
    x_item_ndims: tuple[int, ...]
    dtype: np.dtype
    #: The caller's sequences ``(xs, ys)`` as read (``(length, channels)`` views), for the post-fit checks that
    #: refit other settings; None for streamed problems.
    inputs: tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...] | None] | None = field(default=None, repr=False)

    @property
    def n_equations(self) -> int:
        """Equations per output channel (each output sample of that channel is one equation)."""
        return int(sum(self.out_lengths))

    # -- kernel maps --------------------------------------------------------------------------

    def _tap_layout(self) -> tuple[int, int]:
        s = self.config.stride // math.gcd(self.config.stride, self.config.dilation)
        taps = -(-self.config.kernel_size // s)
        return s, taps

    def to_canonical(self, kernel: np.ndarray) -> list[np.ndarray]:
        """Split a user kernel ``(K, Cin/groups, Cout)`` into canonical block kernels."""
        cfg = self.config
        s, taps = self._tap_layout()
        k = kernel[::-1] if cfg.flip else kernel
        padded = np.zeros((taps * s,) + k.shape[1:], dtype=k.dtype)
        padded[: cfg.kernel_size] = k
        full = padded.reshape(taps, s * cfg.in_per_group, cfg.out_channels)
        return [full[:, :, b.out_channels] for b in self.blocks]

    def from_canonical(self, kernels: Sequence[np.ndarray]) -> np.ndarray:
        """Assemble canonical block kernels back into the user kernel ``(K, Cin/groups, Cout)``."""
        cfg = self.config
        s, taps = self._tap_layout()
        dtype = np.result_type(*kernels)
        full = np.zeros((taps, s * cfg.in_per_group, cfg.out_channels), dtype=dtype)
        for b, w in zip(self.blocks, kernels):
            full[:, :, b.out_channels] = w
        k = full.reshape(taps * s, cfg.in_per_group, cfg.out_channels)[: cfg.kernel_size]
        return np.ascontiguousarray(k[::-1] if cfg.flip else k)

    def from_canonical_bias(self, biases: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros(self.config.out_channels, dtype=np.result_type(*biases))
        for b, v in zip(self.blocks, biases):
            out[b.out_channels] = v
        return out

    def to_canonical_bias(self, bias: np.ndarray) -> list[np.ndarray]:
        return [bias[b.out_channels] for b in self.blocks]

    def free_to_kernel(self, vector: np.ndarray) -> tuple[np.ndarray, float | None]:
        """Map a vector over one block's free coefficients (then the bias) to ``(K, Cin/groups)`` and a bias."""
        cfg = self.config
        s, taps = self._tap_layout()
        mask = self.blocks[0].mask
        canon = np.zeros(mask.shape)
        canon[mask] = vector[: mask.sum()]
        k = canon.reshape(taps * s, cfg.in_per_group)[: cfg.kernel_size]
        bias = float(vector[mask.sum()]) if cfg.use_bias else None
        return np.ascontiguousarray(k[::-1] if cfg.flip else k), bias

    # -- output maps --------------------------------------------------------------------------

    def assemble_outputs(self, block_outputs: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
        """Put canonical outputs (per block, per subsequence) back as user ``(out_length, Cout)`` arrays."""
        cfg = self.config
        d_sub = cfg.dilation // math.gcd(cfg.stride, cfg.dilation)
        dtype = np.result_type(*[o for outs in block_outputs for o in outs]) if self.n_equations else np.float64
        outs = [np.zeros((m, cfg.out_channels), dtype=dtype) for m in self.out_lengths]
        for block, outputs in zip(self.blocks, block_outputs):
            it = iter(outputs)
            for i, m in enumerate(self.out_lengths):
                for r in range(min(d_sub, m)):
                    outs[i][r::d_sub, block.out_channels] = next(it)
        return outs

#: Data whose largest magnitude lies outside ``[1 / VALUE_RANGE, VALUE_RANGE]`` are refused by the solvers:
#: sums of their squared products (the Gram, the spectra) would overflow or underflow float64.
VALUE_RANGE = 1e60


def _physical_memory() -> int:
    import os

    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): assume 1 TiB
        return 1 << 40


def _format_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"


def check_gram_memory(cfg: ConvConfig, n_blocks: int | None = None) -> None:
    """Refuse, before allocating, a problem whose ``P x P`` Gram matrices would not fit in memory.

    ``P`` is ``kernel_size * in_channels // groups`` (+1 with a bias); one Gram per group (or per block).  The
    Gram and its eigenvectors need twice its size, so more than half of the physical memory is refused.
    """
    p = cfg.kernel_size * cfg.in_per_group + int(cfg.use_bias)
    blocks = cfg.groups if n_blocks is None else n_blocks
    need = 8.0 * p * p * blocks
    have = _physical_memory()
    if 2 * need > have:
        raise MemoryError(
            f"kernel_size={cfg.kernel_size} with in_channels // groups = {cfg.in_per_group} gives P = {p} unknowns "
            f"per output channel: the {p} x {p} Gram matrix (x {blocks} group(s)) would need "
            f"{_format_bytes(need)}, and twice that to solve, more than this machine's {_format_bytes(have)} of "
            "memory. Use a smaller kernel_size, fewer input channels or more groups."
        )


def check_feasible(problem: CanonicalProblem, *, outputs: bool = True) -> None:
    """Refuse problems a solver cannot handle: Grams too large for memory, values whose squares overflow.

    Single-channel canonical blocks are exempt from the memory check: lstsq and fft solve long kernels from
    FFT products without forming the Gram (adam checks for itself).
    """
    if any(b.channels > 1 for b in problem.blocks):
        check_gram_memory(problem.config, len(problem.blocks))
    checked = [("x", [x for b in problem.blocks if ("feasible", "x") not in b.cache for x in b.xs])]
    if outputs:  # (the report reads only x's statistics)
        checked.append(("y", [y for b in problem.blocks if ("feasible", "y") not in b.cache for y in b.ys or ()]))
    for name, arrays in checked:
        big = max((max(float(np.max(a)), -float(np.min(a))) for a in arrays if a.size), default=0.0)
        if big > VALUE_RANGE or 0.0 < big < 1.0 / VALUE_RANGE:
            scales = "the kernel scales by the inverse factor" if name == "x" else "the kernel scales with it"
            raise ValueError(
                f"`{name}` has values of magnitude up to {big:.3g}: sums of their squares would "
                f"{'overflow' if big > 1 else 'underflow'} float64. Rescale `{name}` (e.g. divide it by {big:.3g}); "
                f"{scales}."
            )
    for block in problem.blocks:  # checked once per problem (the report and the solve both ask)
        block.cache[("feasible", "x")] = True
        if outputs:
            block.cache[("feasible", "y")] = True


def build_problem(
    x: ArrayLike,
    y: ArrayLike | None,
    kernel_size: int | None,
    *,
    stride: int = 1,
    padding: Padding = "valid",
    dilation: int = 1,
    groups: int = 1,
    use_bias: bool = False,
    layout: Layout = "nwc",
    flip: bool = False,
    out_channels: int | None = None,
    nan_policy: Literal["raise", "omit"] = "raise",
    lags: tuple[int, int] | None = None,
) -> CanonicalProblem:
    """Validate user arrays and configuration and reduce them to a :class:`CanonicalProblem`.

    Without ``y``, ``out_channels`` (default: ``groups``, one filter per group) sizes the problem.
    ``nan_policy="omit"`` drops the equations (output samples) that are NaN in ``y`` or touch a NaN in ``x``.
    """
    layout_name = check_layout(layout)
    if nan_policy not in ("raise", "omit"):
        raise ValueError(f"`nan_policy` must be 'raise' or 'omit', got {nan_policy!r}.")
    omit = nan_policy == "omit"
    xb = as_sequences(x, "x", layout_name, allow_nan=omit)
    yb = None if y is None else as_sequences(y, "y", layout_name, allow_nan=omit)
    if yb is not None:
        if len(yb.arrays) != len(xb.arrays):
            raise ValueError(
                f"`x` and `y` must hold the same number of sequences, got {len(xb.arrays)} and {len(yb.arrays)}."
            )
        out_channels = yb.channels
    elif out_channels is None:
        out_channels = check_positive_int(groups, "groups")
    else:
        out_channels = check_positive_int(out_channels, "out_channels")
    cfg = ConvConfig.create(
        kernel_size,
        xb.channels,
        out_channels,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        use_bias=use_bias,
        layout=layout_name,
        flip=flip,
        lags=lags,
    )
    lengths = tuple(len(a) for a in xb.arrays)
    out_lengths = tuple(cfg.output_length(n) for n in lengths)
    for i, (n, m) in enumerate(zip(lengths, out_lengths)):
        where = "" if len(lengths) == 1 else f" (sequence {i})"
        if m < 1:
            raise ValueError(
                f"`x`{where} has {n} samples, too short for kernel_size={cfg.kernel_size}, dilation={cfg.dilation}"
                f" with padding={cfg.padding!r}: a receptive field spans {cfg.span} samples.{_layout_hint(xb, cfg)}"
            )
        if yb is not None and len(yb.arrays[i]) != m:
            raise ValueError(
                f"`y`{where} has {len(yb.arrays[i])} samples but {n} input samples with {cfg.describe()} give "
                f"{m} outputs{length_hint(cfg, n, len(yb.arrays[i]))}; check `padding`, `stride`, `dilation`, "
                f"`kernel_size` and `layout`.{_layout_hint(xb, cfg)}"
            )
    blocks = _reduce(cfg, xb.arrays, None if yb is None else yb.arrays)
    if omit:
        blocks = [part for block in blocks for part in _omit_missing(block)]
        empty = sorted(int(o) for b in blocks if b.n_equations == 0 for o in b.out_channels)
        if empty:
            raise ValueError(
                f"nan_policy='omit' leaves no equations for output channel(s) {empty}: every output sample is NaN "
                "in `y` or reads a NaN of `x`."
            )
    inputs = (xb.arrays, None if yb is None else yb.arrays)
    return CanonicalProblem(cfg, blocks, lengths, out_lengths, xb.form, xb.item_ndims, xb.dtype, inputs)


def length_hint(cfg: ConvConfig, length: int, y_length: int) -> str:
    """Settings that turn ``length`` input samples into ``y_length`` outputs, as a sentence ('' if none)."""
    fits = []
    for padding in PADDING_MODES:
        if padding != cfg.padding and dataclasses.replace(cfg, padding=padding).output_length(length) == y_length:
            fits.append(f"padding={padding!r}")
    for k in (cfg.kernel_size - 1, cfg.kernel_size + 1):
        if k >= 1 and dataclasses.replace(cfg, kernel_size=k).output_length(length) == y_length:
            fits.append(f"kernel_size={k}")
    for s in (1, 2, 3, 4):
        if s != cfg.stride and dataclasses.replace(cfg, stride=s).output_length(length) == y_length:
            fits.append(f"stride={s}")
    return f" ({' or '.join(fits)} would give {y_length})" if fits else ""


def _layout_hint(xb: SequenceBatch, cfg: ConvConfig) -> str:
    """A sentence suggesting the other layout when ``x`` looks transposed ('' otherwise)."""
    if xb.form not in ("2d", "3d"):
        return ""
    length, channels = xb.arrays[0].shape
    if length < channels:
        other = "ncw" if cfg.layout == "nwc" else "nwc"
        return (
            f" With layout={cfg.layout!r}, `x` has {length} samples of {channels} channels: if it is "
            f"({'channels, length' if other == 'ncw' else 'length, channels'}), pass layout={other!r}."
        )
    return ""


def _omit_missing(block: Block) -> list[Block]:
    """Drop equations that are NaN in y or touch a NaN in x, by splitting subsequences around them.

    The pieces stay valid stride-1 correlations, so every solver handles missing data unchanged.  Output
    channels whose missing rows differ get blocks of their own (their designs differ).
    """
    n_out = len(block.out_channels)
    missing = []  # per subsequence: (rows, n_out) bool
    xs = []
    for i, x in enumerate(block.xs):
        m = len(x) - block.taps + 1
        miss = np.zeros((m, n_out), dtype=bool)
        if block.ys is not None:
            miss |= np.isnan(block.ys[i])
        nan_rows, nan_cols = np.nonzero(np.isnan(x))
        if len(nan_rows):
            for j in range(block.taps):  # output t uses row t + j of channel c where mask[j, c]
                hit = nan_rows[block.mask[j, nan_cols]] - j
                miss[hit[(hit >= 0) & (hit < m)]] = True
            x = np.where(np.isnan(x), 0.0, x)  # no remaining equation reads these
        missing.append(miss)
        xs.append(x)
    if not any(m.any() for m in missing):
        return [block]
    same = all((m == m[:, :1]).all() for m in missing)
    groups = [np.arange(n_out)] if same else [np.array([o]) for o in range(n_out)]
    ys = block.ys
    parts = []
    for cols in groups:
        bx: list[np.ndarray] = []
        by: list[np.ndarray] = []  # (unused when the block has no outputs)
        for i, x in enumerate(xs):
            good = ~missing[i][:, cols[0]]
            edges = np.flatnonzero(np.diff(np.concatenate([[0], good.astype(np.int8), [0]])))
            for a, b in zip(edges[::2], edges[1::2]):
                bx.append(x[a : b + block.taps - 1])
                if ys is not None:
                    by.append(ys[i][a:b][:, cols])
        if not bx:  # every equation dropped: keep an empty subsequence so shapes stay defined
            bx.append(np.zeros((block.taps - 1, block.channels)))
            by.append(np.zeros((0, len(cols))))
        parts.append(Block(bx, None if ys is None else by, block.taps, block.mask.copy(), block.out_channels[cols]))
    return parts


def _reduce(cfg: ConvConfig, xs: Sequence[np.ndarray], ys: Sequence[np.ndarray] | None) -> list[Block]:
    g = math.gcd(cfg.stride, cfg.dilation)
    s, d_sub = cfg.stride // g, cfg.dilation // g
    taps = -(-cfg.kernel_size // s)
    cin = cfg.in_per_group
    mask = (np.arange(taps * s) < cfg.kernel_size).reshape(taps, s, 1).repeat(cin, axis=2).reshape(taps, s * cin)
    blocks = []
    for grp in range(cfg.groups):
        bx: list[np.ndarray] = []
        by: list[np.ndarray] = []  # (unused without outputs)
        out_ch = np.arange(grp * cfg.out_per_group, (grp + 1) * cfg.out_per_group)
        for i, x in enumerate(xs):
            left, right = cfg.pads(len(x))
            xg = x[max(-left, 0) : len(x) - max(-right, 0), grp * cin : (grp + 1) * cin]  # negative pads crop
            if left > 0 or right > 0:
                xg = np.concatenate([np.zeros((max(left, 0), cin)), xg, np.zeros((max(right, 0), cin))])
            m = cfg.output_length(len(x))
            for r in range(min(d_sub, m)):
                m_r = len(range(r, m, d_sub))
                n_c = m_r + taps - 1
                sub = xg[r * cfg.stride :: cfg.dilation]  # x_r[i] = x[r*s + i*d]
                if s == 1:
                    canon = sub[:n_c]
                else:
                    need = n_c * s
                    if len(sub) < need:
                        sub = np.concatenate([sub, np.zeros((need - len(sub), cin))])
                    canon = sub[:need].reshape(n_c, s * cin)  # channel q*cin + c holds x_r[i*s + q, c]
                bx.append(canon)
                if ys is not None:  # a view: the outputs of this group are a slice of the channels
                    by.append(ys[i][r::d_sub, grp * cfg.out_per_group : (grp + 1) * cfg.out_per_group])
        blocks.append(Block(bx, None if ys is None else by, taps, mask.copy(), out_ch))
    return blocks
