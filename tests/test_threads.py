"""BLAS thread scoping is safe under threads and Dask; nested parallel code runs serially; every method, the
report and the accumulator give in threads what they give serially.

The BLAS thread count is read back from the libraries themselves through threadpoolctl (an independent view
of the process-wide setting that ``SerialBLAS`` changes).
"""

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.linalg  # noqa: F401  (its BLAS loaded up front: the library set stays the same)
from references import ADAM, METHODS
from threadpoolctl import threadpool_info, threadpool_limits

import kernel_recovery as kr
from kernel_recovery.model import statistics
from kernel_recovery.model.threads import SerialBLAS, fft_workers, serial_region, tiny_problem, workers


def blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture
def blas_count():
    """The BLAS thread counts before the test (more than 1 somewhere, so that a serial scope changes them)."""
    before = blas_threads()
    if not before:
        pytest.skip("threadpoolctl finds no BLAS library")
    if all(n == 1 for n in before):
        pytest.skip("the BLAS runs one thread here: a serial scope changes nothing")
    yield before
    assert blas_threads() == before


def test_serial_blas_scope_is_one_thread_and_restores(blas_count):
    with SerialBLAS():
        assert blas_threads() == [1] * len(blas_count)
        with SerialBLAS():  # nested
            assert blas_threads() == [1] * len(blas_count)
        assert blas_threads() == [1] * len(blas_count)
    assert blas_threads() == blas_count


def test_last_scope_out_restores_not_the_first(blas_count):
    # thread a enters, b enters, a leaves while b is still inside: the count stays 1 until b leaves
    a_in, b_in, a_out, b_may_leave = (threading.Event() for _ in range(4))
    seen = {}

    def a():
        with SerialBLAS():
            a_in.set()
            b_in.wait(10)
        a_out.set()

    def b():
        a_in.wait(10)
        with SerialBLAS():
            b_in.set()
            a_out.wait(10)
            seen["b inside after a left"] = blas_threads()
            b_may_leave.wait(10)

    ts = [threading.Thread(target=f) for f in (a, b)]
    for t in ts:
        t.start()
    a_out.wait(10)
    b_may_leave.set()
    for t in ts:
        t.join(10)
    assert seen["b inside after a left"] == [1] * len(blas_count)
    assert blas_threads() == blas_count


def test_overlapping_scopes_from_many_threads_restore_the_count(blas_count):
    n_threads, rounds = 6, 40
    barrier = threading.Barrier(n_threads)
    inside, errors = [], []

    def run(seed):
        rnd = random.Random(seed)
        scope = SerialBLAS()  # one instance reused, and fresh ones nested
        try:
            for _ in range(rounds):
                barrier.wait(10)  # all threads enter together, then leave in a random order
                with scope:
                    if rnd.random() < 0.5:
                        with SerialBLAS():
                            threading.Event().wait(rnd.random() * 1e-3)
                    inside.append(blas_threads())
                    threading.Event().wait(rnd.random() * 2e-3)
        except Exception as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    ts = [threading.Thread(target=run, args=(seed,)) for seed in range(n_threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors
    assert len(inside) == n_threads * rounds
    assert all(counts == [1] * len(blas_count) for counts in inside)
    assert blas_threads() == blas_count


def test_tiny_problem_scopes_leave_the_count_alone(blas_count):
    """Inside tiny_problem (a fit far below BLAS's threading sizes) SerialBLAS switches nothing; outside it, and
    with tiny=False, it serialises as before; scopes nest either way."""
    with tiny_problem():
        with SerialBLAS():
            assert blas_threads() == blas_count
    with tiny_problem(False), SerialBLAS():
        assert all(n == 1 for n in blas_threads())
    with SerialBLAS():
        with tiny_problem(), SerialBLAS():  # an outer serial scope stays serial
            assert all(n == 1 for n in blas_threads())
        assert all(n == 1 for n in blas_threads())


def test_serial_blas_switches_nothing_when_already_serial(blas_count, monkeypatch):
    """With every BLAS already at one thread, a scope does not call threadpoolctl's limit at all."""
    from threadpoolctl import ThreadpoolController

    calls: list[dict] = []
    original = ThreadpoolController.limit

    def counted(self, **kw):
        calls.append(kw)
        return original(self, **kw)

    monkeypatch.setattr(ThreadpoolController, "limit", counted)
    with threadpool_limits(limits=1, user_api="blas"):
        with SerialBLAS():
            assert all(n == 1 for n in blas_threads())
    assert calls == []
    with SerialBLAS():
        assert all(n == 1 for n in blas_threads())
    assert calls == [{"limits": 1}]


def test_serial_blas_restores_after_an_exception(blas_count):
    with pytest.raises(RuntimeError, match="boom"):
        with SerialBLAS():
            raise RuntimeError("boom")
    assert blas_threads() == blas_count


def test_dask_threaded_runs_leave_the_blas_count_as_it_was(blas_count, monkeypatch):
    da = pytest.importorskip("dask.array")
    dask = pytest.importorskip("dask")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400_000, 4))
    w = rng.standard_normal((8, 4, 4))
    y = kr.conv1d(x, w)
    # what the lagged correlations ask for, per thread: inside Dask tasks both must be 1 (no nested pools)
    asked = []

    def spy(count):
        def counted():
            n = count()
            asked.append((threading.get_ident(), n))
            return n

        return counted

    monkeypatch.setattr(statistics, "_workers", spy(statistics._workers))
    monkeypatch.setattr(statistics, "fft_workers", spy(statistics.fft_workers))
    main = threading.get_ident()
    with dask.config.set(scheduler="threads", num_workers=8):  # more task threads than cores: they overlap
        for _ in range(5):
            res = kr.recover_kernel(da.from_array(x, chunks=(25_000, 4)), da.from_array(y, chunks=(25_000, 4)), 8)
            assert blas_threads() == blas_count
            np.testing.assert_allclose(res.kernel, w, atol=1e-8)
    in_tasks = [n for ident, n in asked if ident != main]
    assert in_tasks and all(n == 1 for n in in_tasks)


