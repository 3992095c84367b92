"""The demo datasets x methods x input kinds give the saved outputs (``tests/golden_cases.py`` writes them)."""

import json

import pytest
from golden_cases import case_names, compare, examples, golden_path, run_case

EXAMPLES = examples()


@pytest.mark.parametrize("i, method, kind", case_names())
def test_golden_output(i, method, kind):
    want = json.loads(golden_path(i).read_text())["cases"][f"{method}/{kind}"]
    got = json.loads(json.dumps(run_case(EXAMPLES[i], method, kind)))
    assert compare(got, want) == []
