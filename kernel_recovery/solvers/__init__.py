"""Solver registry.  Each strategy lives in its own module and is imported only when used.

A solver is a function ``solve(problem, *, option=default, ...) -> Solution`` taking a
:class:`~kernel_recovery.model.problem.CanonicalProblem`; its keyword-only parameters are its options.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
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
    module, func = METHODS[name].split(":")
    return name, getattr(importlib.import_module(module), func)


@functools.lru_cache(maxsize=64)
def _option_names(solver: Callable[..., Solution]) -> tuple[str, ...] | None:
    """The keyword-only parameters of a solver (None when it takes ``**options``)."""
    params = inspect.signature(solver).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return tuple(n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY)


#: Options that were renamed (the old name now means nothing, or something else): method -> old -> hint.
RENAMED: dict[str, dict[str, str]] = {
    "fft": {"regularization": "the Wiener choice is `wiener=True` (default) or `wiener=False`"},
    "adam": {"steps": "the iteration cap is `max_iter`, as for every method"},
}


def check_options(name: str, solver: Callable[..., Solution], options: dict[str, Any]) -> None:
    """Refuse options the solver does not take, as Python does for an unexpected keyword.

    An option that was renamed is named with its new spelling (see :data:`RENAMED`).
    """
    for key in options:
        if key in RENAMED.get(name, {}):
            raise TypeError(f"method {name!r} has no option {key!r}: {RENAMED[name][key]}.")
    try:
        known = _option_names(solver)
    except TypeError:  # an unhashable callable object
        known = _option_names.__wrapped__(solver)
    if known is None:
        return
    for key in options:
        if key not in known:
            listed = ", ".join(known) if known else "none"
            raise TypeError(f"method {name!r} got an unexpected option {key!r}; its options are: {listed}.")
