"""The command line: demo, recover, analyze, simulate; files in and out; exit codes and one-line errors."""

import io
import json
import os
import pathlib
import re
import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest
from references import jax_conv1d

import kernel_recovery as kr
from kernel_recovery.cli import main, parse_value, run_demo

ROW = re.compile(
    r"^(?P<example>.+?)\s{2,}(?P<method>\S+)\s+.*?\s(?P<err>\S+)\s+(?P<resid>\S+)\s+\S+ms\s+(?P<solver>.+)$"
)


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory):
    """`python -m kernel_recovery demo` with no arguments, run once, with the temp dir pointed at tmp."""
    tmp = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.run(
        [sys.executable, "-m", "kernel_recovery", "demo"], capture_output=True, text=True, cwd=tmp, env=env
    )
    return proc, tmp / "kernel_recovery_demo.png"


def test_demo_solves_the_tutorial_examples_with_every_method(demo_output):
    proc, _ = demo_output
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "two channels" in text and "determined" in text and "UNDERDETERMINED" in text
    rows = [m.groupdict() for m in map(ROW.match, text.splitlines()) if m]
    from kernel_recovery import solvers

    assert {(r["example"], r["method"]) for r in rows} >= {
        (e, m) for e in ("single filter", "two channels", "two filters", "noisy multichannel") for m in solvers.METHODS
    }
    for r in rows:  # lstsq is exact on the tutorial examples and within the noise on the noisy one
        if r["method"] == "lstsq" and r["example"] in ("single filter", "two channels", "two filters"):
            assert float(r["err"]) < 1e-10 and r["solver"] == "ok"
        if r["method"] == "lstsq" and r["example"] == "noisy multichannel":
            assert float(r["err"]) < 5e-3 and 5e-3 < float(r["resid"]) < 2e-2


def test_demo_saves_a_png_in_the_temp_dir_and_names_it(demo_output):
    proc, figure = demo_output
    assert f"figure saved to {figure}" in proc.stdout
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000
    assert proc.stderr == ""  # not a terminal: no progress bar


def test_run_demo_in_process(tmp_path):
    out = io.StringIO()
    assert run_demo(out, plot=str(tmp_path / "d.png"), methods=["lstsq"], quiet=True) == 0
    text = out.getvalue()
    assert "single filter" in text and f"figure saved to {tmp_path / 'd.png'}" in text
    assert (tmp_path / "d.png").exists()


