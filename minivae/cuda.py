"""The fused CUDA log-sum-exp kernel (``kernels/logsumexp_weights.cu``), loaded through CuPy.

:func:`logsumexp_weights` is what :func:`minivae.ops.logsumexp_weights` calls on the CuPy
backend: same contract as :func:`minivae.ops.logsumexp_weights_reference`, one kernel launch.

The source ships as package data of ``minivae.kernels`` and is read with
:mod:`importlib.resources`, so an installed package and an editable checkout behave the same.
It is compiled by NVRTC (through ``cupy.RawModule``) the first time a dtype is used; CuPy keeps
the binary in memory and in its on-disk kernel cache, so later runs skip the compilation.

Importing this module does not import CuPy: the CPU tests use :func:`kernel_source` and
:func:`launch_shape` to compile and run the same kernel on the host.
"""
import functools
import importlib.resources

import numpy

KERNEL_FILE = "logsumexp_weights.cu"
EMULATION_HEADER = "cuda_emulation.h"
# The template instantiations, by NumPy dtype name; NVRTC instantiates them from these names.
NAME_EXPRESSIONS = {"float32": "logsumexp_weights<float>", "float64": "logsumexp_weights<double>"}
# NVRTC options. Deliberately no --use_fast_math (IEEE division, accurate exp and log), so the
# kernel agrees with the NumPy reference to a few ulp; no -std either (CuPy then picks C++17).
OPTIONS = ()
# What CuPy (14) adds to every RawModule compilation besides the architecture: float32
# denormals flushed (see the .cu file), unannotated functions compiled for the device, C++17
# when no -std is given. The NVRTC test compiles with OPTIONS + CUPY_ADDED_OPTIONS, as CuPy will.
CUPY_ADDED_OPTIONS = ("-ftz=true", "--device-as-default-execution-space", "--std=c++17")

MAX_THREADS = 256   # must match MINIVAE_MAX_THREADS in the .cu file
WARP = 32
SECTOR_BYTES = 32   # the unit in which the GPU's memory system moves data


def kernel_source(filename=KERNEL_FILE):
    """The text of a file of ``kernels/`` (the kernel, or the CPU emulation header)."""
    return importlib.resources.files("minivae.kernels").joinpath(filename).read_text("utf-8")


def _next_pow2(n):
    return 1 << max(int(n) - 1, 0).bit_length()


def launch_shape(K, B, itemsize):
    """Grid and block for a (K, B) problem: ``((n_blocks, 1, 1), (TX, TY, 1))``.

    A block covers TX adjacent columns, its TY thread rows striding along K (see the .cu file).

    - TX: at least one 32-byte sector per row of a warp's reads (8 floats or 4 doubles), so
      reads are coalesced; no wider than the number of columns (beyond that, threads would
      idle); and wider when K is small, so that TY does not exceed what K can feed. Small TX
      also means more blocks, which matters when B is small and K large (few columns, long).
    - TY: enough rows to make MAX_THREADS threads, but not many more than K; at least enough
      for one full warp (the kernel's shuffles need whole warps).
    """
    sector = SECTOR_BYTES // itemsize
    tx = min(_next_pow2(B), max(sector, MAX_THREADS // _next_pow2(K)), WARP)
    ty = min(MAX_THREADS // tx, max(_next_pow2(K), WARP // tx))
    n_blocks = -(-B // tx)
    return (n_blocks, 1, 1), (tx, ty, 1)


def gpu_available():
    """``(True, device name)`` when CuPy imports and sees a CUDA device, else ``(False, why)``."""
    try:
        import cupy
    except Exception as e:  # ImportError, or a broken CUDA install raising on import
        return False, f"CuPy is not importable ({type(e).__name__}: {e})"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        return False, f"no usable CUDA device ({type(e).__name__}: {e})"
    if n < 1:
        return False, "no CUDA device present"
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props.get("name", b"CUDA device")
    return True, name.decode() if isinstance(name, bytes) else str(name)


@functools.lru_cache(maxsize=None)
def _module():
    import cupy
    return cupy.RawModule(code=kernel_source(), options=OPTIONS,
                          name_expressions=list(NAME_EXPRESSIONS.values()))


@functools.lru_cache(maxsize=None)
def _kernel(dtype_name, device_id):
    # One RawKernel per dtype and device; get_function compiles (or loads from CuPy's cache).
    del device_id  # part of the cache key only
    return _module().get_function(NAME_EXPRESSIONS[dtype_name])


def logsumexp_weights(log_w):
    """Log-sum-exp over axis 0 and the normalized weights, in one fused kernel launch.

    log_w : cupy (or NumPy, copied to the device) array of shape (K, ...) and dtype float32 or
        float64; K >= 1.
    Returns ``(lse, weights)`` of shapes ``log_w.shape[1:]`` and ``log_w.shape``, on the device,
    with the contract of :func:`minivae.ops.logsumexp_weights`.
    """
    import cupy
    log_w = cupy.asarray(log_w)
    dtype = numpy.dtype(log_w.dtype)
    if dtype.name not in NAME_EXPRESSIONS:
        raise TypeError(f"logsumexp_weights kernel takes float32 or float64, not {dtype.name}")
    if log_w.ndim == 0 or log_w.shape[0] == 0:
        raise ValueError(f"log_w needs at least one sample along axis 0, got shape {log_w.shape}")
    K, rest = log_w.shape[0], log_w.shape[1:]
    B = int(numpy.prod(rest, dtype=numpy.int64))
    if B == 0:
        return cupy.empty(rest, dtype), cupy.empty(log_w.shape, dtype)
    if K >= 2**31 or B >= 2**31:
        raise ValueError(f"log_w of shape {log_w.shape} is too large for the kernel's int sizes")
    # RawKernel passes raw pointers: the kernel indexes k * B + b, so the data must be
    # C-contiguous, and it does no type conversion, so sizes go in as explicit int32.
    x = cupy.ascontiguousarray(log_w).reshape(K, B)
    weights = cupy.empty_like(x)
    lse = cupy.empty(B, dtype)
    grid, block = launch_shape(K, B, dtype.itemsize)
    kernel = _kernel(dtype.name, cupy.cuda.Device().id)
    kernel(grid, block, (x, weights, lse, numpy.int32(K), numpy.int32(B)))
    return lse.reshape(rest), weights.reshape(log_w.shape)
