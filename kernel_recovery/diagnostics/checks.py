"""The post-fit checks as typed records: one function each, run in one order after every fit.

Each check is a function ``check(problem, sol, fit) -> Check | None``: ``problem`` the canonical problem, ``sol``
the solver's :class:`~kernel_recovery.model.result.Solution` (canonical space), ``fit`` a :class:`Fit` (what the
pipeline made of the solution, and the records of the checks that ran before).  It returns a :class:`Check`: its
status, the line of ``diagnostics["checks"]``, the sentence for the user and how it reaches them (a warning, a
clause of the result's message, or the diagnostics only), the entries it adds to the result's diagnostics and its
own values; or None where it does not apply after what ran before (it is then not listed).  :data:`CHECKS` is the
order they run in; :func:`run_checks` runs them, and :func:`kernel_recovery.solvers.pipeline.finish` tells the
user what they found.

They run in one order so that they agree on one explanation: another setting that fits (padding, bias, dilation,
one more tap) explains a large residual better than "the kernel is longer" (:func:`one_explanation`), and the
change test is not run on a residual that another check explains.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..exceptions import ChangeWarning, KernelSizeWarning, NonCausalWarning
from ..model.problem import CanonicalProblem
from ..model.result import Solution
from . import changes, misfit, support
from .whiteness import whiteness_check

if TYPE_CHECKING:
    from .determinacy import DeterminacyReport

#: ``passed``: the check ran and found nothing; ``flagged``: it found something; ``skipped``: it could not run
#: here (the data or the method do not allow it); ``not needed``: the fit leaves nothing for it to explain.
Status = Literal["passed", "flagged", "skipped", "not needed"]


@dataclasses.dataclass(frozen=True)
class Check:
    """What one post-fit check found.

    Attributes
    ----------
    name : str
        The check's key in ``diagnostics["checks"]``.
    status : {"passed", "flagged", "skipped", "not needed"}
    reason : str
        Why it was skipped or not needed; for a flag, why it is not told (empty otherwise).
    message : str or None
        The sentence for the user when flagged.
    warning : type of Warning or None
        A flag is warned with this category.
    in_message : bool
        A flag is added to the result's ``message`` (it changes how the fit is read).
    diagnostics : dict
        Entries for the result's ``diagnostics`` (written whatever the status).
    values : dict
        The check's own numbers that other checks may read (e.g. ``relative_residual`` of a longer fit).
    revises : tuple of Check
        Records of earlier checks that this one changes (:func:`one_explanation`); they take their places.
    seconds : float
        How long it took (set by :func:`run_checks`): the check's cost.
    """

    name: str
    status: Status
    reason: str = ""
    message: str | None = None
    warning: type[Warning] | None = None
    in_message: bool = False
    diagnostics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    values: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    revises: tuple[Check, ...] = ()
    seconds: float = 0.0

    @property
    def line(self) -> str:
        """The entry of ``diagnostics["checks"]``: ``checked``, ``flagged[, <reason>]``, ``skipped: <why>`` or
        ``not needed: <why>``."""
        if self.status == "passed":
            return "checked"
        if self.status == "flagged":
            return f"flagged, {self.reason}" if self.reason else "flagged"
        return f"{self.status}: {self.reason}"

    @property
    def flagged(self) -> bool:
        return self.status == "flagged"


@dataclasses.dataclass(frozen=True)
class Fit:
    """What every check may read besides the problem and the solution.

    Attributes
    ----------
    kernel, stderr : ndarray
        The kernel and its standard errors (None where the method gives none) in the user's layout.
    relative_residual : float
        ``residual_rms / rms(y)`` of the result (0 where ``y`` is zero).
    report : DeterminacyReport
        What the data determine.
    retained : bool
        Whether every block keeps its rows (False for streamed statistics).
    earlier : dict
        The records of the checks that ran before, by name (as revised by :func:`one_explanation`).
    """

    kernel: np.ndarray
    stderr: np.ndarray | None
    relative_residual: float
    report: DeterminacyReport
    retained: bool
    earlier: Mapping[str, Check] = dataclasses.field(default_factory=dict)


NOT_RETAINED = "the rows are not retained (streamed statistics only)"


def misconfiguration(problem: CanonicalProblem, sol: Solution, fit: Fit) -> Check:
    """Does another Conv1D setting fit much better (:func:`.misfit.diagnose`)?  Told in the result's message."""
    name, relative = "misconfiguration", fit.relative_residual
    none = {"misconfiguration": None}
    if relative <= misfit.MISFIT_GATE:
        return Check(
            name, "not needed", f"residual {relative:.2g} of y's rms <= {misfit.MISFIT_GATE}", diagnostics=none
        )
    if problem.inputs is None:
        return Check(name, "skipped", "the caller's sequences are not retained (streamed input)", diagnostics=none)
    found = misfit.diagnose(problem, relative)
    if found is None:
        return Check(name, "passed", diagnostics=none)
    return Check(name, "flagged", message=found["message"], in_message=True, diagnostics={"misconfiguration": found})


