"""Result types: strict JSON (null for NaN and inf), short reprs, array-likes from other libraries, custom solvers."""

import json
import typing

import numpy as np
import pytest

import kernel_recovery as kr
from kernel_recovery.cli import main
from kernel_recovery.model.arrays import jsonable
from kernel_recovery.model.config import ConvConfig
from kernel_recovery.model.design import unpack_columns
from kernel_recovery.model.design_operator import DesignOperator
from kernel_recovery.model.problem import CanonicalProblem


def strict_loads(text: str):
    """``json.loads`` that refuses the NaN / Infinity / -Infinity tokens, as JavaScript's JSON.parse does."""

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def rank_deficient_result():
    x = np.sin(0.3 * np.arange(100.0))  # a sinusoid excites 2 of 4 kernel directions
    with pytest.warns(kr.UnderdeterminedWarning):
        return kr.recover_kernel(x, kr.conv1d(x, [1.0, -0.5, 0.2, 0.1]), 4)


def nan_stderr_solver(problem, *, scale=1.0):
    """A custom method whose standard errors are unknown (NaN) for the last tap."""
    kernels, stderrs = [], []
    for block in problem.blocks:
        op = DesignOperator(block, problem.config.use_bias)
        a = np.concatenate([op.rows(i) for i in range(len(block.xs))])
        coef = np.linalg.lstsq(a, np.concatenate(block.ys), rcond=None)[0]
        kernel, _ = unpack_columns(block, coef, False)
        se = np.full(kernel.shape, 0.01 * scale)
        se[-1] = np.nan
        kernels.append(kernel)
        stderrs.append(se)
    return kr.Solution(kernels, kernel_stderr=stderrs, options={"scale": scale, "where": np.inf})


def test_strict_parser_refuses_the_tokens_python_writes():
    with pytest.raises(ValueError, match="Infinity"):
        strict_loads(json.dumps({"c": float("inf")}))


def test_rank_deficient_result_json_is_strict_and_null_means_inf():
    res = rank_deficient_result()
    assert np.isinf(res.report.condition_number).all()
    for text in (res.to_json(), res.to_json(indent=1), json.dumps(res.to_dict(), allow_nan=False)):
        d = strict_loads(text)
        assert d["report"]["condition_number"] == [None] and d["report"]["error_per_unit_noise"] == [None]
        assert d["report"]["status"] == "rank_deficient" and d["report"]["cause_codes"] == ["few_frequencies"]
    report = strict_loads(res.report.to_json())
    assert report == res.report.to_dict() == d["report"]
    assert np.array(report["null_space"][0]).shape == (2, 4, 1)
    kernel_err = np.array(report["kernel_error_per_unit_noise"], dtype=float)  # null -> nan
    assert np.isnan(kernel_err).any()


def test_nan_stderr_and_nan_noise_estimate_are_null():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(300)
    y = kr.conv1d(x, [1.0, -0.5, 0.25]) + 0.01 * rng.standard_normal(298)
    res = kr.recover_kernel(x, y, 3, method=nan_stderr_solver)
    d = strict_loads(res.to_json())
    assert d["stderr"] == [[[0.01]], [[0.01]], [[None]]]
    assert d["options"] == {"scale": 1.0, "where": None} and d["method"] == "nan_stderr_solver"
    # a square system leaves no degrees of freedom for the noise: NaN, written null
    x5 = rng.standard_normal(5)
    square = kr.recover_kernel(x5, kr.conv1d(x5, [1.0, -0.5, 0.2]), 3)
    assert np.isnan(square.diagnostics["noise_std"]).all()
    assert strict_loads(square.to_json())["diagnostics"]["noise_std"] == [None]


def test_to_dict_round_trips_the_fields(rng):
    x = rng.standard_normal((2, 300, 2))
    w = rng.standard_normal((3, 2, 2))
    y = kr.conv1d(x, w, [0.5, -1.0], stride=2, padding="same") + 0.01 * rng.standard_normal((2, 150, 2))
    res = kr.recover_kernel(x, y, 3, stride=2, padding="same", use_bias=True)
    d = strict_loads(res.to_json())
    np.testing.assert_array_equal(np.array(d["kernel"]), res.kernel)
    np.testing.assert_array_equal(np.array(d["bias"]), res.bias)
    np.testing.assert_array_equal(np.array(d["stderr"]), res.stderr)
    np.testing.assert_array_equal(np.array(d["bias_stderr"]), res.bias_stderr)
    assert ConvConfig(**d["config"]) == res.config
    assert d["residual_rms"] == res.residual_rms and d["success"] is True and d["message"] == res.message
    assert d["method"] == "lstsq" and d["options"]["ridge"] == 0.0 and d["diagnostics"]["dof"] == res.diagnostics["dof"]
    assert d["report"]["equations"] == res.report.equations.tolist()
    assert d["loss_history"] is None and d["n_iterations"] == res.n_iterations


