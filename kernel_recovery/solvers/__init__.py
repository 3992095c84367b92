"""Solver registry.  Each strategy lives in its own module and is imported only when used.

A solver is a function ``solve(problem, *, option=default, ...) -> Solution`` taking a
:class:`~kernel_recovery.model.problem.CanonicalProblem`; its keyword-only parameters are its options.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..model.result import Solution

#: method name -> "module:function", imported lazily (JAX and optax load only with method="adam").
METHODS: dict[str, str] = {
    "lstsq": "kernel_recovery.solvers.lstsq:solve",
    "adam": "kernel_recovery.solvers.gradient:solve",
    "fft": "kernel_recovery.solvers.spectral:solve",
}


def resolve(method: str | Callable[..., Solution]) -> tuple[str, Callable[..., Solution]]:
    """Return ``(name, solver)`` for a method name or a user callable."""
    if callable(method):
        return getattr(method, "__name__", type(method).__name__), method
    if not isinstance(method, str) or method.lower() not in METHODS:
        names = ", ".join(repr(m) for m in METHODS)
        raise ValueError(f"`method` must be one of {names} or a callable solver, got {method!r}.")
    name = method.lower()
    return name, _load(METHODS[name])


@functools.lru_cache(maxsize=16)
def _load(path: str) -> Callable[..., Solution]:
    """The solver at ``"module:function"``, imported on first use (then held: import_module costs microseconds)."""
    module, func = path.split(":")
    return getattr(importlib.import_module(module), func)


@functools.lru_cache(maxsize=64)
def _option_names(solver: Callable[..., Solution]) -> tuple[str, ...] | None:
    """The keyword-only parameters of a solver (None when it takes ``**options``)."""
    params = inspect.signature(solver).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return tuple(n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY)


def check_options(
    name: str, solver: Callable[..., Solution], options: dict[str, Any], *, door: Callable[..., Any] | None = None
) -> None:
    """Refuse options the solver does not take, as Python does for an unexpected keyword.

    An unknown name is compared (:mod:`difflib`) with the method's options and the parameters of ``door``, the
    public function whose ``**options`` these are, and the nearest is suggested (``strides`` -> ``stride``,
    ``rige`` -> ``ridge``).

    Examples
    --------
    >>> def solve(problem, *, ridge=0.0): ...
    >>> def fit(x, y, *, stride=1, **options): ...
    >>> check_options("mine", solve, {"strides": 2}, door=fit)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: method 'mine' got an unexpected option 'strides' (did you mean 'stride', a parameter of fit?); ...
    """
    try:
        known = _option_names(solver)
    except TypeError:  # an unhashable callable object
        known = _option_names.__wrapped__(solver)
    if known is None:
        return
    for key in options:
        if key not in known:
            listed = ", ".join(known) if known else "none"
            hint = did_you_mean(key, known, door)
            raise TypeError(f"method {name!r} got an unexpected option {key!r}{hint}; its options are: {listed}.")


def parameter_names(door: Callable[..., Any]) -> tuple[str, ...]:
    """The named parameters of a public function (not its ``*args``/``**kwargs``)."""
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return tuple(n for n, p in inspect.signature(door).parameters.items() if p.kind not in skip)


def did_you_mean(key: str, options: Iterable[str], door: Callable[..., Any] | None = None) -> str:
    """`` (did you mean 'ridge'?)``: the nearest of ``options`` and ``door``'s parameters to ``key``, or ``""``.

    A parameter of ``door`` is said to be one (``strides`` is not a method's option but ``stride`` a keyword of
    the function called).

    Examples
    --------
    >>> did_you_mean("rige", ["ridge", "loss"])
    " (did you mean 'ridge'?)"
    >>> did_you_mean("zzz", ["ridge", "loss"])
    ''
    """
    own = list(options)
    params = [p for p in parameter_names(door) if p not in own] if door is not None else []
    close = difflib.get_close_matches(key, own + params, n=1)
    if not close or close[0] == key:  # the door passed one of its own parameters on: no other spelling to offer
        return ""
    where = f", a parameter of {getattr(door, '__name__', 'the function')}" if close[0] in params else ""
    return f" (did you mean {close[0]!r}{where}?)"