def kernel_size(problem: CanonicalProblem, sol: Solution, fit: Fit) -> Check:
    """Do a few more taps explain the residual (:func:`.support.kernel_size_check`, an F-test)?  Warned."""
    name = "kernel_size"
    if not fit.retained:
        return Check(name, "skipped", NOT_RETAINED)
    if not fit.report.ok:
        return Check(name, "skipped", f"the data do not determine the kernel ({fit.report.status})")
    too_short, longer_fit, skipped = support.kernel_size_check(problem)
    if too_short is not None:
        found = Check(
            name, "flagged", message=too_short, warning=KernelSizeWarning, values={"relative_residual": longer_fit}
        )
        return one_explanation(found, fit.earlier)
    return Check(name, "skipped", skipped) if skipped else Check(name, "passed")


def lag_scan(problem: CanonicalProblem, sol: Solution, fit: Fit) -> Check | None:
    """Where the kernel-size check ran and found nothing: does the input explain the residual at lags far outside
    the kernel (:func:`.support.lag_scan`)?  Warned as a kernel-size flag."""
    name = "lag_scan"
    if not fit.retained or not fit.report.ok or ("kernel_size" in fit.earlier and fit.earlier["kernel_size"].flagged):
        return None
    too_short, longer_fit, skipped, lags = support.lag_scan(problem, sol)
    if too_short is not None:
        found = Check(
            name,
            "flagged",
            message=too_short,
            warning=KernelSizeWarning,
            diagnostics={} if lags is None else {"suggested_lags": lags},
            values={"relative_residual": longer_fit},
        )
        return one_explanation(found, fit.earlier)
    return Check(name, "skipped", skipped) if skipped else Check(name, "passed")


#: A longer kernel replaces another setting's explanation when it fits to less than this share of the other's
#: relative residual (and the other is not exact: then the setting is the explanation).
LONGER_FIT_SHARE = 0.5
EXACT_FIT = 1e-6


def one_explanation(found: Check, earlier: Mapping[str, Check]) -> Check:
    """A flag that the response is longer than the kernel (``found``), weighed against another setting that fits.

    Where the misconfiguration check suggests another setting than ``kernel_size``, one explanation is told: the
    other setting's, unless the longer kernel fits clearly better; then the misconfiguration's finding is withdrawn
    (its line stays ``flagged``).  ``kernel_size``'s line is the verdict on a longer kernel, whichever of the
    F-test and the lag scan flagged it.  The earlier records so changed are in the returned record's ``revises``.
    """
    revises: list[Check] = []
    reason = ""
    misconf = earlier.get("misconfiguration")
    other = misconf.diagnostics.get("misconfiguration") if misconf is not None else None
    best = other["suggestions"][0] if other is not None else None
    if misconf is not None and best is not None and "kernel_size" not in best["setting"]:
        other_fit = best["relative_residual"]
        if other_fit > EXACT_FIT and found.values["relative_residual"] < LONGER_FIT_SHARE * other_fit:
            none = {"misconfiguration": None}
            revises.append(dataclasses.replace(misconf, message=None, in_message=False, diagnostics=none))
        else:
            found = dataclasses.replace(found, warning=None)
            reason = f"not warned: {best['label']} fits better"
    tested = earlier.get("kernel_size")  # the F-test's record, when the lag scan flagged
    if found.name == "kernel_size":
        found = dataclasses.replace(found, reason=reason)
    elif tested is not None and (reason or tested.status == "passed"):
        revises.append(dataclasses.replace(tested, status="flagged", reason=reason))
    return dataclasses.replace(found, revises=tuple(revises))


