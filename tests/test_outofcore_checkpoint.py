"""Out-of-core runs checkpoint every N chunks and resume from the file exactly (issue: checkpointed streams)."""

import numpy as np
import pytest

import kernel_recovery as kr
from kernel_recovery.streaming import outofcore


class Crash(Exception):
    pass


def pairs(x, y, size, crash_at=None):
    for i, a in enumerate(range(0, len(x), size)):
        if i == crash_at:
            raise Crash
        yield x[a : a + size], y[a : a + size]


@pytest.mark.parametrize(
    "settings", [dict(kernel_size=5), dict(lags=(-2, 6), flip=True), dict(kernel_size=4, padding="same", use_bias=True)]
)
@pytest.mark.filterwarnings("ignore::kernel_recovery.NonCausalWarning")
def test_a_stream_resumes_after_a_crash(tmp_path, settings):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 2))
    k = settings.get("kernel_size")
    cfg = {c: v for c, v in settings.items() if c != "kernel_size"}
    w = rng.standard_normal((k or 9, 2, 1))
    y = kr.conv1d(x, w, [0.3] if cfg.get("use_bias") else None, **{c: v for c, v in cfg.items() if c != "use_bias"})
    y = y + 0.01 * rng.standard_normal(y.shape)
    path = tmp_path / "run.npz"
    size = 137  # (x and y chunks need not line up: with padding="valid" y is shorter)
    with pytest.raises(Crash):
        kr.recover_kernel(pairs(x, y, size, crash_at=13), None, k, checkpoint=path, checkpoint_every=5, **cfg)
    assert path.exists()  # written after chunks 5 and 10
    resumed = kr.recover_kernel(pairs(x, y, size), None, k, checkpoint=path, checkpoint_every=5, **cfg)
    ref = kr.recover_kernel(pairs(x, y, size), None, k, **cfg)
    np.testing.assert_allclose(resumed.kernel, ref.kernel, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="kernel_size"):
        kr.recover_kernel(pairs(x, y, size), None, 3, checkpoint=path)


def test_a_memory_mapped_record_resumes_without_rereading(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5000, 1))
    w = rng.standard_normal((8, 1, 1))
    y = kr.conv1d(x, w) + 0.01 * rng.standard_normal((2, 4993, 1))
    xm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=float, shape=x.shape)
    xm[:] = x
    path = tmp_path / "run.npz"
    ref = kr.recover_kernel(xm, y, 8, chunk_size=700)
    calls = {"n": 0}
    update = kr.NormalEquations.update

    def crashing(self, xc, yc):
        calls["n"] += 1
        if calls["n"] == 9:
            raise Crash
        return update(self, xc, yc)

    monkeypatch.setattr(kr.NormalEquations, "update", crashing)
    with pytest.raises(Crash):
        kr.recover_kernel(xm, y, 8, chunk_size=700, checkpoint=path, checkpoint_every=4)
    monkeypatch.setattr(kr.NormalEquations, "update", update)
    reads = {"n": 0}
    read = outofcore._Reader.read

    def counting(self, *args):
        reads["n"] += 1
        return read(self, *args)

    monkeypatch.setattr(outofcore._Reader, "read", counting)
    resumed = kr.recover_kernel(xm, y, 8, chunk_size=700, checkpoint=path, checkpoint_every=4)
    np.testing.assert_allclose(resumed.kernel, ref.kernel, rtol=0, atol=1e-12)
    assert reads["n"] < 2 * 16 - 8  # the 8 chunks in the checkpoint were not read again (x and y per chunk)


def test_bad_checkpoint_settings_are_named(tmp_path):
    x = np.random.default_rng(2).standard_normal(100)
    with pytest.raises(ValueError, match="`checkpoint_every` must be >= 1"):
        kr.recover_kernel(pairs(x, x[:98], 10), None, 3, checkpoint=tmp_path / "a.npz", checkpoint_every=0)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable NormalEquations checkpoint"):
        kr.recover_kernel(pairs(x, x[:98], 10), None, 3, checkpoint=tmp_path / "junk.npz")
