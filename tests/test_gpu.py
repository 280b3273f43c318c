"""The CuPy backend and the fused kernel on a real GPU (marker ``gpu``), and life without one.

GPU tests are skipped, with the reason shown (pytest -ra), where CuPy or a device is missing;
they are meant to run as they are on a machine with an NVIDIA GPU:

    pip install -e .[test,cuda12]      # or .[test,cuda13]
    pytest -m gpu

The backend is chosen once, at import, from MINIVAE_BACKEND, so NumPy-vs-CuPy parity runs the
same script in two subprocesses, one per backend, on the same data and noise (drawn on the host
with NumPy), and compares what they save. The tests without the marker check the CPU side:
asking for CuPy where it cannot run is a one-line error, and ``minivae bench-gpu`` exits cleanly.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minivae import backend, cuda
from helpers import dev, host

HAVE_GPU, WHY = cuda.gpu_available()


def gpu_test(fn):
    """Mark a test as needing the GPU, skipped with the reason when there is none."""
    fn = pytest.mark.skipif(not HAVE_GPU, reason=f"needs CuPy and a CUDA device: {WHY}")(fn)
    return pytest.mark.gpu(fn)


def run_python(args, backend_name, timeout=600, env=None):
    env = dict(os.environ, MINIVAE_BACKEND=backend_name, **(env or {}))
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _without_gpu():
    """Environment under which CuPy cannot be used here ({} when it cannot anyway), or None on
    a machine where it can. The CuPy stand-in (../shared/tools/fakecupy, which has counters in
    cupy._stats) emulates a machine without a device with FAKECUPY_DEVICE_COUNT=0."""
    if not HAVE_GPU:
        return {}
    import cupy
    return {"FAKECUPY_DEVICE_COUNT": "0"} if hasattr(cupy, "_stats") else None


WITHOUT_GPU = _without_gpu()


# ----------------------------------------------------------------------------- without a GPU

@pytest.mark.skipif(WITHOUT_GPU is None, reason="CuPy and a device are present: no error")
@pytest.mark.parametrize("args", [["-m", "minivae", "evaluate", "nowhere"],
                                  ["-m", "minivae", "train"]], ids=["evaluate", "train"])
def test_cupy_backend_where_it_cannot_run_is_a_one_line_error(args, tmp_path):
    out = tmp_path / "run"
    proc = run_python(args + (["--out", str(out)] if "train" in args else []), "cupy",
                      env=WITHOUT_GPU)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{proc.stderr}"
    assert "MINIVAE_BACKEND=cupy" in lines[0] and "unset MINIVAE_BACKEND" in lines[0]
    if not HAVE_GPU:                                  # CuPy is not installed: how to install it
        assert "pip install -e .[cuda12]" in lines[0] and ".[cuda13]" in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == "" and not out.exists()


@pytest.mark.skipif(WITHOUT_GPU is None, reason="CuPy and a device are present: no error")
def test_cupy_backend_where_it_cannot_run_raises_backend_error_on_first_use():
    # No global hook and no exit at import: importing works, the first use of the backend
    # raises BackendError, which a program can catch.
    code = ("import minivae\n"
            "from minivae import backend\n"
            "try:\n"
            "    minivae.IWAE(4, 2)\n"
            "except backend.BackendError as e:\n"
            "    print('BackendError:', e)\n")
    proc = run_python(["-c", code], "cupy", env=WITHOUT_GPU)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.startswith("BackendError: MINIVAE_BACKEND=cupy")
    assert len(proc.stdout.strip().splitlines()) == 1


def test_help_works_whatever_the_backend():
    # `minivae --help` imports no array code, so a bad MINIVAE_BACKEND cannot break it.
    proc = run_python(["-m", "minivae", "--help"], "no-such-backend")
    assert proc.returncode == 0 and "COMMAND" in proc.stdout and proc.stderr == ""


@pytest.mark.skipif(WITHOUT_GPU is None, reason="a GPU is present: bench-gpu would time it")
def test_bench_gpu_without_gpu_says_so_and_exits_cleanly():
    proc = run_python(["-m", "minivae", "bench-gpu"], "numpy", env=WITHOUT_GPU)
    assert proc.returncode == 0, proc.stderr
    assert "no GPU present" in proc.stdout and "Traceback" not in proc.stderr


def test_rng_state_from_the_other_backend_reseeds_deterministically():
    # A checkpoint written on a GPU must load on a CPU: its CuPy generator state cannot continue
    # in NumPy's generator, so the generator is reseeded from it, the same way every time.
    # (And one written on a CPU must load on a GPU, the same way.)
    if backend.name == "cupy":
        other = np.random.default_rng(3).bit_generator.state
    else:
        other = {"bit_generator": "cupy.XORWOW", "seed": 3, "size": 4, "state": "AAAA"}
    draws = []
    for _ in range(2):
        rng = backend.default_rng(0)
        assert backend.set_rng_state(rng, other) is False
        draws.append(host(rng.standard_normal(4)))
    np.testing.assert_array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[0], host(backend.default_rng(0).standard_normal(4)))
    # And the backend's own state continues exactly.
    rng = backend.default_rng(1)
    state = json.loads(json.dumps(backend.rng_state(rng)))   # as a checkpoint stores it
    expected = host(rng.standard_normal(3))
    assert backend.set_rng_state(rng, state) is True
    np.testing.assert_array_equal(host(rng.standard_normal(3)), expected)


# ----------------------------------------------------------------------------- the kernel

def _host_reference(x):
    """minivae's reference (array operations of the backend) on host data, as NumPy arrays."""
    from minivae.ops import logsumexp_weights_reference
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        return host(*logsumexp_weights_reference(dev(x)))


