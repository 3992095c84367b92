"""NormalEquations: streamed statistics equal the whole sequence's, in any chunking, for every configuration."""

import copy
import itertools

import numpy as np
import pytest
from references import three_tap_record

import kernel_recovery as kr
from kernel_recovery.model import design as model_design
from kernel_recovery.model import spectrum, statistics, toeplitz
from kernel_recovery.solvers import lstsq
from kernel_recovery.streaming import accumulator


def brute_design(x, kernel_size, cout_group, *, use_bias, **conv):
    """The user-space design of output channel 0 of each group, column by column, from conv1d of unit kernels."""
    cin = x.shape[1] // conv.get("groups", 1)
    groups = conv.get("groups", 1)
    cols = []
    for k in range(kernel_size):
        for c in range(cin):
            w = np.zeros((kernel_size, cin, cout_group * groups))
            w[k, c, :] = 1.0
            cols.append(kr.conv1d(x, w, **conv))
    design = np.stack(cols, axis=-1)  # (out_len, cout, P)
    if use_bias:
        design = np.concatenate([design, np.ones(design.shape[:2] + (1,))], axis=-1)
    return design


def feed(acc, x, y, rng, pieces=5):
    """Feed x and y in independent random chunkings (boundaries of x and y need not line up)."""
    cx = np.sort(rng.choice(np.arange(1, len(x)), pieces, replace=False))
    cy = np.sort(rng.choice(np.arange(1, len(y)), pieces - 1, replace=False))
    xs, ys = np.split(x, cx), np.split(y, cy)
    for i in range(max(len(xs), len(ys))):
        acc.update(xs[i] if i < len(xs) else x[:0], ys[i] if i < len(ys) else y[:0])


CONFIGS = list(itertools.product(["valid", "same", "causal", "full", (2, 1)], [1, 2, 3], [1, 2], [1, 2], [False, True]))


