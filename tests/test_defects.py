"""Regression tests for the defects of issue 13."""

import copy

import numpy as np
import pytest

import kernel_recovery as kr


def _data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    return x, kr.conv1d(x, [0.5, -1.0, 2.0])


# 2. merging an accumulator with itself ----------------------------------------------------------


def test_merge_with_itself_is_refused():
    x, y = _data()
    acc = kr.NormalEquations(3)
    acc.update(x, y)
    before = acc.statistics()[0]
    with pytest.raises(ValueError, match=r"with itself.*copy\.deepcopy"):
        acc.merge(acc)
    after = acc.statistics()[0]
    assert after.n_rows == before.n_rows == 198
    assert acc.n_equations == 198


@pytest.mark.parametrize("make_copy", [copy.copy, copy.deepcopy], ids=["copy", "deepcopy"])
def test_merge_with_a_copy_doubles_the_data(make_copy):
    x, y = _data()
    acc = kr.NormalEquations(3)
    acc.update(x, y)
    twin = make_copy(acc)
    acc.merge(twin)
    assert acc.n_equations == 2 * 198
    assert twin.n_equations == 198  # the copy is independent of the accumulator it was merged into
    # reference: the same record given twice, as two sequences
    ref = kr.NormalEquations(3)
    for _ in range(2):
        ref.update(x, y)
        ref.end_sequence()
    got, want = acc.statistics()[0], ref.statistics()[0]
    np.testing.assert_allclose(got.gram, want.gram, rtol=1e-12)
    np.testing.assert_allclose(got.cross, want.cross, rtol=1e-12)
    np.testing.assert_allclose(acc.solve().kernel.ravel(), [0.5, -1.0, 2.0], atol=1e-10)


# 3. equivalent spellings of one padding merge ---------------------------------------------------


@pytest.mark.parametrize(
    "first, second, kernel_size, dilation",
    [
        ("valid", 0, 3, 1),
        ("valid", (0, 0), 3, 1),
        ((0, 0), "VALID", 3, 1),
        ("causal", (2, 0), 3, 1),
        ("causal", (4, 0), 3, 2),
        ("full", 2, 3, 1),
        ("same", (1, 1), 3, 1),
        ("same", (1, 2), 4, 1),
    ],
)
def test_equivalent_paddings_merge(first, second, kernel_size, dilation):
    rng = np.random.default_rng(1)
    w = rng.standard_normal(kernel_size)
    xs = [rng.standard_normal(n) for n in (50, 61)]
    ys = [kr.conv1d(x, w, padding=first, dilation=dilation) for x in xs]
    a = kr.NormalEquations(kernel_size, padding=first, dilation=dilation)
    b = kr.NormalEquations(kernel_size, padding=second, dilation=dilation)
    a.update(xs[0], ys[0])
    b.update(xs[1], ys[1])
    a.merge(b)
    # reference: one accumulator given both sequences
    ref = kr.NormalEquations(kernel_size, padding=first, dilation=dilation)
    for x, y in zip(xs, ys):
        ref.update(x, y)
        ref.end_sequence()
    assert a.statistics()[0].n_rows == ref.statistics()[0].n_rows
    np.testing.assert_allclose(a.statistics()[0].gram, ref.statistics()[0].gram, rtol=1e-12)
    np.testing.assert_allclose(a.solve().kernel.ravel(), w, atol=1e-10)


def test_merge_into_an_empty_accumulator_keeps_its_padding():
    x, y = _data()
    empty = kr.NormalEquations(3, padding=0)
    full = kr.NormalEquations(3, padding="valid")
    full.update(x, y)
    empty.merge(full)
    assert empty.config.padding == (0, 0)
    np.testing.assert_allclose(empty.solve().kernel.ravel(), [0.5, -1.0, 2.0], atol=1e-10)


@pytest.mark.parametrize(
    "first, second, stride, kernel_size",
    [
        ("valid", (1, 0), 1, 3),
        ("causal", (1, 0), 1, 3),  # causal is (2, 0) for kernel_size 3
        ("full", "causal", 1, 3),
        ("same", (0, 1), 2, 2),  # "same" with stride 2 depends on the length: (0, 1) for even lengths only
        ("same", (1, 1), 2, 3),
    ],
)
def test_different_paddings_are_still_refused(first, second, stride, kernel_size):
    a = kr.NormalEquations(kernel_size, padding=first, stride=stride)
    b = kr.NormalEquations(kernel_size, padding=second, stride=stride)
    with pytest.raises(ValueError, match="different configurations"):
        a.merge(b)


# 4. a chunk of the wrong type names its place in the stream ---------------------------------------


@pytest.mark.parametrize(
    "bad, what",
    [
        (np.array([1.0, "a", 2.0], dtype=object), "dtype object"),
        ("abc", "real numeric array"),
        (np.ones(5, dtype=complex), "complex"),
    ],
    ids=["object", "str", "complex"],
)
def test_stream_type_error_names_the_chunk(bad, what):
    x, y = _data(60)
    pairs = iter([(x[:30], y[:28]), (bad, y[28:])])
    with pytest.raises(TypeError, match=rf"^chunk 1 of the stream: `x_chunk` .*{what}"):
        kr.recover_kernel(pairs, None, 3)
    with pytest.raises(TypeError, match=rf"^chunk 0 of the stream: `y_chunk` .*{what}"):
        kr.analyze(iter([(x, bad)]), None, 3)


def test_stream_value_error_keeps_its_context():
    x, y = _data(60)
    with pytest.raises(ValueError, match=r"^chunk 1 of the stream: `x_chunk` must be 1-D or 2-D"):
        kr.recover_kernel(iter([(x[:30], y[:28]), (np.zeros((2, 2, 2)), y[28:])]), None, 3)