def _tolerances(dtype):
    # float32: CuPy compiles with -ftz=true, so weights that would be denormal are 0 (see the
    # .cu file): an absolute floor of the smallest normal number.
    if dtype == np.float32:
        return dict(rtol=1e-5, atol=float(np.finfo(np.float32).tiny))
    return dict(rtol=1e-12, atol=1e-300)


@gpu_test
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K,B", [(1, 1), (1, 100), (7, 3), (50, 20), (33, 1000), (5000, 1),
                                 (5000, 100), (257, 2000)])
def test_kernel_matches_cupyx_logsumexp_and_softmax(K, B, dtype):
    import cupy
    import cupyx.scipy.special as special

    rng = np.random.default_rng(K + B)
    # Moderate magnitudes: the softmax reference exp(x - lse) inherits lse's rounding error,
    # |lse| · eps, in every weight (the kernel's exp(x - max) / sum does not). Extreme values
    # are compared with minivae's reference, which uses the kernel's formula, below.
    x_host = (rng.standard_normal((K, B)) * rng.choice([1, 30], size=B)).astype(dtype)
    if K > 1:
        x_host[0, ::3] = -np.inf                       # -inf entries, as cupyx handles them
    x = cupy.asarray(x_host)
    lse, w = cuda.logsumexp_weights(x)
    assert isinstance(lse, cupy.ndarray) and lse.shape == (B,) and w.shape == (K, B)
    assert lse.dtype == dtype and w.dtype == dtype
    ref_lse = special.logsumexp(x, axis=0)
    ref_w = cupy.exp(x - ref_lse)
    tol = _tolerances(dtype)
    tol["rtol"] *= 5
    np.testing.assert_allclose(cupy.asnumpy(lse), cupy.asnumpy(ref_lse), rtol=tol["rtol"],
                               atol=tol["rtol"])
    np.testing.assert_allclose(cupy.asnumpy(w), cupy.asnumpy(ref_w), **tol)