def negative_lags(problem: CanonicalProblem, sol: Solution, fit: Fit) -> Check:
    """Is the kernel significant at negative physical lags (:func:`.support.negative_lag_check`)?  Warned."""
    name = "negative_lags"
    if not (problem.config.tap_lags() < 0).any():
        return Check(name, "not needed", "no negative lags")
    if fit.stderr is None:
        return Check(name, "skipped", "the method gives no standard errors")
    non_causal = support.negative_lag_check(problem.config, fit.kernel, fit.stderr)
    if non_causal is None:
        return Check(name, "passed")
    return Check(name, "flagged", message=non_causal, warning=NonCausalWarning)


def whiteness(problem: CanonicalProblem, sol: Solution, fit: Fit) -> Check:
    """Is the residual white (:func:`.whiteness.whiteness_check`, Ljung-Box)?  Reported in the diagnostics only."""
    name = "whiteness"
    if not fit.retained:
        return Check(name, "skipped", NOT_RETAINED, diagnostics={"whiteness": None})
    found, skipped = whiteness_check(problem, sol)
    if found is None:
        return Check(name, "skipped", skipped or "", diagnostics={"whiteness": None})
    status: Status = "flagged" if found["message"] else "passed"
    return Check(name, status, message=found["message"], diagnostics={"whiteness": found})


#: Checks whose flag explains the residual (the change test is then not run on it).
EXPLAIN_RESIDUAL = ("misconfiguration", "kernel_size", "lag_scan")


def change(problem: CanonicalProblem, sol: Solution, fit: Fit) -> Check:
    """Does one kernel explain the whole record (:func:`.changes.find_change`, a score test for a break)?  Warned.

    A coloured residual (the whiteness check flagged it) is prewhitened first: the test's p-values assume white
    noise.
    """
    name, relative = "change", fit.relative_residual
    none = {"change": None}
    if not sol.success:
        return Check(name, "skipped", "the solver did not converge", diagnostics=none)
    if sol.options.get("loss", "mse") != "mse":  # outliers expected: the score test would read them as a break
        return Check(name, "skipped", f"the robust loss {sol.options['loss']!r} expects outliers", diagnostics=none)
    if relative <= changes.FIT_GATE:
        return Check(name, "not needed", f"residual {relative:.2g} of y's rms <= {changes.FIT_GATE}", diagnostics=none)
    if not fit.report.ok:
        return Check(name, "skipped", "the data do not determine the kernel", diagnostics=none)
    if any(fit.earlier[n].flagged for n in EXPLAIN_RESIDUAL if n in fit.earlier):
        return Check(name, "skipped", "another check explains the residual", diagnostics=none)
    whiten = "whiteness" in fit.earlier and fit.earlier["whiteness"].flagged
    found, skipped = changes.find_change(problem, whiten=whiten)
    if found is None:
        return Check(name, "skipped", skipped, diagnostics=none) if skipped else Check(name, "passed", diagnostics=none)
    return Check(name, "flagged", message=found["message"], warning=ChangeWarning, diagnostics={"change": found})


CheckFunction = Callable[[CanonicalProblem, Solution, Fit], "Check | None"]

#: The post-fit checks in the order they run (each may read the records of those before it).
CHECKS: tuple[CheckFunction, ...] = (misconfiguration, kernel_size, lag_scan, negative_lags, whiteness, change)


def run_checks(
    problem: CanonicalProblem, sol: Solution, fit: Fit, checks: Sequence[CheckFunction] = CHECKS
) -> list[Check]:
    """Run ``checks`` in order; the records, in that order (a record revised by a later check in its place)."""
    records: dict[str, Check] = {}
    for check in checks:
        start = time.perf_counter()
        record = check(problem, sol, dataclasses.replace(fit, earlier=dict(records)))
        if record is None:
            continue
        for revised in record.revises:
            records[revised.name] = revised
        records[record.name] = dataclasses.replace(record, seconds=time.perf_counter() - start)
    return list(records.values())
