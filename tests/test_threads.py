"""Thread limits (diagsim.lowlevel.threads): OpenBLAS and Numba, in this process and in sweep workers."""
import multiprocessing as mp

import pytest

from diagsim.lowlevel import threads


def _in_worker(q):
    from diagsim.lowlevel.threads import blas_threads
    from diagsim.sweep.backends import _init_worker
    before = blas_threads()
    _init_worker(1)
    q.put((before, blas_threads()))


def test_blas_threads_are_set_and_read_back():
    before = threads.blas_threads()
    if not before:
        pytest.skip("no OpenBLAS found in this environment")
    try:
        assert threads.set_blas_threads(1)
        assert threads.blas_threads() == [1] * len(before)
    finally:
        for n in set(before):
            threads.set_blas_threads(n)
    assert threads.blas_threads() == before or len(set(before)) > 1


def test_a_local_sweep_worker_runs_with_one_blas_thread():
    """The worker set-up limits OpenBLAS (it busy-waits, so several BLAS threads per worker oversubscribe
    shared cores); checked in a fresh spawned process, as the local backend starts them."""
    if not threads.blas_threads():
        pytest.skip("no OpenBLAS found in this environment")
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_in_worker, args=(q,))
    p.start()
    before, after = q.get(timeout=120)
    p.join(30)
    assert after == [1] * len(after) and after
    assert len(before) == len(after)
