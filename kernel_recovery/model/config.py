"""The configuration of a convolution (padding, stride, dilation, groups, bias, layout, flip, lags), validated."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Union

import numpy as np

from .validation import check_bool, check_int

if TYPE_CHECKING:
    from typing_extensions import Unpack

PaddingMode = Literal["valid", "same", "causal", "full"]


Padding = Union[PaddingMode, int, "tuple[int, int]"]


Layout = Literal["nwc", "ncw"]


PADDING_MODES: tuple[PaddingMode, ...] = ("valid", "same", "causal", "full")


LAYOUTS: tuple[Layout, ...] = ("nwc", "ncw")


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
    return check_int(kernel_size, "kernel_size"), pad, lags


class ConvSettings(TypedDict, total=False):
    """The settings of a convolution as keywords: what ``**settings`` of a door holds (see :class:`ConvSpec`)."""

    stride: int
    padding: Padding
    dilation: int
    groups: int
    use_bias: bool
    layout: Layout
    flip: bool
    lags: tuple[int, int] | None


def check_setting_names(settings: Mapping[str, object]) -> None:
    """Refuse a keyword that is not a setting, naming the nearest one (``strides`` -> ``stride``)."""
    for name in settings:
        if name not in SETTING_DEFAULTS:
            close = difflib.get_close_matches(name, list(SETTING_DEFAULTS), n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            raise TypeError(f"unexpected keyword argument `{name}`{hint}.")


@dataclass(frozen=True)
class ConvSpec:
    """The configuration of a convolution without its channel counts: what every door takes, validated once.

    :meth:`create` judges each setting (the one place that does); :meth:`bind` adds the channel counts that the
    data bring and gives the :class:`ConvConfig` of a problem.

    Examples
    --------
    >>> spec = ConvSpec.create(3, padding="SAME", stride=(2,))
    >>> spec.padding, spec.stride, spec.bind(2, 4).kernel_shape
    ('same', 2, (3, 2, 4))
    """

    kernel_size: int
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
    def create(cls, kernel_size: int | None = None, **settings: Unpack[ConvSettings]) -> ConvSpec:
        """Validate the settings (``lags=(first, last)`` replaces ``kernel_size`` and ``padding``).

        Settings not given take the defaults of the fields above; a name that is not a setting is a
        ``TypeError`` that suggests the nearest one (``strides`` -> ``stride``).
        """
        key = _settings_key(cls, kernel_size, settings)
        spec = _CREATED.get(key) if key is not None else None
        if spec is None:
            spec = cls._judge(kernel_size, settings)
            if key is not None and len(_CREATED) < _CACHE_SIZE:
                _CREATED[key] = spec
        return spec

    @classmethod
    def _judge(cls, kernel_size: int | None, settings: Mapping[str, Any]) -> ConvSpec:
        """:meth:`create` without its cache: each setting judged."""
        check_setting_names(settings)
        given = {**SETTING_DEFAULTS, **settings}
        stride, padding, dilation, groups = given["stride"], given["padding"], given["dilation"], given["groups"]
        use_bias, layout, flip, lags = given["use_bias"], given["layout"], given["flip"], given["lags"]
        stride = check_int(stride, "stride")
        dilation = check_int(dilation, "dilation")
        groups = check_int(groups, "groups")
        kernel_size, pad, lags = check_alignment(kernel_size, padding, lags, stride, dilation)
        return cls(
            kernel_size=kernel_size,
            stride=stride,
            padding=pad,
            dilation=dilation,
            groups=groups,
            use_bias=check_bool(use_bias, "use_bias"),
            layout=check_layout(layout),
            flip=check_bool(flip, "flip"),
            lags=lags,
        )

    def settings(self) -> dict[str, Any]:
        """The fields by name (a shallow ``dataclasses.asdict``: the fields are scalars and tuples, so no deep copy)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def bind(self, in_channels: int, out_channels: int) -> ConvConfig:
        """The configuration of data with these channel counts (each divisible by ``groups``)."""
        if in_channels % self.groups:
            raise ValueError(f"`in_channels` (={in_channels}) must be divisible by `groups` (={self.groups}).")
        if out_channels % self.groups:
            raise ValueError(f"`out_channels` (={out_channels}) must be divisible by `groups` (={self.groups}).")
        if type(in_channels) is int and type(out_channels) is int:  # (a pure function of hashable values: cached)
            return _bound(self, in_channels, out_channels)
        return _bound.__wrapped__(self, in_channels, out_channels)

    def replace(self, **changes: Any) -> ConvSpec:
        """The settings with some changed, validated again (channel counts, on a :class:`ConvConfig`, dropped).

        New ``lags`` bring their own alignment: ``kernel_size`` and ``padding`` follow them unless given too.
        """
        settings = {**self.spec.settings(), **changes}
        if changes.get("lags") is not None:
            if "kernel_size" not in changes:
                settings["kernel_size"] = None
            if "padding" not in changes:
                settings["padding"] = "valid"
        return ConvSpec.create(**settings)

    @property
    def spec(self) -> ConvSpec:
        """The settings alone (on a :class:`ConvConfig`: without its channel counts)."""
        return ConvSpec(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ConvSpec)})


_SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(ConvSpec))

#: Specs already judged, by the exact arguments of :meth:`ConvSpec.create` (values and their types: ``True`` is not
#: ``1``): a door's settings are judged once per process, not once per call.  Arguments of other types (NumPy
#: integers, lists) are judged every time.
_CREATED: dict[tuple[Any, ...], ConvSpec] = {}
_CACHE_SIZE = 1024
_PLAIN_TYPES = frozenset((int, str, bool, type(None), tuple))


def _settings_key(cls: type, kernel_size: object, settings: Mapping[str, object]) -> tuple[Any, ...] | None:
    """The cache key of :meth:`ConvSpec.create`'s arguments, or None where they are not plain Python values."""
    types = tuple(map(type, settings.values()))
    if type(kernel_size) not in (int, type(None)) or not _PLAIN_TYPES.issuperset(types):
        return None
    if tuple in types:  # padding and lags pairs: plain integers only
        for value in settings.values():
            if type(value) is tuple and not all(type(v) is int for v in value):
                return None
    return (cls, kernel_size, type(kernel_size), tuple(settings.items()), types)


@functools.lru_cache(maxsize=256)
def _bound(spec: ConvSpec, in_channels: int, out_channels: int) -> ConvConfig:
    """:meth:`ConvSpec.bind` after its checks."""
    settings = {name: getattr(spec, name) for name in _SPEC_FIELDS}  # (without a ConvConfig's channel counts)
    return ConvConfig(in_channels=in_channels, out_channels=out_channels, **settings)


#: Each setting's default: the fields of :class:`ConvSpec` (the one place they are written).
SETTING_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(ConvSpec) if f.name != "kernel_size"}


class GroupedChannels:
    """The channel counts per group of a bound configuration (sequences' :class:`ConvConfig` and grids'
    :class:`~kernel_recovery.model.grid.GridConfig`)."""

    in_channels: int
    out_channels: int
    groups: int

    @property
    def in_per_group(self) -> int:
        return self.in_channels // self.groups

    @property
    def out_per_group(self) -> int:
        return self.out_channels // self.groups


@dataclass(frozen=True)
class ConvConfig(GroupedChannels, ConvSpec):
    """A validated Conv1D configuration: a :class:`ConvSpec` bound to the channel counts of its data.

    Kernel layout ``(kernel_size, in_channels // groups, out_channels)``.
    """

    in_channels: int = dataclasses.field(kw_only=True)
    out_channels: int = dataclasses.field(kw_only=True)

    @classmethod
    def create(  # type: ignore[override]
        cls, kernel_size: int | None, in_channels: int, out_channels: int, **settings: Unpack[ConvSettings]
    ) -> ConvConfig:
        """Validate the settings (as :meth:`ConvSpec.create`) and bind them to these channel counts."""
        return ConvSpec.create(kernel_size, **settings).bind(in_channels, out_channels)

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
