"""The diagonal linear network w = phi(u, v) on sparse regression (docs/theory.md §2-3):
problems, parametrizations, exact derivatives, the manifold of minimizers, and the
Numba kernels (per path and per group of paths) that every level builds on.
"""
