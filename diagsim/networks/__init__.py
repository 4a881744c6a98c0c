"""Model families: the networks diagsim trains. Each family is one subpackage with its
problem, parametrization, exact derivatives and per-path kernels; the diagonal
linear network is the first, deep matrix factorization (``matrix``: sensing and completion) the second
(docs/extending.md says what a family provides; diagsim/networks/model.py is the interface).
"""
