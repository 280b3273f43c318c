"""Time the fused CUDA log-sum-exp kernel and an IWAE training step on the GPU (needs CuPy).

Three ways to get (lse, normalized weights) of a (K, B) array of log-weights are timed on the
device for (K, B) in (50, 20), (50, 1000), (5000, 100), (5000, 2000):

  fused      kernels/logsumexp_weights.cu, one launch (what the CuPy backend uses);
  composite  the unfused CuPy expression max, exp, sum, log, divide (five kernels);
  cupyx      cupyx.scipy.special.logsumexp plus softmax.

Each line shows the median time of a call and the effective bandwidth: the bytes that any
implementation must move (read log_w once, write the weights and lse) divided by that time,
next to the device's peak memory bandwidth (from its memory clock and bus width). Then the
training step (bound, gradients, Adam) of Burda et al.'s 784-200-200-50 IWAE, batch 20, K = 50,
float32, in ms. Without a GPU it says so and exits cleanly.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy

from ... import cuda
from ..options import positive_int

SHAPES = ((50, 20), (50, 1000), (5000, 100), (5000, 2000))


def add_arguments(p):
    from ...model import DTYPES
    p.add_argument("--dtype", default="float32", choices=DTYPES,
                   help="dtype of the log-weights (default: float32)")
    p.add_argument("--repeats", type=positive_int, default=200,
                   help="timed calls per kernel (median)")
    p.add_argument("--steps", type=positive_int, default=100, help="timed training steps")
    p.add_argument("--skip-train", action="store_true", help="time the kernels only")
    # Internal: the training step must run with MINIVAE_BACKEND=cupy, chosen at import; when
    # this process runs on NumPy, it times the step in a child process started with that flag.
    p.add_argument("--train-only", action="store_true", help=argparse.SUPPRESS)


def peak_bandwidth_gbs(cupy):
    """The device's peak memory bandwidth in GB/s (None when the driver does not say).

    2 transfers per memory clock (DDR, and HBM alike) times the bus width in bytes.
    """
    dev = cupy.cuda.Device()
    attrs = dev.attributes
    clock_khz, bus_bits = attrs.get("MemoryClockRate"), attrs.get("GlobalMemoryBusWidth")
    if not clock_khz or not bus_bits:
        props = cupy.cuda.runtime.getDeviceProperties(dev.id)
        clock_khz, bus_bits = props.get("memoryClockRate"), props.get("memoryBusWidth")
    if not clock_khz or not bus_bits:
        return None
    return 2 * clock_khz * 1e3 * bus_bits / 8 / 1e9


def implementations(cupy):
    """name -> function(log_w) -> (lse, weights), on the device."""
    import cupyx.scipy.special as special

    def composite(x):
        m = x.max(axis=0)
        e = cupy.exp(x - m)
        s = e.sum(axis=0)
        return m + cupy.log(s), e / s

    def cupyx_lse_softmax(x):
        lse = special.logsumexp(x, axis=0)
        softmax = getattr(special, "softmax", None)
        return lse, (softmax(x, axis=0) if softmax else cupy.exp(x - lse))

    return {"fused": cuda.logsumexp_weights, "composite": composite, "cupyx": cupyx_lse_softmax}


def median_gpu_seconds(cupy, fn, x, repeats):
    """Median device time of fn(x), timed with CUDA events around each call."""
    for _ in range(10):                                   # warm-up (and compilation)
        fn(x)
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    times = []
    for _ in range(repeats):
        start.record()
        fn(x)
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end) / 1e3)
    return float(numpy.median(times))


def bench_kernels(args):
    import cupy

    dtype = numpy.dtype(args.dtype)
    peak = peak_bandwidth_gbs(cupy)
    peak_text = f"{peak:.0f} GB/s" if peak else "unknown"
    print(f"log-sum-exp and weights over K, {dtype.name}; device peak memory bandwidth "
          f"{peak_text}")
    print(f"  {'K':>5} {'B':>5}  {'implementation':<14} {'µs / call':>10} {'GB/s':>8} "
          f"{'% of peak':>9}")
    rng = cupy.random.default_rng(0)
    impls = implementations(cupy)
    for K, B in SHAPES:
        x = (rng.standard_normal((K, B), dtype=numpy.float64) * 10).astype(dtype)
        # The fused kernel must agree with the composite before its time means anything.
        lse, w = impls["fused"](x)
        ref_lse, ref_w = impls["composite"](x)
        err = float(cupy.abs(w - ref_w).max())
        tol = 1e-5 if dtype == numpy.float32 else 1e-12
        if not err <= tol or not bool(cupy.allclose(lse, ref_lse, rtol=tol, atol=tol)):
            raise RuntimeError(f"fused kernel disagrees with the composite at K={K}, B={B} "
                               f"(max weight difference {err:.3g})")
        nbytes = (2 * K * B + B) * dtype.itemsize
        for name, fn in impls.items():
            t = median_gpu_seconds(cupy, fn, x, args.repeats)
            gbs = nbytes / t / 1e9
            pct = f"{100 * gbs / peak:8.1f}%" if peak else f"{'-':>9}"
            print(f"  {K:>5} {B:>5}  {name:<14} {t * 1e6:>10.1f} {gbs:>8.1f} {pct}")


def bench_train_step(args):
    from ... import backend
    from ...model import IWAE
    from ...optim import Adam

    model = IWAE(784, 50, hidden=(200, 200), activation="tanh", likelihood="bernoulli",
                 dtype="float32", seed=0)
    opt = Adam(model.params, lr=1e-3, eps=1e-4)
    rng = numpy.random.default_rng(0)
    x = backend.asarray(rng.random((20, 784)) < 0.3, dtype="float32")

    def step():
        value, grads = model.bound_and_grads(x, 50, check=False)
        opt.step(grads)
        return value

    for _ in range(10):
        step()
    backend.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    backend.synchronize()
    ms = (time.perf_counter() - start) / args.steps * 1e3
    print(f"training step (bound, gradients, Adam) of the 784-200-200-50 IWAE, batch 20, K = 50, "
          f"float32, backend {backend.name}: {ms:.3f} ms")


def run(args):
    ok, why = cuda.gpu_available()
    if not ok:
        print(f"minivae bench-gpu: no GPU present: {why}. Nothing to time; on a machine with an "
              "NVIDIA GPU, install CuPy (pip install -e .[cuda12] or .[cuda13]) and run again.")
        return 0
    if args.train_only:
        bench_train_step(args)
        return 0
    print(f"minivae bench-gpu on {why}")
    bench_kernels(args)
    if args.skip_train:
        return 0
    from ... import backend
    if backend.name == "cupy":
        bench_train_step(args)
        return 0
    cmd = [sys.executable, "-m", "minivae", "bench-gpu", "--train-only", "--steps",
           str(args.steps)]
    return subprocess.run(cmd, env=dict(os.environ, MINIVAE_BACKEND="cupy")).returncode
