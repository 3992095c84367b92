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

The specification tests (:mod:`.specification`: ``saturation``, ``missing_bias``, ``nonlinearity``), the whiteness
check and the change test ask whether one linear convolution describes ``y``.  Each has a stated false-alarm rate
(at most 1e-3 per call; ``benchmarks/misfit.py`` measures 0 of 60 healthy fits warned) and records its p-values in
``diagnostics["specification"]`` (``diagnostics["whiteness"]``, ``diagnostics["change"]``); a flag is a warning
(:class:`~kernel_recovery.exceptions.ModelMisfitWarning`, a change :class:`~kernel_recovery.exceptions.ChangeWarning`)
that says what is wrong and what to do.  A coloured residual is warned only where no other flag explains it.

How much they cost is the caller's choice (``recover_kernel(..., checks=...)``, :data:`LEVELS`): ``"budget"`` (the
default) runs every check on bounded samples of rows (:data:`BUDGET`), so that together they cost a small share of
a large fit and stay in the milliseconds for a small one, with the power of the misfit tests kept
(``benchmarks/misfit.py``); ``"all"`` runs them on the larger samples of each module's constants (more power for
weak effects in long records, whatever the cost); ``"cheap"`` runs only those that read the residual of a bounded
sample or the fit's own numbers, not the refits and scans (``kernel_size``, ``lag_scan``, ``change``); ``"none"``
runs none.  ``diagnostics["checks"]`` lists every check with what happened to it (``skipped: not run
(checks='none')`` for one the level left out) and ``diagnostics["checks"]["level"]`` the level.

