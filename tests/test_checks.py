"""The post-fit checks as typed records: the lines they give, the one-explanation rule, the registry's order."""

import dataclasses
import warnings

import numpy as np
import pytest

import kernel_recovery as kr
from kernel_recovery.diagnostics import checks, specification, whiteness
from kernel_recovery.diagnostics.checks import Check
from kernel_recovery.exceptions import KernelSizeWarning
from kernel_recovery.model.problem import build_problem
from kernel_recovery.solvers import lstsq


@pytest.mark.parametrize(
    "record, line",
    [
        (Check("a", "passed"), "checked"),
        (Check("a", "flagged", message="m"), "flagged"),
        (
            Check("a", "flagged", "not warned: padding='same' fits better"),
            "flagged, not warned: padding='same' fits better",
        ),
        (Check("a", "skipped", "the method gives no standard errors"), "skipped: the method gives no standard errors"),
        (Check("a", "not needed", "no negative lags"), "not needed: no negative lags"),
    ],
)
def test_each_status_gives_its_line(record, line):
    assert record.line == line


def _misconfiguration(label: str, setting: dict, fit: float) -> Check:
    found = {"suggestions": [{"setting": setting, "label": label, "relative_residual": fit}], "message": "try it"}
    return Check(
        "misconfiguration", "flagged", message="try it", in_message=True, diagnostics={"misconfiguration": found}
    )


def _longer(name: str, fit: float) -> Check:
    return Check(name, "flagged", message="longer", warning=KernelSizeWarning, values={"relative_residual": fit})


def test_another_setting_that_fits_better_is_the_one_explanation():
    earlier = {"misconfiguration": _misconfiguration("padding='causal'", {"padding": "causal"}, 1e-3)}
    found = checks.one_explanation(_longer("kernel_size", 0.1), earlier)
    assert found.line == "flagged, not warned: padding='causal' fits better" and found.warning is None
    assert found.revises == ()


def test_a_longer_kernel_that_fits_clearly_better_withdraws_the_other_setting():
    earlier = {"misconfiguration": _misconfiguration("dilation=2", {"dilation": 2}, 1e-2)}
    found = checks.one_explanation(_longer("kernel_size", 1e-4), earlier)
    assert found.line == "flagged" and found.warning is KernelSizeWarning
    (withdrawn,) = found.revises
    assert withdrawn.name == "misconfiguration" and withdrawn.line == "flagged"
    assert withdrawn.diagnostics == {"misconfiguration": None} and not withdrawn.in_message


def test_an_exact_other_setting_is_the_explanation_however_well_the_longer_kernel_fits():
    earlier = {"misconfiguration": _misconfiguration("use_bias=True", {"use_bias": True}, 1e-9)}
    assert checks.one_explanation(_longer("kernel_size", 1e-12), earlier).warning is None


def test_a_suggested_kernel_size_agrees_with_the_longer_kernel():
    earlier = {"misconfiguration": _misconfiguration("kernel_size=6", {"kernel_size": 6}, 1e-3)}
    found = checks.one_explanation(_longer("kernel_size", 0.1), earlier)
    assert found.line == "flagged" and found.warning is KernelSizeWarning and found.revises == ()


@pytest.mark.parametrize(
    "tested, misfit, kernel_line",
    [
        (Check("kernel_size", "passed"), None, "flagged"),
        (Check("kernel_size", "skipped", "too few equations for an F-test"), None, None),
        (
            Check("kernel_size", "passed"),
            ("padding='same'", {"padding": "same"}, 1e-3),
            "flagged, not warned: padding='same' fits better",
        ),
    ],
    ids=["scan-flags", "f-test-skipped", "other-setting"],
)
def test_the_lag_scan_sets_the_verdict_on_a_longer_kernel(tested, misfit, kernel_line):
    earlier = {"kernel_size": tested}
    if misfit is not None:
        earlier["misconfiguration"] = _misconfiguration(*misfit)
    found = checks.one_explanation(_longer("lag_scan", 0.1), earlier)
    assert found.line == "flagged"
    revised = {r.name: r.line for r in found.revises}
    assert revised.get("kernel_size") == kernel_line


