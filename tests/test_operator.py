"""The one design operator: forward and adjoint agree (dot test), rows agree with both, one rank rule for all."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from references import METHODS

import kernel_recovery as kr
from kernel_recovery.model.design_operator import DesignOperator
from kernel_recovery.model.problem import Block, build_problem
from kernel_recovery.model.spectrum import rank_tolerance
from kernel_recovery.model.statistics import block_gram


@st.composite
def configurations(draw):
    groups = draw(st.sampled_from([1, 2]))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    k = draw(st.integers(1, 9))
    stride = draw(st.integers(1, 3))
    dilation = draw(st.integers(1, 3))
    padding = draw(st.sampled_from(["valid", "same", "causal", "full", (1, 2)]))
    use_bias = draw(st.booleans())
    span = (k - 1) * dilation + 1
    lengths = draw(st.lists(st.integers(span + 2, span + 80), min_size=1, max_size=3))
    return dict(
        kernel_size=k,
        cin=cin,
        cout=cout,
        lengths=lengths,
        conv=dict(stride=stride, dilation=dilation, padding=padding, groups=groups, use_bias=use_bias),
    )


def _problem(cfg, seed=0, taps_scale=1):
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((n, cfg["cin"])) for n in cfg["lengths"]]
    return build_problem(xs, None, cfg["kernel_size"], out_channels=cfg["cout"], **cfg["conv"])


@given(configurations(), st.integers(0, 2**31 - 1))
def test_dot_test_forward_and_adjoint_agree(cfg, seed):
    problem = _problem(cfg, seed)
    for block in problem.blocks:
        op = DesignOperator(block, problem.config.use_bias)
        assert op.dottest(n_out=2, rng=np.random.default_rng(seed)) < 1e-12


@given(configurations(), st.integers(0, 2**31 - 1))
def test_forward_and_adjoint_match_the_explicit_rows(cfg, seed):
    problem = _problem(cfg, seed)
    rng = np.random.default_rng(seed)
    for block in problem.blocks:
        op = DesignOperator(block, problem.config.use_bias)
        a = np.concatenate([op.rows(i) for i in range(len(block.xs))])
        assert a.shape == op.shape
        w = rng.standard_normal((op.shape[1], 3))
        np.testing.assert_allclose(op @ w, a @ w, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(op @ w[:, 0], a @ w[:, 0], rtol=1e-10, atol=1e-10)
        v = rng.standard_normal((op.shape[0], 3))
        np.testing.assert_allclose(op.T @ v, a.T @ v, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(op.rmatvec(v[:, 0]), a.T @ v[:, 0], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(block_gram(block, problem.config.use_bias), a.T @ a, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("taps, channels, length", [(8, 4, 3000), (40, 3, 5000), (300, 1, 20000)])
def test_dot_test_on_the_fft_forward_and_the_fft_or_gemm_adjoint(taps, channels, length, rng):
    # long enough to take the FFT forward (taps x channels x outputs > 64) and the blocked/FFT correlations
    x = rng.standard_normal((length, channels))
    block = build_problem(x, None, taps, out_channels=3).blocks[0]
    op = DesignOperator(block, False)
    assert op.dottest(n_out=3, rng=rng) < 1e-12
    w = rng.standard_normal((op.shape[1], 3))
    a = op.rows(0)
    np.testing.assert_allclose(op.matmat(w), a @ w, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("use_bias", [False, True])
def test_scipy_lsqr_on_the_operator_matches_lstsq_on_the_explicit_design(use_bias, rng):
    from scipy.sparse.linalg import lsqr

    x = [rng.standard_normal((400, 2)), rng.standard_normal((250, 2))]
    problem = build_problem(x, None, 5, stride=2, dilation=2, padding="same", use_bias=use_bias)
    for block in problem.blocks:
        op = DesignOperator(block, use_bias)
        a = np.concatenate([op.rows(i) for i in range(len(block.xs))])
        y = a @ rng.standard_normal(op.shape[1]) + 0.1 * rng.standard_normal(op.shape[0])
        expected = np.linalg.lstsq(a, y, rcond=None)[0]
        coef = lsqr(op, y, atol=1e-14, btol=1e-14, iter_lim=500)[0]
        np.testing.assert_allclose(coef, expected, rtol=1e-9, atol=1e-10)


def test_pylops_takes_the_operator(rng):
    pylops = pytest.importorskip("pylops")
    block = build_problem(rng.standard_normal((300, 3)), None, 6).blocks[0]
    op = pylops.aslinearoperator(DesignOperator(block, True))
    assert pylops.utils.dottest(op, *op.shape, rtol=1e-10)
    a = DesignOperator(block, True).rows(0)
    y = a @ rng.standard_normal(op.shape[1])
    coef = pylops.optimization.basic.lsqr(op, y, x0=np.zeros(op.shape[1]), niter=200, atol=1e-14, btol=1e-14)[0]
    np.testing.assert_allclose(coef, np.linalg.lstsq(a, y, rcond=None)[0], rtol=1e-8, atol=1e-10)


def test_the_operator_needs_the_rows():
    class SampledBlock(Block):  # a streamed block that kept only a sample of its rows
        @property
        def retains_rows(self) -> bool:
            return False

    b = build_problem(np.arange(20.0), None, 3).blocks[0]
    with pytest.raises(ValueError, match="every row"):
        DesignOperator(SampledBlock(b.xs, b.ys, b.taps, b.mask, b.out_channels), False)


def test_the_report_uses_the_one_rank_rule(rng):
    for n, source in ((200, "design"), (40000, "gram")):
        x = rng.standard_normal((n, 2))
        rep = kr.analyze(x, None, 8, warn=False)
        s = rep.singular_values[0]
        assert rep.rank_tolerance[0] == pytest.approx(rank_tolerance(s[0], rep.equations[0], 16, source))


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("length", [300, 60000])
def test_every_method_sees_the_null_space_the_report_names(method, length, rng):
    # channel 1 = 2 x channel 0: the kernel direction (w0, w1) ~ (2, -1) is invisible; every method returns the
    # minimum-norm kernel, orthogonal to the null space the report lists, and the same prediction
    base = rng.standard_normal(length)
    x = np.column_stack([base, 2.0 * base])
    w = rng.standard_normal((4, 2, 1))
    y = kr.conv1d(x, w) + 1e-3 * rng.standard_normal((length - 3, 1))
    options = {"adam": dict(max_iter=3000)}.get(method, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kr.UnderdeterminedWarning)
        warnings.simplefilter("ignore", kr.SpectralWarning)
        res = kr.recover_kernel(x, y, 4, method=method, **options)
        ref = kr.recover_kernel(x, y, 4, method="lstsq")
    rep = res.report
    assert rep.status == "rank_deficient" and rep.rank[0] == 4
    null = rep.null_space[0].reshape(len(rep.null_space[0]), -1)
    k = res.kernel[:, :, 0].ravel()
    assert np.linalg.norm(null @ k) < 1e-3 * np.linalg.norm(k)
    np.testing.assert_allclose(res.kernel, ref.kernel, atol=1e-3)