def test_jsonable_helper():
    value = {
        1: np.float32(np.nan),
        "a": np.array([[1.0, -np.inf], [np.nan, 2.0]], dtype=np.float32),
        "b": (np.int8(3), np.bool_(True), None),
        "c": np.array([True, False]),
        "d": ConvConfig.create(2, 1, 1),
        "e": len,
    }
    assert jsonable(value) == {
        "1": None,
        "a": [[1.0, None], [None, 2.0]],
        "b": [3, True, None],
        "c": [True, False],
        "d": {
            "kernel_size": 2,
            "in_channels": 1,
            "out_channels": 1,
            "stride": 1,
            "padding": "valid",
            "dilation": 1,
            "groups": 1,
            "use_bias": False,
            "layout": "nwc",
            "flip": False,
            "lags": None,
        },
        "e": repr(len),
    }
    json.dumps(jsonable(value), allow_nan=False)


def test_cli_json_output_parses_strictly(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.sin(0.3 * np.arange(100.0)))
    np.save(tmp_path / "y.npy", np.sin(0.3 * np.arange(97.0)))
    code, out, err = run(
        ["recover", tmp_path / "x.npy", tmp_path / "y.npy", "-k", 4, "--json", "-o", tmp_path / "k.json"], capsys
    )
    assert code == 0 and "warning" in err
    summary = strict_loads(out)
    assert summary == strict_loads((tmp_path / "k.json").read_text())
    assert summary["report"]["condition_number"] == [None] and summary["report"]["status"] == "rank_deficient"
    code, out, _ = run(["analyze", tmp_path / "x.npy", "-k", 4, "--json", "-o", tmp_path / "r.json"], capsys)
    assert code == 0
    assert strict_loads(out) == strict_loads((tmp_path / "r.json").read_text())
    assert strict_loads(out)["error_per_unit_noise"] == [None]


def test_repr_is_short_and_str_is_the_summary(rng):
    x = rng.standard_normal((400, 4))
    y = kr.conv1d(x, rng.standard_normal((64, 4, 4))) + 0.1 * rng.standard_normal((337, 4))
    res = kr.recover_kernel(x, y, 64)
    text = repr(res)
    assert len(text) < 300 and "array" not in text, text
    assert text.startswith("KernelResult(method='lstsq', kernel_shape=(64, 4, 4), success=True")
    assert "status='overdetermined'" in text and "residual_rms=" in text and "max_stderr=" in text
    assert len(repr(res.report)) < 300 and "status='overdetermined'" in repr(res.report)
    assert "kernel (64, 4, 4)" in str(res) and "message:" in str(res)
    deficient = rank_deficient_result()
    assert "status='rank_deficient'" in repr(deficient) and "condition_number=inf" in repr(deficient.report)


def test_public_names_and_types():
    assert kr.CanonicalProblem is CanonicalProblem
    assert issubclass(kr.SpectralWarning, UserWarning) and kr.Solution.__module__ == "kernel_recovery.model.result"
    assert typing.get_type_hints(kr.KernelSizeSelection)["result"] is kr.KernelResult


def test_torch_tensor_that_requires_grad_is_read():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    layer = torch.nn.Conv1d(2, 3, 4, bias=True, dtype=torch.float64)
    x = torch.randn(2, 2, 120, dtype=torch.float64, requires_grad=True)
    y = layer(x)  # a layer's output: requires grad, as users pass it
    assert y.requires_grad
    res = kr.recover_kernel(x, y, 4, layout="ncw", use_bias=True)
    np.testing.assert_allclose(res.kernel, layer.weight.detach().numpy().transpose(2, 1, 0), atol=1e-10)
    np.testing.assert_allclose(res.bias, layer.bias.detach().numpy(), atol=1e-10)
    assert x.grad is None and y.requires_grad  # the caller's tensors are left alone
    rep = kr.analyze(x[0].to(torch.bfloat16), None, 4, layout="ncw")  # a dtype NumPy lacks
    assert rep.status == "overdetermined"
    sequences = [x[0].T, x[1, :, :90].T]  # a ragged list of tensors
    ys = [layer(x[:1])[0].T, layer(x[1:, :, :90])[0].T]
    ragged = kr.recover_kernel(sequences, ys, 4, use_bias=True)
    np.testing.assert_allclose(ragged.kernel, res.kernel, atol=1e-10)