def test_demo_without_matplotlib_still_prints_the_table(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = io.StringIO()
    assert run_demo(out, plot=str(tmp_path / "d.png"), methods=["lstsq"]) == 0
    text = out.getvalue()
    assert "noisy multichannel" in text and "figure skipped: matplotlib is not installed" in text
    assert not (tmp_path / "d.png").exists()


def test_console_script_is_declared():
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("kernel-recovery") == "kernel_recovery.cli:main"


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.mark.parametrize("layout", ["nwc", "ncw"])
def test_simulate_then_recover_round_trip(tmp_path, capsys, layout):
    data = tmp_path / "d.npz"
    settings = [
        "-k",
        4,
        "--stride",
        2,
        "--dilation",
        3,
        "--padding",
        "same",
        "--groups",
        2,
        "--bias",
        "--layout",
        layout,
    ]
    code, out, _ = run(
        ["simulate", data, "--in-channels", 4, "--out-channels", 2, "--batch", 3, "--length", 120, *settings], capsys
    )
    assert code == 0 and f"to {data}" in out
    with np.load(data) as npz:
        x, y, kernel, bias = npz["x"], npz["y"], npz["kernel"], npz["bias"]
    assert x.shape == ((3, 120, 4) if layout == "nwc" else (3, 4, 120)) and kernel.shape == (4, 2, 2)
    nwc = x if layout == "nwc" else x.transpose(0, 2, 1)
    # independent check of what simulate wrote: jax with TF 'same' padding
    want = jax_conv1d(nwc, kernel, bias, stride=2, padding="SAME", dilation=3, groups=2)
    np.testing.assert_allclose(y if layout == "nwc" else y.transpose(0, 2, 1), want, atol=1e-10)
    result = tmp_path / "k.npz"
    code, out, _ = run(["recover", data, *settings, "-o", result], capsys)
    assert code == 0 and "OVERDETERMINED" in out and f"to {result}" in out
    with np.load(result) as npz:
        np.testing.assert_allclose(npz["kernel"], kernel, atol=1e-9)
        np.testing.assert_allclose(npz["bias"], bias, atol=1e-9)
        assert set(npz.files) == {"kernel", "bias", "stderr", "bias_stderr"}


def test_recover_csv_written_independently(tmp_path, capsys, rng):
    kernel = rng.standard_normal((3, 2, 1))
    x = rng.standard_normal((200, 2))
    y = jax_conv1d(x[None], kernel, [0.5], padding=(2, 0))[0]  # causal
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", header="a,b", comments="")
    np.savetxt(tmp_path / "y.txt", y)
    code, out, _ = run(
        [
            "recover",
            tmp_path / "x.csv",
            tmp_path / "y.txt",
            "-k",
            3,
            "--padding",
            "causal",
            "--bias",
            "-o",
            tmp_path / "k.npy",
            "-q",
        ],
        capsys,
    )
    assert code == 0 and out == ""
    np.testing.assert_allclose(np.load(tmp_path / "k.npy"), kernel, atol=1e-9)


def test_recover_json_for_scripts(tmp_path, capsys, rng):
    x = rng.standard_normal(100)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.convolve(x, [1.0, -2.0, 0.5], mode="valid"))  # true convolution
    code, out, _ = run(
        [
            "recover",
            tmp_path / "x.npy",
            tmp_path / "y.npy",
            "-k",
            3,
            "--flip",
            "--json",
            "-O",
            "ridge=0",
            "-o",
            tmp_path / "k.json",
        ],
        capsys,
    )
    assert code == 0
    summary = json.loads(out)
    assert summary == json.loads((tmp_path / "k.json").read_text())
    np.testing.assert_allclose(np.ravel(summary["kernel"]), [1.0, -2.0, 0.5], atol=1e-10)
    assert summary["success"] is True and summary["options"]["ridge"] == 0.0 and summary["config"]["flip"] is True
    assert summary["report"]["status"] == "overdetermined"


def test_method_options_are_parsed_and_passed(tmp_path, capsys, rng):
    x = rng.standard_normal(60)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.correlate(x, [1.0, 2.0], mode="valid") + 0.1 * rng.standard_normal(59))
    code, out, _ = run(
        ["recover", tmp_path / "x.npy", tmp_path / "y.npy", "-k", 2, "--json", "--option", "ridge=5"], capsys
    )
    assert code == 0
    summary = json.loads(out)
    assert summary["options"]["ridge"] == 5.0
    # against the explicit ridge solution
    a = np.stack([x[:-1], x[1:]], axis=1)
    y = np.load(tmp_path / "y.npy")
    want = np.linalg.solve(a.T @ a + 5 * np.eye(2), a.T @ y)
    np.testing.assert_allclose(np.ravel(summary["kernel"]), want, atol=1e-10)


def test_parse_value():
    assert [parse_value(v) for v in ("1", "-2.5", "1e-3", "TRUE", "false", "none", "mae")] == [
        1,
        -2.5,
        1e-3,
        True,
        False,
        None,
        "mae",
    ]


def test_underdetermined_warns_on_stderr_and_succeeds(tmp_path, capsys, rng):
    np.save(tmp_path / "x.npy", rng.standard_normal(10))
    np.save(tmp_path / "y.npy", rng.standard_normal(5))
    code, out, err = run(["recover", tmp_path / "x.npy", tmp_path / "y.npy", "-k", 6, "-q"], capsys)
    assert code == 0 and out == ""
    assert err.startswith("kernel-recovery: warning:") and len(err.strip().splitlines()) == 1


def test_analyze_without_y(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.ones(50))
    report = tmp_path / "r.json"
    figure = tmp_path / "s.png"
    code, out, _ = run(
        ["analyze", tmp_path / "x.npy", "-k", 4, "--out-channels", 2, "-o", report, "--plot", figure], capsys
    )
    assert code == 0 and "RANK-DEFICIENT" in out
    summary = json.loads(report.read_text())
    assert summary["rank"] == [1, 1] and summary["condition_number"] == [None, None]  # inf is null in JSON
    assert figure.read_bytes()[:4] == b"\x89PNG"


