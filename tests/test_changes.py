"""Change detection: the false-alarm rate under a fixed kernel, and finding an abrupt change."""

import numpy as np
import pytest

import kernel_recovery as kr
from kernel_recovery.diagnostics import changes
from kernel_recovery.model import statistics
from kernel_recovery.model.problem import build_problem
from kernel_recovery.solvers import lstsq


def _record(rng, n, k, cut=None, noise=0.5, scale=0.3):
    x = rng.standard_normal(n)
    w1 = rng.standard_normal(k)
    y = kr.conv1d(x, w1, padding="causal")
    if cut is not None:
        w2 = w1 + scale * rng.standard_normal(k)
        y = np.where(np.arange(n) < cut, y, kr.conv1d(x, w2, padding="causal"))
    return x, y + noise * rng.standard_normal(n)


def _detect(x, y, k, alpha):
    problem = build_problem(x, y, k, padding="causal")
    sol = lstsq.solve(problem)
    return changes.detect(problem, sol.kernels, sol.biases, alpha=alpha)


def test_false_alarm_rate_under_a_fixed_kernel_is_at_most_alpha():
    rng = np.random.default_rng(0)
    alpha, trials = 0.05, 300
    alarms = sum(_detect(*_record(rng, 2000, 4), 4, alpha)[0] is not None for _ in range(trials))
    # Bonferroni over correlated splits: at most alpha (binomial sd at alpha: 0.013), in practice below it
    assert alarms / trials <= alpha + 0.03
    assert alarms / trials >= 0.002  # the test is not vacuous: it does fire at this level sometimes


@pytest.mark.parametrize("cut", [3000, 10000, 16500])
def test_abrupt_change_is_found_near_its_time(cut):
    rng = np.random.default_rng(cut)
    x, y = _record(rng, 20000, 8, cut=cut)
    report, status = _detect(x, y, 8, changes.ALPHA)
    assert status == "flagged"
    assert abs(report["times"][0] - cut) < 20000 / 100  # within 1% of the record
    assert report["p_value"] < 1e-6


def test_recover_kernel_warns_and_records_the_change():
    rng = np.random.default_rng(1)
    x, y = _record(rng, 20000, 8, cut=8000)
    with pytest.warns(kr.ChangeWarning, match="changed near output sample"):
        result = kr.recover_kernel(x, y, 8, padding="causal")
    assert result.diagnostics["checks"]["change"] == "flagged"
    assert abs(result.diagnostics["change"]["times"][0] - 8000) < 20000 / 100  # within 1% of the record
    assert result.diagnostics["checks"]["level"] == "budget"
    # checks="all" samples more rows (8192 of 20000): the time to the refinement's resolution (record / SPLITS^2)
    with pytest.warns(kr.ChangeWarning, match="changed near output sample"):
        full = kr.recover_kernel(x, y, 8, padding="causal", checks="all")
    assert abs(full.diagnostics["change"]["times"][0] - 8000) <= 20000 / changes.SPLITS**2
    fixed = kr.recover_kernel(*_record(rng, 20000, 8), 8, padding="causal")
    assert fixed.diagnostics["change"] is None and fixed.diagnostics["checks"]["change"] == "checked"


def test_exact_fits_and_streamed_problems_are_not_checked():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(3000)
    exact = kr.recover_kernel(x, kr.conv1d(x, [1.0, 2.0]), 2)
    assert exact.diagnostics["checks"]["change"].startswith("not needed")
    acc = kr.NormalEquations(4, padding="causal", forgetting=0.999)
    acc.update(*_record(rng, 3000, 4))
    assert acc.solve().diagnostics["checks"]["change"].startswith("skipped: the rows are not retained")
    parts = [x[:1500], x[1500:]]
    noisy = [kr.conv1d(p, [1.0, 2.0]) + 0.1 * rng.standard_normal(len(p) - 1) for p in parts]
    batch = kr.recover_kernel(parts, noisy, 2)
    assert batch.diagnostics["checks"]["change"].startswith("skipped: several sequences")


