"""Measures of the package's layout: folders, modules, import cycles, long functions, public entry points.

Run: ``python benchmarks/layout_metrics.py`` (``--quick`` is accepted and changes nothing: it is fast; needs
``grimp``, installed with import-linter by the ``test`` extra).  Import cycles count imports made at run time,
inside functions included, and leave out those under ``TYPE_CHECKING`` (annotations, as the import-linter contract).
"""

from __future__ import annotations

import ast
import pathlib
import sys

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "kernel_recovery"


def code_lines(node: ast.AST, source: list[str]) -> int:
    """Lines of a function that hold code: not blank, not comments, not its docstring."""
    body = getattr(node, "body", [])
    doc = None
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        if isinstance(body[0].value.value, str):
            doc = range(body[0].lineno, body[0].end_lineno + 1)
    count = 0
    for i in range(node.lineno, node.end_lineno + 1):
        text = source[i - 1].strip()
        if text and not text.startswith("#") and (doc is None or i not in doc):
            count += 1
    return count


def functions() -> list[tuple[str, int]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(source))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((f"{path.relative_to(PACKAGE.parent).as_posix()}:{node.name}", code_lines(node, source)))
    return out


def cycles() -> int:
    import grimp

    graph = grimp.build_graph("kernel_recovery", exclude_type_checking_imports=True)
    modules = sorted(graph.modules)
    found = 0
    for i, a in enumerate(modules):
        for b in modules[i + 1 :]:
            if graph.chain_exists(a, b, as_packages=False) and graph.chain_exists(b, a, as_packages=False):
                found += 1
    return found


def main() -> None:
    packages = sorted(
        p.parent.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE
    )
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    funcs = functions()
    long60 = sorted((n, c) for n, c in funcs if c > 60)
    long120 = [(n, c) for n, c in long60 if c > 120]
    defs = {name: [n for n, _ in funcs if n.endswith(":" + name)] for name in ("recover_kernel", "analyze")}
    rows = [
        ("sub-packages", len(packages), ", ".join(packages)),
        ("top-level modules", len(top), ", ".join(top)),
        ("import cycles (module pairs that reach each other)", cycles(), ""),
        ("functions over 60 code lines", len(long60), ""),
        ("functions over 120 code lines", len(long120), ", ".join(n for n, _ in long120)),
    ]
    rows += [(f"definitions of `{name}`", len(where), ", ".join(where)) for name, where in defs.items()]
    print("| measure | value | which |\n| --- | --- | --- |")
    for what, value, which in rows:
        print(f"| {what} | {value} | {which} |")
    print("\nFunctions over 60 code lines (code lines, not docstrings, comments or blank lines):\n")
    print("| code lines | function |\n| --- | --- |")
    for n, c in sorted(long60, key=lambda t: -t[1]):
        print(f"| {c} | {n} |")


if __name__ == "__main__":
    sys.exit(main())