def test_recover_plot(tmp_path, capsys):
    data, figure = tmp_path / "d.npz", tmp_path / "r.png"
    run(["simulate", data, "-k", 3, "--noise", 0.1, "--length", 200], capsys)
    code, out, _ = run(["recover", data, "-k", 3, "--plot", figure, "--true-kernel", data], capsys)
    assert code == 0 and f"figure saved to {figure}" in out and "max |kernel - true kernel|" in out
    assert figure.read_bytes()[:4] == b"\x89PNG"


def test_simulate_csv_files(tmp_path, capsys):
    code, out, _ = run(["simulate", tmp_path / "s.csv", "-k", 3, "--in-channels", 2, "--length", 50], capsys)
    assert code == 0
    x = np.loadtxt(tmp_path / "s_x.csv", delimiter=",")
    y = np.loadtxt(tmp_path / "s_y.csv", delimiter=",")
    kernel = np.load(tmp_path / "s_kernel.npy")
    assert x.shape == (50, 2) and y.shape == (48,)
    np.testing.assert_allclose(y, jax_conv1d(x[None], kernel)[0, :, 0], atol=1e-12)


class Evil:
    """Unpickling this would create a file: the CLI must never unpickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_pickled_files_are_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"
    np.save(tmp_path / "evil.npy", np.array([Evil(str(marker))], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "evil.npz", x=np.array([Evil(str(marker))], dtype=object), y=np.ones(3))
    for argv in (
        ["recover", tmp_path / "evil.npy", tmp_path / "evil.npy", "-k", 1],
        ["recover", tmp_path / "evil.npz", "-k", 1],
    ):
        code, _, err = run(argv, capsys)
        assert code == 1 and "allow_pickle" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()


USAGE_ERRORS = [
    ([], "required"),
    (["recover", "x.npy"], "kernel-size"),
    (["recover", "x.npy", "y.npy", "-k", "0"], "positive integer, got '0'"),
    (["recover", "x.npy", "y.npy", "-k", "2", "--padding", "middle"], "got 'middle'"),
    (["recover", "x.npy", "y.npy", "-k", "2", "--method", "magic"], "invalid choice: 'magic'"),
    (["recover", "x.npy", "y.npy", "-k", "2", "--option", "ridge"], "NAME=VALUE"),
    (["recover", "x.npy", "y.npy", "-k", "2", "--option", "nonsense=1"], "unexpected option 'nonsense'"),
    (["recover", "x.npy", "y.npy", "-k", "2", "-o", "k.txt"], "must end in .npy, .npz, .json"),
    (["recover", "x.npy", "-k", "2"], "give the output file Y"),
    (["recover", "x.png", "y.npy", "-k", "2"], "must end in .npy, .npz, .csv, .txt"),
    (["simulate", "s.csv", "--batch", "2"], "hold one sequence"),
    (["simulate", "s.npz", "--in-channels", "3", "--groups", "2"], "divisible"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize("argv,message", USAGE_ERRORS, ids=[" ".join(a) or "nothing" for a, _ in USAGE_ERRORS])
def test_usage_errors_exit_2_with_one_line(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("x.npy", np.arange(10.0))
    np.save("y.npy", np.arange(9.0))
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    assert err.startswith("kernel-recovery: error:") and message in err and len(err.strip().splitlines()) == 1


FAILURES = [
    (["recover", "missing.npy", "y.npy", "-k", "2"], "no such file: missing.npy"),
    (["recover", "garbage.npy", "y.npy", "-k", "2"], "not a NumPy .npy file"),
    (["recover", "garbage.npz", "-k", "2"], "not a NumPy .npz (zip) file"),
    (["recover", "d.npz", "--x-key", "signal", "-k", "2"], "has no key 'signal'; its arrays are: x, y"),
    (["recover", "bad.csv", "y.npy", "-k", "2"], "could not convert"),
    (["recover", "x.npy", "y.npy", "-k", "50"], "too short for kernel_size=50"),
    (["recover", "x.npy", "y.npy", "-k", "3"], "`y`"),  # 9 outputs cannot come from a 3-tap valid conv of 10
    (["recover", "x.npy", "y.npy", "-k", "2", "-o", "no/such/dir/k.npy"], "could not write"),
]


@pytest.mark.parametrize("argv,message", FAILURES, ids=[" ".join(a) for a, _ in FAILURES])
def test_failures_exit_1_with_one_line(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("x.npy", np.arange(10.0))
    np.save("y.npy", np.arange(9.0))
    np.savez("d.npz", x=np.arange(10.0), y=np.arange(9.0))
    pathlib.Path("garbage.npy").write_bytes(b"not numpy at all")
    pathlib.Path("garbage.npz").write_bytes(b"not a zip")
    pathlib.Path("bad.csv").write_text("1,2\n3,x\n")
    code, _, err = run(argv, capsys)
    assert code == 1
    assert err.startswith("kernel-recovery: error:") and message in err and len(err.strip().splitlines()) == 1


def test_a_solver_that_does_not_converge_exits_1(tmp_path, capsys, rng):
    pytest.importorskip("optax")
    from kernel_recovery import solvers

    if "adam" not in solvers.METHODS:
        pytest.skip("no iterative method registered")
    x = rng.standard_normal(100)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.correlate(x, [1.0, 2.0], mode="valid"))
    code, out, err = run(
        [
            "recover",
            tmp_path / "x.npy",
            tmp_path / "y.npy",
            "-k",
            2,
            "-m",
            "adam",
            "-O",
            "max_iter=3",
            "--json",
            "-o",
            tmp_path / "k.npz",
        ],
        capsys,
    )
    assert code == 1 and json.loads(out)["success"] is False
    assert "did not succeed" in err and (tmp_path / "k.npz").exists()  # the partial answer is still written


def test_help_exits_0(capsys):
    assert main(["recover", "--help"]) == 0
    assert "--kernel-size" in capsys.readouterr().out


def test_plot_without_matplotlib_fails_before_the_work(tmp_path, capsys, monkeypatch):
    np.savez(tmp_path / "d.npz", x=np.arange(10.0), y=np.arange(9.0))
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    code, _, err = run(
        ["recover", tmp_path / "d.npz", "-k", 2, "-o", tmp_path / "k.npy", "--plot", tmp_path / "k.png"], capsys
    )
    assert code == 1 and "--plot needs matplotlib" in err
    assert not (tmp_path / "k.npy").exists()


# ----------------------------------------------------------------------------------------------
# Every argument of the API is an option (issue 28, item 4)
# ----------------------------------------------------------------------------------------------

#: Options of the commands that are not arguments of the API function: files, keys, output and reports.
CLI_ONLY = {
    "recover": {"help", "x_key", "y_key", "option", "output", "true_kernel", "json", "plot", "quiet"},
    "analyze": {"help", "x_key", "y_key", "output", "json", "plot", "quiet"},
}


def _dests(command):
    """{dest: its --long option strings} of a subcommand's parser (positionals: no option strings)."""
    from kernel_recovery.cli import build_parser

    parser = build_parser().commands[command]
    return parser, {a.dest: [s for s in a.option_strings if s.startswith("--")] for a in parser._actions}


