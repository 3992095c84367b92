"""Shared helpers for the benchmark scripts: timing, machine description, result files."""

from __future__ import annotations

import datetime
import importlib
import io
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from importlib import metadata

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def measure(fn, *, repeat: int = 5, warmup: int = 1, min_time: float = 0.0) -> dict:
    """Run ``fn`` ``warmup`` times, then ``repeat`` times; return the median, min, max (seconds) and last value."""
    value = None
    for _ in range(warmup):
        value = fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeat or (time.perf_counter() - start < min_time and len(times) < 100):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "n": len(times), "value": value}


def fmt_time(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_spread(m: dict) -> str:
    return f"{fmt_time(m['median'])} ({fmt_time(m['min'])}-{fmt_time(m['max'])})"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def versions(*names: str) -> str:
    out = []
    for n in names:
        try:
            out.append(f"{n} {metadata.version(n)}")
        except metadata.PackageNotFoundError:
            out.append(f"{n} not installed")
    return ", ".join(out)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{versions('numpy', 'scipy', 'jax', 'optax', 'kernel_recovery')}; {datetime.date.today().isoformat()}"
    )


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def write_result(name: str, title: str, body: str, quick: bool) -> pathlib.Path:
    """Write ``benchmarks/results/<name>.md`` (``<name>_quick.md`` in quick mode) and print it."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / (f"{name}_quick.md" if quick else f"{name}.md")
    text = f"# {title}\n\nMachine: {machine()}\n\n{body}\n"
    path.write_text(text)
    print(text)
    print(f"written to {path}")
    return path


def package_at(rev: str | None):
    """The package of the working tree (``rev`` None) or of git revision ``rev`` (``git archive``), imported under
    another name, so that a benchmark times both in one process."""
    if rev is None:
        return importlib.import_module("kernel_recovery")
    root = pathlib.Path(__file__).resolve().parents[1]
    data = subprocess.run(["git", "archive", rev, "kernel_recovery"], cwd=root, capture_output=True, check=True).stdout
    where = pathlib.Path(tempfile.mkdtemp(prefix="kr_rev_"))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(where, filter="data")
    name = "kr_rev_" + "".join(ch if ch.isalnum() else "_" for ch in rev)
    (where / "kernel_recovery").rename(where / name)  # the package imports itself relatively only
    sys.path.insert(0, str(where))
    package = importlib.import_module(name)
    registry = importlib.import_module(name + ".solvers").METHODS  # the solvers by absolute name: the revision's own
    registry.update({k: v.replace("kernel_recovery.", name + ".", 1) for k, v in registry.items()})
    return package


def checks_inputs(pkg, x, y, kernel_size):
    """``(checks module, problem, solution, Fit)``: what one default ``pkg.recover_kernel(x, y, kernel_size)`` hands
    to its post-fit checks (``diagnostics.checks.run_checks``), for benchmarks that time checks alone."""
    checks = importlib.import_module(pkg.__name__ + ".diagnostics.checks")
    seen: dict[str, object] = {}
    original = checks.run_checks

    def spy(problem, sol, fit, *args):
        seen.update(problem=problem, sol=sol, fit=fit)
        return original(problem, sol, fit, *args)

    setattr(checks, "run_checks", spy)  # noqa: B010 (a module imported by name)
    try:
        pkg.recover_kernel(x, y, kernel_size)
    finally:
        setattr(checks, "run_checks", original)  # noqa: B010
    return checks, seen["problem"], seen["sol"], seen["fit"]
