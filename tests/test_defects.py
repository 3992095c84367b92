"""Regression tests for the defects of issue 13."""

import numpy as np
import pytest

import kernel_recovery as kr


def _data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    return x, kr.conv1d(x, [0.5, -1.0, 2.0])


# 4. a chunk of the wrong type names its place in the stream ---------------------------------------


@pytest.mark.parametrize(
    "bad, what",
    [
        (np.array([1.0, "a", 2.0], dtype=object), "dtype object"),
        ("abc", "real numeric array"),
        (np.ones(5, dtype=complex), "complex"),
    ],
    ids=["object", "str", "complex"],
)
def test_stream_type_error_names_the_chunk(bad, what):
    x, y = _data(60)
    pairs = iter([(x[:30], y[:28]), (bad, y[28:])])
    with pytest.raises(TypeError, match=rf"^chunk 1 of the stream: `x_chunk` .*{what}"):
        kr.recover_kernel(pairs, None, 3)
    with pytest.raises(TypeError, match=rf"^chunk 0 of the stream: `y_chunk` .*{what}"):
        kr.analyze(iter([(x, bad)]), None, 3)


def test_stream_value_error_keeps_its_context():
    x, y = _data(60)
    with pytest.raises(ValueError, match=r"^chunk 1 of the stream: `x_chunk` must be 1-D or 2-D"):
        kr.recover_kernel(iter([(x[:30], y[:28]), (np.zeros((2, 2, 2)), y[28:])]), None, 3)