def api_arguments(func):
    """{name: default} of ``func``'s arguments; a ``**settings: Unpack[ConvSettings]`` stands for the convolution
    settings (their defaults are ConvSpec's), a ``**options`` for the method options (not listed)."""
    import inspect
    import typing

    from kernel_recovery.model.config import SETTING_DEFAULTS, ConvSettings

    arguments = {}
    for name, p in inspect.signature(func).parameters.items():
        if p.kind is not p.VAR_KEYWORD:
            arguments[name] = p.default
        elif "ConvSettings" in str(p.annotation):
            arguments.update({n: SETTING_DEFAULTS[n] for n in typing.get_type_hints(ConvSettings)})
    return arguments


@pytest.mark.parametrize("command", ["recover", "analyze"])
def test_the_options_are_the_arguments_of_the_api(command):
    """Options == the API's arguments (minus the documented exceptions) + the method flags + the CLI's own."""
    import kernel_recovery as kr
    from kernel_recovery.cli import METHOD_FLAGS, NO_OPTION

    arguments = api_arguments({"recover": kr.recover_kernel, "analyze": kr.analyze}[command])
    params = set(arguments)
    flags = {f.name for f in METHOD_FLAGS} if command == "recover" else set()
    parser, dests = _dests(command)
    assert set(dests) == (params - set(NO_OPTION)) | flags | CLI_ONLY[command]
    assert set(NO_OPTION) <= set(api_arguments(kr.recover_kernel)) | set(api_arguments(kr.analyze))
    for name in params - set(NO_OPTION) - {"x", "y"}:  # spelled as the argument, dashes for underscores
        assert "--" + name.replace("_", "-") in dests[name], name
    for name in params - set(NO_OPTION) - {"x", "y", "kernel_size"}:  # the defaults are the API's
        assert parser.get_default(name) == arguments[name], name


