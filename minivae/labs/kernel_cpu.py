"""Compile kernels/logsumexp_weights.cu with the host C++ compiler and launch it on the CPU.

The same source NVRTC compiles for the GPU, built through kernels/cuda_emulation.h (threads
of a block are real threads, barriers are real), as tests/test_kernel_emulated.py does; lab 6
uses it to compare the kernel with the NumPy reference on a laptop.
"""
import ctypes
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .. import cuda

DRIVER = r"""
#include "cuda_emulation.h"
#include "logsumexp_weights.cu"

template <typename T>
static int launch(const T* log_w, T* weights, T* lse, int K, int B, int g, int bx, int by) {
    dim3 grid, block;
    grid.x = g;
    block.x = bx;
    block.y = by;
    return emu::emulate_launch(grid, block, [=] {
        logsumexp_weights<T>(log_w, weights, lse, K, B);
    });
}

extern "C" int launch_float32(const float* x, float* w, float* l, int K, int B,
                              int g, int bx, int by) {
    return launch<float>(x, w, l, K, B, g, bx, by);
}
extern "C" int launch_float64(const double* x, double* w, double* l, int K, int B,
                              int g, int bx, int by) {
    return launch<double>(x, w, l, K, B, g, bx, by);
}
"""


def compiler():
    """The host C++ compiler, or None."""
    return shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


class EmulatedKernel:
    """The kernel built for the CPU: ``EmulatedKernel()(log_w) -> (lse, weights)``."""

    def __init__(self, build_dir=None):
        cxx = compiler()
        if cxx is None:
            raise RuntimeError("no host C++ compiler (g++, c++ or clang++) to build the kernel")
        self._tmp = None if build_dir else tempfile.TemporaryDirectory(prefix="minivae-kernel-")
        d = Path(build_dir or self._tmp.name)
        for f in (cuda.KERNEL_FILE, cuda.EMULATION_HEADER):
            (d / f).write_text(cuda.kernel_source(f), encoding="utf-8")
        (d / "driver.cpp").write_text(DRIVER, encoding="utf-8")
        lib = d / "libminivae_lse.so"
        cmd = [cxx, "-std=c++17", "-O2", "-pthread", "-shared", "-fPIC", "-I", str(d),
               str(d / "driver.cpp"), "-o", str(lib)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"compiling the kernel failed: {proc.stderr.strip()[:400]}")
        self.command = " ".join(cmd)
        self.lib = ctypes.CDLL(str(lib))

    def __call__(self, log_w):
        x = np.ascontiguousarray(log_w)
        if x.dtype not in (np.float32, np.float64) or x.ndim != 2:
            raise ValueError("the kernel takes a (K, B) float32 or float64 array")
        K, B = x.shape
        grid, block = cuda.launch_shape(K, B, x.itemsize)
        w, lse = np.empty_like(x), np.empty(B, x.dtype)
        p = ctypes.c_void_p
        rc = getattr(self.lib, f"launch_{x.dtype.name}")(
            p(x.ctypes.data), p(w.ctypes.data), p(lse.ctypes.data), K, B, grid[0], block[0],
            block[1])
        if rc != 0:
            raise RuntimeError(f"emulated launch failed with code {rc}")
        return lse, w
