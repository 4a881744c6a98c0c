"""Model families: the networks diagsim trains. Each family is one subpackage with its
problem, parametrization, exact derivatives and per-path kernels; the diagonal
linear network is the first (docs/extending.md says what a family provides).
"""
