"""Low-level machinery: Numba's compilation options and cache (jit), the explicit-SIMD
micro-kernel (simd), the counter-based random numbers (rng) and the thread limits of Numba and
OpenBLAS (threads).
"""