def test_the_method_flags_are_the_solvers_options():
    import inspect

    from kernel_recovery import solvers
    from kernel_recovery.cli import METHOD_FLAGS, NO_METHOD_FLAG

    takes = {}
    for method in solvers.METHODS:
        _, solver = solvers.resolve(method)
        for name, p in inspect.signature(solver).parameters.items():
            if p.kind is p.KEYWORD_ONLY:
                takes.setdefault(name, set()).add(method)
    assert set(takes) == {f.name for f in METHOD_FLAGS} | set(NO_METHOD_FLAG)
    for flag in METHOD_FLAGS:  # the [methods] of each flag's help are right
        assert set(flag.methods) == takes[flag.name], flag.name


def _lag_data(rng, n=400, noise=0.02):
    """y[t] = sum_l h[l] x[t - l] on x's time axis, a delay of 4 samples (scipy's lfilter, independent)."""
    from scipy.signal import lfilter

    x = rng.standard_normal(n)
    y = lfilter([0, 0, 0, 0, 1.0, 0.6, 0.3, 0.1], [1.0], x) + noise * rng.standard_normal(n)
    return x, y


def _recover_json(tmp_path, capsys, x, y, *options, code=0):
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    got, out, err = run(["recover", tmp_path / "x.npy", tmp_path / "y.npy", "--json", *options], capsys)
    assert code is None or got == code, err  # None: either (an iterative method may stop at max_iter)
    return json.loads(out), err


def test_lags_auto_needs_no_kernel_size(tmp_path, capsys, rng):
    import kernel_recovery as kr

    x, y = _lag_data(rng)
    summary, err = _recover_json(tmp_path, capsys, x, y, "--lags", "AUTO", "--flip")
    want = kr.recover_kernel(x, y, lags="auto", flip=True)
    np.testing.assert_allclose(summary["kernel"], want.kernel, rtol=1e-12, atol=1e-14)
    assert err == ""
    # the delay of 4 samples and the 4 taps of lfilter's response, found from the data
    np.testing.assert_allclose(np.ravel(summary["kernel"]), [1.0, 0.6, 0.3, 0.1], atol=0.01)


def test_lags_against_least_squares_on_the_lag_matrix(tmp_path, capsys, rng):
    """--lags -2,5 --flip (a negative first lag without '=') against numpy lstsq on x shifted by each lag."""
    x, y = _lag_data(rng)
    n = len(x)
    shifted = [
        np.concatenate([np.zeros(lag), x[: n - lag]]) if lag >= 0 else np.concatenate([x[-lag:], np.zeros(-lag)])
        for lag in range(-2, 6)
    ]
    want = np.linalg.lstsq(np.stack(shifted, axis=1), y, rcond=None)[0]
    for spelling in (["--lags", "-2,5"], ["--lags=-2,5"]):
        summary, _ = _recover_json(tmp_path, capsys, x, y, *spelling, "--flip")
        np.testing.assert_allclose(np.ravel(summary["kernel"]), want, atol=1e-10)


def _ncw(x, y):
    return x[None, None], y[None, None]