def _fit(problem, sol, report):
    kernel = problem.from_canonical(sol.kernels)
    stderr = problem.from_canonical(sol.kernel_stderr)
    return checks.Fit(kernel=kernel, stderr=stderr, relative_residual=0.1, report=report, retained=True)


def test_run_checks_gives_one_record_per_check_in_order(rng):
    x = rng.standard_normal(2000)
    y = kr.conv1d(x, [1.0, -0.5, 0.25]) + 0.1 * rng.standard_normal(1998)
    res = kr.recover_kernel(x, y, 3)
    problem = build_problem(x, y, 3)
    sol = lstsq.solve(problem)
    records = checks.run_checks(problem, sol, _fit(problem, sol, res.report))
    assert [r.name for r in records] == [f.__name__ for f in checks.CHECKS]
    assert all(r.status in ("passed", "flagged", "skipped", "not needed") and r.seconds >= 0 for r in records)
    # the result's lines are the records' (its relative residual is the result's, not 0.1: the gates differ)
    assert {r.name for r in records} | {"residual", "level"} == set(res.diagnostics["checks"])


def test_levels_choose_which_checks_run_and_the_result_records_it(rng):
    x = rng.standard_normal(3000)
    y = np.clip(kr.conv1d(x, [1.0, -0.5, 0.25]) + 0.01 * rng.standard_normal(2998), -0.8, 0.8)  # a clipped sensor
    names = [f.__name__ for f in checks.CHECKS]
    with pytest.warns(kr.ModelMisfitWarning, match="clipped"):
        budget = kr.recover_kernel(x, y, 3)
    with pytest.warns(kr.ModelMisfitWarning, match="clipped"):
        cheap = kr.recover_kernel(x, y, 3, checks="cheap")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is checked, so nothing is warned
        none = kr.recover_kernel(x, y, 3, checks="none")
    assert budget.diagnostics["checks"]["level"] == "budget" and budget.diagnostics["checks"]["saturation"] == "flagged"
    assert cheap.diagnostics["checks"]["saturation"] == "flagged"
    assert [cheap.diagnostics["checks"][n] for n in checks.COSTLY] == ["skipped: not run (checks='cheap')"] * 3
    assert none.diagnostics["checks"] == {
        "level": "none", "residual": none.diagnostics["checks"]["residual"],
        **{n: "skipped: not run (checks='none')" for n in names},
    }  # fmt: skip
    # the keys the checks fill are there whatever ran; the fit itself is the same at every level
    assert none.diagnostics["specification"] is None and none.diagnostics["change"] is None
    np.testing.assert_array_equal(none.kernel, budget.kernel)
    with pytest.raises(ValueError, match="`checks` must be 'budget', 'all', 'cheap' or 'none', got 'some'"):
        kr.recover_kernel(x, y, 3, checks="some")


def test_a_subset_of_checks_runs_alone(rng):
    x = rng.standard_normal(2000)
    y = kr.conv1d(x, [1.0, -0.5, 0.25]) + 0.1 * rng.standard_normal(1998)
    problem = build_problem(x, y, 3)
    sol = lstsq.solve(problem)
    report = kr.recover_kernel(x, y, 3).report
    (record,) = checks.run_checks(problem, sol, _fit(problem, sol, report), [checks.whiteness])
    assert record.name == "whiteness" and record.line == "checked"
    assert set(record.diagnostics) == {"whiteness"}


