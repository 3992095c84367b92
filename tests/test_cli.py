import io
import subprocess
import sys

from kernel_recovery.cli import run_demo


def test_demo_solves_the_tutorial_examples():
    out = io.StringIO()
    assert run_demo(out) == 0
    text = out.getvalue()
    assert "two channels" in text and "determined" in text and "UNDERDETERMINED" in text
    # the lstsq rows of the tutorial examples report errors at round-off level
    for line in text.splitlines():
        if line.startswith(("single filter", "two channels", "two filters")) and " lstsq " in line:
            assert float(line.split()[-3]) < 1e-10


def test_python_dash_m_runs(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "kernel_recovery", "demo"], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "noisy multichannel" in proc.stdout
