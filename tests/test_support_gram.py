"""The kernel-size check's Gram from its shift structure, and the Yule-Walker filters of the lag scan.

:func:`kernel_recovery.diagnostics.support._stretch_gram` builds ``A^T A`` of the sampled extended rows from the
first block row, the stretch ends' windows and a cumulative sum; here it is compared with the Gram of the rows written
out by Python slicing (every layout: one or several channels, stretches and sequences, masked taps).  The F-test gives
the same fits, p-values and flags through either Gram.  The prediction filters (one gather for all the loaded
Toeplitz systems) are compared with ``scipy.linalg.solve_toeplitz`` channel by channel.
"""

import numpy as np
import pytest
import scipy.linalg
import scipy.signal

from kernel_recovery.diagnostics import support
from kernel_recovery.model.problem import Block
from kernel_recovery.model.whitening import autocorrelations, prediction_filters


def explicit_rows(x, width, stretches):
    """Row ``t`` of a stretch is ``x[t : t + width]`` flattened tap-major, written out."""
    return np.array([x[t : t + width].ravel() for lo, hi in stretches for t in range(lo, hi)])


@pytest.mark.parametrize(
    "taps, channels, lengths, e",
    [
        (32, 1, (10000,), 2),  # eight chunks of one record
        (8, 1, (1000,), 2),  # one stretch
        (6, 3, (2000, 1500), 2),  # several channels and sequences
        (40, 2, (700, 9000, 300), 2),  # chunks split across sequences
        (1, 1, (5000,), 0),  # one column: no shift terms
        (3, 4, (4000,), 1),
    ],
)
def test_stretch_gram_is_the_gram_of_the_sampled_rows(rng, taps, channels, lengths, e):
    xs = [rng.standard_normal((n, channels)) for n in lengths]
    ys = [rng.standard_normal((n - taps + 1, 1)) for n in lengths]
    block = Block(xs, ys, taps, np.ones((taps, channels), dtype=bool), np.arange(1))
    width = taps + 2 * e
    stretches = support._row_stretches(block, e)
    a, _ = support._cut_rows(block, e, stretches)
    rows = np.concatenate([explicit_rows(x, width, cut) for x, cut in zip(xs, stretches) if cut])
    np.testing.assert_array_equal(a, rows)
    want = np.zeros((width * channels, width * channels))
    for r in rows:
        want += np.outer(r, r)
    got = support._stretch_gram(block, e, stretches, a)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())
    np.testing.assert_array_equal(got, got.T)


@pytest.mark.parametrize(
    "taps, channels, outputs, lengths, use_bias, true_taps",
    [
        (32, 1, 2, (10000,), False, 36),  # flagged: the response is longer
        (32, 1, 1, (10000,), True, 32),  # not flagged
        (6, 3, 2, (2000, 1500), True, 8),
        (20, 2, 1, (6000,), False, 20),
    ],
)
def test_f_test_is_the_same_through_either_gram(
    rng, monkeypatch, taps, channels, outputs, lengths, use_bias, true_taps
):
    mask = np.ones((taps, channels), dtype=bool)
    mask[1::4, 0] = False
    xs = [rng.standard_normal((n, channels)) for n in lengths]
    h = rng.standard_normal((true_taps, channels, outputs))
    if true_taps == taps:  # a response the restricted fit can take: zero where the kernel is fixed at zero
        h[~mask] = 0.0
    shift = (true_taps - taps) // 2
    ys = []
    for x in xs:
        full = sum(
            np.stack([np.correlate(x[:, i], h[:, i, k], "valid") for k in range(outputs)], 1) for i in range(channels)
        )
        m = len(x) - taps + 1
        y = np.zeros((m, outputs))
        y[shift : shift + len(full)] = full[: m - shift]
        ys.append(y + 0.1 * rng.standard_normal((m, outputs)) + (0.5 if use_bias else 0.0))
    block = Block(xs, ys, taps, mask, np.arange(outputs))
    e = support.CHECK_EXTRA
    monkeypatch.setattr(support, "STRUCTURED_GRAM", 0)  # every Gram from its shift structure
    shifted = support._f_test(block, e, use_bias, outputs)
    monkeypatch.setattr(support, "STRUCTURED_GRAM", np.inf)  # every Gram as A^T A
    plain = support._f_test(block, e, use_bias, outputs)
    np.testing.assert_array_equal(shifted["hit"], plain["hit"])
    assert plain["hit"].all() == (true_taps > taps)
    for key in ("rss", "share", "ext"):
        np.testing.assert_allclose(shifted[key], plain[key], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(shifted["p"], plain["p"], rtol=1e-9, atol=1e-300)


def yule_walker(acf, order):
    """The prediction-error filter of one channel by Levinson's recursion (scipy), lag 0 loaded by 1e-6."""
    col = acf[:order].copy()
    col[0] *= 1 + 1e-6
    return np.r_[1.0, -scipy.linalg.solve_toeplitz(col, acf[1 : order + 1])]


@pytest.mark.parametrize("silent", [(), (0,), (1, 2)])
def test_prediction_filters_are_levinsons(rng, silent):
    order, channels = 16, 4
    x = scipy.signal.lfilter([1.0], [1.0, -0.9, 0.5], rng.standard_normal((800, channels)), axis=0)
    x[:, list(silent)] = 0.0
    acf = autocorrelations([x], order)
    got = prediction_filters(acf)
    for c in range(channels):
        want = np.eye(order + 1)[0] if c in silent else yule_walker(acf[:, c], order)
        np.testing.assert_allclose(got[:, c], want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("use_bias", [False, True])
def test_f_test_near_the_rank_rule_uses_the_product_gram(rng, monkeypatch, use_bias):
    # a nearly sinusoidal input: the Gram's weak directions sit near the rank rule, where the fits (a pseudo-inverse)
    # follow the Gram's rounding, so the check makes them from A^T A itself, whatever the layout
    taps, n = 14, 20000
    x = np.sin(0.05 * np.arange(n))[:, None] + 1e-6 * rng.standard_normal((n, 1))
    w = rng.standard_normal(taps)
    y = np.correlate(x[:, 0], w, "valid")[:, None]
    y = y + 0.01 * y.std() * rng.standard_normal(y.shape)
    block = Block([x], [y], taps, np.ones((taps, 1), dtype=bool), np.arange(1))
    e = support.CHECK_EXTRA
    monkeypatch.setattr(support, "STRUCTURED_GRAM", 0)
    shifted = support._f_test(block, e, use_bias, 1)
    monkeypatch.setattr(support, "STRUCTURED_GRAM", np.inf)
    plain = support._f_test(block, e, use_bias, 1)
    for key in ("rss", "share", "p", "ext", "hit"):
        np.testing.assert_array_equal(shifted[key], plain[key])
