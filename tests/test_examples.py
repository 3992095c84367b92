"""Every gallery example (examples/plot_*.py) runs as a script, so the quick docs build, which does not
execute them, cannot hide a broken one; and the API reference lists every public name."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

import kernel_recovery as kr

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))

# Runs a script with torch and keras unimportable, as on a machine without the [export] extra.
WITHOUT_FRAMEWORKS = """
import runpy, sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"torch", "keras"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Missing())
runpy.run_path(sys.argv[1], run_name="__main__")
"""


def _run(args, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    # -W error: the examples run as cleanly as the test suite (warnings they show are caught and printed)
    return subprocess.run(
        [sys.executable, "-W", "error", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_gallery_has_its_examples():
    assert {
        "plot_tutorial.py",
        "plot_noisy_multichannel.py",
        "plot_underdetermined.py",
        "plot_long_impulse_response.py",
        "plot_streaming.py",
        "plot_export.py",
        "plot_room_impulse_response.py",
        "plot_regularized_short_record.py",
        "plot_tracking.py",
        "plot_estimator_grid_search.py",
    } <= set(SCRIPTS)
    assert all(name.startswith("plot_") for name in SCRIPTS)  # sphinx-gallery runs plot_* only


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs(script, tmp_path):
    proc = _run([str(EXAMPLES / script)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip()  # each example prints what it shows
    assert not list(tmp_path.iterdir())  # and leaves no files behind


def test_export_example_without_torch_and_keras(tmp_path):
    proc = _run(["-c", WITHOUT_FRAMEWORKS, str(EXAMPLES / "plot_export.py")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torch is not installed" in proc.stdout
    assert "keras is not installed" in proc.stdout
    assert "scipy:" in proc.stdout  # the part that needs neither still runs


def test_api_reference_lists_every_public_name():
    text = (ROOT / "docs" / "api.rst").read_text()
    listed = set(re.findall(r"^   ([\w.]+)$", text, flags=re.M))  # autosummary entries
    listed |= set(re.findall(r"^\.\. data:: (\w+)", text, flags=re.M))
    missing = sorted(set(kr.__all__) - listed)
    assert not missing, f"docs/api.rst does not list {missing}"
    assert {"CanonicalProblem", "Solution"} <= listed  # the custom-solver contract
