"""One gradient of the IWAE bound, timed beside its matrix-product floor, PyTorch and JAX.

The problem is Burda et al.'s MNIST model by default: 784-200-200-50, tanh, Bernoulli
observations, batch B = 20, K = 50, float32. Every contender computes the mean bound L_K over
the batch and its gradient with respect to every parameter, from the *same* parameters, data
and noise ε, so the bounds they print must agree to rounding:

- ``minivae``: :meth:`minivae.model.IWAE.bound_and_grads` (hand-written backward);
- ``floor``: the same matrix products alone (7 forward, 13 backward for two hidden layers),
  nothing elementwise: no implementation of this formulation can be faster than that;
- ``pytorch eager``, ``torch.compile`` and ``jax.jit(value_and_grad)``: the same bound written
  for autodiff, each only if the library is installed (they are benchmark-only dependencies,
  never needed at run time or in the tests: ``pip install torch jax``);
- optionally the ``minivae`` of another checkout (:func:`load_checkout`), for before/after.

Timing: one process, interleaved rounds (each round times every contender once, so all see the
same machine load), the median round reported; with more than one thread, a short pause before
each round lets the previous contender's spinning pool threads go to sleep (:data:`SETTLE`). Threads: the BLAS pools (threadpoolctl), PyTorch's
intra-op pool and XLA's are all set to the same count; XLA reads its flags when JAX is first
imported, so set the count before calling :func:`jax_contender`.
"""
import dataclasses
import importlib.util
import math
import os
import statistics
import sys
import time

import numpy

from . import backend
from .likelihoods import LOG_2PI


@dataclasses.dataclass
class Problem:
    """Parameters, data and noise shared by every contender (NumPy arrays, on the host)."""
    x_dim: int
    z_dim: int
    hidden: tuple
    batch_size: int
    k: int
    dtype: str
    params: dict          # name -> array, minivae's names and shapes (h @ W + b)
    x: numpy.ndarray      # (B, D) binary
    eps: numpy.ndarray    # (K, B, d) standard normal

    def describe(self):
        arch = "-".join(str(w) for w in (self.x_dim,) + self.hidden + (self.z_dim,))
        return (f"{arch} tanh Bernoulli, batch {self.batch_size}, K = {self.k}, {self.dtype}")


def make_problem(x_dim=784, z_dim=50, hidden=(200, 200), batch_size=20, k=50,
                 dtype="float32", seed=0):
    """The shared problem: minivae's Glorot initialisation, binary x (30% ones), ε ~ N(0, I)."""
    from .model import IWAE
    model = IWAE(x_dim, z_dim, hidden=hidden, likelihood="bernoulli", dtype=dtype, seed=seed)
    rng = numpy.random.default_rng(seed)
    x = (rng.random((batch_size, x_dim)) < 0.3).astype(dtype)
    eps = rng.standard_normal((k, batch_size, z_dim)).astype(dtype)
    params = {n: backend.to_numpy(p).copy() for n, p in model.params.items()}
    return Problem(x_dim, z_dim, tuple(hidden), batch_size, k, dtype, params, x, eps)


# ------------------------------------------------------------------------------ contenders
# Each returns (step, bound): step() computes the bound and all gradients once; bound is the
# float it computed on the shared problem.

def minivae_contender(problem, model_module=None):
    """minivae's own gradient; ``model_module`` (default :mod:`minivae.model`) may be the model
    module of another checkout (see :func:`load_checkout`) to time old against new."""
    if model_module is None:
        from . import model as model_module
    xpm = model_module.xp
    model = model_module.IWAE(problem.x_dim, problem.z_dim, hidden=problem.hidden,
                              likelihood="bernoulli", dtype=problem.dtype, seed=0)
    for name, p in problem.params.items():
        model.params[name][...] = xpm.asarray(p)
    x, eps = xpm.asarray(problem.x), xpm.asarray(problem.eps)

    def step():
        return model.bound_and_grads(x, problem.k, eps=eps, check=False)

    return step, float(step()[0])


