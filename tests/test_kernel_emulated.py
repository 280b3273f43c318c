"""The CUDA kernel, run on the CPU: kernels/logsumexp_weights.cu against the NumPy reference.

The same .cu source that NVRTC compiles for the GPU is compiled here by the host C++ compiler
through kernels/cuda_emulation.h, where the threads of a block are real threads meeting at real
barriers (and warp shuffles go through a per-warp exchange), then launched over a grid with the
launch shape minivae.cuda uses, and compared with minivae.ops.logsumexp_weights_reference.
"""
import ctypes
import sys

import numpy as np
import pytest

from minivae import cuda
from minivae.ops import logsumexp_weights_reference
from helpers import dev, host

pytestmark = pytest.mark.skipif(cuda.host_compiler() is None,
                                reason="no host C++ compiler (g++/c++/clang++)")

# A kernel that breaks the rules: thread 0 skips the barrier the others wait at.
DIVERGENT_DRIVER = r"""
#include "cuda_emulation.h"

__global__ void divergent(int* out) {
    __shared__ int cell;
    if (threadIdx.x == 0) return;
    __syncthreads();
    out[threadIdx.x] = cell;
}

extern "C" int launch_divergent(int* out) {
    dim3 grid, block;
    block.x = 64;
    return emu::emulate_launch(grid, block, [=] { divergent(out); });
}
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """The kernel compiled for the CPU (minivae.cuda.EmulatedKernel, as lab 6 uses it)."""
    return cuda.EmulatedKernel(tmp_path_factory.mktemp("emulated_kernel"))


# Agreement to a few ulp: float sums of up to 5000 terms accumulate in a different order than
# NumPy's pairwise sum, and exp/log differ between libm and NumPy by an ulp or two (measured:
# weights within 16 ulp, lse within 1 ulp of the reference; the bounds leave room for larger K).
RTOL = {np.float32: 1e-5, np.float64: 1e-13}


def assert_matches_reference(lse, w, log_w, atol=0.0):
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        ref_lse, ref_w = host(*logsumexp_weights_reference(dev(log_w)))
    dtype = log_w.dtype.type
    assert lse.dtype == dtype and w.dtype == dtype
    # assert_allclose treats NaN as equal to NaN and ±inf as equal only to the same inf, so NaN
    # and inf positions must match exactly; tiny weights get an absolute floor of one denormal.
    tiny = np.finfo(dtype).smallest_subnormal * 4
    np.testing.assert_allclose(lse, ref_lse, rtol=RTOL[dtype], atol=RTOL[dtype])
    np.testing.assert_allclose(w, ref_w, rtol=RTOL[dtype], atol=max(atol, tiny))


SHAPES = [(1, 1), (1, 37), (2, 1), (3, 5), (31, 7), (32, 32), (33, 64), (50, 20), (100, 33),
          (257, 5), (50, 1000), (5000, 1), (5000, 3), (5000, 40)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K,B", SHAPES)
def test_random_inputs_match_reference(kernel, K, B, dtype):
    rng = np.random.default_rng(K * 1000 + B)
    # A spread of scales: log-weights of a real model differ by tens to thousands of nats.
    scale = rng.choice([1.0, 30.0, 1000.0], size=B)
    log_w = (rng.standard_normal((K, B)) * scale - 100.0).astype(dtype)
    lse, w = kernel(log_w)
    assert_matches_reference(lse, w, log_w)
    np.testing.assert_allclose(w.sum(axis=0), 1.0, rtol=K * np.finfo(dtype).eps)


def special_columns(K, dtype, rng):
    """A (K, n) matrix whose columns exercise each special-value rule of the contract."""
    inf, nan = np.inf, np.nan

    def col(**at):
        c = rng.standard_normal(K) * 10
        for k, v in at.items():
            c[int(k[1:]) % K] = v
        return c

    cols = [
        col(),                                              # finite
        col(i0=-inf),                                       # one -inf: weight 0
        np.full(K, -inf),                                   # all -inf: lse -inf, weights 0
        col(i3=inf),                                        # one +inf: weight 1 there
        col(i1=inf, i5=inf, i2=-inf),                       # two +inf: 1/2 each
        np.full(K, inf),                                    # all +inf: uniform
        col(i4=nan),                                        # NaN: whole column NaN
        col(i4=nan, i1=inf),                                # NaN beats +inf
        np.where(np.arange(K) == K - 1, nan, -inf),         # NaN among -inf
        col(i0=1e4, i1=-1e4),                               # extremes
        np.where(np.arange(K) % 2 == 0, 1e4, -1e4),         # extremes only
        np.full(K, -1e4),                                   # equal entries: uniform
        col(i2=50.0, i7=50.0),                              # a tied max
        np.where(np.arange(K) == 0, 0.0, -inf),             # a single finite entry
    ]
    return np.stack(cols, axis=1).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [1, 8, 37, 300])
def test_special_values_match_reference(kernel, K, dtype):
    log_w = special_columns(K, dtype, np.random.default_rng(K))
    lse, w = kernel(log_w)
    assert_matches_reference(lse, w, log_w)
    # The contract, stated directly rather than only through the reference:
    assert lse[2] == -np.inf and (w[:, 2] == 0).all()
    assert np.isnan(lse[6]) and np.isnan(w[:, 6]).all()
    finite = [0, 9, 10, 11, 12, 13] + ([1] if K > 1 else [])  # with K = 1, column 1 is all -inf
    assert np.isfinite(lse[finite]).all()
    if K > 5:
        assert lse[4] == np.inf and w[1, 4] == 0.5 and w[5, 4] == 0.5 and w[0, 4] == 0


BLOCKS = [(1, 256), (2, 128), (4, 64), (8, 32), (16, 16), (32, 8), (32, 1), (1, 32), (4, 8),
          (16, 2)]


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: f"{b[0]}x{b[1]}")
def test_every_tile_shape_gives_the_same_answer(kernel, block):
    # The kernel is written for any power-of-two TX <= 32 and whole warps: each shape takes a
    # different path through the shuffle butterfly and the cross-warp merge.
    rng = np.random.default_rng(7)
    log_w = rng.standard_normal((70, 45)) * 20
    log_w[3, 4], log_w[:, 5], log_w[9, 6] = np.inf, -np.inf, np.nan
    lse, w = kernel(log_w, block=block)
    assert_matches_reference(lse, w, log_w)


def test_large_batch(kernel):
    rng = np.random.default_rng(3)
    log_w = (rng.standard_normal((50, 3000)) * 5).astype(np.float32)
    log_w[:, ::97] = -np.inf
    lse, w = kernel(log_w)
    assert_matches_reference(lse, w, log_w)


def test_flush_to_zero_only_loses_denormal_weights(kernel):
    # CuPy compiles kernels with -ftz=true: float32 results below 2^-126 ≈ 1.2e-38 become 0.
    # exp(-100) ≈ 3.7e-44 is such a denormal; with FTZ its weight is exactly 0, without it is not,
    # and either way everything agrees with the reference to within that smallest normal.
    log_w = np.array([[0.0, 0.0], [-100.0, -3.0]], np.float32)
    _, w_ieee = kernel(log_w)
    _, w_ftz = kernel(log_w, ftz=True)
    assert 0 < w_ieee[1, 0] < np.finfo(np.float32).tiny and w_ftz[1, 0] == 0
    rng = np.random.default_rng(5)
    log_w = (rng.standard_normal((300, 40)) * 40).astype(np.float32)
    lse, w = kernel(log_w, ftz=True)
    assert_matches_reference(lse, w, log_w, atol=np.finfo(np.float32).tiny)


@pytest.mark.parametrize("itemsize", [4, 8])
def test_launch_shape_meets_the_kernels_requirements(itemsize):
    source = cuda.kernel_source()
    assert f"#define MINIVAE_MAX_THREADS {cuda.MAX_THREADS}\n" in source
    assert f"#define MINIVAE_WARP {cuda.WARP}\n" in source
    for K in (1, 2, 3, 7, 31, 32, 33, 50, 64, 100, 255, 256, 257, 1000, 5000, 100000):
        for B in (1, 2, 3, 5, 8, 20, 31, 32, 33, 100, 1000, 2000, 10**6):
            (gx, gy, gz), (tx, ty, tz) = cuda.launch_shape(K, B, itemsize)
            assert tx & (tx - 1) == 0 and 1 <= tx <= 32, (K, B, tx)
            assert (tx * ty) % 32 == 0 and tx * ty <= cuda.MAX_THREADS, (K, B, tx, ty)
            assert gx * tx >= B > (gx - 1) * tx and gy == gz == tz == 1
            # Coalesced: a warp row covers at least one 32-byte sector, or all B columns.
            assert tx * itemsize >= cuda.SECTOR_BYTES or tx >= B, (K, B, tx)


def test_emulator_reports_threads_that_skip_a_barrier(tmp_path):
    # The emulation is only worth something if it catches what a GPU would not forgive.
    lib = cuda.build_emulation(tmp_path, DIVERGENT_DRIVER, "divergent",
                               defines=["EMU_BARRIER_TIMEOUT_MS=300"])
    out = np.zeros(64, np.int32)
    assert lib.launch_divergent(ctypes.c_void_p(out.ctypes.data)) == cuda.EMU_DIVERGED


class _CupyStandIn:
    """Just the part of CuPy that minivae.cuda.logsumexp_weights touches, on NumPy arrays, with
    RawModule/RawKernel launching the emulated kernel. RawKernel converts nothing, so the
    stand-in insists on what the real one needs: C-contiguous arrays and numpy.int32 sizes."""

    def __init__(self, kernel):
        self.kernel, self.modules, self.launches = kernel, [], []
        self.asarray, self.ascontiguousarray = np.asarray, np.ascontiguousarray
        self.empty, self.empty_like = np.empty, np.empty_like
        self.cuda = type("cuda", (), {"Device": lambda: type("Device", (), {"id": 0})()})

    def RawModule(self, code, options, name_expressions):
        stand_in = self

        class Module:
            def get_function(self, name):
                assert name in name_expressions
                return lambda grid, block, args: stand_in.launch(name, grid, block, args)

        assert code == cuda.kernel_source()
        self.modules.append((options, tuple(name_expressions)))
        return Module()

    def launch(self, name, grid, block, args):
        x, w, lse, K, B = args
        assert all(a.flags.c_contiguous for a in (x, w, lse))
        assert type(K) is np.int32 and type(B) is np.int32
        assert name == cuda.NAME_EXPRESSIONS[x.dtype.name]
        self.launches.append((grid, block))
        assert self.kernel.launch(x, w, lse, grid, block) == cuda.EMU_OK


def test_cupy_wrapper_with_a_stand_in_for_cupy(kernel, monkeypatch):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 40, 7))[:, ::2, :].astype(np.float32)       # (K, ...) strided
    ref_lse, ref_w = host(*logsumexp_weights_reference(dev(x)))   # before cupy is replaced
    stand_in = _CupyStandIn(kernel)
    monkeypatch.setitem(sys.modules, "cupy", stand_in)
    cuda._module.cache_clear()
    cuda._kernel.cache_clear()
    try:
        lse, w = cuda.logsumexp_weights(x)
        assert lse.shape == (20, 7) and w.shape == x.shape
        np.testing.assert_allclose(w, ref_w, rtol=1e-5)
        np.testing.assert_allclose(lse, ref_lse, rtol=1e-5)
        lse, w = cuda.logsumexp_weights(np.array([0.0, np.log(3.0)]))     # (K,) float64
        assert lse.shape == () and np.isclose(lse, np.log(4.0)) and np.allclose(w, [.25, .75])
        lse, w = cuda.logsumexp_weights(np.zeros((5, 0)))                 # nothing to launch
        assert lse.shape == (0,) and w.shape == (5, 0)
        with pytest.raises(TypeError):
            cuda.logsumexp_weights(np.zeros((3, 2), np.float16))
        with pytest.raises(ValueError):
            cuda.logsumexp_weights(np.zeros((0, 2)))
        # Compiled once (one module for both dtypes), launched once per real call.
        assert len(stand_in.modules) == 1 and len(stand_in.launches) == 2
        assert stand_in.modules[0][0] == cuda.OPTIONS
    finally:
        cuda._module.cache_clear()
        cuda._kernel.cache_clear()


def test_a_launch_the_kernel_refuses_is_an_error(kernel):
    # 4 x 3 = 12 threads: not whole warps, which a GPU (and the kernel's shuffles) refuse.
    with pytest.raises(RuntimeError, match="launch failed"):
        kernel(np.zeros((4, 64)), block=(4, 3))
