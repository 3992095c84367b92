"""The analyzer's rank at every size and on every path (issue 26, item 2).

Above a few hundred single-input taps the report does not take an exact spectrum of the design; streamed
statistics keep no rows.  The rank and status must still be those of the explicit design, judged by
``numpy.linalg.matrix_rank`` with the tolerance the report states.
"""

import numpy as np
import pytest
from scipy.signal import lfilter

import kernel_recovery as kr
from kernel_recovery.diagnostics.analysis import report_for
from kernel_recovery.model import spectrum

N = 3000


def design(x, k, use_bias=False):
    """The explicit valid cross-correlation design: row t is x[t : t + k] (and a 1 for the bias)."""
    rows = np.lib.stride_tricks.sliding_window_view(x, k)
    return np.column_stack([rows, np.ones(len(rows))]) if use_bias else rows


def inputs(kind, rng, n=N):
    if kind == "white":
        return rng.standard_normal(n)
    if kind == "ar":
        return lfilter([1.0], [1.0, -0.9], rng.standard_normal(n))
    t = np.arange(n)  # three sinusoids: the design has rank 6
    return np.sin(0.3 * t) + 0.5 * np.cos(1.1 * t + 0.2) + 0.25 * np.sin(2.0 * t)


def streamed(x, k, chunk=700, **settings):
    acc = kr.NormalEquations(k, **settings)
    y = np.zeros(len(x) - k + 1)  # only the design matters for the rank
    for i in range(0, len(x), chunk):
        acc.update(x[i : i + chunk], y[i : i + chunk])
    return acc


def expected_status(rank, k, n):
    return "rank_deficient" if rank < k else ("determined" if n == k else "overdetermined")


@pytest.mark.parametrize("chunk", [N, 700])  # no rows kept; the first chunk's rows kept
@pytest.mark.parametrize("k", [257, 1000])
@pytest.mark.parametrize("kind", ["white", "ar"])
def test_streamed_and_in_memory_rank_equal_the_explicit_design(kind, k, chunk, rng):
    x = inputs(kind, rng)
    rep = report_for(streamed(x, k, chunk).problem())
    mem = kr.analyze(x, None, k)
    a = design(x, k)
    reference = np.linalg.matrix_rank(a, tol=rep.rank_tolerance[0])
    assert reference == k
    assert rep.rank.tolist() == mem.rank.tolist() == [reference]
    assert rep.status == mem.status == expected_status(reference, k, len(a)) == "overdetermined"
    assert rep.excitation_order.tolist() == [k]


@pytest.mark.parametrize("k", [257, 1000])
def test_few_sinusoids_stay_deficient_with_the_right_rank(k, rng):
    x = inputs("sines", rng)
    rep = report_for(streamed(x, k, N).problem())
    with pytest.warns(kr.UnderdeterminedWarning, match=r"excites 6 of the"):
        mem = kr.analyze(x, None, k)
    reference = np.linalg.matrix_rank(design(x, k), tol=rep.rank_tolerance[0])
    assert reference == 6
    assert rep.rank.tolist() == mem.rank.tolist() == [reference]
    assert rep.status == mem.status == "rank_deficient"
    assert rep.excitation_order.tolist() == [6]


def test_streamed_solve_of_a_healthy_long_kernel_warns_nothing(rng):
    x = inputs("ar", rng, 4000)
    w = rng.standard_normal(300)
    y = kr.conv1d(x, w) + 0.01 * rng.standard_normal(len(x) - 299)
    acc = kr.NormalEquations(300)
    for i in range(0, len(x), 2000):  # no rows kept
        acc.update(x[i : i + 2000], y[i : i + 2000])
    res = acc.solve()  # filterwarnings=error: no UnderdeterminedWarning
    assert res.report.status == "overdetermined" and res.report.rank.tolist() == [300]
    assert np.max(np.abs(res.kernel.ravel() - w)) < 0.05


@pytest.mark.parametrize("kind", ["white", "ar", "sines"])
def test_gram_diagonal_estimate_is_counted_from_the_gram(kind, rng, monkeypatch):
    # above GRAM_SPECTRUM_LIMIT a block without rows is estimated from its Gram's diagonals; the rank is counted
    monkeypatch.setattr(spectrum, "GRAM_SPECTRUM_LIMIT", 16)
    x, k = inputs(kind, rng), 257
    rep = report_for(streamed(x, k, N, use_bias=True).problem())
    reference = np.linalg.matrix_rank(design(x, k, use_bias=True), tol=rep.rank_tolerance[0])
    assert rep.rank.tolist() == [reference] == [k + 1 if kind != "sines" else 7]
    assert rep.status == expected_status(reference, k + 1, N - k + 1)


def test_gram_diagonal_estimate_matches_the_welch_estimate(rng, monkeypatch):
    monkeypatch.setattr(spectrum, "GRAM_SPECTRUM_LIMIT", 16)
    monkeypatch.setattr(spectrum, "COUNT_LIMIT", 16)  # the estimate alone: a broadband input is never rank 0
    x, k = inputs("ar", rng, 100_000), 600
    rep = report_for(streamed(x, k, chunk=20_000).problem())
    mem = kr.analyze(x, None, k)  # rows: the Welch estimate
    assert not rep.exact_rank and rep.rank.tolist() == mem.rank.tolist() == [k]
    np.testing.assert_allclose(rep.singular_values[0], mem.singular_values[0], rtol=0.15)


def test_gram_rank_counts_eigenvalues_above_the_gram_tolerance(rng):
    q, _ = np.linalg.qr(rng.standard_normal((80, 80)))
    lam = np.concatenate([np.geomspace(1e4, 1.0, 50), np.full(30, 1e-14)])
    gram = (q * lam) @ q.T
    rank, tol = spectrum.gram_rank(gram, 1000)
    assert tol == pytest.approx(spectrum.rank_tolerance(100.0, 1000, 80, "gram"), rel=1e-6)
    assert rank == int((np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0, None)) > tol).sum()) == 50
    assert spectrum.gram_rank(np.zeros((70, 70)), 100)[0] == 0


@pytest.mark.parametrize("use_bias", [False, True])
def test_two_inputs_streamed_without_rows(use_bias, rng):
    # 2 x 520 taps: above APPROXIMATE_ABOVE columns; one input broadband, the other two sinusoids (rank 4)
    t = np.arange(N)
    x = np.column_stack([rng.standard_normal(N), np.sin(0.4 * t) + np.cos(1.3 * t)])
    k = 520
    acc = kr.NormalEquations(k, use_bias=use_bias)
    acc.update(x, np.zeros((N - k + 1, 1)))
    rep = report_for(acc.problem())
    rows = np.lib.stride_tricks.sliding_window_view(x, k, axis=0).reshape(N - k + 1, -1)
    a = np.column_stack([rows, np.ones(len(rows))]) if use_bias else rows
    reference = np.linalg.matrix_rank(a, tol=rep.rank_tolerance[0])
    assert reference == k + 4 + int(use_bias)
    assert rep.rank.tolist() == [reference] and rep.status == "rank_deficient"
    assert rep.excitation_order.tolist() == [k, 4]
