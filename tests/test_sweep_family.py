"""The "simulate" job kind with a model family other than the diagonal one (``problem.family``)."""
import numpy as np
import pytest

from diagsim import simulate
from diagsim.errors import DiagsimError
from diagsim.networks.matrix import make_matrix_problem
from diagsim.optimizers import SGD, LabelNoise
from diagsim.sweep import simjob

MATRIX = {"family": "matrix", "m1": 4, "rank": 1, "n": 12, "alpha": 0.3, "seed": 2}
OPT = {"optimizer": "sgd", "lr": 0.02, "label_noise": 0.5}
SIM = {"steps": 300, "n_paths": 2, "seed": 5}


def test_diagonal_tables_keep_their_canonical_form():
    """A diagonal problem table canonicalizes as before (no family key), so cached results keep their keys."""
    plain = simjob.canonicalize({"problem": {"n": 5, "d": 8}, "optimizer": OPT, "simulate": SIM})
    named = simjob.canonicalize({"problem": {"n": 5, "d": 8, "family": "diagonal"}, "optimizer": OPT,
                                 "simulate": SIM})
    assert plain == named
    assert "family" not in plain["problem"]


def test_matrix_table_filled_and_checked():
    c = simjob.canonicalize({"problem": MATRIX, "optimizer": OPT, "simulate": SIM})
    assert c["problem"]["family"] == "matrix" and c["problem"]["depth"] == 2 and c["problem"]["kind"] == "sensing"
    with pytest.raises(DiagsimError, match=r"unknown problem argument\(s\) d for family 'matrix'"):
        simjob.canonicalize({"problem": {**MATRIX, "d": 3}, "optimizer": OPT, "simulate": SIM})
    with pytest.raises(DiagsimError, match="unknown model family 'tensor'"):
        simjob.canonicalize({"problem": {"family": "tensor"}, "optimizer": OPT, "simulate": SIM})
    assert not simjob.batchable({**c, "simulate": {**c["simulate"], "device": "cuda"}})


def test_matrix_job_is_the_direct_run():
    """The job's result is simulate() on the same problem and optimizer, bit for bit; the summary carries the
    family's observables."""
    c = simjob.canonicalize({"problem": MATRIX, "optimizer": OPT, "simulate": SIM})
    res = simjob.run(c)
    P = make_matrix_problem(**{k: v for k, v in MATRIX.items() if k != "family"})
    ref = simulate(P, SGD(lr=0.02, noise=LabelNoise(0.5)), steps=300, n_paths=2, seed=5, progress=False)
    np.testing.assert_array_equal(res.theta, ref.theta)
    s = simjob.summarize(res, {}, c)
    assert s["n_paths"] == 2 and np.isfinite(s["nuclear_norm"]) and "rel_error" not in s
    np.testing.assert_allclose(s["nuclear_norm"], np.mean(np.linalg.svd(P.end_to_end(ref.theta),
                                                                        compute_uv=False).sum(axis=1)), rtol=1e-12)