def test_results_carry_the_records_lines_and_tell_each_flag_once(rng):
    x = rng.standard_normal(3000)
    w = np.exp(-np.arange(40) / 6.0) * rng.standard_normal(40)
    y = kr.conv1d(x, w, padding="causal") + 0.01 * rng.standard_normal(3000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = kr.recover_kernel(x, y, 20, padding="causal")
    assert [type(w.message) for w in caught] == [KernelSizeWarning]
    assert res.diagnostics["checks"]["kernel_size"] == "flagged"
    assert res.diagnostics["checks"]["change"] == "skipped: another check explains the residual"


def test_records_are_frozen_and_own_their_entries():
    a, b = Check("a", "passed"), Check("b", "skipped", "why")
    assert a.diagnostics == {} and a.values == {} and a.diagnostics is not b.diagnostics
    assert (a.reason, a.message, a.warning, a.in_message, a.revises, a.seconds) == ("", None, None, False, (), 0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.status = "flagged"  # type: ignore[misc]
    moved = dataclasses.replace(b, status="flagged", message="m", diagnostics={"x": 1})
    expected = ("b", "flagged", "why", "m", None, False, {"x": 1}, {}, (), 0.0)
    assert tuple(getattr(moved, f.name) for f in dataclasses.fields(Check)) == expected
    assert moved == Check("b", "flagged", "why", message="m", diagnostics={"x": 1}) and moved != b


@pytest.mark.parametrize("scale", [0.0, 0.05, 0.3, 1.0, 3.0])
def test_p_values_of_the_bias_and_reset_tests_are_the_chi_square_laws(rng, scale):
    # the tests give their p-values in closed form (chi2(1): erfc(sqrt(x / 2)), chi2(2): exp(-x / 2)); scipy's law is
    # the reference, from p near 1 to p near the smallest double
    from scipy.stats import chi2

    f = rng.standard_normal(2000)
    e = 0.1 * rng.standard_normal(2000) + scale * (0.1 + 0.3 * f**2)
    _, stat, p = specification.bias_statistic(e, (2000,))
    assert p == pytest.approx(chi2.sf(stat, 1), rel=1e-12, abs=1e-300)
    stat, p = specification.reset_statistic(f, e, (1200, 800))
    assert p == pytest.approx(chi2.sf(stat, 2), rel=1e-12, abs=1e-300)
    assert (p < 1e-8) == (scale >= 0.3)


def test_a_block_of_too_few_rows_is_told_alike_with_or_without_the_shared_rows(rng):
    x = rng.standard_normal(45)
    problem = build_problem(x, kr.conv1d(x, [1.0, -0.5]) + 0.1 * rng.standard_normal(44), 2)
    sol = lstsq.solve(problem)
    shared = [specification.block_rows(problem, sol, 0, 4096)]
    alone, given = whiteness.whiteness_check(problem, sol), whiteness.whiteness_check(problem, sol, rows=shared)
    assert alone == given == (None, "too few residuals (44 per output channel, at least 50 needed)")


@pytest.mark.parametrize("offset, colour", [(0.0, 0.0), (0.0, 0.8), (5.0, 0.0)])
def test_whiteness_reading_the_bias_tests_products_is_the_ljung_box_statistic(rng, offset, colour):
    # with use_bias=False the bias test computes the residual's centred lagged products and the whiteness check reads
    # them: its Q is the textbook Ljung-Box statistic of the first 4096 residuals (the budget's rows), by hand
    from scipy.stats import chi2

    x = rng.standard_normal(6000)
    noise = rng.standard_normal(6000 - 7)
    noise[1:] += colour * noise[:-1]
    y = kr.conv1d(x, rng.standard_normal(8)) + offset + 0.1 * noise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the offset is warned: a missing bias)
        res = kr.recover_kernel(x, y, 8)
    assert res.diagnostics["checks"]["missing_bias"] != "not needed: use_bias=True"
    e = (y - kr.conv1d(x, res.kernel.ravel()))[:4096]
    e = e - e.mean()
    n, h = len(e), 10
    r = np.array([e[k:] @ e[: n - k] for k in range(1, h + 1)]) / (e @ e)
    q = n * (n + 2) * np.sum(r**2 / (n - np.arange(1, h + 1)))
    white = res.diagnostics["whiteness"]
    assert white["rows"] == 4096 and white["lags"] == h
    assert white["statistic"][0] == pytest.approx(q, rel=1e-9)
    assert white["p_value"][0] == pytest.approx(chi2.sf(q, h), rel=1e-8, abs=1e-300)
