"""The CUDA kernels (diagsim.cuda) against the CPU kernels.

``cudasim`` tests run the kernels on numba's CUDA simulator in a subprocess (NUMBA_ENABLE_CUDASIM=1 must be
set before numba is imported) at tiny sizes and require *bitwise* agreement with the CPU steppers for the
same (seed, path, step): the simulator checks the kernels' indexing and step logic around the shared
per-path functions. ``gpu`` tests do the same on a real device (skipped without one): the sign variates
bitwise, normals to a few ulps, trajectories to ~1e-12 relative (the device compiler contracts a*b + c into
FMAs; see benchmarks/check_ptx.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(r'''
    import json, sys
    import numpy as np
    from diagsim import make_problem
    from diagsim.lowlevel import rng
    from diagsim import cuda as dc
    from diagsim.optimizers import (SGD, Adam, AdaGrad, GD, LabelNoise, Lion, NoNoise, SignSGD,
                                    make_stepper as discrete_stepper)
    from diagsim.sde import make_stepper as sde_stepper

    full = sys.argv[1] == "full"
    out = {"reason": dc.unavailable_reason(), "simulator": dc.simulator()}
    prob = make_problem(6, 5, 2, init="gaussian", seed=3)
    paths = np.array([0, 5, 2], dtype=np.int64)

    def diff(a, b):
        a = np.asarray(a); b = np.asarray(b)
        if a.shape != b.shape:
            return float("inf")
        scale = np.maximum(np.abs(a), np.abs(b))
        ulp = np.abs(a - b) / np.spacing(np.where(scale > 0, scale, 1.0))
        return float(ulp.max()) if ulp.size else 0.0

    # 1. SDE models: label-noise SGD (dt = 2 dt_base exercises the dyadic increments) and the Adam SDE
    # ("thread": one thread per path, any model; "warp": 32 lanes per path, label noise with sub = 1)
    cases = {"sgd-label-noise": (SGD(lr=0.05, noise=LabelNoise(0.5)), dict(dt=0.05, dt_base=0.025), "thread"),
             "sgd-label-noise-warp": (SGD(lr=0.05, noise=LabelNoise(0.5)), dict(dt=0.05), "warp"),
             "adam-sde": (Adam(lr=0.05, beta2=0.99, eps=1e-3, noise=LabelNoise(0.5)), dict(dt=0.01, v0=1e-3),
                          "thread"),
             "gradient-flow": (GD(lr=0.05), dict(dt=0.05), "thread"),
             "gradient-flow-warp": (GD(lr=0.05), dict(dt=0.05), "warp")}
    if not full:
        cases = {k: cases[k] for k in ("sgd-label-noise", "sgd-label-noise-warp")}
    for name, (opt, kw, layout) in cases.items():
        st = sde_stepper(prob, opt, seed=7, check_stability=False, **kw)
        s_cpu = st.init_state(prob.theta0(3))
        s_gpu = {k: v.copy() for k, v in s_cpu.items()}
        a_cpu = np.ones(3, bool); a_gpu = a_cpu.copy()
        st.advance(s_cpu, paths, 3, 4, a_cpu)
        dc.advance_sde(st, s_gpu, paths, 3, 4, a_gpu, layout=layout)
        out["sde:" + name] = {k: diff(s_cpu[k], s_gpu[k]) for k in s_cpu}
        out["sde:" + name]["moved"] = float(np.abs(s_cpu["theta"] - prob.theta0(3)).max())
        out["sde:" + name]["active_equal"] = bool(np.array_equal(a_cpu, a_gpu))

    # 2. discrete optimizers with sign and Gaussian label noise, and without noise
    opts = {"sgd-rademacher": SGD(lr=0.05, noise=LabelNoise(0.5)),
            "sgd-gaussian": SGD(lr=0.05, noise=LabelNoise(0.5, "gaussian")),
            "gd": GD(lr=0.05),
            "adam-rademacher": Adam(lr=0.01, noise=LabelNoise(0.5)),
            "adam-gaussian": Adam(lr=0.01, beta1=0.8, lam=0.3, noise=LabelNoise(0.5, "gaussian")),
            "adagrad": AdaGrad(lr=0.05, noise=LabelNoise(0.5)),
            "lion": Lion(lr=0.01, noise=LabelNoise(0.5)),
            "signsgd": SignSGD(lr=0.01, noise=LabelNoise(0.5, "gaussian"))}
    if not full:
        opts = {k: opts[k] for k in ("sgd-rademacher", "adam-gaussian")}
    for name, opt in opts.items():
        for layout in ("thread", "warp"):
            ds = discrete_stepper(prob, opt, seed=2)
            s_cpu = ds.init_state(prob.theta0(3))
            s_gpu = {k: v.copy() for k, v in s_cpu.items()}
            a_cpu = np.ones(3, bool); a_gpu = a_cpu.copy()
            ds.advance(s_cpu, paths, 4, 5, a_cpu)
            dc.advance_discrete(ds, s_gpu, paths, 4, 5, a_gpu, layout=layout)
            out[f"discrete:{name}-{layout}"] = {k: diff(s_cpu[k], s_gpu[k]) for k in s_cpu}
    if full:  # one block of 256 threads per path (few long paths): the same numbers
        for name, opt in (("adam", opts["adam-rademacher"]), ("mesa-label", None)):
            if opt is None:
                from diagsim.optimizers import MESA
                opt = MESA(lr=0.05, noise=LabelNoise(0.5))
            ds = discrete_stepper(prob, opt, seed=2)
            s_cpu = ds.init_state(prob.theta0(1))
            s_gpu = {k: v.copy() for k, v in s_cpu.items()}
            ds.advance(s_cpu, paths[:1], 4, 3, np.ones(1, bool))
            dc.advance_discrete(ds, s_gpu, paths[:1], 4, 3, np.ones(1, bool), layout="block")
            out[f"discrete:{name}-block"] = {k: diff(s_cpu[k], s_gpu[k]) for k in s_cpu}
        st = sde_stepper(prob, SGD(lr=0.05, noise=LabelNoise(0.5)), seed=7, check_stability=False, dt=0.05)
        s_cpu = st.init_state(prob.theta0(1)); s_gpu = {k: v.copy() for k, v in s_cpu.items()}
        a_cpu = np.ones(1, bool); a_gpu = a_cpu.copy()
        st.advance(s_cpu, paths[:1], 3, 3, a_cpu)
        dc.advance_sde(st, s_gpu, paths[:1], 3, 3, a_gpu, layout="block")
        out["sde:sgd-label-noise-block"] = {k: diff(s_cpu[k], s_gpu[k]) for k in s_cpu}
        out["sde:sgd-label-noise-block"]["moved"] = float(np.abs(s_cpu["theta"] - prob.theta0(1)).max())
        out["sde:sgd-label-noise-block"]["active_equal"] = bool(np.array_equal(a_cpu, a_gpu))

    # 3. a path that blows up stops at the same step on both (huge lr)
    ds = discrete_stepper(prob, SGD(lr=50.0, noise=LabelNoise(0.5)), seed=2)
    s_ref = ds.init_state(prob.theta0(3))
    a_ref = np.ones(3, bool)
    ds.advance(s_ref, paths, 0, 40, a_ref)
    for layout in ("thread", "warp"):
        s_gpu = ds.init_state(prob.theta0(3))
        a_gpu = np.ones(3, bool)
        div_step, _ = dc.advance_discrete(ds, s_gpu, paths, 0, 40, a_gpu, layout=layout)
        out["diverged-" + layout] = {"active": a_gpu.tolist(), "div_step": div_step.tolist(),
                                     "theta": diff(s_ref["theta"], s_gpu["theta"])}

    # 4. the generator on the device: the variates of diagsim.lowlevel.rng (odd n and steps beyond 2**32 included)
    steps = range(2**32 - 1, 2**32 + 2)
    for name, fn, ref in (("normals", dc.normals, rng.normals), ("signs", dc.signs, rng.signs)):
        for n in (1, 7, 130):
            out["noise:" + name + str(n)] = diff(fn(5, "test", paths, steps, n, 0.5),
                                                 ref(5, "test", paths, steps, n, 0.5))

    # 5. a replayed path alone equals its row in the ensemble
    st = sde_stepper(prob, SGD(lr=0.05, noise=LabelNoise(0.5)), dt=0.05, seed=7, check_stability=False)
    s_all = st.init_state(prob.theta0(3)); s_one = st.init_state(prob.theta0(1))
    dc.advance_sde(st, s_all, paths, 0, 3, np.ones(3, bool))
    dc.advance_sde(st, s_one, paths[1:2], 0, 3, np.ones(1, bool))
    out["replay"] = bool(np.array_equal(s_all["theta"][1], s_one["theta"][0]))
    print("RESULT " + json.dumps(out))
''')


def _run(env_extra: dict, which: str = "full") -> dict:
    env = dict(os.environ)
    env.update(env_extra)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, which], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def _check(res: dict, normal_ulps: float, path_ulps: float) -> None:
    """Sign variates bitwise, normals within ``normal_ulps``, trajectories within ``path_ulps``."""
    for key, val in res.items():
        if key.startswith("noise:"):
            tol = 0.0 if key.startswith("noise:signs") else normal_ulps
            assert val <= tol, (key, val)
        elif key.startswith("sde:"):
            assert val["active_equal"], key
            if not key.endswith("gradient-flow"):
                assert val["moved"] > 0.0, key
            for name in ("theta", "m", "v"):
                if name in val:
                    assert val[name] <= path_ulps, (key, name, val[name])
        elif key.startswith("discrete:"):
            for name, ulps in val.items():
                assert ulps <= path_ulps, (key, name, ulps)
    assert res["replay"]
    for layout in ("thread", "warp"):
        assert res["diverged-" + layout]["active"] == [False, False, False]
        assert all(s >= 0 for s in res["diverged-" + layout]["div_step"])
        assert res["diverged-" + layout]["theta"] <= path_ulps


@pytest.mark.cudasim
def test_cuda_kernels_match_cpu_on_simulator():
    """Label-noise SGD SDE, discrete SGD (signs) and Adam (normals, AdamE-lambda), divergence, replay."""
    pytest.importorskip("numba.cuda")
    res = _run({"NUMBA_ENABLE_CUDASIM": "1"}, "short")
    assert res["reason"] is None and res["simulator"]
    expected = {"sde:sgd-label-noise", "sde:sgd-label-noise-warp", "discrete:sgd-rademacher-thread",
                "discrete:adam-gaussian-thread", "discrete:sgd-rademacher-warp", "discrete:adam-gaussian-warp"}
    assert {k for k in res if ":" in k and not k.startswith("noise:")} == expected
    _check(res, normal_ulps=0.0, path_ulps=0.0)


@pytest.mark.cudasim
@pytest.mark.slow
def test_cuda_kernels_match_cpu_on_simulator_all_models():
    """Also the Adam SDE, gradient flow, GD and the other noise variants."""
    pytest.importorskip("numba.cuda")
    res = _run({"NUMBA_ENABLE_CUDASIM": "1"}, "full")
    assert res["reason"] is None and res["simulator"]
    _check(res, normal_ulps=0.0, path_ulps=0.0)


def _gpu_present() -> bool:
    try:
        from diagsim.cuda import _lazy
        return not _lazy.simulator() and _lazy.unavailable_reason() is None
    except Exception:  # noqa: BLE001
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_present(), reason="no CUDA device")
def test_cuda_kernels_match_cpu_on_device():
    res = _run({"NUMBA_ENABLE_CUDASIM": "0"}, "full")
    assert res["reason"] is None and not res["simulator"]
    # the device compiler contracts a*b + c into FMAs: normals within a few ulps; a few steps of sums of
    # 5-6 terms compound that to at most ~1e-12 relative (4.5e3 ulps)
    _check(res, normal_ulps=8.0, path_ulps=4.5e3)


def test_import_diagsim_cuda_is_lazy():
    # importing the package must not import numba.cuda
    code = ("import sys, diagsim, diagsim.cuda, diagsim.bench; "
            "print('numba.cuda' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NUMBA_ENABLE_CUDASIM": "0"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_no_device_gives_a_clean_error():
    if _gpu_present():
        pytest.skip("a CUDA device is present")
    code = textwrap.dedent('''
        import numpy as np
        from diagsim import make_problem, cuda as dc
        from diagsim.errors import DiagsimError
        from diagsim.optimizers import SGD, make_stepper
        prob = make_problem(4, 3, 1)
        st = make_stepper(prob, SGD(lr=0.1))
        s = st.init_state(prob.theta0(2))
        try:
            dc.advance_discrete(st, s, np.arange(2), 0, 1, np.ones(2, bool))
        except DiagsimError as e:
            print("ERR", e)
    ''')
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NUMBA_ENABLE_CUDASIM": "0"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ERR CUDA is not available")


def test_gpu_check_script_and_goals():
    """benchmarks/gpu_check.sh parses; bench_cuda's goals compare the measurements with the targets."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(["bash", "-n", os.path.join(root, "benchmarks", "gpu_check.sh")], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    sys.path.insert(0, os.path.join(root, "benchmarks"))
    try:
        import bench_cuda
    finally:
        sys.path.pop(0)
    out = {"sde": [{"M": 1024, "gpu_warp_path_steps_per_s": 9e8},
                   {"M": 65536, "gpu_warp_path_steps_per_s": 3e8, "gpu_thread_path_steps_per_s": 5e8}],
           "paper": [{"optimizer": "adam", "M": 8, "seconds_per_1e6_steps": 20.0},
                     {"optimizer": "adam", "M": 1, "seconds_per_1e6_steps": 12.0},
                     {"optimizer": "sgd", "M": 1, "seconds_per_1e6_steps": 1.0},
                     {"optimizer": "adam", "M": 1024, "seconds_per_1e6_steps": 1.0}]}
    g = bench_cuda.goals(out)
    assert g[0]["measured"] == 5e8 and g[0]["met"] is True      # the best layout at M = 65 536 only
    assert g[1]["measured"] == 12.0 and g[1]["met"] is True     # Adam with M <= 8 only
    assert [x["met"] for x in bench_cuda.goals({"sde": [], "paper": []})] == [None, None, None]
    out["sde"][1].update(gpu_tile_path_steps_per_s=6e8, diffrax_path_steps_per_s=1e8)
    g = bench_cuda.goals(out)
    assert g[0]["measured"] == 6e8 and g[2]["measured"] == 6.0 and g[2]["met"] is True  # the tile layout counts
    out["sde"][1]["diffrax_path_steps_per_s"] = 2e8
    assert bench_cuda.goals(out)[2]["met"] is False