def test_statistic_is_the_score_test_at_the_reported_split():
    # the explicit design (sliding windows of x), numpy's least squares and pseudo-inverses: LM at the split
    rng = np.random.default_rng(3)
    n, k = 3000, 4
    x = rng.standard_normal(n + k - 1)
    a = np.lib.stride_tricks.sliding_window_view(x, k)
    w1, w2 = rng.standard_normal(k), rng.standard_normal(k)
    y = np.where(np.arange(n) < 1700, a @ w1, a @ w2) + 0.5 * rng.standard_normal(n)
    problem = build_problem(x, y, k)
    sol = lstsq.solve(problem)
    report, status = changes.detect(problem, sol.kernels, sol.biases)
    assert status == "flagged"
    split = report["times"][0]  # every row is sampled: the output sample after the split is the rows before it
    r = y - a @ np.linalg.lstsq(a, y, rcond=None)[0]
    gk = a[:split].T @ a[:split]
    score = a[:split].T @ r[:split]
    cov = gk - gk @ np.linalg.inv(a.T @ a) @ gk
    lm = score @ np.linalg.pinv(cov) @ score / (r @ r / (n - k))
    np.testing.assert_allclose(report["statistic"], lm, rtol=1e-8)
    assert abs(split - 1700) < n / changes.SPLITS


def test_candidates_hold_the_largest_score_of_each_pass(monkeypatch):
    # the proxy picks the splits whose exact LM is computed: with every split computed the answer is the same
    rng = np.random.default_rng(4)
    x, y = _record(rng, 6000, 8, cut=2500, scale=0.15)
    problem = build_problem(x, y, 8, padding="causal")
    sol = lstsq.solve(problem)
    chosen, _ = changes.detect(problem, sol.kernels, sol.biases)
    monkeypatch.setattr(changes, "CANDIDATES", 2 * changes.SPLITS)
    every, _ = changes.detect(problem, sol.kernels, sol.biases)
    assert chosen is not None and every is not None
    assert chosen["statistic"] == pytest.approx(every["statistic"], rel=1e-12)
    assert chosen["times"] == every["times"]


