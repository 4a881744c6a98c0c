"""``simulate(..., device="cuda")``: the GPU as a device of the discrete and SDE levels.

The runs execute on numba-cuda's simulator (NUMBA_ENABLE_CUDASIM=1, set before numba is imported: in a
subprocess), where the kernels call the CPU's compiled per-entry functions, so a run on the "device" must
equal the CPU run bitwise: final states, records (computed on the device), divergence reports. A real
GPU agrees to rounding (``-m gpu`` tests in test_cuda_sim.py and benchmarks/gpu_check.sh).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(r'''
    import json, signal, sys, tempfile, os
    import numpy as np
    import diagsim
    from diagsim.optimizers import (GD, MESA, SAF, SAM, SGD, AdaGrad, Adalayer, Adam, AdamMini, LabelNoise, Lion,
                                    Minibatch, RMSProp, SignSGD)

    which = sys.argv[1]
    P = diagsim.make_problem(6, 5, 2, seed=3)
    C = 1 - 10 * 0.02 ** 2  # beta2 of the SDE regime (1 - beta2 = C lr^2)
    disc = {
        "gd": GD(lr=0.05), "sgd": SGD(lr=0.05, noise=LabelNoise(0.5)),
        "sgd-gaussian": SGD(lr=0.05, noise=LabelNoise(0.5, "gaussian")),
        "sgd-minibatch": SGD(lr=0.05, noise=Minibatch(3)),
        "adam": Adam(lr=0.02, noise=LabelNoise(0.5)), "adam-bias-lam": Adam(lr=0.02, lam=0.3, bias_correction=True),
        "rmsprop": RMSProp(lr=0.02), "adam-mini": AdamMini(lr=0.02), "adalayer": Adalayer(lr=0.02, noise=Minibatch(4)),
        "adagrad": AdaGrad(lr=0.05), "lion": Lion(lr=0.01), "signsgd": SignSGD(lr=0.01),
        "saf": SAF(lr=0.05, delay=2), "mesa": MESA(lr=0.05, beta_ema=0.9),
    }
    for v in ("sam", "usam", "msam", "asam", "fisher", "ssam-f", "ssam-d", "block", "rsam"):
        disc["sam-" + v] = SAM(lr=0.05, variant=v, **({"m_chunks": 2} if v == "msam" else {}))
    sde = {
        "sgd-label-noise": (SGD(lr=0.05, noise=LabelNoise(0.5)), {"dt": 0.025}),
        "sgd-label-noise-substeps": (SGD(lr=0.05, noise=LabelNoise(0.5)), {"dt": 0.05, "dt_base": 0.025}),
        "gradient-flow": (GD(lr=0.05), {"dt": 0.025}),
        "adam": (Adam(lr=0.02, beta2=C, noise=LabelNoise(0.5)), {"dt": 0.005, "v0": "target"}),
        "adame": (Adam(lr=0.02, beta2=C, lam=0.3, noise=LabelNoise(0.5)), {"dt": 0.005, "v0": "target"}),
        "rmsprop": (RMSProp(lr=0.02, beta2=C, noise=LabelNoise(0.5)), {"dt": 0.005, "v0": "target"}),
        "adam-mini": (AdamMini(lr=0.02, beta2=C, noise=LabelNoise(0.5)), {"dt": 0.005, "v0": "target"}),
        "adalayer": (Adalayer(lr=0.02, beta2=C, noise=LabelNoise(0.5)), {"dt": 0.005, "v0": "target"}),
        "adam-momentum": (Adam(lr=0.02, beta2=C, noise=LabelNoise(0.5)),
                          {"dt": 0.005, "v0": "target", "variant": "momentum"}),
    }
    if which == "short":
        disc = {k: disc[k] for k in ("adam", "adam-mini", "sam-ssam-f", "saf", "mesa")}
        sde = {k: sde[k] for k in ("sgd-label-noise", "adam-mini")}

    def same(a, b):
        ok = a.final.keys() == b.final.keys() and all(np.array_equal(a.final[k], b.final[k]) for k in a.final)
        ok = ok and a.records.keys() == b.records.keys() and all(
            np.array_equal(a.records[k], b.records[k], equal_nan=True) for k in a.records)
        return bool(ok and np.array_equal(a.div_step, b.div_step)
                    and np.array_equal(a.div_loss, b.div_loss, equal_nan=True))

    out = {}
    for name, opt in disc.items():
        kw = dict(steps=6, n_paths=3, seed=2, record=3)
        cpu = diagsim.simulate(P, opt, **kw)
        gpu = diagsim.simulate(P, opt, device="cuda", **kw)
        out["discrete:" + name] = {"same": same(cpu, gpu), "layout": gpu.config["stepper"]["device"]["layout"],
                                   "moved": float(np.abs(cpu.final["theta"] - P.theta0(3)).max())}
    for name, (opt, mo) in sde.items():
        kw = dict(t=0.1, n_paths=3, seed=2, record=2, model="sde", model_options=mo)
        cpu = diagsim.simulate(P, opt, **kw)
        gpu = diagsim.simulate(P, opt, device="cuda", **kw)
        out["sde:" + name] = {"same": same(cpu, gpu), "layout": gpu.config["stepper"]["device"]["layout"],
                              "moved": float(np.abs(cpu.final["theta"] - P.theta0(3)).max())}
    if which == "full":
        # divergence: the same paths stop at the same steps with the same losses, discrete and SDE
        th0 = P.theta0(3); th0[1] *= 40.0
        kw = dict(steps=40, n_paths=3, seed=1, record=5, theta0=th0)
        out["diverged-discrete"] = same(diagsim.simulate(P, SGD(lr=0.2), **kw),
                                        diagsim.simulate(P, SGD(lr=0.2), device="cuda", **kw))
        kw = dict(steps=40, n_paths=3, seed=1, record=5, theta0=th0, model="sde", model_options={"dt": 0.2})
        out["diverged-sde"] = same(diagsim.simulate(P, SGD(lr=0.2), **kw),
                                   diagsim.simulate(P, SGD(lr=0.2), device="cuda", **kw))
        # a checkpoint written on the device, interrupted, resumed: the uninterrupted run's bits
        ck = os.path.join(tempfile.mkdtemp(), "ck.npz")
        opt = Adam(lr=0.02, noise=LabelNoise(0.5))
        def stop(k, s):
            if k >= 4:
                signal.raise_signal(signal.SIGINT)
        try:
            diagsim.simulate(P, opt, steps=10, n_paths=2, record=5, device="cuda", checkpoint=ck,
                             checkpoint_every=2, callback=stop)
        except KeyboardInterrupt:
            pass
        resumed = diagsim.resume(ck)
        out["resume"] = {"same": same(resumed, diagsim.simulate(P, opt, steps=10, n_paths=2, record=5)),
                         "from": resumed.info.get("resumed_from_step"), "device": resumed.config["device"]}
    print("RESULT " + json.dumps(out))
''')


def _run(which: str) -> dict:
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, which], env=env, capture_output=True, text=True,
                          timeout=3000)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def _check(res: dict) -> None:
    for key, val in res.items():
        if key.startswith(("discrete:", "sde:")):
            assert val["same"], (key, val)
            assert val["moved"] > 0.0 or key.endswith(("gradient-flow",)), key
    layouts = {k: v["layout"] for k, v in res.items() if ":" in k}
    for k, layout in layouts.items():  # the warp layout where it applies, one thread per path elsewhere
        one_thread = k.startswith("discrete:sam") or k in ("discrete:adam-mini", "discrete:adalayer") or (
            k.startswith("sde:") and k not in ("sde:sgd-label-noise", "sde:gradient-flow"))
        assert layout == ("thread" if one_thread else "warp"), (k, layout)


@pytest.mark.cudasim
def test_device_runs_equal_the_cpu_on_the_simulator():
    pytest.importorskip("numba.cuda")
    res = _run("short")
    assert len([k for k in res if ":" in k]) == 7
    _check(res)


@pytest.mark.cudasim
@pytest.mark.slow
def test_every_optimizer_and_sde_model_on_the_simulator():
    """Every discrete optimizer (the SAM family, SAF and MESA included) and every SDE model; divergence and
    checkpoint / resume on the device."""
    pytest.importorskip("numba.cuda")
    res = _run("full")
    assert len([k for k in res if k.startswith("discrete:")]) == 23
    assert len([k for k in res if k.startswith("sde:")]) == 9
    _check(res)
    assert res["diverged-discrete"] and res["diverged-sde"]
    assert res["resume"] == {"same": True, "from": 4, "device": "cuda"}


def test_device_choice_and_errors(monkeypatch):
    import diagsim
    from diagsim.cuda import _lazy
    from diagsim.engine.driver import resolve_device
    from diagsim.errors import DiagsimError
    from diagsim.optimizers import SGD
    P = diagsim.make_problem(6, 5, 2, seed=3)
    with pytest.raises(DiagsimError, match="device must be one of 'cpu', 'cuda', 'auto'"):
        diagsim.simulate(P, SGD(lr=0.05), steps=2, device="tpu")
    # "auto" is the CPU without a real GPU (the simulator checks kernels, it does not run science), and for
    # the slow flow, which runs on the CPU
    monkeypatch.setattr(_lazy, "unavailable_reason", lambda: "no CUDA device found")
    assert resolve_device("auto", "discrete") == "cpu"
    assert diagsim.simulate(P, SGD(lr=0.05), steps=2, device="auto").config["device"] == "cpu"
    with pytest.raises(DiagsimError, match="CUDA is not available: no CUDA device found"):
        diagsim.simulate(P, SGD(lr=0.05), steps=2, device="cuda")
    monkeypatch.setattr(_lazy, "unavailable_reason", lambda: None)
    monkeypatch.setattr(_lazy, "simulator", lambda: False)
    assert resolve_device("auto", "discrete") == "cuda" and resolve_device("auto", "slow-flow") == "cpu"
    with pytest.raises(DiagsimError, match="the slow-flow level runs on the CPU only"):
        diagsim.simulate(P, SGD(lr=0.05), tau=0.01, model="slow-flow", device="cuda")


def test_verify_runs_its_simulations_on_the_device_asked_for(monkeypatch, capsys):
    """The checks' discrete and SDE simulations run on the verify command's device, the slow flows on the
    CPU; without CUDA, --device cuda is a one-line error before any check runs."""
    from diagsim.cli.main import main
    from diagsim.cuda import _lazy
    from diagsim.verify.base import CheckContext
    ctx = CheckContext("x", {}, True, device="cuda")
    assert [ctx.device_for(m) for m in ("discrete", "sde", "slow-flow")] == ["cuda", "cuda", "cpu"]
    monkeypatch.setattr(_lazy, "unavailable_reason", lambda: "no CUDA device found")
    assert main(["verify", "--quick", "--only", "woodworth", "--device", "cuda", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "diagsim verify: error: CUDA is not available: no CUDA device found"


def test_sweep_on_a_missing_gpu_fails_before_any_work(tmp_path, monkeypatch):
    from diagsim.cuda import _lazy
    from diagsim.errors import DiagsimError
    from diagsim.sweep import plan_sweep, run_sweep
    from diagsim.sweep.grid import sweep_from_dict
    raw = {"sweep": {"name": "dev"},
           "base": {"problem": {"n": 6, "d": 5, "k": 2}, "optimizer": {"optimizer": "sgd", "lr": 0.05},
                    "simulate": {"steps": 3}},
           "grid": {"problem.seed": [1, 2]}}
    sw = sweep_from_dict(raw).on_device("cuda")
    assert all(j.config["simulate"]["device"] == "cuda" for j in plan_sweep(sw, tmp_path).jobs)
    assert {j.key for j in plan_sweep(sw, tmp_path).jobs}.isdisjoint(j.key for j in plan_sweep(raw, tmp_path).jobs)
    monkeypatch.setattr(_lazy, "unavailable_reason", lambda: "no CUDA device found")
    with pytest.raises(DiagsimError, match="2 job.* run on device 'cuda', but CUDA is not available"):
        run_sweep(sw, tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
