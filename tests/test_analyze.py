"""analyze(): counts per output channel, rank, conditioning, warnings."""

import numpy as np
import pytest

import kernel_recovery as kr


@pytest.mark.parametrize(
    "padding, stride, expected",
    [
        ("valid", 1, 8),
        ("same", 1, 10),
        ("causal", 1, 10),
        ("full", 1, 12),
        (1, 1, 10),
        ((3, 0), 1, 11),
        ("valid", 2, 4),
        ("same", 2, 5),
        ("causal", 2, 5),
        ("full", 2, 6),
        ("valid", 3, 3),
        ("same", 3, 4),
    ],
)
def test_counts_for_each_padding_and_stride(padding, stride, expected, rng):
    # L = 10, kernel_size = 3, worked by hand from the output-length formulas
    x = rng.standard_normal((10, 2))
    rep = kr.analyze(x, None, 3, padding=padding, stride=stride, out_channels=2, warn=False)
    assert rep.equations.tolist() == [expected, expected]
    assert rep.unknowns.tolist() == [6, 6]


def test_counts_add_over_a_ragged_batch_and_bias(rng):
    xs = [rng.standard_normal(n) for n in (5, 9, 12)]
    rep = kr.analyze(xs, None, 4, use_bias=True)
    assert rep.equations.tolist() == [2 + 6 + 9]
    assert rep.unknowns.tolist() == [5]
    assert rep.status == "overdetermined" and rep.rank.tolist() == [5]


def test_groups_count_per_group(rng):
    x = rng.standard_normal((30, 4))
    y = rng.standard_normal((28, 6))
    rep = kr.analyze(x, y, 3, groups=2)
    assert rep.unknowns.tolist() == [6] * 6 and rep.equations.tolist() == [28] * 6


def test_constant_input_is_rank_deficient():
    with pytest.warns(kr.UnderdeterminedWarning, match="constant"):
        rep = kr.analyze(np.ones(30), None, 4)
    assert rep.status == "rank_deficient" and rep.rank.tolist() == [1]
    assert any("constant" in c for c in rep.causes)


def test_sinusoid_excites_two_directions():
    t = np.arange(200)
    x = np.sin(0.3 * t)
    with pytest.warns(kr.UnderdeterminedWarning):
        rep = kr.analyze(x, None, 5)
    assert rep.rank.tolist() == [2] and rep.status == "rank_deficient"
    # every null direction is invisible on these data
    assert rep.null_space[0].shape == (3, 5, 1)
    for v in rep.null_space[0]:
        assert np.max(np.abs(kr.conv1d(x, v[:, :, None]))) < 1e-10


def test_zero_channel_with_bias_is_named(rng):
    x = np.column_stack([rng.standard_normal(40), np.zeros(40)])
    with pytest.warns(kr.UnderdeterminedWarning, match="input channel 1 is zero"):
        rep = kr.analyze(x, None, 3, use_bias=True)
    assert rep.rank.tolist() == [4] and rep.unknowns.tolist() == [7]


def test_fewer_equations_than_unknowns_is_underdetermined(rng):
    with pytest.warns(kr.UnderdeterminedWarning, match="underdetermined: each output channel has 2 equations for 6"):
        rep = kr.analyze(rng.standard_normal((4, 2)), None, 3)
    assert rep.status == "underdetermined"
    assert "underdetermined" in str(rep).lower()


def test_report_text_and_dict(rng):
    rep = kr.analyze(rng.standard_normal(50), rng.standard_normal((48, 2)), 3)
    text = str(rep)
    assert "48 equations, 3 unknowns" in text and "OVERDETERMINED" in text
    d = rep.to_dict()
    assert d["status"] == "overdetermined" and d["equations"] == [48, 48]
    assert np.all(np.isfinite(rep.condition_number)) and np.all(rep.error_per_unit_noise > 0)


def test_error_per_unit_noise_is_trace_of_inverse_gram(rng):
    x = rng.standard_normal(30)
    rep = kr.analyze(x, None, 4)
    a = np.lib.stride_tricks.sliding_window_view(x, 4)
    np.testing.assert_allclose(rep.error_per_unit_noise[0], np.sqrt(np.trace(np.linalg.inv(a.T @ a))), rtol=1e-10)
    np.testing.assert_allclose(rep.condition_number[0], np.linalg.cond(a), rtol=1e-8)


def test_ill_conditioned_warning(rng):
    # a four-times integrated input: neighbouring taps are nearly collinear (condition number ~4e8)
    x = rng.standard_normal(400)
    for _ in range(4):
        x = np.cumsum(x)
    with pytest.warns(kr.IllConditionedWarning, match="ill-conditioned"):
        kr.recover_kernel(x, kr.conv1d(x, np.ones(8)), 8)