@pytest.mark.parametrize(
    "step, taps, channels, bias", [(1, 8, 1, False), (3, 32, 1, True), (2, 5, 3, True), (9, 4, 2, True)]
)
def test_toeplitz_grams_are_the_products_of_the_rows(step, taps, channels, bias):
    # windows of one sequence every `step` samples (with a column of ones): the Grams of the first k rows, from
    # the products of their first `lead` columns, against the explicit products
    rng = np.random.default_rng(step + taps)
    x = rng.standard_normal((900, channels))
    a = np.lib.stride_tricks.sliding_window_view(x, (taps, channels))[::step, 0].reshape(-1, taps * channels)
    if bias:
        a = np.concatenate([a, np.ones((len(a), 1))], axis=1)
    window, lead = taps * channels, min(step, taps) * channels
    points = np.array([taps, 40, 41, len(a) - taps])
    first = np.stack([a[:k, :lead].T @ a[:k] for k in points])
    head = statistics.window_products(a[: -(-window // lead) - 1], lead)
    got = statistics.window_grams(a, window, lead, first, points, head)
    want = np.stack([a[:k].T @ a[:k] for k in points])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_statistic_on_sampled_rows_is_the_score_test_at_the_reported_split():
    # every second row sampled (12000 > SAMPLE_ROWS): the Grams from the windows' first products; the reference is
    # the explicit sampled design, numpy's least squares over every row and the whole Gram
    rng = np.random.default_rng(5)
    n, k, cut = 12000, 32, 7000
    x = rng.standard_normal(n + k - 1)
    a = np.lib.stride_tricks.sliding_window_view(x, k)
    w1 = rng.standard_normal(k)
    w2 = w1 + 0.05 * rng.standard_normal(k)
    y = np.where(np.arange(n) < cut, a @ w1, a @ w2) + 0.5 * rng.standard_normal(n)
    problem = build_problem(x, y, k)
    report, why = changes.find_change(problem)
    assert why is None and report is not None
    step = -(-n // changes.SAMPLE_ROWS)
    assert step == 2 and len(a) * k * (k - step) >= changes.TOEPLITZ_SAVING  # (the Toeplitz Grams are used)
    r = y - a @ np.linalg.lstsq(a, y, rcond=None)[0]
    sample, rs = a[::step], r[::step]
    split = (report["times"][0] - 1) // step + 1  # sampled rows before the split
    gk = sample[:split].T @ sample[:split]
    score = sample[:split].T @ rs[:split]
    cov = gk - gk @ np.linalg.inv(a.T @ a) @ gk
    sigma2 = rs @ rs * (n / len(sample)) / (n - k)
    np.testing.assert_allclose(report["statistic"], score @ np.linalg.pinv(cov) @ score / sigma2, rtol=1e-8)
    assert abs(report["times"][0] - cut) < n / changes.SPLITS


@pytest.mark.parametrize("shape", [(31, 8, 9), (5, 1, 3), (31, 32, 33), (3, 24, 25)])
@pytest.mark.parametrize("with_base", [False, True])
def test_running_sums_are_the_cumulative_sums(shape, with_base):
    # small slices by a product with a triangle of ones, large ones added in place: numpy's cumsum as reference
    rng = np.random.default_rng(sum(shape))
    parts = rng.standard_normal(shape)
    base = rng.standard_normal(shape[1:]) if with_base else None
    want = np.cumsum(parts, axis=0) + (0.0 if base is None else base)
    got = changes._accumulate(parts.copy(), base)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("lead, base", [(3, False), (8, True), (1, True)])
def test_fine_grams_are_the_products_of_the_rows_before_each_point(masked, lead, base, monkeypatch):
    # one masked product (short stretches) or a product per stretch: against the explicit products of the rows
    monkeypatch.setattr(changes, "MASKED_GRAM_WORK", 1 << 40 if masked else 0)
    rng = np.random.default_rng(lead)
    a = rng.standard_normal((300, 8))
    start, points = 100, np.array([101, 130, 131, 250])
    before = a[:start, :lead].T @ a[:start] if base else None
    got = changes._grams(a, points, start, before, lead)
    first = 0 if base else start
    want = np.stack([a[first:k, :lead].T @ a[first:k] for k in points])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize(
    "points", [[101, 130, 131, 250], [60, 90, 150, 151], [150, 160, 170, 299], [10, 20, 30, 40], [150, 150, 151, 152]]
)
def test_grams_near_the_coarse_peak_are_the_products_of_the_rows_before_each_point(points):
    # points on either side of the centre (or at it): against the explicit products of the rows before each
    rng = np.random.default_rng(len(points))
    a = rng.standard_normal((300, 7))
    center, points = 150, np.array(points)
    got = changes._grams_near(a, points, center, a[:center].T @ a[:center])
    want = np.stack([a[:k].T @ a[:k] for k in points])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("outputs", [1, 3])
def test_fine_scores_are_the_products_with_the_residuals(outputs):
    rng = np.random.default_rng(outputs)
    a, r = rng.standard_normal((200, 6)), rng.standard_normal((200, outputs))
    start, step, count = 37, 5, 30
    got = changes._scores(a, r, start, step, count, a[:start].T @ r[:start])
    want = np.stack([a[: start + step * i].T @ r[: start + step * i] for i in range(1, count + 1)])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_full_rank_forms_against_the_inverse_and_unsettled_splits():
    # s' C^-1 s (numpy's inverse) where the factor proves the rank full; a nearly singular covariance, a
    # non-candidate and (any factorization failing, as numpy's batched one would) every split go to the caller's
    # eigendecomposition
    rng = np.random.default_rng(6)
    p, o = 6, 2
    cov = np.stack([(lambda m: m.T @ m)(rng.standard_normal((3 * p, p))) for _ in range(4)])
    tol2 = 1e-12
    cov[2] += (1e-3 * tol2 * np.trace(cov[2]) - np.linalg.eigvalsh(cov[2])[0]) * np.eye(p)  # (below the rule)
    s = rng.standard_normal((4, p, o))
    want = np.einsum("kpo,kpq,kqo->ko", s, np.linalg.inv(cov), s)
    before = cov.copy()
    got, unsettled = changes._full_rank_forms(cov, s, None, tol2)
    assert list(unsettled) == [False, False, True, False] and np.all(got[2] == 0)
    np.testing.assert_allclose(got[[0, 1, 3]], want[[0, 1, 3]], rtol=1e-10)
    some, unsettled = changes._full_rank_forms(cov, s, np.array([True, False, True, True]), tol2)
    assert list(unsettled) == [False, True, True, False]
    np.testing.assert_allclose(some[[0, 3]], want[[0, 3]], rtol=1e-10)
    assert np.array_equal(cov, before)  # (factored and inverted in a copy, not in the caller's covariances)
    # one triangle is read (the upper one of each C-ordered split): the other may hold the covariance's rounding
    lower = np.tril(rng.standard_normal((4, p, p)), -1)
    skewed, unsettled = changes._full_rank_forms(cov + 1e-3 * lower, s, None, tol2)
    assert list(unsettled) == [False, False, True, False]
    np.testing.assert_array_equal(skewed, got)
    none, unsettled = changes._full_rank_forms(cov, s, np.zeros(4, dtype=bool), tol2)
    assert unsettled.all() and np.all(none == 0)
    cov[1] -= 2 * np.linalg.eigvalsh(cov[1])[0] * np.eye(p)  # (indefinite: its factorization fails)
    failed, unsettled = changes._full_rank_forms(cov, s, None, tol2)
    assert unsettled.all() and np.all(failed == 0)


def test_splits_inside_the_trimming_are_the_masked_ones():
    rng = np.random.default_rng(7)
    for _ in range(500):
        first, step, count = int(rng.integers(0, 400)), int(rng.integers(1, 40)), int(rng.integers(1, 33))
        n, edge = int(rng.integers(first + 1, 2000)), int(rng.integers(0, 300))
        splits = first + step * np.arange(1, count + 1)
        i0, i1 = changes._inside(first, step, count, edge, n)
        assert list(np.arange(i0, i1)) == list(np.flatnonzero((splits >= edge) & (splits <= n - edge)))


@pytest.mark.parametrize("use_bias", [False, True])
def test_least_squares_from_a_held_gram_is_numpys(use_bias):
    # a spectrum that holds its Gram (and would compute V on demand): G^+ = H H' from the Gram's Cholesky, and the
    # coefficients, against numpy's least squares on the explicit design
    rng = np.random.default_rng(8)
    x = rng.standard_normal(500)
    y = np.convolve(x, [1.0, -0.5, 0.25], mode="valid") + 0.1 * rng.standard_normal(498) + 2.0 * use_bias
    problem = build_problem(x, y, 3, use_bias=use_bias)
    block = problem.blocks[0]
    a = np.lib.stride_tricks.sliding_window_view(x, 3)
    a = np.concatenate([a, np.ones((len(a), 1))], axis=1) if use_bias else a

    class Held:  # (asking for V would fail the test)
        gram = a.T @ a

        @property
        def right_vectors(self):
            raise AssertionError("V asked for")

    block.cache[("spectrum", use_bias)] = Held()
    half, coef = changes._least_squares(block, use_bias, a, y[:, None], True)
    np.testing.assert_allclose(half @ half.T, np.linalg.inv(a.T @ a), rtol=1e-10)
    np.testing.assert_allclose(coef[:, 0], np.linalg.lstsq(a, y, rcond=None)[0], rtol=1e-10)
