"""The fused CUDA log-sum-exp kernel (``kernels/logsumexp_weights.cu``), loaded through CuPy.

:func:`logsumexp_weights` is what :func:`minivae.ops.logsumexp_weights` calls on the CuPy
backend: same contract as :func:`minivae.ops.logsumexp_weights_reference`, one kernel launch.

The source is package data of ``minivae.kernels`` (``minivae/kernels/``; the repository's
``kernels/`` links to it) and is read with :mod:`importlib.resources`, so an installed package
and an editable checkout behave the same.
It is compiled by NVRTC (through ``cupy.RawModule``) the first time a dtype is used in a
process, and kept in memory for the rest of it. CuPy's on-disk kernel cache spares later
processes the compilation only from CuPy 14.2 on (14.1 with a CUDA 12.4+ driver): with
``name_expressions``, CuPy 13.x and 14.0.x recompile in every process, to learn the mangled
names from NVRTC (``cupy/cuda/compiler.py``).

Importing this module does not import CuPy. The same source also runs on the CPU:
:class:`EmulatedKernel` compiles it with the host C++ compiler through
``kernels/cuda_emulation.h`` (the threads of a block are real threads meeting at real barriers)
and launches it with :func:`launch_shape`; lab 6 and ``tests/test_kernel_emulated.py`` use it.
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


# ------------------------------------------------------------------------------ on the CPU
# The kernel built for the host: the .cu file and the emulation header copied next to a small
# C++ driver that launches logsumexp_weights<T> over a grid (emu::emulate_launch runs the
# threads of each block as real threads). ftz flushes float32 denormals as CuPy's -ftz=true.
EMULATION_DRIVER = r"""
#include "cuda_emulation.h"
#include "logsumexp_weights.cu"

template <typename T>
static int launch(const T* log_w, T* weights, T* lse, int K, int B,
                  int grid_x, int block_x, int block_y, int ftz) {
    dim3 grid, block;
    grid.x = grid_x;
    block.x = block_x;
    block.y = block_y;
    return emu::emulate_launch(grid, block, [=] {
        logsumexp_weights<T>(log_w, weights, lse, K, B);
    }, ftz != 0);
}

extern "C" int launch_float32(const float* x, float* w, float* l, int K, int B,
                              int g, int bx, int by, int ftz) {
    return launch<float>(x, w, l, K, B, g, bx, by, ftz);
}
extern "C" int launch_float64(const double* x, double* w, double* l, int K, int B,
                              int g, int bx, int by, int ftz) {
    return launch<double>(x, w, l, K, B, g, bx, by, ftz);
}
"""
# Return codes of emu::emulate_launch (kernels/cuda_emulation.h).
EMU_OK, EMU_BAD_LAUNCH, EMU_DIVERGED, EMU_BAD_MASK = range(4)
_GUARD = 16     # sentinel elements after each output, to catch writes past its end


def host_compiler():
    """The host C++ compiler (g++, c++ or clang++), or None."""
    import shutil
    return shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


def build_emulation(build_dir, source, name, defines=()):
    """Compile C++ ``source`` (which includes the kernel and/or the emulation header) into
    ``build_dir``/lib<name>.so with warnings as errors; returns the loaded ``ctypes.CDLL``.

    Raises RuntimeError without a host compiler or when the compilation fails (with its
    command and first lines of diagnostics).
    """
    import ctypes
    import subprocess
    from pathlib import Path
    cxx = host_compiler()
    if cxx is None:
        raise RuntimeError("no host C++ compiler (g++, c++ or clang++) to build the kernel")
    d = Path(build_dir)
    for f in (KERNEL_FILE, EMULATION_HEADER):
        (d / f).write_text(kernel_source(f), encoding="utf-8")
    (d / f"{name}.cpp").write_text(source, encoding="utf-8")
    lib = d / f"lib{name}.so"
    cmd = [cxx, "-std=c++17", "-O2", "-pthread", "-shared", "-fPIC", "-Wall", "-Werror",
           *[f"-D{x}" for x in defines], "-I", str(d), str(d / f"{name}.cpp"), "-o", str(lib)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"compiling {name}.cpp failed ({' '.join(cmd)}): "
                           f"{proc.stderr.strip()[:600]}")
    return ctypes.CDLL(str(lib))


class EmulatedKernel:
    """kernels/logsumexp_weights.cu compiled for the CPU: ``EmulatedKernel()(log_w)`` returns
    ``(lse, weights)`` as NumPy arrays, with the contract of
    :func:`minivae.ops.logsumexp_weights`.

    build_dir : where to compile (default: a temporary directory kept as long as the object).
    Raises RuntimeError when there is no host compiler or the build fails.
    """

    def __init__(self, build_dir=None):
        import tempfile
        self._tmp = None if build_dir else tempfile.TemporaryDirectory(prefix="minivae-kernel-")
        self.lib = build_emulation(build_dir or self._tmp.name, EMULATION_DRIVER, "lse_kernel")

    def launch(self, x, weights, lse, grid, block, ftz=False):
        """Launch on raw C-contiguous arrays (x (K, B); weights and lse at least K·B and B
        elements) with an explicit grid and block; returns emu::emulate_launch's code."""
        import ctypes
        K, B = x.shape
        p = ctypes.c_void_p
        return getattr(self.lib, f"launch_{x.dtype.name}")(
            p(x.ctypes.data), p(weights.ctypes.data), p(lse.ctypes.data), int(K), int(B),
            int(grid[0]), int(block[0]), int(block[1]), int(bool(ftz)))

    def __call__(self, log_w, block=None, ftz=False):
        """(lse (B,), weights (K, B)) of a (K, B) float32/float64 host array.

        block : (TX, TY) instead of :func:`launch_shape`'s (the grid follows: ceil(B / TX)).
        ftz : flush float32 denormals to zero, as CuPy compiles (-ftz=true).
        A failed launch or a write past an output's end raises RuntimeError.
        """
        x = numpy.ascontiguousarray(log_w)
        if x.dtype not in (numpy.float32, numpy.float64) or x.ndim != 2:
            raise ValueError("the kernel takes a (K, B) float32 or float64 array")
        K, B = x.shape
        grid, shape = launch_shape(K, B, x.itemsize)
        if block is not None:
            shape, grid = tuple(block[:2]), (-(-B // block[0]), 1, 1)
        sentinel = numpy.array(12345.0, x.dtype)
        w = numpy.full(K * B + _GUARD, sentinel)
        lse = numpy.full(B + _GUARD, sentinel)
        rc = self.launch(x, w, lse, grid, shape, ftz)
        if rc != EMU_OK:
            raise RuntimeError(f"emulated launch failed with code {rc} (block {shape[0]}x"
                               f"{shape[1]}, grid {grid[0]})")
        if not ((w[K * B:] == sentinel).all() and (lse[B:] == sentinel).all()):
            raise RuntimeError("the emulated kernel wrote past the end of an output")
        return lse[:B], w[:K * B].reshape(K, B)
