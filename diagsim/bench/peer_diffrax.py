"""Peer: diffrax (JAX), Euler-Maruyama, ``jax.vmap`` over paths.

Choices (the fastest correct ones, BENCHMARKS.md): ``diffrax.Euler`` (Ito; EulerHeun would solve the
Stratonovich SDE), the diffusion as a structured lineax operator dB -> sigma J^T dB =
sigma [2u Z^T dB, -2v Z^T dB] (a dense 2d x n matrix is 2-5x slower), ``UnsafeBrownianPath`` (exact
increments for a fixed-step solver; needs ``adjoint=ForwardMode()``), float64 (``jax_enable_x64``),
the whole ensemble in one ``jax.jit``. ``t1`` is a traced argument, so the short warm-up call compiles
the same program that is timed.
"""
from __future__ import annotations

import numpy as np

from .base import missing
from .problems import SDEBench


class Diffrax:
    name = "diffrax"
    kind = "peer"
    description = "diffrax Euler, vmap over paths, lineax structured diffusion, UnsafeBrownianPath"

    def available(self):
        return missing("jax", "diffrax", "lineax")

    def prepare(self, cfg: SDEBench, M: int, seed: int):
        import jax

        jax.config.update("jax_enable_x64", True)
        import diffrax
        import jax.numpy as jnp
        import lineax

        prob = cfg.problem()
        Z = jnp.asarray(prob.Z)
        y = jnp.asarray(prob.y)
        n, d = prob.n, prob.d
        sigma = cfg.sigma
        dt = cfg.dt
        max_steps = cfg.n_steps + 1

        def drift(t, th, args):
            u, v = th[:d], th[d:]
            r = Z @ (u * u - v * v) - y
            g = (Z.T @ r) / n
            return jnp.concatenate([-2.0 * u * g, 2.0 * v * g])

        def diffusion(t, th, args):
            u, v = th[:d], th[d:]

            def mv(db):
                q = sigma * (Z.T @ db)
                return jnp.concatenate([2.0 * u * q, -2.0 * v * q])

            return lineax.FunctionLinearOperator(mv, jax.ShapeDtypeStruct((n,), jnp.float64))

        def solve_one(key, th0, t1):
            bm = diffrax.UnsafeBrownianPath(shape=(n,), key=key)
            terms = diffrax.MultiTerm(diffrax.ODETerm(drift), diffrax.ControlTerm(diffusion, bm))
            sol = diffrax.diffeqsolve(terms, diffrax.Euler(), 0.0, t1, dt, th0,
                                      saveat=diffrax.SaveAt(t1=True), max_steps=max_steps,
                                      adjoint=diffrax.ForwardMode())
            return sol.ys[0]

        solve = jax.jit(jax.vmap(solve_one, in_axes=(0, 0, None)))
        keys = jax.random.split(jax.random.PRNGKey(seed), M)
        th0 = jnp.asarray(prob.theta0(M))

        def run(n_steps: int) -> np.ndarray:
            out = solve(keys, th0, n_steps * dt)
            return np.asarray(out.block_until_ready())

        return run
