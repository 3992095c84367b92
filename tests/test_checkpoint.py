"""NormalEquations checkpoints: save/load and to_state/from_state continue exactly, for every configuration."""

import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernel_recovery as kr


def chunked(acc, x, y, cuts_x, cuts_y):
    xs, ys = np.split(x, cuts_x), np.split(y, cuts_y)
    for i in range(max(len(xs), len(ys))):
        acc.update(xs[i] if i < len(xs) else x[:0], ys[i] if i < len(ys) else y[:0])


@st.composite
def cases(draw):
    conv = dict(
        kernel_size=draw(st.integers(1, 4)),
        stride=draw(st.integers(1, 3)),
        dilation=draw(st.integers(1, 2)),
        groups=draw(st.sampled_from([1, 2])),
        padding=draw(st.sampled_from(["valid", "same", "causal", "full", (1, 2)])),
        use_bias=draw(st.booleans()),
    )
    memory = draw(st.sampled_from([{}, {"forgetting": 0.97}, {"window": 37}]))
    n = draw(st.integers(40, 120))
    stop = draw(st.floats(0.1, 0.9))  # where the first run is interrupted (mid-sequence)
    seed = draw(st.integers(0, 2**16))
    two_sequences = draw(st.booleans())
    return conv, memory, n, stop, seed, two_sequences


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_loaded_accumulator_continues_exactly(tmp_path_factory, case):
    conv, memory, n, stop, seed, two_sequences = case
    rng = np.random.default_rng(seed)
    ks = conv.pop("kernel_size")
    groups = conv["groups"]
    use_bias = conv.pop("use_bias")
    x = rng.standard_normal((n, 2))
    w = rng.standard_normal((ks, 2 // groups, 2))
    b = rng.standard_normal(2) if use_bias else None
    y = kr.conv1d(x, w, b, **conv)
    y = y + 0.1 * rng.standard_normal(y.shape)
    x2 = rng.standard_normal((n, 2))
    y2 = kr.conv1d(x2, w, b, **conv)
    y2 = y2 + 0.1 * rng.standard_normal(y2.shape)
    make = dict(conv, use_bias=use_bias, **memory)
    cut_x, cut_y = int(stop * n), int(stop * len(y) * 0.8)
    reference = kr.NormalEquations(ks, **make)
    first = kr.NormalEquations(ks, **make)
    for acc in (reference, first):
        if two_sequences:  # a closed sequence before the interrupted one
            acc.update(x2, y2)
            acc.end_sequence()
        acc.update(x[:cut_x], y[:cut_y])  # interrupted mid-sequence
    path = tmp_path_factory.mktemp("ck") / "acc.npz"
    first.save(path)
    resumed = [kr.NormalEquations.load(path, kernel_size=ks, **memory), kr.NormalEquations.from_state(first.to_state())]
    rest = (x[cut_x:], y[cut_y:], [(n - cut_x) // 2], [(len(y) - cut_y) // 3])
    for acc in [reference, *resumed]:
        chunked(acc, *rest)
    for acc in resumed:
        for a, b in zip(reference.statistics(), acc.statistics()):
            scale = np.abs(a.gram).max()
            np.testing.assert_allclose(b.gram, a.gram, rtol=1e-12, atol=1e-12 * scale)
            np.testing.assert_allclose(b.cross, a.cross, rtol=1e-12, atol=1e-12 * scale)
            np.testing.assert_allclose(b.yty, a.yty, rtol=1e-12)
            assert b.n_rows == pytest.approx(a.n_rows, rel=1e-12)
        assert acc.n_equations == reference.n_equations
        np.testing.assert_allclose(
            acc.solve(warn=False).kernel, reference.solve(warn=False).kernel, rtol=1e-9, atol=1e-12
        )


def test_state_is_plain_arrays_and_the_file_has_no_pickles(tmp_path):
    rng = np.random.default_rng(0)
    acc = kr.NormalEquations(3, padding="same", window=50)
    acc.update(rng.standard_normal(100), rng.standard_normal(80))
    state = acc.to_state()
    assert all(isinstance(v, (np.ndarray, int, float, bool, str)) for v in state.values())
    acc.save(tmp_path / "a.npz")
    with np.load(tmp_path / "a.npz", allow_pickle=False) as f:
        assert all(f[k].dtype != object for k in f.files)


def test_empty_accumulator_round_trips(tmp_path):
    acc = kr.NormalEquations(3, forgetting=0.9)
    acc.save(tmp_path / "e.npz")
    again = kr.NormalEquations.load(tmp_path / "e.npz")
    assert again.n_equations == 0 and again.config is None


def test_another_configuration_is_an_error(tmp_path):
    acc = kr.NormalEquations(3, padding="causal", forgetting=0.99)
    acc.update(np.arange(10.0), np.arange(10.0))
    acc.save(tmp_path / "a.npz")
    with pytest.raises(ValueError, match=r"another configuration: kernel_size=3 \(expected 4\)"):
        kr.NormalEquations.load(tmp_path / "a.npz", kernel_size=4, padding="causal")
    with pytest.raises(ValueError, match=r"forgetting=0.99 \(expected 0.9\)"):
        kr.NormalEquations.load(tmp_path / "a.npz", forgetting=0.9)
    assert kr.NormalEquations.load(tmp_path / "a.npz", kernel_size=3, forgetting=0.99).n_equations == 10


def test_corrupted_truncated_and_foreign_files_are_errors(tmp_path):
    acc = kr.NormalEquations(3)
    acc.update(np.arange(20.0), np.arange(18.0))
    path = tmp_path / "a.npz"
    acc.save(path)
    raw = path.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="not a readable NormalEquations checkpoint"):
        kr.NormalEquations.load(tmp_path / "trunc.npz")
    flipped = bytearray(raw)
    flipped[len(raw) // 3] ^= 0xFF
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="checkpoint"):
        kr.NormalEquations.load(tmp_path / "flip.npz")
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    with pytest.raises(ValueError, match="missing `format`"):
        kr.NormalEquations.load(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError):
        kr.NormalEquations.load(tmp_path / "missing.npz")
    assert zipfile.is_zipfile(path)


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("version", 99, "version 99 is not supported"),
        ("stats0_gram", np.zeros((2, 2)), r"`stats0_gram` must be a numeric array of shape \(3, 3\)"),
        ("open_xbuf", np.zeros((2, 5)), r"`open_xbuf` must be a numeric array of shape \(n, 1\)"),
        ("stats0_yty", np.array([np.nan]), "NaN or Inf"),
        ("settings", "{not json", "`settings` do not describe an accumulator"),
        ("kept0_x_len", np.array([1000]), "stretch lengths add up to 1000"),
    ],
)
def test_inconsistent_state_names_the_key(key, value, match):
    acc = kr.NormalEquations(3)
    acc.update(np.arange(20.0), np.arange(18.0) ** 0.5)
    state = acc.to_state()
    state[key] = value
    with pytest.raises(ValueError, match=match):
        kr.NormalEquations.from_state(state)
    del state[key]
    with pytest.raises(ValueError, match=f"missing `{key}`"):
        kr.NormalEquations.from_state(state)