@pytest.mark.parametrize("padding,stride,dilation,groups,use_bias", CONFIGS)
def test_chunked_equals_explicit_lstsq(rng, padding, stride, dilation, groups, use_bias):
    k, cin, cout = 3, 2 * groups, 2 * groups
    conv = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    x = rng.standard_normal((120, cin))
    w = rng.standard_normal((k, cin // groups, cout))
    y = kr.conv1d(x, w, **conv)
    y = y + 0.1 * rng.standard_normal(y.shape)
    acc = kr.NormalEquations(k, use_bias=use_bias, **conv)
    feed(acc, x, y, rng)
    res = acc.solve()
    design = brute_design(x, k, cout // groups, use_bias=use_bias, **conv)
    for o in range(cout):
        coef = np.linalg.lstsq(design[:, o, :], y[:, o], rcond=None)[0]
        np.testing.assert_allclose(res.kernel[:, :, o].ravel(), coef[: k * cin // groups], rtol=1e-10, atol=1e-11)
        if use_bias:
            np.testing.assert_allclose(res.bias[o], coef[-1], rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("padding,stride,dilation", [("same", 2, 1), ("valid", 3, 2), ("causal", 1, 3), ((1, 4), 2, 2)])
def test_chunking_invariance_on_the_statistics_path(rng, monkeypatch, padding, stride, dilation):
    for module in (accumulator, model_design, spectrum, toeplitz, lstsq):
        for name in ("EXPLICIT_LIMIT", "SVD_LIMIT"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, 64)
    monkeypatch.setattr(statistics, "CHUNK_ENTRIES", 40)  # many GEMM chunks per sequence
    conv = dict(stride=stride, padding=padding, dilation=dilation, groups=1)
    x = rng.standard_normal((700, 2))
    y = kr.conv1d(x, rng.standard_normal((5, 2, 3)), **conv)
    y = y + 0.05 * rng.standard_normal(y.shape)
    results = []
    for pieces in (1, 7, 40):
        acc = kr.NormalEquations(5, use_bias=True, **conv)
        if pieces == 1:
            acc.update(x, y)
        else:
            feed(acc, x, y, rng, pieces)
        results.append(acc.solve())
    assert all(r.diagnostics["solver"] == ["normal_equations"] for r in results)
    for r in results[1:]:
        np.testing.assert_allclose(r.kernel, results[0].kernel, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(r.bias, results[0].bias, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(r.stderr, results[0].stderr, rtol=1e-9)
    design = brute_design(x, 5, 3, use_bias=True, **conv)
    for o in range(3):
        coef = np.linalg.lstsq(design[:, o, :], y[:, o], rcond=None)[0]
        np.testing.assert_allclose(results[0].kernel[:, :, o].ravel(), coef[:10], rtol=1e-10, atol=1e-11)


def test_statistics_match_explicit_design(rng):
    acc = kr.NormalEquations(4, stride=2, padding="same")
    x = rng.standard_normal((501, 1))
    y = rng.standard_normal((251, 1))
    feed(acc, x, y, rng, 9)
    st = acc.statistics()[0]
    block = kr.model.problem.build_problem(x, y, 4, stride=2, padding="same").blocks[0]
    a = model_design.design_matrix(block, False)
    np.testing.assert_allclose(st.gram, a.T @ a, rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(st.cross, a.T @ np.concatenate(block.ys), rtol=1e-12, atol=1e-11)
    assert st.n_rows == 251


def test_several_sequences_and_merge(rng):
    w = rng.standard_normal((4, 2, 1))
    xs = [rng.standard_normal((n, 2)) for n in (50, 80, 65)]
    ys = [kr.conv1d(x, w, padding="causal") + 0.1 * rng.standard_normal((len(x), 1)) for x in xs]
    whole = kr.recover_kernel(xs, ys, 4, padding="causal")
    one = kr.NormalEquations(4, padding="causal")
    for x, y in zip(xs, ys):
        one.update(x, y)
        one.end_sequence()
    a, b = kr.NormalEquations(4, padding="causal"), kr.NormalEquations(4, padding="causal")
    a.update(xs[0], ys[0])
    b.update(xs[1], ys[1])
    b.end_sequence()
    b.update(xs[2], ys[2])  # left open: merge treats it as ended
    merged = a.merge(b)
    for res in (one.solve(), merged.solve()):
        np.testing.assert_allclose(res.kernel, whole.kernel, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(res.residual_rms, whole.residual_rms, rtol=1e-8)
    assert sorted(merged.solve().report.lengths) == [50, 65, 80]


def test_solve_does_not_close_the_sequence(rng):
    x = rng.standard_normal(400)
    y = kr.conv1d(x, [1.0, 2.0, -1.0])
    acc = kr.NormalEquations(3)
    acc.update(x[:200], y[:150])
    first = acc.solve()
    np.testing.assert_allclose(first.kernel.ravel(), [1.0, 2.0, -1.0], rtol=1e-12)
    acc.update(x[200:], y[150:])
    assert acc.n_equations == 398
    np.testing.assert_allclose(acc.solve().kernel.ravel(), [1.0, 2.0, -1.0], rtol=1e-12)


def test_errors(rng):
    with pytest.raises(ValueError, match="kernel_size"):
        kr.NormalEquations(0)
    with pytest.raises(ValueError, match="padding"):
        kr.NormalEquations(3, padding="middle")
    acc = kr.NormalEquations(3)
    with pytest.raises(ValueError, match="no data"):
        acc.statistics()
    acc.update(rng.standard_normal((10, 2)), rng.standard_normal((8, 1)))
    with pytest.raises(ValueError, match="x_chunk.*3 channels"):
        acc.update(rng.standard_normal((10, 3)), rng.standard_normal((8, 1)))
    with pytest.raises(ValueError, match="x_chunk.*NaN"):
        acc.update(np.full((2, 2), np.nan), np.zeros((0, 1)))
    acc.update(rng.standard_normal((5, 2)), rng.standard_normal((4, 1)))
    with pytest.raises(ValueError, match="13 outputs.*12 output samples"):
        acc.end_sequence()
    with pytest.raises(TypeError, match="other"):
        acc.merge("data")
    with pytest.raises(ValueError, match="different configurations"):
        acc.merge(kr.NormalEquations(4))


# --- merging an accumulator with itself or a copy ---------------------------------------------------


def test_merge_with_itself_is_refused():
    x, y = three_tap_record()
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
    x, y = three_tap_record()
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


# --- equivalent spellings of one padding merge ------------------------------------------------------


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
    x, y = three_tap_record()
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


# -- long single-input kernels: the rows kept, solved as recover_kernel solves them -------------------------------


@pytest.fixture
def long_from_48(monkeypatch):
    """'Long' from 48 taps for the accumulator and the solver alike (a cost threshold: the tests stay small)."""
    monkeypatch.setattr(accumulator, "LONG_KERNEL", 48)
    monkeypatch.setattr(lstsq, "LONG_KERNEL", 48)
    return 48


def long_record(rng, k, groups, padding, use_bias, n=400):
    x = rng.standard_normal((n, groups))
    w = rng.standard_normal((k, 1, groups)) * 0.9 ** np.arange(k)[:, None, None]
    y = kr.conv1d(x, w, [0.5] * groups if use_bias else None, padding=padding, groups=groups)
    return x, y + 0.05 * rng.standard_normal(y.shape)


def assert_explicit_lstsq(res, x, y, k, groups, padding, use_bias):
    design = brute_design(x, k, 1, use_bias=use_bias, padding=padding, groups=groups)
    for o in range(groups):
        coef = np.linalg.lstsq(design[:, o, :], y[:, o], rcond=None)[0]
        np.testing.assert_allclose(res.kernel[:, :, o].ravel(), coef[:k], rtol=1e-8, atol=1e-10)
        if use_bias:
            np.testing.assert_allclose(res.bias[o], coef[-1], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(
    "padding, groups, use_bias", [("valid", 1, False), ("causal", 1, True), ("same", 2, False), ((3, 60), 2, True)]
)
def test_long_kernel_solves_its_rows_as_recover_kernel(rng, long_from_48, padding, groups, use_bias):
    k = 60
    x, y = long_record(rng, k, groups, padding, use_bias)
    acc = kr.NormalEquations(k, padding=padding, groups=groups, use_bias=use_bias)
    feed(acc, x, y, rng, 7)
    res = acc.solve()
    whole = kr.recover_kernel(x, y, k, padding=padding, groups=groups, use_bias=use_bias)
    assert res.diagnostics["solver"] == whole.diagnostics["solver"] == ["toeplitz_cg"] * groups
    np.testing.assert_allclose(res.kernel, whole.kernel, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.stderr, whole.stderr, rtol=1e-8)
    assert_explicit_lstsq(res, x, y, k, groups, padding, use_bias)
    assert_canonical_statistics(acc, x, y, k, padding=padding, groups=groups, use_bias=use_bias)


def assert_canonical_statistics(acc, x, y, k, **conv):
    """The accumulator's statistics against the explicit canonical design of each group."""
    problem = kr.model.problem.build_problem(x, y, k, **conv)
    for st, block in zip(acc.statistics(), problem.blocks):
        a = np.concatenate([model_design.design_rows(block, xb, conv["use_bias"]) for xb in block.xs])
        yb = np.concatenate(block.ys)
        np.testing.assert_allclose(st.gram, a.T @ a, rtol=1e-11, atol=1e-10)
        np.testing.assert_allclose(st.cross, a.T @ yb, rtol=1e-11, atol=1e-10)
        np.testing.assert_allclose(st.yty, np.sum(yb**2, axis=0), rtol=1e-12)
        assert st.n_rows == len(yb)


def test_long_kernel_rows_that_outgrow_their_room_become_statistics(rng, long_from_48):
    k = 60  # room: 60 * 61 floats of statistics; 10000 samples of x and y outgrow it (and the explicit limit)
    x, y = long_record(rng, k, 1, "valid", False, n=5000)
    acc = kr.NormalEquations(k)
    feed(acc, x, y, rng, 6)
    res = acc.solve()
    assert res.diagnostics["solver"] == ["normal_equations"]  # the rows went once they outgrew the room
    assert_explicit_lstsq(res, x, y, k, 1, "valid", False)
    assert_canonical_statistics(acc, x, y, k, padding="valid", groups=1, use_bias=False)


@pytest.mark.parametrize("explicit_limit", [None, 64])
def test_long_kernel_statistics_solve_and_checkpoint_mid_stream_keep_the_rows(
    rng, long_from_48, tmp_path, monkeypatch, explicit_limit
):
    if explicit_limit is not None:  # the checkpoint then holds the statistics alone (no rows)
        for module in (accumulator, model_design, spectrum, toeplitz, lstsq):
            for name in ("EXPLICIT_LIMIT", "SVD_LIMIT"):
                if hasattr(module, name):
                    monkeypatch.setattr(module, name, explicit_limit)
    k = 60
    x, y = long_record(rng, k, 1, "causal", True)
    acc = kr.NormalEquations(k, padding="causal", use_bias=True)
    acc.update(x[:150], y[:120])
    acc.statistics()  # (computed from the kept rows, not accumulated)
    acc.solve()
    acc.save(tmp_path / "acc.npz")
    again = kr.NormalEquations.load(tmp_path / "acc.npz")
    for a in (acc, again):
        a.update(x[150:], y[120:])
    whole = kr.recover_kernel(x, y, k, padding="causal", use_bias=True)
    res = acc.solve()
    assert res.diagnostics["solver"] == ["toeplitz_cg"]
    np.testing.assert_allclose(res.kernel, whole.kernel, rtol=1e-10, atol=1e-12)
    loaded = again.solve()  # a checkpoint holds statistics (and rows only as few as the general rule keeps)
    assert loaded.diagnostics["solver"] == ["toeplitz_cg" if explicit_limit is None else "normal_equations"]
    np.testing.assert_allclose(loaded.kernel, whole.kernel, rtol=1e-8, atol=1e-10)
    assert_explicit_lstsq(loaded, x, y, k, 1, "causal", True)


def test_long_kernel_sequences_and_merge(rng, long_from_48):
    k = 60
    records = [long_record(rng, k, 1, "valid", False, n=n) for n in (300, 240, 410)]
    xs, ys = [r[0] for r in records], [r[1] for r in records]
    whole = kr.recover_kernel(xs, ys, k)
    one = kr.NormalEquations(k)
    for x, y in zip(xs, ys):
        feed(one, x, y, rng, 3)
        one.end_sequence()
    a, b = kr.NormalEquations(k), kr.NormalEquations(k)
    feed(a, xs[0], ys[0], rng, 4)
    b.update(xs[1], ys[1])
    b.end_sequence()
    feed(b, xs[2], ys[2], rng, 2)  # left open: merge treats it as ended
    before = b.solve()
    merged = a.merge(b)
    assert one.solve().diagnostics["solver"] == ["toeplitz_cg"]
    for res in (one.solve(), merged.solve()):
        np.testing.assert_allclose(res.kernel, whole.kernel, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(res.residual_rms, whole.residual_rms, rtol=1e-8)
    np.testing.assert_allclose(b.solve().kernel, before.kernel, rtol=0, atol=0)  # `other` is left as it was
    design = np.concatenate([brute_design(x, k, 1, use_bias=False)[:, 0, :] for x in xs])
    coef = np.linalg.lstsq(design, np.concatenate(ys)[:, 0], rcond=None)[0]
    np.testing.assert_allclose(merged.solve().kernel.ravel(), coef, rtol=1e-8, atol=1e-10)
