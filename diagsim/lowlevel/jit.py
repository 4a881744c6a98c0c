"""The one place that owns Numba's compilation options.

``jit`` = ``numba.njit(cache=True, error_model="numpy", fastmath={"contract"})``; ``pjit`` adds
``parallel=True`` (kernels whose outer loop is a ``prange`` over paths); ``jit_exact`` has no fastmath
flag at all (the random-number generator, whose variates are defined by exact IEEE operations).

Floating point: the only relaxation is *contraction* (``a * b + c`` may become one fused multiply-add,
rounded once). There is no reassociation, no reciprocal or approximate math, no assumption about NaN or
infinities. Every path is computed by one thread in a fixed order by the same compiled code, so results
are bitwise identical between serial and parallel runs, for a path replayed alone and whatever the
ensemble size; they can differ in the last bits from a machine without FMA instructions (as the GPU's
do: its compiler contracts too). Contraction makes the products with Z 10-15 % faster
(benchmarks/NOTES.md §8).

Vector width: on CPUs with AVX-512, LLVM prefers 256-bit vectors by default; diagsim asks for 512-bit
ones (``NUMBA_CPU_FEATURES`` = the host's features plus ``-prefer-256-bit``, set before Numba is
imported and only if the user has not set it; ``DIAGSIM_VECTOR_WIDTH=256`` keeps LLVM's default). This
changes speed only: without reassociation, the width of a vector does not change any result.
"""
from __future__ import annotations

import os


def _prefer_512_bit_vectors() -> None:
    if "NUMBA_CPU_FEATURES" in os.environ or os.environ.get("DIAGSIM_VECTOR_WIDTH", "") == "256":
        return
    try:
        import llvmlite.binding as ll
        feats = ll.get_host_cpu_features()
        if feats.get("avx512f", False):
            os.environ["NUMBA_CPU_FEATURES"] = feats.flatten() + ",-prefer-256-bit"
    except Exception:  # noqa: BLE001 - a host whose features cannot be read keeps LLVM's default
        return


_prefer_512_bit_vectors()

import numba  # noqa: E402  (after the vector-width choice above)


# --------------------------------------------------------------------------- the on-disk cache
def _package_stamp() -> bytes:
    """SHA-256 of the names and contents of every file of the diagsim package that compiles code with Numba
    (its text mentions ``jit``: ``@jit``, ``numba.njit``, ``cuda.jit``, the jit helpers): the files a
    compiled kernel can inline code from. Edits elsewhere (the command line, docstrings of pure-Python
    modules) do not invalidate the cache."""
    import hashlib
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]  # diagsim/ (this file is diagsim/lowlevel/jit.py)
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        data = f.read_bytes()
        if b"jit" in data:
            h.update(str(f.relative_to(root)).encode())
            h.update(data)
    return h.digest()


def _stamp_cache_with_the_package() -> None:
    """Make Numba's on-disk cache of diagsim's kernels depend on all of the package's compiled source.

    Numba keys a cached function by the content of its own file only, so a kernel in one file that inlines
    a helper edited in another (an update rule added to ``optimizers/updates.py``, say) would be loaded
    stale and silently run the old code. diagsim's functions are therefore located by locators whose
    source stamp is the hash of every file of the package with compiled code (:func:`_package_stamp`): an
    edit to any of them recompiles every kernel once. Other packages' functions keep Numba's own locators.
    Uses Numba's cache-locator classes; if their layout changes, Numba's default (per-file) behaviour stays."""
    import functools
    import os

    try:
        from numba.core import caching
        bases = (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator)
        impl = caching.CacheImpl
    except (ImportError, AttributeError):  # pragma: no cover - another Numba layout
        return
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # diagsim/
    stamp = functools.lru_cache(maxsize=1)(_package_stamp)

    def make(base):
        class PackageStamped(base):
            def get_source_stamp(self):
                return (base.get_source_stamp(self), stamp())

            @classmethod
            def from_function(cls, py_func, py_file):
                if not os.path.abspath(py_file).startswith(package_dir):
                    return None
                return super().from_function(py_func, py_file)

        PackageStamped.__name__ = f"DiagsimPackage{base.__name__}"
        return PackageStamped

    if not any(getattr(c, "__name__", "").startswith("DiagsimPackage") for c in impl._locator_classes):
        impl._locator_classes = [make(b) for b in bases] + list(impl._locator_classes)


_stamp_cache_with_the_package()

JIT_OPTIONS = dict(cache=True, error_model="numpy", fastmath={"contract"}, nogil=True)


def jit(fn=None, **overrides):
    """Serial njit with the project's options (usable bare or with keyword overrides)."""
    opts = {**JIT_OPTIONS, **overrides}
    if fn is None:
        return lambda f: numba.njit(**opts)(f)
    return numba.njit(**opts)(fn)


def pjit(fn=None, **overrides):
    """Parallel njit (``prange`` over paths) with the project's options."""
    return jit(fn, parallel=True, **overrides)


prange = numba.prange


def jit_typed(signature, **overrides):
    """njit with an explicit ``signature`` and the project's options (eager compilation, cached).

    Used for functions passed as first-class function values (``numba.types.FunctionType``): a kernel
    whose argument is typed by signature is compiled once for every function of that signature, and the
    cache survives restarts (a kernel specialized on a dispatcher argument is not cached across processes).
    """
    opts = {**JIT_OPTIONS, **overrides}
    return lambda f: numba.njit(signature, **opts)(f)


def renamed(fn, suffix: str):
    """A copy of the Python function ``fn`` named ``<name><suffix>``, to compile with other options.

    Numba's on-disk cache is keyed by the function's qualified name, source line and signature, not by its
    compilation options, so two compilations of one function would load each other's cache entries."""
    import types

    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = fn.__qualname__ + suffix
    copy.__doc__ = fn.__doc__
    return copy


def serial_and_parallel(fn):
    """(serial, parallel) compilations of one function whose outer loop is a ``prange`` over paths (the
    serial one from a :func:`renamed` copy)."""
    return jit(renamed(fn, "_serial")), pjit(fn)


def jit_exact(fn=None, **overrides):
    """:func:`jit` without any fastmath flag (no FMA contraction): exact IEEE operations."""
    return jit(fn, fastmath=False, **overrides)