@gpu_test
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [1, 37, 3000])
def test_kernel_special_values_match_the_reference(K, dtype):
    import cupy

    inf, nan = np.inf, np.nan
    rng = np.random.default_rng(K)
    cols = [rng.standard_normal(K) * 10 for _ in range(10)]
    cols[1][0] = -inf
    cols[2][:] = -inf
    cols[3][K // 2] = inf
    cols[4][[0, -1]] = inf
    cols[5][K // 3] = nan
    cols[6][[0, -1]] = [inf, nan]
    cols[7][[0, -1]] = [1e4, -1e4]
    cols[8][:] = -1e4
    cols[9][:] = np.where(np.arange(K) == 0, 0.0, -100.0)   # float32: denormal weights
    x_host = np.stack(cols, axis=1).astype(dtype)
    lse, w = cuda.logsumexp_weights(cupy.asarray(x_host))
    ref_lse, ref_w = _host_reference(x_host)
    tol = _tolerances(dtype)
    np.testing.assert_allclose(cupy.asnumpy(lse), ref_lse, rtol=tol["rtol"], atol=tol["rtol"])
    np.testing.assert_allclose(cupy.asnumpy(w), ref_w, **tol)


@gpu_test
def test_kernel_wrapper_shapes_layouts_and_dtypes():
    import cupy

    rng = np.random.default_rng(0)
    x_host = rng.standard_normal((40, 6, 5))
    x = cupy.asarray(x_host)
    lse, w = cuda.logsumexp_weights(x)                       # (K, ...) like the reference
    ref_lse, ref_w = _host_reference(x_host)
    assert lse.shape == (6, 5) and w.shape == (40, 6, 5)
    np.testing.assert_allclose(cupy.asnumpy(w), ref_w, rtol=1e-12)
    xt = cupy.asarray(rng.standard_normal((30, 40))).T        # not C-contiguous
    lse, w = cuda.logsumexp_weights(xt)
    np.testing.assert_allclose(cupy.asnumpy(w), _host_reference(cupy.asnumpy(xt))[1], rtol=1e-12)
    lse, w = cuda.logsumexp_weights(cupy.zeros(7))           # a single column, as (K,)
    assert lse.shape == () and float(lse) == pytest.approx(np.log(7))
    with pytest.raises(TypeError):
        cuda.logsumexp_weights(cupy.zeros((3, 2), cupy.float16))
    with pytest.raises(ValueError):
        cuda.logsumexp_weights(cupy.zeros((0, 2)))


# ----------------------------------------------------------------------------- the backend

# Runs under one backend: the bound, its gradients and a few Adam steps on data and noise drawn
# on the host, saved as NumPy arrays.
PARITY_SCRIPT = r"""
import json, sys
import numpy as np
import minivae
from minivae import backend, ops

cfg = json.loads(sys.argv[1])
rng = np.random.default_rng(cfg["seed"])
B, K, x_dim, z_dim = cfg["batch"], cfg["k"], cfg["x_dim"], cfg["z_dim"]
model = minivae.IWAE(x_dim, z_dim, hidden=tuple(cfg["hidden"]), activation=cfg["activation"],
                     likelihood=cfg["likelihood"], dtype=cfg["dtype"], seed=0)
if cfg["likelihood"] == "bernoulli":
    x = (rng.random((B, x_dim)) < 0.4).astype(np.float64)
else:
    x = rng.standard_normal((B, x_dim))
mask = rng.random((B, x_dim)) < 0.7 if cfg["mask"] else None
eps = rng.standard_normal((K, B, z_dim))
out = {"backend": np.array(backend.name), "fused": np.array(ops._fused is not None)}
out["bound"] = backend.to_numpy(model.bound(x, K, eps=eps, mask=mask))
mean, grads = model.bound_and_grads(x, K, eps=eps, mask=mask)
out["mean"] = np.array(float(mean))
out.update({"grad/" + n: backend.to_numpy(g) for n, g in grads.items()})
opt = minivae.optim.Adam(model.params, lr=cfg["lr"], eps=1e-4)
trace = []
for step in range(cfg["steps"]):
    e = rng.standard_normal((K, B, z_dim))
    value, g = model.bound_and_grads(x, K, eps=e, mask=mask)
    opt.step(g)
    trace.append(float(value))
out["trace"] = np.array(trace)
out.update({"param/" + n: backend.to_numpy(p) for n, p in model.params.items()})
np.savez(sys.argv[2], **out)
"""

CONFIGS = {
    "bernoulli-tanh": dict(likelihood="bernoulli", hidden=[20, 15], activation="tanh", k=7,
                           batch=5, x_dim=12, z_dim=3, mask=False, dtype="float64"),
    "gaussian-linear": dict(likelihood="gaussian", hidden=[], activation="tanh", k=1, batch=8,
                            x_dim=6, z_dim=2, mask=False, dtype="float64"),
    "student_t-relu-mask": dict(likelihood="student_t", hidden=[16], activation="relu", k=50,
                                batch=4, x_dim=9, z_dim=4, mask=True, dtype="float64"),
    "gaussian-softplus-K200": dict(likelihood="gaussian", hidden=[10, 10],
                                   activation="softplus", k=200, batch=3, x_dim=5, z_dim=2,
                                   mask=True, dtype="float64"),
    "burda-float32": dict(likelihood="bernoulli", hidden=[200, 200], activation="tanh", k=50,
                          batch=20, x_dim=784, z_dim=50, mask=False, dtype="float32"),
}


def run_parity(tmp_path, name, backend_name, steps=5, lr=1e-3):
    cfg = dict(CONFIGS[name], seed=1, steps=steps, lr=lr)
    script = tmp_path / "parity.py"
    script.write_text(PARITY_SCRIPT)
    out = tmp_path / f"{name}-{backend_name}.npz"
    proc = run_python([str(script), json.dumps(cfg), str(out)], backend_name)
    assert proc.returncode == 0, f"{backend_name} run failed:\n{proc.stderr}"
    with np.load(out) as z:
        result = {k: z[k] for k in z.files}
    assert str(result["backend"]) == backend_name
    assert bool(result["fused"]) == (backend_name == "cupy")   # the kernel is what ran
    return result


@gpu_test
@pytest.mark.parametrize("name", list(CONFIGS))
def test_numpy_and_cupy_agree_on_bound_gradients_and_training(tmp_path, name):
    cpu = run_parity(tmp_path, name, "numpy")
    gpu = run_parity(tmp_path, name, "cupy")
    # float64: rounding differences only (cuBLAS vs OpenBLAS sums, CUDA vs libm exp); float32:
    # the same at single precision, amplified through two hidden layers of 200.
    rtol = 1e-9 if CONFIGS[name]["dtype"] == "float64" else 2e-3
    np.testing.assert_allclose(gpu["bound"], cpu["bound"], rtol=rtol)
    np.testing.assert_allclose(gpu["mean"], cpu["mean"], rtol=rtol)
    for key in cpu:
        if key.startswith(("grad/", "param/")):
            scale = np.abs(cpu[key]).max() + 1e-30
            np.testing.assert_allclose(gpu[key], cpu[key], rtol=rtol, atol=rtol * scale,
                                       err_msg=key)
    np.testing.assert_allclose(gpu["trace"], cpu["trace"], rtol=rtol)


@gpu_test
def test_training_on_the_gpu_raises_the_bound(tmp_path):
    gpu = run_parity(tmp_path, "bernoulli-tanh", "cupy", steps=200, lr=1e-2)
    trace = gpu["trace"]
    assert np.isfinite(trace).all()
    assert trace[-20:].mean() > trace[:20].mean() + 0.5, trace[[0, -1]]


RNG_SCRIPT = r"""
import json
import numpy as np
from minivae import backend

rng = backend.default_rng(4)
rng.standard_normal(1000)
state = json.loads(json.dumps(backend.rng_state(rng)))   # through JSON, as checkpoints do
a = backend.to_numpy(rng.standard_normal((3, 5), dtype=np.float32))
b = backend.to_numpy(rng.random(7))
other = backend.default_rng(99)
assert backend.set_rng_state(other, state) is True
np.testing.assert_array_equal(backend.to_numpy(other.standard_normal((3, 5), dtype=np.float32)), a)
np.testing.assert_array_equal(backend.to_numpy(other.random(7)), b)
assert not np.array_equal(backend.to_numpy(backend.default_rng(5).random(7)), b)
# A draw larger than the generator's parallel streams loops over them: still fresh numbers.
n = backend.CUPY_RNG_STREAMS
big = backend.to_numpy(rng.standard_normal(3 * n + 5))
assert abs(big.mean()) < 0.01 and abs(big.std() - 1) < 0.01
assert not np.allclose(big[:n], big[n:2 * n]) and not np.allclose(big[:n], big[2 * n:3 * n])
print("RNG_OK", state["bit_generator"])
"""


@gpu_test
def test_cupy_rng_state_saves_and_restores_exactly():
    proc = run_python(["-c", RNG_SCRIPT], "cupy")
    assert proc.returncode == 0, proc.stderr
    assert "RNG_OK cupy." in proc.stdout


@gpu_test
def test_bench_gpu_runs():
    proc = run_python(["-m", "minivae", "bench-gpu", "--repeats", "3", "--steps", "3"], "numpy")
    assert proc.returncode == 0, proc.stderr
    for K, B in ((50, 20), (50, 1000), (5000, 100), (5000, 2000)):
        assert f"{K:>5} {B:>5}  fused " in proc.stdout
    assert "training step" in proc.stdout and "backend cupy" in proc.stdout
