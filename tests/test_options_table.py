"""The options table of the docs agrees with the solvers' signatures (names, defaults), so it cannot go stale."""

import inspect
import pathlib
import re

from kernel_recovery import solvers

TABLE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "guide" / "options.rst"


def _table_rows() -> list[tuple[str, str, str]]:
    text = TABLE.read_text()
    rows = re.findall(r"^   \* - (\w+)\n     - ``(\w+)``\n     - ``([^`]*)``\n", text, flags=re.M)
    assert rows, "no rows found in docs/guide/options.rst"
    return rows


def _signature_rows() -> list[tuple[str, str, str]]:
    rows = []
    for name in solvers.METHODS:
        _, solver = solvers.resolve(name)
        for option, param in inspect.signature(solver).parameters.items():
            if param.kind is inspect.Parameter.KEYWORD_ONLY:
                rows.append((name, option, repr(param.default)))
    return rows


def test_options_table_matches_the_signatures():
    assert sorted(_table_rows()) == sorted(_signature_rows())
