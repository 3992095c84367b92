"""The architecture holds: layers (import-linter contract), no import cycle, one place cuts design rows."""

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "kernel_recovery"


def _module_imports() -> dict[str, set[str]]:
    grimp = pytest.importorskip("grimp")
    # annotations under TYPE_CHECKING are not dependencies (as in the import-linter contract)
    graph = grimp.build_graph("kernel_recovery", include_external_packages=False, exclude_type_checking_imports=True)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def _cycles(adj: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in adj.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(adj):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    assert _cycles(_module_imports()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layers_contract_is_kept():
    pytest.importorskip("importlinter")
    root = PACKAGE.parent
    out = subprocess.run([sys.executable, "-m", "importlinter.cli"], cwd=root, capture_output=True, text=True)
    if "No module named importlinter.cli" in out.stderr:
        out = subprocess.run(["lint-imports"], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_only_the_operator_cuts_design_rows():
    cutters = {"sliding_window_view", "as_strided"}
    where = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            name = getattr(node, "attr", None) or getattr(node, "id", None)
            if name in cutters and isinstance(node, (ast.Name, ast.Attribute)):
                where.append(path.relative_to(PACKAGE).as_posix())
    # design.py cuts rows (sequences and grids); the statistics modules view lagged correlations as Toeplitz blocks;
    # the FFT method and its Welch spectra view overlapping segments of a record (transform blocks, not design rows)
    assert sorted(set(where)) == [
        "model/design.py",
        "model/grid_gram.py",
        "model/statistics.py",
        "solvers/spectral.py",
        "solvers/welch.py",
    ]