def test_workers_are_one_inside_a_serial_region():
    outside = workers(), fft_workers()
    assert outside[0] >= 1 and outside[1] >= outside[0]
    seen_elsewhere = []
    with serial_region():
        assert (workers(), fft_workers()) == (1, 1)
        with serial_region():
            assert (workers(), fft_workers()) == (1, 1)
        assert (workers(), fft_workers()) == (1, 1)
        # the mark belongs to this thread: another thread still gets the usable cores
        t = threading.Thread(target=lambda: seen_elsewhere.append((workers(), fft_workers())))
        t.start()
        t.join(10)
    assert seen_elsewhere == [outside]
    assert (workers(), fft_workers()) == outside


def test_serial_region_serialises_blas_and_works_as_a_decorator(blas_count):
    @serial_region()
    def task():
        return workers(), fft_workers(), blas_threads()

    assert task() == (1, 1, [1] * len(blas_count))
    assert task() == (1, 1, [1] * len(blas_count))  # reusable
    assert blas_threads() == blas_count


def test_a_users_own_blas_limit_is_kept(blas_count):
    da = pytest.importorskip("dask.array")
    dask = pytest.importorskip("dask")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50_000, 4))
    y = kr.conv1d(x, rng.standard_normal((8, 4, 4)))
    with threadpool_limits(limits=3, user_api="blas"):
        users = blas_threads()
        with dask.config.set(scheduler="threads", num_workers=4):
            kr.recover_kernel(da.from_array(x, chunks=(5_000, 4)), da.from_array(y, chunks=(5_000, 4)), 8)
        kr.recover_kernel(x, y, 8)
        assert blas_threads() == users


# ------------------------------------------------------------------------------------------------
# Fits, analyses and accumulators run in threads give the serial results
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", list(METHODS))
def test_concurrent_calls_match_serial(method):
    rng = np.random.default_rng(3)
    jobs = []
    for i in range(6):
        x = rng.standard_normal((2, 60, 2))
        w = rng.standard_normal((2 + i % 3, 2, 2))
        jobs.append((x, kr.conv1d(x, w, padding="same") + 0.01 * rng.standard_normal((2, 60, 2)), len(w)))
    opts = dict(ADAM, max_iter=200) if method == "adam" else METHODS[method]

    def run(job):
        x, y, k = job
        return kr.recover_kernel(x, y, k, padding="same", method=method, **opts)

    serial = [run(j) for j in jobs]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(run, jobs * 2))
    for i, res in enumerate(parallel):
        ref = serial[i % len(jobs)]
        np.testing.assert_allclose(res.kernel, ref.kernel, rtol=1e-10, atol=1e-12)
        assert res.residual_rms == pytest.approx(ref.residual_rms, rel=1e-10)


def test_concurrent_analyze_and_accumulators():
    rng = np.random.default_rng(4)
    data = [rng.standard_normal(200) for _ in range(4)]

    def run(x):
        acc = kr.NormalEquations(4, padding="causal")
        y = kr.conv1d(x, [1.0, 2.0, 3.0, 4.0], padding="causal")
        for i in range(0, 200, 37):
            acc.update(x[i : i + 37], y[i : i + 37])
        return acc.solve().kernel, kr.analyze(x, y, 4, padding="causal").rank

    serial = [run(x) for x in data]
    with ThreadPoolExecutor(4) as pool:
        for (k, r), (k0, r0) in zip(pool.map(run, data), serial):
            np.testing.assert_allclose(k, k0, rtol=1e-12)
            np.testing.assert_array_equal(r, r0)
