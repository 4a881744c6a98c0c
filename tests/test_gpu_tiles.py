"""The tile layout (diagsim.cuda.tile_kernels): a block of paths sharing tiles of Z in shared memory.

On numba-cuda's simulator (NUMBA_ENABLE_CUDASIM=1 set before numba is imported: in a subprocess) the tile
kernel must give the CPU's numbers bitwise: it computes every entry with the CPU's per-entry functions in
the CPU's summation order. The tiny tile sizes used here exercise what large problems do on a device:
several blocks with a partly filled last one, Z staged tile by tile (rows that do not all fit) and all of
Z staged once (rows that fit).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(r'''
    import json
    import numpy as np
    import diagsim
    from diagsim import cuda as dc
    from diagsim.cuda import steppers as S
    from diagsim.optimizers import GD, SGD, LabelNoise
    from diagsim.sde import make_stepper

    P = diagsim.make_problem(6, 5, 2, seed=3)     # n = 6, d = 5: d is not a multiple of the unrolling (4)
    paths = np.array([0, 5, 2], np.int64)
    out = {}

    def equal(a, b):
        return bool(all(np.array_equal(a[k], b[k]) for k in a))

    # (paths per block, doubles of shared memory): 2 blocks (the second half empty) with Z staged in tiles of
    # 2 rows, 3 tiles per product; one block with all of Z staged once
    for tp, td in ((2, 12), (4, 4096)):
        S.TILE_PATHS, S.TILE_DOUBLES = tp, td
        for name, opt in (("sgd-label-noise", SGD(lr=0.05, noise=LabelNoise(0.5))), ("gradient-flow", GD(lr=0.05))):
            st = make_stepper(P, opt, dt=0.05, seed=7, check_stability=False)
            a = st.init_state(P.theta0(3)); b = {k: v.copy() for k, v in a.items()}
            aa = np.array([True, False, True]); ab = aa.copy()  # an inactive path stays as it is
            st.advance(a, paths, 3, 4, aa)
            dc.advance_sde(st, b, paths, 3, 4, ab, layout="tile")
            out[f"{name}/{tp}x{td}"] = {"same": equal(a, b), "active": bool(np.array_equal(aa, ab)),
                                        "moved": float(np.abs(a["theta"] - P.theta0(3)).max()),
                                        "untouched": bool(np.array_equal(b["theta"][1], P.theta0(3)[1]))}
        # a path that blows up stops at the same step, with the same state
        th0 = P.theta0(3); th0[2] *= 1e3
        st = make_stepper(P, SGD(lr=0.5, noise=LabelNoise(0.5)), dt=0.5, seed=7, check_stability=False)
        a = st.init_state(th0); b = {k: v.copy() for k, v in a.items()}
        aa = np.ones(3, bool); ab = aa.copy()
        st.advance(a, paths, 0, 6, aa)
        dc.advance_sde(st, b, paths, 0, 6, ab, layout="tile")
        out[f"diverged/{tp}x{td}"] = {"same": equal(a, b), "active_cpu": aa.tolist(), "active_gpu": ab.tolist()}

    # simulate(device="cuda") chooses the tile layout from TILE_MIN_PATHS paths: the CPU's Result bitwise
    S.TILE_PATHS, S.TILE_DOUBLES, S.TILE_MIN_PATHS = 2, 12, 3
    kw = dict(t=0.15, n_paths=3, seed=2, record=2, model="sde", model_options={"dt": 0.05})
    opt = SGD(lr=0.05, noise=LabelNoise(0.5))
    cpu = diagsim.simulate(P, opt, **kw)
    gpu = diagsim.simulate(P, opt, device="cuda", **kw)
    out["simulate"] = {"layout": gpu.config["stepper"]["device"]["layout"],
                       "same": equal(cpu.final, gpu.final) and equal(cpu.records, gpu.records)}
    print("RESULT " + json.dumps(out))
''')


@pytest.mark.cudasim
def test_tile_layout_equals_the_cpu_on_the_simulator():
    pytest.importorskip("numba.cuda")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1][len("RESULT "):])
    for tiles in ("2x12", "4x4096"):
        for name in ("sgd-label-noise", "gradient-flow"):
            r = res[f"{name}/{tiles}"]
            assert r == {"same": True, "active": True, "moved": r["moved"], "untouched": True}, (name, tiles, r)
            assert r["moved"] > 0.0
        div = res[f"diverged/{tiles}"]
        assert div["same"] and div["active_cpu"] == div["active_gpu"] == [True, True, False], div
    assert res["simulate"] == {"layout": "tile", "same": True}


def test_tile_layout_choice_and_errors():
    """"auto" takes the tile layout from TILE_MIN_PATHS paths where the kernel has one; asking for it where it
    does not apply is a one-line error before any work."""
    import numpy as np

    import diagsim
    from diagsim import cuda as dc
    from diagsim.cuda.steppers import TILE_MIN_PATHS, choose_layout
    from diagsim.errors import DiagsimError
    from diagsim.optimizers import SGD, Adam, LabelNoise
    from diagsim.optimizers import make_stepper as discrete_stepper
    from diagsim.sde import make_stepper as sde_stepper
    assert choose_layout("auto", True, TILE_MIN_PATHS, 100, "x", tile=True) == "tile"
    assert choose_layout("auto", True, TILE_MIN_PATHS - 1, 100, "x", tile=True) == "warp"
    assert choose_layout("auto", True, 10 ** 6, 100, "x", tile=False) == "warp"
    assert choose_layout("auto", False, 10 ** 6, 100, "x", tile=False) == "thread"
    P = diagsim.make_problem(6, 5, 2, seed=3)
    st = discrete_stepper(P, Adam(lr=0.01), seed=1)
    state = st.init_state(P.theta0(2))
    with pytest.raises(DiagsimError, match=r"^layout='tile' does not cover the discrete optimizers") as exc:
        dc.advance_discrete(st, state, np.arange(2), 0, 1, np.ones(2, bool), layout="tile")
    assert "\n" not in str(exc.value)
    st = sde_stepper(P, Adam(lr=0.02, beta2=0.99, noise=LabelNoise(0.5)), dt=0.01, seed=1, check_stability=False)
    state = st.init_state(P.theta0(2))
    with pytest.raises(DiagsimError, match=r"^layout='tile' does not cover this SDE"):
        dc.advance_sde(st, state, np.arange(2), 0, 1, np.ones(2, bool), layout="tile")
    st = sde_stepper(P, SGD(lr=0.05, noise=LabelNoise(0.5)), dt=0.05, dt_base=0.025, seed=1, check_stability=False)
    with pytest.raises(DiagsimError, match=r"^layout='tile' does not cover this SDE"):
        dc.advance_sde(st, st.init_state(P.theta0(2)), np.arange(2), 0, 1, np.ones(2, bool), layout="tile")


def _gpu_present() -> bool:
    try:
        from diagsim.cuda import _lazy
        return not _lazy.simulator() and _lazy.unavailable_reason() is None
    except Exception:  # noqa: BLE001
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_present(), reason="no CUDA device")
def test_tile_layout_on_a_device():
    """On a real GPU, the reference problem with blocks of 128 paths: the tile layout agrees with the warp
    layout and the CPU to rounding (the device compiler contracts a*b + c into FMAs where the CPU may not)."""
    import numpy as np

    from diagsim import cuda as dc
    from diagsim.bench.problems import FULL as cfg
    from diagsim.optimizers import SGD, LabelNoise
    from diagsim.sde import make_stepper
    P = cfg.problem()
    M = 300  # three blocks, the last one partly filled
    paths = np.arange(M, dtype=np.int64)
    st = make_stepper(P, SGD(lr=cfg.lr, noise=LabelNoise(cfg.label_noise, "gaussian")), dt=cfg.dt, seed=1,
                      check_stability=False)
    runs = {}
    for layout in ("tile", "warp", "cpu"):
        s = st.init_state(P.theta0(M))
        if layout == "cpu":
            st.advance(s, paths, 0, 200, np.ones(M, bool))
        else:
            dc.advance_sde(st, s, paths, 0, 200, np.ones(M, bool), layout=layout)
        runs[layout] = s["theta"]
    for other in ("warp", "cpu"):
        rel = np.abs(runs["tile"] - runs[other]) / np.maximum(np.abs(runs[other]), 1e-300)
        assert rel.max() < 1e-10, (other, rel.max())
    assert np.abs(runs["tile"] - P.theta0(M)).max() > 0
