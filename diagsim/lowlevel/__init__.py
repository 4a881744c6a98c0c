"""Low-level machinery: Numba's compilation options and cache (jit), the explicit-SIMD
micro-kernel (simd) and the counter-based random numbers (rng).
"""