def test_jax_arrays_are_read(rng):
    jnp = pytest.importorskip("jax.numpy")
    x = rng.standard_normal(200)
    y = np.correlate(x, [1.0, -0.5, 0.25], mode="valid")
    res = kr.recover_kernel(jnp.asarray(x), jnp.asarray(y), 3)  # float32 under JAX's default
    np.testing.assert_allclose(res.kernel.ravel(), [1.0, -0.5, 0.25], atol=1e-5)


def test_pandas_frames_and_series_are_read(rng):
    pd = pytest.importorskip("pandas")
    x = rng.standard_normal((200, 2))
    w = rng.standard_normal((3, 2, 1))
    y = np.asarray(kr.conv1d(x, w))
    frame = pd.DataFrame(x, columns=["left", "right"], index=pd.date_range("2024", periods=200, freq="s"))
    res = kr.recover_kernel(frame, pd.Series(y[:, 0], name="out"), 3)
    np.testing.assert_allclose(res.kernel, w, atol=1e-10)
    # a nullable column with a missing value: NaN, dropped with nan_policy="omit"
    gappy = pd.DataFrame({"out": pd.array([*y[:50, 0], None, *y[51:, 0]], dtype="Float64")})
    with pytest.raises(ValueError, match="nan_policy"):
        kr.recover_kernel(frame, gappy, 3)
    omitted = kr.recover_kernel(frame, gappy, 3, nan_policy="omit")
    np.testing.assert_allclose(omitted.kernel, w, atol=1e-10)


def test_custom_solver_matches_lstsq_on_an_explicit_design(rng):
    def explicit_lstsq(problem):
        """Least squares on each block's explicit rows (DesignOperator.rows), by numpy."""
        use_bias = problem.config.use_bias
        kernels, biases = [], []
        for block in problem.blocks:
            op = DesignOperator(block, use_bias)
            a = np.concatenate([op.rows(i) for i in range(len(block.xs))])
            coef = np.linalg.lstsq(a, np.concatenate(block.ys), rcond=None)[0]
            kernel, bias = unpack_columns(block, coef, use_bias)
            kernels.append(kernel)
            biases.append(bias)
        return kr.Solution(kernels, biases if use_bias else None, message="solved by numpy")

    x = rng.standard_normal((300, 4))
    settings = dict(stride=2, dilation=3, groups=2, padding="causal", use_bias=True)
    w = rng.standard_normal((3, 2, 4))
    y = np.asarray(kr.conv1d(x, w, [0.1, 0.2, 0.3, 0.4], **{k: v for k, v in settings.items() if k != "use_bias"}))
    y = y + 0.01 * rng.standard_normal(y.shape)
    mine = kr.recover_kernel(x, y, 3, method=explicit_lstsq, **settings)
    ref = kr.recover_kernel(x, y, 3, **settings)
    assert mine.method == "explicit_lstsq" and mine.message == "solved by numpy" and mine.success
    np.testing.assert_allclose(mine.kernel, ref.kernel, atol=1e-10)
    np.testing.assert_allclose(mine.bias, ref.bias, atol=1e-10)
    assert mine.residual_rms == pytest.approx(ref.residual_rms, rel=1e-9)
    assert mine.stderr is None and strict_loads(mine.to_json())["stderr"] is None
    with pytest.raises(TypeError, match="unexpected option 'alpha'"):
        kr.recover_kernel(x, y, 3, method=explicit_lstsq, alpha=1.0, **settings)


def test_jsonable_writes_complex_values_as_real_and_imaginary_parts():
    h = np.array([1 + 2j, np.inf - 1j])
    assert jsonable({"h": h, "z": np.complex128(3 - 4j)}) == {
        "h": {"real": [1.0, None], "imag": [2.0, -1.0]},
        "z": {"real": 3.0, "imag": -4.0},
    }
