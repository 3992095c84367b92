"""model.design.window_rows, the one place design rows are cut, against the rows written out."""

import numpy as np
import pytest

from kernel_recovery.model.design import window_rows


def written_out(x, width, index):
    rows = [x[t : t + width].ravel() for t in range(len(x) - width + 1)]
    return np.array(rows).reshape(-1, width * x.shape[1])[index]


@pytest.mark.parametrize("layout", ["c", "fortran", "strided", "read-only"])
@pytest.mark.parametrize("index", [slice(None), slice(3, 40, 7), np.array([0, 5, 2, 30])])
def test_window_rows_against_rows_written_out(layout, index):
    x = np.random.default_rng(0).standard_normal((60, 3))
    if layout == "fortran":
        x = np.asfortranarray(x)
    elif layout == "strided":
        x = np.random.default_rng(0).standard_normal((120, 6))[::2, ::2]
    elif layout == "read-only":
        x.flags.writeable = False
    before = x.copy()
    rows = window_rows(x, 5, index)
    assert np.array_equal(rows, written_out(x, 5, index))
    assert not (np.shares_memory(rows, x) and rows.flags.writeable)  # a view of the caller's data is read-only
    assert np.array_equal(x, before)


def test_window_rows_of_a_record_shorter_than_the_window():
    assert window_rows(np.ones((3, 2)), 5).shape == (0, 10)
    assert window_rows(np.ones((5, 2)), 5).shape == (1, 10)
