"""Probe behind Figure 5's reading (run after the figure, not part of it): does Adam's own fast phase explain
why discrete Adam recovers w* far more often than the local weighted-l1/2 minimizer reached from the
gradient-flow limit?

On nine d = 200 Rademacher cells of Figure 5 near delta_1 (problem seeds 1-8, as in its discrete panel),
this runs noiseless Adam (lr 0.01, the paper's other hyperparameters) from the paper's initialization for
2*10^4 steps (train loss about 1e-6: the end of the fast phase), then the same reweighted-l1 descent the
figure's surrogate uses, started there instead of at the gradient-flow limit. It prints, per cell, how many
problems the fast-phase end point and the descent from it recover (||w - w*|| <= 0.1 ||w*||).

    python paper_repro/probes/adam_fast_phase.py        # about 20 s
"""
import numpy as np

from diagsim import make_problem, simulate
from diagsim.optimizers.specs import from_config
from diagsim.predict.concave import reweighted_l1
from diagsim.predict.linear import reduce_system
from diagsim.sweep.simjob import canonical_optimizer

CELLS = [(2, 10), (2, 12), (2, 14), (6, 24), (6, 28), (6, 32), (12, 39), (12, 46), (12, 53)]


def main():
    opt = from_config(canonical_optimizer({"optimizer": "adam", "lr": 0.01, "label_noise": 0.0}))
    total = np.zeros(2, dtype=int)
    for k, n in CELLS:
        rec = np.zeros(2, dtype=int)
        for seed in range(1, 9):
            P = make_problem(n=n, d=200, k=k, design="rademacher", teacher="uniform", init="gaussian", alpha=0.1,
                             seed=seed)
            w = simulate(P, opt, steps=20_000, n_paths=1, record=20_000, progress=False).w[0]
            loc = reweighted_l1(reduce_system(P.Z, P.y), np.sqrt(P.s), np.sqrt(P.s), 0.5, w)["w"]
            nrm = np.linalg.norm(P.w_star)
            rec += [np.linalg.norm(w - P.w_star) / nrm <= 0.1, np.linalg.norm(loc - P.w_star) / nrm <= 0.1]
        total += rec
        print(f"k = {k:2d}, n = {n:2d}: fast-phase end recovers {rec[0]}/8, the l1/2 descent from it {rec[1]}/8")
    print(f"in all: {total[0]} and {total[1]} of {8 * len(CELLS)}")


if __name__ == "__main__":
    main()
