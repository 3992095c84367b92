"""Out-of-core inputs (Dask arrays, a dask.distributed cluster, memmap, zarr, generators) give the in-memory answer.

The reference is numpy.linalg.lstsq on an explicit design built column by column from conv1d of unit kernels;
the in-memory recover_kernel / analyze are compared too (to ~1e-12).  Chunk sizes are chosen to cut through
kernel spans (chunks shorter than the receptive field included).
"""

import tracemalloc
import warnings

import numpy as np
import pytest
from references import three_tap_record

import kernel_recovery as kr
from kernel_recovery.streaming import outofcore

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")


# ----------------------------------------------------------------------------------------------
# Independent reference
# ----------------------------------------------------------------------------------------------


def explicit_lstsq(x, y, kernel_size, *, use_bias=False, layout="nwc", **conv):
    """Per output channel, lstsq on the explicit design whose columns are conv1d outputs of unit kernels."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if layout == "ncw":
        x, y = np.swapaxes(x, -1, -2), np.swapaxes(y, -1, -2)
    if x.ndim == 2:
        x, y = x[None], y[None]
    groups = conv.get("groups", 1)
    cin, cout = x.shape[2] // groups, y.shape[2]
    cols = []
    for k in range(kernel_size):
        for c in range(cin):
            w = np.zeros((kernel_size, cin, cout))
            w[k, c, :] = 1.0
            cols.append(kr.conv1d(x, w, **conv))  # (batch, out_len, cout)
    design = np.stack(cols, axis=-1).reshape(-1, cout, kernel_size * cin)
    if use_bias:
        design = np.concatenate([design, np.ones(design.shape[:2] + (1,))], axis=-1)
    rows = y.reshape(-1, cout)
    kernel = np.zeros((kernel_size, cin, cout))
    bias = np.zeros(cout)
    for o in range(cout):
        coef = np.linalg.lstsq(design[:, o, :], rows[:, o], rcond=None)[0]
        kernel[:, :, o] = coef[: kernel_size * cin].reshape(kernel_size, cin)
        bias[o] = coef[-1] if use_bias else 0.0
    return kernel, (bias if use_bias else None)


def make_data(
    rng, batch, length, cin, cout, kernel_size, *, layout="nwc", noise=0.01, dtype=np.float64, bias=False, **conv
):
    # (bias only when asked: a fit without one on data with one is now warned, ModelMisfitWarning, as it should be)
    groups = conv.get("groups", 1)
    x = rng.standard_normal((batch, length, cin)).astype(dtype)
    w = rng.standard_normal((kernel_size, cin // groups, cout))
    b = rng.standard_normal(cout) if bias else None
    y = kr.conv1d(x.astype(np.float64), w, b, **conv)
    y = (y + noise * rng.standard_normal(y.shape)).astype(dtype)
    if layout == "ncw":
        x, y = np.ascontiguousarray(np.swapaxes(x, 1, 2)), np.ascontiguousarray(np.swapaxes(y, 1, 2))
    return x, y


def check_against_references(res, x, y, kernel_size, *, in_memory_tol=1e-12, **cfg):
    """The streamed result equals the explicit lstsq and the in-memory recover_kernel."""
    kernel, bias = explicit_lstsq(x, y, kernel_size, **cfg)
    np.testing.assert_allclose(res.kernel, kernel, rtol=0, atol=1e-10)
    mem = kr.recover_kernel(np.asarray(x), np.asarray(y), kernel_size, **cfg)
    np.testing.assert_allclose(res.kernel, mem.kernel, rtol=0, atol=in_memory_tol)
    if cfg.get("use_bias"):
        np.testing.assert_allclose(res.bias, bias, rtol=0, atol=1e-10)
        np.testing.assert_allclose(res.bias, mem.bias, rtol=0, atol=in_memory_tol)
    else:
        assert res.bias is None
    assert res.config == mem.config
    assert res.report.lengths == mem.report.lengths
    np.testing.assert_array_equal(res.report.equations, mem.report.equations)
    assert res.report.status == mem.report.status
    assert res.residual_rms == pytest.approx(mem.residual_rms, rel=1e-6)
    assert res.diagnostics["streamed"] is True


CONFIGS = [
    dict(),
    dict(padding="same", use_bias=True),
    dict(padding="same", stride=3, dilation=2),
    dict(padding="causal", dilation=3, use_bias=True),
    dict(padding="full", stride=2, groups=2),
    dict(padding=(7, 2), stride=2, dilation=2),
    dict(padding="valid", stride=4, flip=True),
]


# ----------------------------------------------------------------------------------------------
# Dask, local scheduler
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
@pytest.mark.parametrize("x_chunk, y_chunk", [(41, 17), (5, 3)])
def test_dask_matches_explicit_lstsq(rng, cfg, x_chunk, y_chunk):
    # K=5 with dilation up to 3 spans up to 13 samples: chunks of 5 / 3 need halos from several blocks
    conv = {k: v for k, v in cfg.items() if k != "use_bias"}
    x, y = make_data(rng, 2, 150, 2, 4, 5, **conv)
    xd = da.from_array(x, chunks=(1, x_chunk, 1))
    yd = da.from_array(y, chunks=(2, y_chunk, 4))
    with dask.config.set(scheduler="threads"):
        res = kr.recover_kernel(xd, yd, 5, **cfg)
    check_against_references(res, x, y, 5, **cfg)


@pytest.mark.parametrize("layout", ["nwc", "ncw"])
def test_dask_layouts_and_flip(rng, layout):
    x, y = make_data(rng, 3, 120, 2, 3, 4, layout=layout, padding="same", stride=2)
    axis = 2 if layout == "ncw" else 1
    xd = da.from_array(x, chunks=tuple(2 if a == 0 else (11 if a == axis else -1) for a in range(3)))
    yd = da.from_array(y, chunks=tuple(1 if a == 0 else (7 if a == axis else -1) for a in range(3)))
    cfg = dict(padding="same", stride=2, layout=layout, flip=True, use_bias=True)
    with dask.config.set(scheduler="synchronous"):
        res = kr.recover_kernel(xd, yd, 4, **cfg)
    mem = kr.recover_kernel(x, y, 4, **cfg)
    np.testing.assert_allclose(res.kernel, mem.kernel, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.bias, mem.bias, rtol=0, atol=1e-12)
    # 1-D and 2-D Dask arrays: one sequence
    one_x = x[0, 0] if layout == "ncw" else x[0, :, 0]
    one_y = kr.conv1d(one_x, rng.standard_normal(4), padding="causal") + 0.01 * rng.standard_normal(len(one_x))
    r1 = kr.recover_kernel(da.from_array(one_x, chunks=9), da.from_array(one_y, chunks=13), 4, padding="causal")
    k1, _ = explicit_lstsq(one_x[:, None], one_y[:, None], 4, padding="causal")
    np.testing.assert_allclose(r1.kernel, k1, rtol=0, atol=1e-10)


def test_dask_x_with_in_memory_y(rng):
    x, y = make_data(rng, 1, 200, 1, 2, 3)
    res = kr.recover_kernel(da.from_array(x[0], chunks=(31, 1)), y[0], 3, chunk_size=23)
    check_against_references(res, x[0], y[0], 3)


def test_dask_tree_reduction_and_normal_equations_path(rng):
    # 20 chunks (a tree of depth 3 with split_every=3); 150k rows x 32 columns exceed the explicit-design limit,
    # so the streamed normal equations are solved (no rows retained)
    x, y = make_data(rng, 1, 150_000, 2, 2, 16, noise=0.1)
    x, y = x[0], y[0]
    xd = da.from_array(x, chunks=(7_500, 2))
    yd = da.from_array(y, chunks=(7_500, 2))
    res = kr.recover_kernel(xd, yd, 16, split_every=3)
    assert res.diagnostics["solver"][0].startswith("normal_equations")
    # reference: the valid design from a sliding window, (rows, taps * channels) in (tap, channel) order
    design = np.lib.stride_tricks.sliding_window_view(x, 16, axis=0).transpose(0, 2, 1).reshape(len(y), 32)
    kernel = np.linalg.lstsq(design, y, rcond=None)[0].reshape(16, 2, 2)
    np.testing.assert_allclose(res.kernel, kernel, rtol=0, atol=1e-12)
    rss = np.sum((y - design @ kernel.reshape(32, 2)) ** 2)
    assert res.residual_rms == pytest.approx(np.sqrt(rss / y.size), rel=1e-9)


def test_dask_analyze_matches_in_memory(rng):
    x, _ = make_data(rng, 2, 150, 2, 2, 5)
    xd = da.from_array(x, chunks=(1, 13, 2))
    for cfg in (dict(), dict(padding="full", dilation=2, use_bias=True)):
        rep = kr.analyze(xd, None, 5, noise_level=0.1, **cfg)
        mem = kr.analyze(x, None, 5, noise_level=0.1, **cfg)
        assert rep.status == mem.status
        np.testing.assert_array_equal(rep.rank, mem.rank)
        np.testing.assert_allclose(rep.singular_values, mem.singular_values, rtol=1e-12)
        np.testing.assert_allclose(rep.expected_error, mem.expected_error, rtol=1e-10)
        assert (rep.min_length, rep.lengths) == (mem.min_length, mem.lengths)
    # a sinusoid excites 2 directions, whatever the chunking
    sine = np.sin(0.3 * np.arange(400))
    rep = kr.analyze(da.from_array(sine, chunks=37), None, 4, warn=False)
    assert rep.rank.tolist() == [2] and rep.cause_codes == ("few_frequencies",)


def test_long_record_diagnosis_reads_a_sample(rng):
    # 300k rows x 16 columns: no rows retained after the merge, yet proportional channels are still diagnosed
    a = rng.standard_normal(300_000)
    x = np.stack([a, -2 * a], axis=1)
    xd = da.from_array(x, chunks=(150_000, 2))
    with pytest.warns(kr.UnderdeterminedWarning, match="rank-deficient"):
        rep = kr.analyze(xd, None, 8)
    assert rep.status == "rank_deficient" and rep.rank.tolist() == [8]
    assert rep.cause_codes == ("proportional_channels",)
    assert rep.exact_rank is False


def test_dask_progress_bar(rng, capsys):
    x, y = make_data(rng, 1, 100, 1, 1, 3)
    with dask.config.set(scheduler="synchronous"):
        kr.recover_kernel(da.from_array(x[0], chunks=(30, 1)), da.from_array(y[0], chunks=(30, 1)), 3, progress=True)
    out = capsys.readouterr()
    assert "Completed" in out.out + out.err


# ----------------------------------------------------------------------------------------------
# dask.distributed
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # start-up chatter of the cluster (ports, resource probes)
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
        c = distributed.Client(cluster)
    yield c
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c.close()
        cluster.close()


def test_local_cluster_matches_in_memory(rng, client):
    x, y = make_data(rng, 2, 300, 2, 2, 6, padding="same", dilation=2)
    xd = da.from_array(x, chunks=(1, 29, 2))
    yd = da.from_array(y, chunks=(2, 41, 2))
    cfg = dict(padding="same", dilation=2, use_bias=True)
    with distributed.get_task_stream(client) as ts:
        res = kr.recover_kernel(xd, yd, 6, **cfg)
    ran = {t["key"][0] if isinstance(t["key"], tuple) else t["key"] for t in ts.data}
    assert any(str(k).startswith("_stretch") for k in ran) and any(str(k).startswith("_merge") for k in ran)
    check_against_references(res, x, y, 6, **cfg)
    rep = kr.analyze(xd, yd, 6, **cfg)
    np.testing.assert_allclose(rep.singular_values, kr.analyze(x, y, 6, **cfg).singular_values, rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# Memory maps, zarr, generators
# ----------------------------------------------------------------------------------------------


def to_memmap(path, arr):
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=arr.dtype, shape=arr.shape)
    mm[:] = arr
    mm.flush()
    del mm
    return np.load(path, mmap_mode="r")


@pytest.mark.parametrize("cfg", CONFIGS[:6], ids=str)
def test_memmap_float32_matches_explicit_lstsq(rng, tmp_path, cfg):
    conv = {k: v for k, v in cfg.items() if k != "use_bias"}
    x, y = make_data(rng, 2, 130, 2, 4, 5, dtype=np.float32, **conv)
    xm, ym = to_memmap(tmp_path / "x.npy", x), to_memmap(tmp_path / "y.npy", y)
    assert outofcore.input_kind(xm) == "memmap"
    res = kr.recover_kernel(xm, ym, 5, chunk_size=7, **cfg)
    check_against_references(res, x, y, 5, **cfg)
    del xm, ym


def test_memmap_ncw_raw_file_and_slices(rng, tmp_path):
    x, y = make_data(rng, 2, 90, 3, 3, 4, layout="ncw", groups=3, padding="causal")
    path = tmp_path / "x.raw"
    mm = np.memmap(path, dtype=np.float64, mode="w+", shape=x.shape)
    mm[:] = x
    mm.flush()
    xm = np.memmap(path, dtype=np.float64, mode="r", shape=x.shape)
    res = kr.recover_kernel(xm, y, 4, layout="ncw", groups=3, padding="causal", chunk_size=10)
    mem = kr.recover_kernel(x, y, 4, layout="ncw", groups=3, padding="causal")
    np.testing.assert_allclose(res.kernel, mem.kernel, rtol=0, atol=1e-12)
    # a slice of a memmap is a memmap too: streamed, same answer as its in-memory copy
    part = kr.recover_kernel(xm[1, :, 10:80], y[1, :, 13:80], 4, layout="ncw", groups=3)
    ref = kr.recover_kernel(x[1, :, 10:80], y[1, :, 13:80], 4, layout="ncw", groups=3)
    np.testing.assert_allclose(part.kernel, ref.kernel, rtol=0, atol=1e-12)
    del mm, xm


def test_memmap_memory_is_bounded_by_the_chunk(rng, tmp_path):
    # K * Cin = 64 columns: the accumulator retains at most EXPLICIT_LIMIT / 64 rows (2 MB), the rest streams;
    # doubling the record must not raise the peak of traced allocations by anything like a copy of the data
    peaks = []
    for n in (150_000, 300_000):
        x = rng.standard_normal((n, 2)).astype(np.float32)
        y = rng.standard_normal((n - 31, 2)).astype(np.float32)  # any outputs: this test is about memory
        xm, ym = to_memmap(tmp_path / f"x{n}.npy", x), to_memmap(tmp_path / f"y{n}.npy", y)
        tracemalloc.start()
        try:
            res = kr.recover_kernel(xm, ym, 32, chunk_size=4096)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert res.report.equations.tolist() == [n - 31] * 2
        del xm, ym
    copy = 150_000 * 2 * 8  # the extra float64 copy of x that an in-memory pass would allocate
    assert peaks[1] - peaks[0] < copy / 4, peaks
    assert peaks[1] < 2 * 300_000 * 2 * 8, peaks


def test_zarr_matches_explicit_lstsq(rng, tmp_path):
    x, y = make_data(rng, 3, 140, 2, 2, 5, dtype=np.float32, padding="same", stride=2)
    zx = zarr.open_array(str(tmp_path / "x.zarr"), mode="w", shape=x.shape, chunks=(1, 32, 2), dtype="f4")
    zy = zarr.open_array(str(tmp_path / "y.zarr"), mode="w", shape=y.shape, chunks=(1, 32, 2), dtype="f4")
    zx[:] = x
    zy[:] = y
    assert outofcore.input_kind(zx) == "lazy"
    cfg = dict(padding="same", stride=2, use_bias=True)
    res = kr.recover_kernel(zx, zy, 5, chunk_size=13, **cfg)
    check_against_references(res, x, y, 5, **cfg)
    # zarr through Dask (its chunks become Dask chunks)
    res = kr.recover_kernel(da.from_zarr(zx), da.from_zarr(zy), 5, **cfg)
    check_against_references(res, x, y, 5, **cfg)
    rep = kr.analyze(zx, None, 5, **cfg)
    np.testing.assert_allclose(rep.singular_values, kr.analyze(x, None, 5, **cfg).singular_values, rtol=1e-12)


@pytest.mark.parametrize(
    "cfg", [dict(), dict(padding="same", use_bias=True), dict(padding="full", dilation=2)], ids=str
)
def test_generator_of_unaligned_chunks(rng, cfg):
    conv = {k: v for k, v in cfg.items() if k != "use_bias"}
    x, y = make_data(rng, 1, 500, 2, 3, 6, **conv)
    x, y = x[0], y[0]
    cuts_x = np.sort(rng.choice(np.arange(1, len(x)), 12, replace=False))
    cuts_y = np.sort(rng.choice(np.arange(1, len(y)), 9, replace=False))

    def pairs():  # x and y boundaries do not line up; some chunks are shorter than the span (11)
        xs, ys = np.split(x, cuts_x), np.split(y, cuts_y)
        for i in range(max(len(xs), len(ys))):
            yield (xs[i] if i < len(xs) else x[:0]), (ys[i] if i < len(ys) else y[:0])

    res = kr.recover_kernel(pairs(), None, 6, **cfg)
    check_against_references(res, x, y, 6, **cfg)
    rep = kr.analyze(pairs(), None, 6, **cfg)
    np.testing.assert_allclose(rep.singular_values, kr.analyze(x, y, 6, **cfg).singular_values, rtol=1e-12)


def test_progress_on_memmap(rng, tmp_path, capsys):
    x, y = make_data(rng, 1, 300, 1, 1, 3)
    xm = to_memmap(tmp_path / "x.npy", x[0])
    kr.recover_kernel(xm, y[0], 3, chunk_size=50, progress=True)
    assert "/300" in capsys.readouterr().err
    kr.recover_kernel(xm, y[0], 3, chunk_size=50)  # not a terminal: quiet
    assert capsys.readouterr().err == ""
    del xm


def test_in_memory_arrays_given_a_chunk_size_are_streamed(rng):
    # what streaming.outofcore.recover_kernel / analyze offered for an ndarray, through the one door
    cfg = dict(padding="same", stride=2, use_bias=True)
    x, y = make_data(rng, 2, 130, 2, 4, 5, padding="same", stride=2)
    res = kr.recover_kernel(x, y, 5, chunk_size=7, **cfg)
    check_against_references(res, x, y, 5, **cfg)
    assert res.diagnostics["input"] is None  # (the input itself was in memory)
    rep = kr.analyze(x, None, 5, chunk_size=11, **cfg)
    np.testing.assert_allclose(rep.singular_values, kr.analyze(x, None, 5, **cfg).singular_values, rtol=1e-12)
    with pytest.raises(TypeError, match="`split_every`.*streamed input"):
        kr.recover_kernel(x, y, 5, split_every=4, **cfg)
    with pytest.raises(TypeError, match="`checkpoint`.*streamed input"):
        kr.recover_kernel(x, y, 5, checkpoint="run.npz", **cfg)
    with pytest.raises(TypeError, match="`progress`.*streamed input"):
        kr.analyze(x, None, 5, progress=True, **cfg)


# ----------------------------------------------------------------------------------------------
# Warnings and errors
# ----------------------------------------------------------------------------------------------


def test_underdetermined_warning_points_at_the_caller(rng):
    x = da.from_array(rng.standard_normal(8), chunks=3)
    y = da.from_array(rng.standard_normal(4), chunks=2)
    with pytest.warns(kr.UnderdeterminedWarning) as rec:
        res = kr.recover_kernel(x, y, 5, use_bias=True)
    assert rec[0].filename == __file__
    assert res.report.status == "underdetermined"
    with pytest.warns(kr.UnderdeterminedWarning) as rec:
        kr.analyze(x, None, 5, use_bias=True)
    assert rec[0].filename == __file__


def test_unsupported_methods_and_options_are_clear_errors(rng, tmp_path):
    x, y = make_data(rng, 1, 60, 1, 1, 3)
    xd, yd = da.from_array(x[0], chunks=(20, 1)), da.from_array(y[0], chunks=(20, 1))
    for method in ("fft", "adam"):
        with pytest.raises(ValueError, match=r"method.*'lstsq'"):
            kr.recover_kernel(xd, yd, 3, method=method)
    with pytest.raises(ValueError, match="nan_policy"):
        kr.recover_kernel(xd, yd, 3, nan_policy="omit")
    with pytest.raises(ValueError, match="loss"):
        kr.recover_kernel(xd, yd, 3, loss="mae")
    with pytest.raises(TypeError, match="unexpected option 'learning_rate'"):
        kr.recover_kernel(xd, yd, 3, learning_rate=0.1)
    with pytest.raises(ValueError, match="chunk_size"):
        kr.recover_kernel(xd, yd, 3, chunk_size=0)
    with pytest.raises(ValueError, match=r"`y` has 57 samples.*58 outputs"):
        kr.recover_kernel(xd, yd[:57], 3)
    with pytest.raises(ValueError, match="same number of sequences"):
        kr.recover_kernel(da.from_array(x, chunks=(1, 20, 1)), da.from_array(np.concatenate([y, y]), chunks=5), 3)
    with pytest.raises(ValueError, match="kernel_size"):
        kr.recover_kernel(xd, yd, 0)
    with pytest.raises(ValueError, match="y=None"):
        kr.recover_kernel(iter([(x[0], y[0])]), y[0], 3)
    with pytest.raises(TypeError, match="`y` is required"):  # (it used to fit a zero kernel to zeros)
        kr.recover_kernel(to_memmap(tmp_path / "x.npy", x[0]), None, 3)
    with pytest.raises(ValueError, match="`lags`='auto' needs the data in memory"):
        kr.recover_kernel(xd, yd, lags="auto")
    with pytest.raises(ValueError, match="`prewhiten`='input' needs the data in memory"):
        kr.recover_kernel(xd, yd, 3, prewhiten="input")
    with pytest.raises(ValueError, match="nan_policy"):
        kr.analyze(xd, None, 3, nan_policy="omit")
    with pytest.raises(TypeError, match=r"\(x_chunk, y_chunk\) pairs; item 1"):
        kr.recover_kernel(iter([(x[0, :30], y[0, :28]), x[0, 30:]]), None, 3)
    with pytest.raises(ValueError, match="empty"):
        kr.recover_kernel(iter([]), None, 3)
    bad = x[0].copy()
    bad[37] = np.nan
    with pytest.raises(ValueError, match=r"`x` contains NaN or Inf.*sample 37"):
        kr.recover_kernel(to_memmap(tmp_path / "bad.npy", bad), y[0], 3, chunk_size=16)
    with pytest.raises(ValueError, match=r"`x` contains NaN or Inf.*sample 37"):
        kr.recover_kernel(da.from_array(bad, chunks=(16, 1)), yd, 3)
    with pytest.raises(TypeError, match="complex"):
        kr.recover_kernel(da.from_array(x[0] + 0j, chunks=(20, 1)), yd, 3)


def test_input_kind():
    assert outofcore.input_kind(np.zeros(3)) is None
    assert outofcore.input_kind([np.zeros(3), np.zeros(4)]) is None
    assert outofcore.input_kind(range(5)) is None
    assert outofcore.input_kind(da.zeros(3)) == "dask"
    assert outofcore.input_kind(x for x in ()) == "stream"
    assert not outofcore.is_out_of_core(np.zeros(3), np.zeros(3))


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
    x, y = three_tap_record(60)
    pairs = iter([(x[:30], y[:28]), (bad, y[28:])])
    with pytest.raises(TypeError, match=rf"^chunk 1 of the stream: `x_chunk` .*{what}"):
        kr.recover_kernel(pairs, None, 3)
    with pytest.raises(TypeError, match=rf"^chunk 0 of the stream: `y_chunk` .*{what}"):
        kr.analyze(iter([(x, bad)]), None, 3)


def test_stream_value_error_keeps_its_context():
    x, y = three_tap_record(60)
    with pytest.raises(ValueError, match=r"^chunk 1 of the stream: `x_chunk` must be 1-D or 2-D"):
        kr.recover_kernel(iter([(x[:30], y[:28]), (np.zeros((2, 2, 2)), y[28:])]), None, 3)