#: (command-line options, the same as recover_kernel's arguments, how the data are changed first)
PASSED_ON = [
    (
        ["-k", 10, "--padding", "CAUSAL", "--prewhiten", "Input"],
        {"kernel_size": 10, "padding": "causal", "prewhiten": "input"},
        None,
    ),
    (
        ["-k", 10, "--padding", "causal", "--prewhiten", "noise", "--use-bias"],
        {"kernel_size": 10, "padding": "causal", "prewhiten": "noise", "use_bias": True},
        None,
    ),
    (
        ["-k", 10, "--padding", "causal", "--nan-policy", "OMIT"],
        {"kernel_size": 10, "padding": "causal", "nan_policy": "omit"},
        "nan",
    ),
    (["--lags", "0,11", "--regularization", "TC"], {"lags": (0, 11), "regularization": "tc"}, None),
    (
        ["--lags", "0,11", "--regularization", "ss", "--share-hyperparameters"],
        {"lags": (0, 11), "regularization": "ss", "share_hyperparameters": True},
        None,
    ),
    (["--lags", "0,11", "--ridge", "3"], {"lags": (0, 11), "ridge": 3.0}, None),
    (["--lags", "0,11", "--prior", "prior.npy"], {"lags": (0, 11), "prior": "prior"}, None),
    (
        ["--lags", "0,11", "--loss", "Huber", "--huber-delta", "2", "--max-iter", "50"],
        {"lags": (0, 11), "loss": "huber", "huber_delta": 2.0, "max_iter": 50},
        None,
    ),
    (
        ["-k", 8, "--padding", "same", "--stride", 2, "--dilation", 2, "--loss", "mae"],
        {"kernel_size": 8, "padding": "same", "stride": 2, "dilation": 2, "loss": "mae"},
        "stride",
    ),
    (
        ["-k", 8, "--padding", "causal", "--layout", "NCW", "--flip"],
        {"kernel_size": 8, "padding": "causal", "layout": "ncw", "flip": True},
        "ncw",
    ),
    (
        ["-k", 8, "--padding", "causal", "--chunk-size", 64],
        {"kernel_size": 8, "padding": "causal", "chunk_size": 64},
        None,
    ),
    (
        [
            "-k",
            8,
            "--padding",
            "causal",
            "-m",
            "FFT",
            "--noise-level",
            "0.02",
            "--no-wiener",
            "--segment-length",
            64,
            "--workers",
            1,
            "--tol",
            "1e-10",
            "--max-iter",
            100,
        ],
        {
            "kernel_size": 8,
            "padding": "causal",
            "method": "fft",
            "noise_level": 0.02,
            "wiener": False,
            "segment_length": 64,
            "workers": 1,
            "tol": 1e-10,
            "max_iter": 100,
        },
        None,
    ),
]