def floor_contender(problem):
    """The matrix products of one gradient and nothing else, on arrays of the same shapes.

    Forward: every affine map of encoder and decoder (h @ W). Backward: xᵀ dout for every W
    and dout Wᵀ for every layer input that is not data (the encoder's x is not). The operands
    are views laid out as minivae's backward uses them (transposes are free views).
    """
    xp = backend.xp
    rng = numpy.random.default_rng(1)
    dt = problem.dtype

    def rand(*shape):
        return backend.asarray(rng.standard_normal(shape), dtype=dt)

    B, N = problem.batch_size, problem.k * problem.batch_size
    enc = (problem.x_dim,) + problem.hidden
    dec = (problem.z_dim,) + problem.hidden[::-1] + (problem.x_dim,)
    layers = [(B, enc[i], enc[i + 1], i > 0) for i in range(len(problem.hidden))]
    layers += [(B, enc[-1], problem.z_dim, len(problem.hidden) > 0)] * 2       # mean, logvar
    layers += [(N, dec[i], dec[i + 1], True) for i in range(len(dec) - 1)]
    products = []
    for rows, fan_in, fan_out, need_dx in layers:
        h, W, dout = rand(rows, fan_in), rand(fan_in, fan_out), rand(rows, fan_out)
        products.append((h, W))                  # forward   h @ W
        products.append((h.T, dout))             # backward  ∂W = hᵀ dout
        if need_dx:
            products.append((dout, W.T))         # backward  ∂h = dout Wᵀ
    problem.n_products = len(products)

    def step():
        for a, b in products:
            a @ b

    return step, None


def peer_bound(problem, np_like, softplus, logsumexp, params, x, eps):
    """The mean bound L_K over the batch, written once for any NumPy-like library with autodiff
    (``torch`` or ``jax.numpy``): the peers differentiate this, minivae has its own backward."""
    def affine(h, name):
        return h @ params[f"{name}.W"] + params[f"{name}.b"]

    h = x
    for i in range(len(problem.hidden)):
        h = np_like.tanh(affine(h, f"encoder.{i}"))
    mean, logvar = affine(h, "encoder.mean"), affine(h, "encoder.logvar")
    z = mean + np_like.exp(0.5 * logvar) * eps                                 # (K, B, d)
    h = z
    for i in range(len(problem.hidden)):
        h = np_like.tanh(affine(h, f"decoder.{i}"))
    logits = affine(h, "decoder.logits")
    log_px = (x * logits - softplus(logits)).sum(-1)
    log_pz = -0.5 * (z * z).sum(-1) - 0.5 * z.shape[-1] * LOG_2PI
    log_qz = -0.5 * (eps * eps).sum(-1) - 0.5 * logvar.sum(-1) - 0.5 * z.shape[-1] * LOG_2PI
    log_w = log_px + log_pz - log_qz
    return (logsumexp(log_w, 0) - math.log(log_w.shape[0])).mean()


def torch_contender(problem, compiled=False):
    """The bound in PyTorch, differentiated by autograd (eager, or ``torch.compile``d)."""
    import torch

    dt = getattr(torch, problem.dtype)
    params = {n: torch.tensor(p, dtype=dt, requires_grad=True) for n, p in problem.params.items()}
    x, eps = torch.tensor(problem.x, dtype=dt), torch.tensor(problem.eps, dtype=dt)

    def bound():
        return peer_bound(problem, torch, torch.nn.functional.softplus, torch.logsumexp,
                          params, x, eps)

    if compiled:
        bound = torch.compile(bound)

    def step():
        for p in params.values():
            p.grad = None
        value = bound()
        value.backward()
        return value

    return step, float(step().detach())


def jax_contender(problem):
    """The bound in JAX, ``jax.jit(jax.value_and_grad(bound))``."""
    import jax
    import jax.numpy as jnp

    def bound(params, x, eps):
        return peer_bound(problem, jnp, jax.nn.softplus, jax.scipy.special.logsumexp,
                          params, x, eps)

    grad_fn = jax.jit(jax.value_and_grad(bound))
    params = {n: jnp.asarray(p) for n, p in problem.params.items()}
    x, eps = jnp.asarray(problem.x), jnp.asarray(problem.eps)

    def step():
        return jax.block_until_ready(grad_fn(params, x, eps))

    return step, float(step()[0])


# ------------------------------------------------------------------------------ threads and peers

def xla_thread_flags(threads):
    """XLA_FLAGS that keep XLA's CPU backend to one thread (XLA has no other knob for that)."""
    if threads == 1:
        return "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    return ""


