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

from kernel_recovery.cli import main, parse_value, run_demo

ROW = re.compile(
    r"^(?P<example>.+?)\s{2,}(?P<method>\S+)\s+.*?\s(?P<err>\S+)\s+(?P<resid>\S+)\s+\S+ms\s+(?P<solver>.+)$"
)


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory):
    """`python -m kernel_recovery demo` with no arguments, run once, with the temp dir pointed at tmp."""
    tmp = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.run([sys.executable, "-m", "kernel_recovery", "demo"], capture_output=True, text=True,
                          cwd=tmp, env=env)
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
    settings = ["-k", 4, "--stride", 2, "--dilation", 3, "--padding", "same", "--groups", 2, "--bias",
                "--layout", layout]
    code, out, _ = run(["simulate", data, "--in-channels", 4, "--out-channels", 2, "--batch", 3, "--length", 120,
                        *settings], capsys)
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
    code, out, _ = run(["recover", tmp_path / "x.csv", tmp_path / "y.txt", "-k", 3, "--padding", "causal",
                        "--bias", "-o", tmp_path / "k.npy", "-q"], capsys)
    assert code == 0 and out == ""
    np.testing.assert_allclose(np.load(tmp_path / "k.npy"), kernel, atol=1e-9)


def test_recover_json_for_scripts(tmp_path, capsys, rng):
    x = rng.standard_normal(100)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.convolve(x, [1.0, -2.0, 0.5], mode="valid"))  # true convolution
    code, out, _ = run(["recover", tmp_path / "x.npy", tmp_path / "y.npy", "-k", 3, "--flip", "--json",
                        "-O", "ridge=0", "-o", tmp_path / "k.json"], capsys)
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
    code, out, _ = run(["recover", tmp_path / "x.npy", tmp_path / "y.npy", "-k", 2, "--json",
                        "--option", "ridge=5"], capsys)
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
        1, -2.5, 1e-3, True, False, None, "mae"]


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
    code, out, _ = run(["analyze", tmp_path / "x.npy", "-k", 4, "--out-channels", 2, "-o", report,
                        "--plot", figure], capsys)
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
    for argv in (["recover", tmp_path / "evil.npy", tmp_path / "evil.npy", "-k", 1],
                 ["recover", tmp_path / "evil.npz", "-k", 1]):
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
    code, out, err = run(["recover", tmp_path / "x.npy", tmp_path / "y.npy", "-k", 2, "-m", "adam",
                          "-O", "max_iter=3", "--json", "-o", tmp_path / "k.npz"], capsys)
    assert code == 1 and json.loads(out)["success"] is False
    assert "did not succeed" in err and (tmp_path / "k.npz").exists()  # the partial answer is still written


def test_help_exits_0(capsys):
    assert main(["recover", "--help"]) == 0
    assert "--kernel-size" in capsys.readouterr().out


def test_plot_without_matplotlib_fails_before_the_work(tmp_path, capsys, monkeypatch):
    np.savez(tmp_path / "d.npz", x=np.arange(10.0), y=np.arange(9.0))
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    code, _, err = run(["recover", tmp_path / "d.npz", "-k", 2, "-o", tmp_path / "k.npy", "--plot",
                        tmp_path / "k.png"], capsys)
    assert code == 1 and "--plot needs matplotlib" in err
    assert not (tmp_path / "k.npy").exists()