``success`` never turns False for a misfit: it says that the solver solved the problem it was given (the least-squares
kernel of a clipped record is that record's least-squares kernel).  Whether that problem describes the data is the
checks' verdict, told by the warnings and kept in ``diagnostics["checks"]``; a caller who wants a failure turns
``ModelMisfitWarning`` into an error (``warnings.simplefilter("error", kr.ModelMisfitWarning)``).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..exceptions import ChangeWarning, KernelSizeWarning, ModelMisfitWarning, NonCausalWarning
from ..model.problem import CanonicalProblem
from ..model.result import Solution
from . import changes, misfit, specification, support
from .whiteness import WHITENESS_LAGS, WHITENESS_MIN_ROWS, WHITENESS_ROWS, whiteness_check

if TYPE_CHECKING:
    from .determinacy import DeterminacyReport

#: ``passed``: the check ran and found nothing; ``flagged``: it found something; ``skipped``: it could not run
#: here (the data or the method do not allow it); ``not needed``: the fit leaves nothing for it to explain.
Status = Literal["passed", "flagged", "skipped", "not needed"]


@dataclasses.dataclass(frozen=True, init=False)
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

    def __init__(
        self,
        name: str,
        status: Status,
        reason: str = "",
        message: str | None = None,
        warning: type[Warning] | None = None,
        in_message: bool = False,
        diagnostics: Mapping[str, Any] | None = None,
        values: Mapping[str, Any] | None = None,
        revises: tuple[Check, ...] = (),
        seconds: float = 0.0,
    ) -> None:
        # the fields in one update of the instance's dict: the frozen dataclass's own __init__ sets them one
        # object.__setattr__ at a time (twice the cost, and a fit makes a dozen records)
        self.__dict__.update(
            name=name,
            status=status,
            reason=reason,
            message=message,
            warning=warning,
            in_message=in_message,
            diagnostics={} if diagnostics is None else diagnostics,
            values={} if values is None else values,
            revises=revises,
            seconds=seconds,
        )

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
    level : {"budget", "all", "cheap", "none"}
        How much the checks may cost (:data:`LEVELS`).
    shared : dict
        What one check computed that another reads (the residual rows of the specification tests).
    """

    kernel: np.ndarray
    stderr: np.ndarray | None
    relative_residual: float
    report: DeterminacyReport
    retained: bool
    earlier: Mapping[str, Check] = dataclasses.field(default_factory=dict)
    level: str = "budget"
    shared: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)

    def rows(self, name: str, full: int) -> int:
        """The sample size of ``name`` (a key of :data:`BUDGET`) at this level: ``full`` unless budgeted."""
        return full if self.level == "all" else min(full, BUDGET[name])


#: ``checks=`` of :func:`kernel_recovery.recover_kernel`: how much the post-fit checks may cost.
LEVELS = ("budget", "all", "cheap", "none")

#: The samples of the budgeted checks (``checks="budget"``, the default; ``"all"`` uses each module's own constant,
#: the larger one).  Each is at least the misfit bank's record (4000 samples), so that its power is kept there, and
#: bounds the check's cost on long records: the change test ``O(rows P^2)`` (at most ``changes.SAMPLE_ROWS``), the
#: specification tests and the whiteness check one forward pass and ``O(rows)`` sums (at most
#: ``specification.ROWS``, ``whiteness.WHITENESS_ROWS``).  The lag scan keeps its own samples (``support.SCAN_*``):
#: on fewer rows it misses weak tails (a room response's decay beyond the kernel, tests/test_lags.py).
BUDGET = {
    "change": 4096,
    "scan_pairs": support.SCAN_PAIR_ROWS,
    "scan_rows": support.SCAN_MIN_ROWS,
    "scan_reach": support.SCAN_MIN,
    "specification": 4096,
    "whiteness": 4096,
}
#: The checks that ``checks="cheap"`` leaves out (each refits, scans or factors beyond the fit's own numbers).
COSTLY = ("kernel_size", "lag_scan", "change")


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
    too_short, longer_fit, skipped, lags = support.lag_scan(
        problem,
        sol,
        pair_rows=fit.rows("scan_pairs", support.SCAN_PAIR_ROWS),
        min_rows=fit.rows("scan_rows", support.SCAN_MIN_ROWS),
        min_reach=fit.rows("scan_reach", support.SCAN_MIN),
    )
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
    if problem.config.lags is None or problem.config.lags[0] >= 0:  # (the least of tap_lags() is lags[0], or 0)
        return Check(name, "not needed", "no negative lags")
    if fit.stderr is None:
        return Check(name, "skipped", "the method gives no standard errors")
    non_causal = support.negative_lag_check(problem.config, fit.kernel, fit.stderr)
    if non_causal is None:
        return Check(name, "passed")
    return Check(name, "flagged", message=non_causal, warning=NonCausalWarning)


def _specification_gate(name: str, sol: Solution, fit: Fit) -> Check | None:
    """Why a specification test does not run here (a record, with ``diagnostics["specification"]`` None: every
    result has the key, as ``"whiteness"``), or None when it does."""
    none = {"specification": None}
    if not fit.retained:
        return Check(name, "skipped", NOT_RETAINED, diagnostics=none)
    if not sol.success:  # the residual of an unfinished solve is not the model's
        return Check(name, "skipped", "the solver did not converge", diagnostics=none)
    if fit.relative_residual <= changes.FIT_GATE:
        reason = f"residual {fit.relative_residual:.2g} of y's rms <= {changes.FIT_GATE}"
        return Check(name, "not needed", reason, diagnostics=none)
    if sol.options.get("loss", "mse") != "mse":
        return Check(name, "skipped", f"the robust loss {sol.options['loss']!r} expects outliers", diagnostics=none)
    return None


def _specification(fit: Fit, name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """``diagnostics["specification"]``: the entries of the specification tests so far, with ``name``'s (``entry``,
    the caller's own dict)."""
    so_far: dict[str, Any] = {}
    earlier = fit.earlier
    for before in _LATEST_FIRST:  # (each entry holds those before it: the latest one's copy holds them all)
        record = earlier.get(before)
        if record is not None:
            found = record.diagnostics.get("specification")
            if found:
                so_far.update(found)
                break
    so_far[name] = entry
    return {"specification": so_far}


#: The checks whose entries are in ``diagnostics["specification"]``, in the order they run.
SPECIFICATION = ("saturation", "missing_bias", "nonlinearity")
_LATEST_FIRST = SPECIFICATION[::-1]


def _block_rows(problem: CanonicalProblem, sol: Solution, fit: Fit) -> list[specification.Rows] | None:
    """Per block, the outputs, fitted values and residuals of its first rows (:func:`.specification.block_rows`):
    one forward pass for the specification tests and the whiteness check, kept in ``fit.shared`` (each reads the
    first rows of its own sample size)."""
    shared = fit.shared
    if "rows" not in shared:
        count = max(fit.rows("specification", specification.ROWS), fit.rows("whiteness", WHITENESS_ROWS))
        found: list[specification.Rows] = []
        for b in range(len(problem.blocks)):
            rows = specification.block_rows(problem, sol, b, count)
            if rows is None:  # (a block without its rows, or a non-finite solution: no test reads any)
                break
            found.append(rows)
        shared["rows"] = found if len(found) == len(problem.blocks) else None
    return shared["rows"]


#: A flagged specification test (missing bias, nonlinearity) is warned when its p-value is below this; between it
#: and the test's own level (``specification.ALPHA``) it is told in ``diagnostics["specification"]`` only, so that
#: the warning stays rare on healthy fits of every method (an approximate optimum, coloured noise).
SPECIFICATION_WARN = 1e-8


def _told(name: str, message: str, p: float, diagnostics: dict[str, Any], explained: str) -> Check:
    """A flagged specification record: warned (ModelMisfitWarning) unless weak or explained by another check."""
    if explained:
        return Check(name, "flagged", f"not warned: {explained}", message=message, diagnostics=diagnostics)
    if p >= SPECIFICATION_WARN:
        reason = f"not warned: p >= {SPECIFICATION_WARN:g} (told in diagnostics['specification'])"
        return Check(name, "flagged", reason, message=message, diagnostics=diagnostics)
    return Check(name, "flagged", message=message, warning=ModelMisfitWarning, diagnostics=diagnostics)


def _per_channel(
    problem: CanonicalProblem,
    sol: Solution,
    fit: Fit,
    name: str,
    test: Callable[[specification.Rows, int], tuple[float, float]],
    value_key: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, dict[str, Any]] | Check:
    """``test(rows, j) -> (value, p)`` per output channel on the first rows of its block (:class:`.specification.Rows`;
    ``j`` the channel's row there).

    Returns the values, the p-values (Bonferroni over the channels tested; NaN where too few rows), the flagged
    channels, the most significant of them and the diagnostics entry; or the record when none ran or none is flagged.
    """
    gate = _specification_gate(name, sol, fit)
    if gate is not None:
        return gate
    blocks = _block_rows(problem, sol, fit)
    if blocks is None:
        return Check(name, "skipped", "the solution is not finite")
    count = fit.rows("specification", specification.ROWS)
    found: dict[int, tuple[float, float]] = {}  # output channel: (value, p); the arrays are made once, below
    for rows in blocks:
        if rows.y.shape[1] > count:
            rows = rows.head(count)
        if rows.y.shape[1] >= specification.MIN_ROWS:
            for j, o in enumerate(rows.out_channels.tolist()):
                found[o] = test(rows, j)
    if not found:
        return Check(name, "skipped", f"fewer than {specification.MIN_ROWS} residuals per output channel")
    value, p = np.full((2, problem.config.out_channels), np.nan)
    tests = len(found)
    hit = []
    for o, (v, q) in found.items():
        q *= tests
        value[o], p[o] = v, min(1.0, q)
        if q < specification.ALPHA:
            hit.append(o)
    diagnostics = _specification(fit, name, {value_key: value, "p_value": p, "alpha": specification.ALPHA})
    if len(hit) > 1:
        hit.sort()
    if not hit:
        return Check(name, "passed", diagnostics=diagnostics)
    return value, p, np.array(hit), min(hit, key=lambda o: p[o]), diagnostics


def _residual_of(channels: np.ndarray) -> str:
    return f"the residual of output channel(s) {', '.join(map(str, channels))}"


def _p_text(p: float) -> str:
    return f"p={p:.1e}" if p >= 1e-300 else "p<1e-300"


def saturation(problem: CanonicalProblem, sol: Solution, fit: Fit) -> Check:
    """Does ``y`` pile up at one value (clipped, saturated, rectified; :func:`.specification.saturation_test`)?
    Warned (ModelMisfitWarning)."""
    name = "saturation"
    gate = _specification_gate(name, sol, fit)
    if gate is not None:
        return gate
    n_out = problem.config.out_channels
    found: list[dict[str, Any] | None] = [None] * n_out
    rows = specification.ROWS  # the test reads the first ROWS samples of each channel
    for block in problem.blocks:
        outputs = block.outputs
        if not outputs:
            continue
        if len(outputs) == 1 or len(outputs[0]) >= rows:  # (the first sequence holds them: no copy)
            first = outputs[0][:rows]
        else:
            ys, left = [], rows
            for y in outputs:
                if left > 0:
                    ys.append(y[:left])
                    left -= len(ys[-1])
            first = np.concatenate(ys)
        for j, o in enumerate(block.out_channels.tolist()):
            found[o] = specification.saturation_test(first[:, j])
    tests = 0
    for f in found:
        if f is not None:
            tests += f["tests"]
    tests = max(1, tests)
    p_list: list[float] = []
    values: list[float | None] = []
    shares: list[float] = []
    hit = []
    for o, f in enumerate(found):  # (one pass: the entry's lists and the flagged channels)
        if f is None:
            p_list.append(np.nan)
            values.append(None)
            shares.append(np.nan)
            continue
        q = min(1.0, f["p_value"] * tests)
        p_list.append(q)
        values.append(f["value"])
        shares.append(f["share"])
        if q < specification.ALPHA and f["share"] >= specification.MIN_SHARE:
            hit.append(o)
    p = np.array(p_list)
    entry = {"p_value": p, "value": values, "share": np.array(shares), "alpha": specification.ALPHA}
    diagnostics = _specification(fit, name, entry)
    if not hit:
        return Check(name, "passed", diagnostics=diagnostics)
    o = max(hit, key=lambda c: found[c]["share"])  # type: ignore[index]
    f = found[o]
    assert f is not None
    message = (
        f"y of output channel {o} equals {f['value']:.6g} in {f['count']} of its samples ({f['share']:.1%}; a "
        f"continuous output takes a value once, and no other value occurs more than {f['mode']} time(s), "
        f"{_p_text(float(p[o]))}): the output is clipped, saturated or rectified (a ReLU), and those samples do not "
        "follow the convolution. Set them to NaN in y and fit with nan_policy='omit'."
    )
    return Check(name, "flagged", message=message, warning=ModelMisfitWarning, diagnostics=diagnostics)


def missing_bias(problem: CanonicalProblem, sol: Solution, fit: Fit) -> Check:
    """With ``use_bias=False``: is the residual's mean nonzero (:func:`.specification.bias_statistic`)?  Warned."""
    name = "missing_bias"
    if problem.config.use_bias:
        return Check(name, "not needed", "use_bias=True")
    found = _per_channel(problem, sol, fit, name, _bias, "mean")
    if isinstance(found, Check):
        return found
    mean, p, hit, o, diagnostics = found
    message = (
        f"{_residual_of(hit)} has a nonzero mean ({mean[o]:.3g} on channel {o}, {_p_text(float(p[o]))}) with "
        "use_bias=False: y has an offset the model lacks. Fit with use_bias=True."
    )
    return _told(name, message, float(p[o]), diagnostics, "")  # warned even beside the misconfiguration's message


def _bias(rows: specification.Rows, j: int) -> tuple[float, float]:
    """The residual's mean and the bias test's p-value (:func:`.specification.bias_statistic`), from the centred
    residual's lagged products, kept on ``rows`` for the whiteness check (the same rows where its sample size is the
    specification tests')."""
    e, lengths = rows.resid[j], rows.lengths
    products = rows.products.get(j)
    if products is None:
        products = rows.products[j] = specification.centred_products(e, lengths, _shared_lags(len(e)))
    mean, _, p = specification.bias_statistic(e, lengths, products)
    return mean, p


@functools.lru_cache(maxsize=64)
def _shared_lags(n: int) -> int:
    """The lags of the residual's products that the bias test and the whiteness check read on ``n`` rows."""
    return max(specification.nw_lags(n), min(WHITENESS_LAGS, n // 5))


def _reset(rows: specification.Rows, j: int) -> tuple[float, float]:
    """RESET's statistic and p-value (:func:`.specification.reset_statistic`)."""
    return specification.reset_statistic(rows.fitted[j], rows.resid[j], rows.lengths)


def nonlinearity(problem: CanonicalProblem, sol: Solution, fit: Fit) -> Check:
    """Does the residual depend on powers of the fitted values (RESET, :func:`.specification.reset_statistic`)?  Warned,
    unless the saturation check already told the cause."""
    name = "nonlinearity"
    found = _per_channel(problem, sol, fit, name, _reset, "statistic")
    if isinstance(found, Check):
        return found
    _, p, hit, o, diagnostics = found
    message = (
        f"{_residual_of(hit)} depends on the squares and cubes of the fitted values (RESET test, "
        f"{_p_text(float(p[o]))}): y is not a linear function of x (saturation, "
        "rectification, a quadratic term), and the kernel is the best linear fit, not the system. Model the "
        "nonlinearity, or set the samples where it acts to NaN in y and fit with nan_policy='omit'."
    )
    told = "saturation" in fit.earlier and fit.earlier["saturation"].flagged
    return _told(name, message, float(p[o]), diagnostics, "the saturation check tells the cause" if told else "")


def whiteness(problem: CanonicalProblem, sol: Solution, fit: Fit) -> Check:
    """Is the residual white (:func:`.whiteness.whiteness_check`, Ljung-Box)?  Reported in the diagnostics only."""
    name = "whiteness"
    if not fit.retained:
        return Check(name, "skipped", NOT_RETAINED, diagnostics={"whiteness": None})
    if "rows" in fit.shared:  # the specification tests made them
        rows = fit.shared["rows"]
    else:
        testable = any(block.n_equations >= WHITENESS_MIN_ROWS for block in problem.blocks)  # (else no forward pass)
        rows = _block_rows(problem, sol, fit) if testable else None
    found, skipped = whiteness_check(problem, sol, fit.rows("whiteness", WHITENESS_ROWS), rows)
    if found is None:
        return Check(name, "skipped", skipped or "", diagnostics={"whiteness": None})
    # told, not warned: coloured noise is common in measurements and is not a misfit of the kernel (it is unbiased);
    # it is the standard errors that it affects, and the entry's message says so and points to prewhiten='noise'
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
    # the projected test (large kernels) scores the fit's own residual, which is the least-squares one only for an
    # unpenalized fit: a ridge or prior shrinks the kernel, and its residual's score is not centred (false breaks)
    penalized = any(sol.options.get(k) is not None for k in ("regularization", "prior")) or bool(
        np.any(np.asarray(sol.options.get("ridge") or 0.0) > 0)
    )
    coefs = None if penalized else [_coefficients(problem, sol, b) for b in range(len(problem.blocks))]
    rows = fit.rows("change", changes.SAMPLE_ROWS)
    found, skipped = changes.find_change(problem, whiten=whiten, coefs=coefs, sample_rows=rows)
    if found is None:
        return Check(name, "skipped", skipped, diagnostics=none) if skipped else Check(name, "passed", diagnostics=none)
    return Check(name, "flagged", message=found["message"], warning=ChangeWarning, diagnostics={"change": found})


def _coefficients(problem: CanonicalProblem, sol: Solution, b: int) -> np.ndarray:
    """Block ``b``'s coefficients over its design's columns ``(P, O)``: free taps, then the bias."""
    block, kernel = problem.blocks[b], sol.kernels[b]
    coef = kernel.reshape(-1, kernel.shape[-1])[block.mask.ravel()]
    if problem.config.use_bias:
        bias = sol.biases[b] if sol.biases is not None else np.zeros(kernel.shape[-1])
        coef = np.concatenate([coef, np.asarray(bias, dtype=coef.dtype)[None]])
    return np.asarray(coef, dtype=np.float64)


CheckFunction = Callable[[CanonicalProblem, Solution, Fit], "Check | None"]

#: The post-fit checks in the order they run (each may read the records of those before it).
CHECKS: tuple[CheckFunction, ...] = (
    misconfiguration,
    kernel_size,
    lag_scan,
    negative_lags,
    saturation,
    missing_bias,
    nonlinearity,
    whiteness,
    change,
)


#: The diagnostics entries of a check the level leaves out (every result has the keys, whatever ran).
_ENTRIES: dict[str, dict[str, Any]] = {
    "misconfiguration": {"misconfiguration": None},
    "saturation": {"specification": None},
    "missing_bias": {"specification": None},
    "nonlinearity": {"specification": None},
    "whiteness": {"whiteness": None},
    "change": {"change": None},
}


@functools.cache
def _not_run(name: str, level: str) -> Check:
    """The record of a check that ``level`` leaves out (made once: records are frozen, and building nine of them was
    a tenth of run_checks' cost at checks='none')."""
    return Check(name, "skipped", f"not run (checks={level!r})", diagnostics=_ENTRIES.get(name, {}))


def run_checks(
    problem: CanonicalProblem, sol: Solution, fit: Fit, checks: Sequence[CheckFunction] = CHECKS
) -> list[Check]:
    """Run ``checks`` in order at ``fit.level``; the records, in that order (a record revised by a later check in its
    place; a check the level leaves out is ``skipped: not run (checks=...)``)."""
    records: dict[str, Check] = {}
    # the checks read the records so far (they do not keep them): a copy of ``fit`` that holds them (a shallow copy
    # of its fields, as dataclasses.replace makes, without re-running the frozen __init__: a tenth of a toy's checks)
    fit_copy = object.__new__(Fit)
    fit_copy.__dict__.update(fit.__dict__, earlier=records)
    fit = fit_copy
    level = fit.level
    left_out = None if level == "none" else COSTLY if level == "cheap" else ()
    clock = time.perf_counter
    for check in checks:
        name = check.__name__
        if left_out is None or name in left_out:
            records[name] = _not_run(name, level)
            continue
        start = clock()
        record = check(problem, sol, fit)
        if record is None:
            continue
        for revised in record.revises:
            records[revised.name] = revised
        # the record is the check's own, made by this call: its cost is set in place (a dataclasses.replace per
        # check was a tenth of a toy fit's checks)
        record.__dict__["seconds"] = clock() - start
        records[record.name] = record
    return list(records.values())
