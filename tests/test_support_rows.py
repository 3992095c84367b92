"""The kernel-size check's row sample (the stretches it plans and the rows it cuts) and its F statistics.

:func:`kernel_recovery.diagnostics.support._cut_rows` cuts each stretch of a C-contiguous record as a slice of one
view of its windows (a gather by index otherwise); both must give the rows written out one by one.
:func:`~kernel_recovery.diagnostics.support._f_statistics`: one output's the same as in the arrays of several, and
as scipy's F distribution.
"""

import numpy as np
import pytest

from kernel_recovery.diagnostics import support
from kernel_recovery.model.problem import Block


def block_of(rng, lengths, taps, channels, fortran):
    xs, ys = [], []
    for n in lengths:
        x = rng.standard_normal((n, channels))
        xs.append(np.asfortranarray(x) if fortran else x)
        ys.append(rng.standard_normal((n - taps + 1, 2)))
    return Block(xs, ys, taps, np.ones((taps, channels), dtype=bool), np.arange(2))


@pytest.mark.parametrize("fortran", [False, True])
@pytest.mark.parametrize(
    "lengths, taps, channels",
    [([20000], 32, 1), ([9000, 4000, 30], 8, 2), ([300], 5, 1), ([50000, 50000], 64, 3)],
)
def test_cut_rows_are_the_windows_of_the_planned_stretches(rng, fortran, lengths, taps, channels):
    block = block_of(rng, lengths, taps, channels, fortran)
    e = support.CHECK_EXTRA
    stretches = support._row_stretches(block, e)
    assert stretches is not None and len(stretches) == len(lengths)
    width = taps + 2 * e
    want_rows, want_y = [], []
    for x, y, cut, n in zip(block.xs, block.ys, stretches, lengths):
        for lo, hi in cut:
            assert 0 <= lo < hi <= n - width + 1  # inside the subsequence's extended rows
            want_rows += [x[t : t + width].ravel() for t in range(lo, hi)]
            want_y.append(y[lo + e : hi + e])
    a, y = support._cut_rows(block, e, stretches)
    np.testing.assert_array_equal(a, np.array(want_rows))
    np.testing.assert_array_equal(y, np.concatenate(want_y))
    assert len(a) <= support.check_row_budget(block)


def test_stretch_plan_is_cached_per_layout_and_read_only(rng):
    block = block_of(rng, [20000], 16, 1, False)
    first = support._row_stretches(block, 2)
    again = support._row_stretches(block_of(rng, [20000], 16, 1, False), 2)
    assert first is again  # (one plan per layout: a tuple, which no caller can change)
    assert isinstance(first, tuple) and all(isinstance(cut, tuple) for cut in first)


CASES = [  # rss of the longer fit, of the restricted one, y'y
    (1.2, 1.25, 1000.0),  # a healthy fit: nothing explained
    (1.0, 3.0, 1000.0),  # a longer kernel
    (0.0, 2.0, 10.0),  # the longer fit exact: F infinite
    (0.0, 0.0, 10.0),  # both exact
    (1e-20, 2e-20, 1.0),  # exact to rounding: never flagged
    (5.0, 5.0, 0.0),
]


@pytest.mark.parametrize("rss_e, rss_r, yty", CASES)
@pytest.mark.parametrize("q, dof, n_out", [(4, 1500, 1), (2, 11, 3)])
def test_f_statistics_of_one_output_are_those_of_several(rss_e, rss_r, yty, q, dof, n_out):
    import scipy.stats

    one = support._f_statistics(np.array([rss_e]), np.array([rss_r]), np.array([yty]), q, dof, n_out)
    other = (0.5, 0.7, 2.0)  # a second output, so that the arrays' path runs
    two = support._f_statistics(*(np.array(v) for v in zip((rss_e, rss_r, yty), other)), q, dof, n_out)
    for got, want in zip(one, two):
        assert got.shape == (1,) and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want[:1])
    share, p, hit = one
    if rss_e > 0:
        f = ((rss_r - rss_e) / q) / (rss_e / dof)
        np.testing.assert_allclose(p[0], scipy.stats.f.sf(max(f, 0.0), q, dof), rtol=1e-10)
    else:
        assert p[0] == 0.0
    want_share = (rss_r - rss_e) / rss_r if rss_r > 0 else 0.0
    assert share[0] == want_share
    assert hit[0] == (rss_r > 1e-12 * yty and p[0] < support.CHECK_ALPHA / n_out and want_share >= support.CHECK_EFFECT)
