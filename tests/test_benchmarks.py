"""Every benchmark script runs in --quick mode, so none of them rots (timings are not asserted)."""

import pathlib
import subprocess
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if p.name != "harness.py")


def test_every_script_is_listed():
    assert {"accuracy.py", "speed.py", "peers.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_quick_mode_runs(script):
    proc = subprocess.run([sys.executable, script, "--quick"], cwd=BENCH, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "|" in proc.stdout  # printed a markdown table