def set_peer_threads(threads):
    """Set PyTorch's and XLA's thread counts (before JAX is imported: XLA reads its flags once)."""
    flags = xla_thread_flags(threads)
    if flags and flags not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
    if installed("torch"):
        import torch
        torch.set_num_threads(threads)


def installed(module):
    return importlib.util.find_spec(module) is not None


def peer_contenders(problem, peers=True, against=()):
    """Build every contender: name -> (step, bound). Peers only if installed."""
    out = {"minivae": minivae_contender(problem),
           "floor (matrix products alone)": floor_contender(problem)}
    for label, module in against:
        out[f"minivae ({label})"] = minivae_contender(problem, module)
    if peers and installed("torch"):
        import torch
        out[f"pytorch {torch.__version__.split('+')[0]} eager"] = torch_contender(problem)
        out[f"pytorch {torch.__version__.split('+')[0]} torch.compile"] = \
            torch_contender(problem, compiled=True)
    if peers and installed("jax"):
        import jax
        out[f"jax {jax.__version__} jit(value_and_grad)"] = jax_contender(problem)
    return out


def load_checkout(path, name="minivae_before"):
    """Import the ``minivae`` package of another checkout (e.g. the code before a change) under
    the module name ``name`` and return its model module, for :func:`minivae_contender`."""
    init = os.path.join(path, "minivae", "__init__.py")
    if not os.path.isfile(init):
        raise ValueError(f"{path} holds no minivae package (no {init})")
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[os.path.dirname(init)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return importlib.import_module(f"{name}.model")


#: "wall": elapsed time (what a user waits for); "cpu": the process's CPU time, which does not
#: count the time spent waiting for a core on a busy machine (with one thread it is close to
#: the elapsed time on an idle machine; with more it adds up every thread's work).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _timed(fn, repeats, clock=time.perf_counter):
    backend.synchronize()
    start = clock()
    for _ in range(repeats):
        fn()
    backend.synchronize()
    return (clock() - start) / repeats


#: Seconds to pause before timing a contender when it runs with more than one thread. After its
#: last product a BLAS or OpenMP pool keeps its worker threads spinning for a while (OpenBLAS:
#: about 2^28 cycles, ~0.1 s), and those spinning threads take a core from whatever runs next:
#: measured on 2 cores, minivae's two-block step ran 9.15 ms right after the floor's two-thread
#: products and 7.57 ms after a 0.3 s pause. Every contender starts from a quiet machine.
SETTLE = 0.25


def settle_seconds(threads):
    """The pause before each timed round: :data:`SETTLE` with more than one thread, else 0."""
    return SETTLE if threads > 1 else 0.0


def time_interleaved(steps, repeats=50, rounds=5, warmup=3, clock="wall", settle=0.0):
    """Median seconds per call of every step (dict name -> callable), rounds interleaved;
    ``settle`` seconds of pause before each timed round (see :data:`SETTLE`)."""
    clock = CLOCKS[clock]
    for fn in steps.values():
        _timed(fn, warmup, clock)
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            if settle:
                time.sleep(settle)
            times[name].append(_timed(fn, repeats, clock))
    return {name: statistics.median(ts) for name, ts in times.items()}


def report(problem, contenders, medians, out=print):
    """The table: ms per gradient, examples/s, minivae's time over each, and each bound."""
    ours = medians["minivae"]
    out(f"  {'implementation':<40} {'ms/grad':>8} {'ex/s':>7} {'minivae/this':>13} {'bound':>12}")
    for name, t in medians.items():
        value = contenders[name][1]
        shown = "" if value is None else f"{value:12.4f}"
        out(f"  {name:<40} {t * 1e3:8.2f} {problem.batch_size / t:7.0f} {ours / t:13.2f} "
            f"{shown:>12}")
    compiled = [t for n, t in medians.items() if "compile" in n or "jit" in n]
    floor = medians["floor (matrix products alone)"]
    out(f"  floor / minivae = {floor / ours:.2f} (1 = nothing but the {problem.n_products} "
        f"matrix products)")
    if compiled:
        out(f"  best compiled peer / minivae = {min(compiled) / ours:.2f} (> 1: minivae faster)")