@pytest.mark.parametrize("options,arguments,change", PASSED_ON, ids=[" ".join(map(str, o)) for o, _, _ in PASSED_ON])
def test_options_reach_recover_kernel(options, arguments, change, tmp_path, capsys, rng):
    """The printed JSON kernel equals recover_kernel's with the same arguments (string options in any case)."""
    import warnings

    import kernel_recovery as kr

    x, y = _lag_data(rng)
    if change == "nan":
        y[[50, 51, 200]] = np.nan
    if change == "stride":
        y = kr.conv1d(x, rng.standard_normal(8), padding="same", stride=2, dilation=2) + 0.01 * rng.standard_normal(200)
    if change == "ncw":
        x, y = _ncw(x, y)
    arguments = dict(arguments)
    if arguments.get("prior") == "prior":
        lags = np.arange(12.0)
        arguments["prior"] = 0.8 ** np.add.outer(lags, lags) / 2 * 0.9 ** np.abs(np.subtract.outer(lags, lags))
        np.save(tmp_path / "prior.npy", arguments["prior"])
        options = [tmp_path / "prior.npy" if o == "prior.npy" else o for o in options]
    summary, err = _recover_json(tmp_path, capsys, x, y, *options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        want = kr.recover_kernel(x, y, **arguments)
    assert len(err.splitlines()) == len({str(w.message) for w in caught})  # the same warnings, once each
    np.testing.assert_allclose(summary["kernel"], want.kernel, rtol=1e-10, atol=1e-12)
    assert summary["method"] == want.method and summary["options"] == json.loads(
        json.dumps(kr.model.arrays.jsonable(want.options))
    )


def test_adam_options_reach_the_solver(tmp_path, capsys, rng):
    pytest.importorskip("optax")
    import kernel_recovery as kr

    x = rng.standard_normal(300)
    y = np.correlate(x, [1.0, -0.5, 0.25], mode="valid")
    options = dict(
        learning_rate=0.01, max_iter=300, seed=3, init="zeros", batch_size=64, restarts=2, dtype="float64", tol=1e-9
    )
    flags = [x for k, v in options.items() for x in ("--" + k.replace("_", "-"), str(v))]
    summary, _ = _recover_json(
        tmp_path, capsys, x, y, "-k", 3, "-m", "Adam", *flags, "--no-precondition", "--loss", "MSE", code=None
    )
    want = kr.recover_kernel(x, y, 3, method="adam", precondition=False, loss="mse", **options)
    np.testing.assert_allclose(summary["kernel"], want.kernel, rtol=1e-10, atol=1e-12)
    assert summary["options"]["seed"] == 3 and summary["options"]["init"] == "zeros"


def test_analyze_options_reach_analyze(tmp_path, capsys, rng):
    import kernel_recovery as kr

    x, y = _lag_data(rng)
    y[7] = np.nan
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    code, out, _ = run(
        [
            "analyze",
            tmp_path / "x.npy",
            tmp_path / "y.npy",
            "--lags",
            "-1,9",
            "--flip",
            "--nan-policy",
            "omit",
            "--noise-level",
            "0.02",
            "--use-bias",
            "--json",
        ],
        capsys,
    )
    assert code == 0
    want = kr.analyze(x, y, lags=(-1, 9), flip=True, nan_policy="omit", noise_level=0.02, use_bias=True, warn=False)
    assert json.loads(out) == json.loads(json.dumps(want.to_dict()))
    # y on x's time axis: one equation per sample of y, less the NaN one; 11 lags and the bias
    assert json.loads(out)["equations"] == [len(x) - 1] and json.loads(out)["unknowns"] == [12]


def test_streamed_analyze_and_a_checkpoint(tmp_path, capsys, rng):
    import kernel_recovery as kr

    x, y = _lag_data(rng)
    summary, _ = _recover_json(
        tmp_path,
        capsys,
        x,
        y,
        "-k",
        8,
        "--padding",
        "causal",
        "--chunk-size",
        50,
        "--checkpoint",
        tmp_path / "c.npz",
        "--checkpoint-every",
        2,
    )
    assert (tmp_path / "c.npz").exists() and summary["diagnostics"]["input"] == "memmap"
    want = kr.recover_kernel(x, y, 8, padding="causal")  # in memory: the same least-squares kernel
    np.testing.assert_allclose(summary["kernel"], want.kernel, atol=1e-10)
    code, out, _ = run(
        ["analyze", tmp_path / "x.npy", "-k", 8, "--padding", "causal", "--chunk-size", 50, "--json"], capsys
    )
    assert code == 0 and json.loads(out)["rank"] == [8]


NEW_USAGE_ERRORS = [
    (["recover", "x.npy", "y.npy"], "-k/--kernel-size (or --lags)"),
    (["analyze", "x.npy", "y.npy", "--lags", "auto"], "expected FIRST,LAST (integers), got 'auto'"),
    (["recover", "x.npy", "y.npy", "--lags", "3"], "expected FIRST,LAST (integers) or auto, got '3'"),
    (
        ["recover", "x.npy", "y.npy", "-k", "2", "--strides", "2"],
        "unrecognized arguments: --strides 2 (did you mean --stride?)",
    ),
    (["recover", "x.npy", "y.npy", "-k", "2", "--kernel_size", "2"], "did you mean --kernel-size?"),
    (
        ["recover", "x.npy", "y.npy", "-k", "2", "--layout", "ncx"],
        "`layout` must be 'nwc' or 'ncw', got 'ncx' (did you mean 'nwc'?)",
    ),
    (["recover", "x.npy", "y.npy", "-k", "2", "--ridge", "1", "-O", "ridge=2"], "--ridge and --option ridge"),
    (["recover", "x.npy", "y.npy", "-k", "2", "--learning-rate", "0.1"], "unexpected option 'learning_rate'"),
    (["recover", "x.npy", "y.npy", "-k", "2", "--max-iter", "many"], "expected an integer, got 'many'"),
    (["recover", "x.npy", "y.npy", "-k", "2", "--ridge", "lots"], "expected a number, got 'lots'"),
]


@pytest.mark.parametrize("argv,message", NEW_USAGE_ERRORS, ids=[" ".join(a) for a, _ in NEW_USAGE_ERRORS])
def test_new_usage_errors_exit_2_with_one_line(argv, message, tmp_path, capsys, monkeypatch):
    test_usage_errors_exit_2_with_one_line(argv, message, tmp_path, capsys, monkeypatch)


def test_refused_values_name_the_argument(tmp_path, capsys, rng):
    """String options go to the library's validators: case-insensitive, wrong ones named with a hint."""
    x, y = _lag_data(rng)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    for option, message in (
        (["--regularization", "tcc"], "`regularization` must be 'gcv'"),
        (["--nan-policy", "skip"], "`nan_policy` must be"),
        (["--prewhiten", "inptu"], "(did you mean 'input'?)"),
    ):
        code, out, err = run(
            ["recover", tmp_path / "x.npy", tmp_path / "y.npy", "-k", 3, "--padding", "causal", *option], capsys
        )
        assert code == 1 and out == "" and err.startswith("kernel-recovery: error:") and message in err


def test_a_repeated_warning_is_one_line_with_its_count(capsys):
    import warnings

    from kernel_recovery.cli import _print_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            warnings.warn("overflow in the tuning")
        warnings.warn("another one")
    _print_warnings(caught)
    assert capsys.readouterr().err.splitlines() == [
        "kernel-recovery: warning: overflow in the tuning (3 times)",
        "kernel-recovery: warning: another one",
    ]


# ------------------------------------------------------------------------------------------------
# Malformed files and mismatched lengths: one-line errors
# ------------------------------------------------------------------------------------------------

X = np.random.default_rng(7).standard_normal(40)
W = np.array([1.0, -1.0, 0.5])


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("trunc.npy", "truncated", "trunc.npy: Failed to read all data"),
        ("empty.npy", b"", "not a NumPy .npy file"),
        ("empty.csv", "", "empty.csv holds no data"),
        ("nan.csv", "1\nnan\n3\n4\n5\n", "`x` contains 1 NaN or Inf value(s), the first at index (1, 0)"),
        ("complex.npy", np.arange(20.0) + 1j, "`x` must be real, got complex"),
        ("strings.npy", np.array(["a", "b"] * 10), "does not hold a numeric array (dtype <U1)"),
        ("bools.npy", np.ones(20, bool), "`x` must be numeric, got dtype bool"),
        ("four_d.npy", np.ones((2, 2, 2, 5)), "got an array with shape (2, 2, 2, 5)"),
        ("ragged.csv", "1,2\n3\n", "ragged.csv: the number of columns changed"),
        ("header.csv", "a,b\n1,2\nx,3\n", "header.csv: could not convert string 'x'"),
    ],
)
def test_malformed_files_give_one_line_errors(name, content, message, tmp_path, capsys):
    path = tmp_path / name
    y = tmp_path / "y.npy"
    np.save(y, np.arange(18.0))
    if isinstance(content, np.ndarray):
        np.save(path, content)
    elif content == "truncated":
        np.save(path, np.arange(20.0))
        path.write_bytes(path.read_bytes()[:-40])
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    for command in ("recover", "analyze"):
        assert main([command, str(path), str(y), "-k", "3"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("kernel-recovery: error:") and message in err, err
        assert len(err.strip().splitlines()) == 1


def test_cli_length_mismatch_names_the_padding_that_fits(tmp_path, capsys):
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", kr.conv1d(X, W, padding="same"))
    assert main(["recover", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "-k", "3"]) == 1
    assert "(padding='same' or padding='causal' would give 40)" in capsys.readouterr().err
