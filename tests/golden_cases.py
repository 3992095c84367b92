"""Golden outputs: every demo dataset x method x input kind, as ``KernelResult.to_dict()``.

The restructuring of the package moves code without changing behaviour; these files pin that down.
Regenerate (only when a change of numbers is intended, and say so in the commit)::

    python tests/golden_cases.py --write
"""

from __future__ import annotations

import json
import math
import pathlib
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

import kernel_recovery as kr
from kernel_recovery import datasets

GOLDEN_DIR = pathlib.Path(__file__).parent / "golden"
METHODS = ("lstsq", "fft", "adam", "custom")
KINDS = ("array", "list", "memmap", "dask", "iterator", "normal_equations")
# keys whose values are wall-clock times or machine-dependent (not behaviour)
VOLATILE = ("time", "seconds", "elapsed", "duration")


def examples() -> list[datasets.Example]:
    return [*datasets.tutorial_examples(), datasets.noisy_multichannel(length=400), datasets.underdetermined()]


def _custom(problem, **options):
    """A user's solver: lstsq under another name (the registry's callable path)."""
    from kernel_recovery import solvers

    return solvers.resolve("lstsq")[1](problem, **options)


def _method(name: str) -> tuple[Any, dict[str, Any]]:
    if name == "custom":
        return _custom, {}
    if name == "adam":
        return "adam", {"max_iter": 300, "seed": 0}
    return name, {}


def _as_kind(arr: np.ndarray, kind: str, tmp: pathlib.Path, tag: str) -> Any:
    if kind == "array":
        return arr
    if kind == "list":
        return [arr] if arr.ndim <= 2 else list(arr)
    if kind == "memmap":
        path = tmp / f"{tag}.npy"
        np.save(path, arr)
        return np.load(path, mmap_mode="r")
    if kind == "dask":
        import dask.array as da

        return da.from_array(arr, chunks=max(1, arr.shape[0] // 2) if arr.ndim == 1 else arr.shape)
    raise AssertionError(kind)


def _chunks(x: np.ndarray, y: np.ndarray, pieces: int = 3) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    xs, ys = np.array_split(x, pieces), np.array_split(y, pieces)
    return iter(list(zip(xs, ys)))


def run_case(ex: datasets.Example, method: str, kind: str) -> dict[str, Any]:
    """The outcome of one case: ``to_dict()`` of the result, or the error's type and message."""
    m, options = _method(method)
    settings = dict(ex.settings)
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tmp = pathlib.Path(d)
        try:
            if kind == "normal_equations":
                acc = kr.NormalEquations(ex.kernel_size, **settings)
                for xc, yc in _chunks(ex.x, ex.y):
                    acc.update(xc, yc)
                if method != "lstsq":
                    return {"result": "not applicable (NormalEquations solves by least squares)", "warnings": []}
                res = acc.solve()
            elif kind == "iterator":
                res = kr.recover_kernel(_chunks(ex.x, ex.y), None, ex.kernel_size, method=m, **settings, **options)
            else:
                x, y = _as_kind(ex.x, kind, tmp, "x"), _as_kind(ex.y, kind, tmp, "y")
                res = kr.recover_kernel(x, y, ex.kernel_size, method=m, **settings, **options)
            out: dict[str, Any] = {"result": _stable(res.to_dict())}
        except (ValueError, TypeError) as exc:
            out = {"error": f"{type(exc).__name__}: {exc}"}
        out["warnings"] = sorted({f"{type(w.message).__name__}" for w in caught})
    return out


def _stable(value: Any) -> Any:
    """Drop timing fields and values that name the user's callable (its repr holds an address)."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if not any(t in k for t in VOLATILE)}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    if isinstance(value, str) and " at 0x" in value:
        return value.split(" at 0x")[0]
    return value


def case_names() -> list[tuple[int, str, str]]:
    return [(i, m, k) for i in range(len(examples())) for m in METHODS for k in KINDS]


def golden_path(i: int) -> pathlib.Path:
    return GOLDEN_DIR / f"example{i}.json"


def compare(got: Any, want: Any, where: str = "") -> list[str]:
    """Differences between two outcomes (floats to 1e-7 relative: BLAS kernels differ between machines)."""
    if isinstance(want, dict) and isinstance(got, dict):
        diffs = [f"{where}: keys {sorted(set(got) ^ set(want))}"] if set(got) != set(want) else []
        for k in set(got) & set(want):
            diffs += compare(got[k], want[k], f"{where}.{k}")
        return diffs
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return [f"{where}: length {len(got)} != {len(want)}"]
        return [d for i, (g, w) in enumerate(zip(got, want)) for d in compare(g, w, f"{where}[{i}]")]
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        ok = math.isclose(got, want, rel_tol=1e-7, abs_tol=1e-9) or (math.isnan(got) and math.isnan(want))
        return [] if ok else [f"{where}: {got!r} != {want!r}"]
    return [] if got == want else [f"{where}: {got!r} != {want!r}"]


def write() -> None:
    GOLDEN_DIR.mkdir(exist_ok=True)
    for i, ex in enumerate(examples()):
        outcomes = {f"{m}/{k}": run_case(ex, m, k) for m in METHODS for k in KINDS}
        golden_path(i).write_text(json.dumps({"example": ex.name, "cases": outcomes}, indent=1, sort_keys=True))
        print(f"wrote {golden_path(i)} ({ex.name})")


if __name__ == "__main__":
    if "--write" not in sys.argv:
        sys.exit("usage: python tests/golden_cases.py --write")
    write()
