"""Lab 6: the IWAE bound and its gradient; the fused CUDA kernel's running (max, sum) pairs.

Checks: logsumexp_weights and iwae_bound against minivae.ops.logsumexp_weights_reference on
random log-weights, including columns of ±1000 nats and -inf entries; iwae_bound_grad and
iwae_encoder_grads against five-point finite differences (the latter through a small
linear-Gaussian decoder); lse_push and lse_merge by folding columns (random, huge, with -inf
entries, empty) into pairs and comparing m + log s with the reference log-sum-exp and m with
the column's max.
"""
import math
import time

import numpy as np

from .. import backend, gradcheck
from ..lecture import toy
from ..model import IWAE
from ..ops import logsumexp_weights_reference
from .common import LinearGaussianDecoder, mnist, random_params, test_bound, train
from .core import CheckFailed, as_array, call, check_gradient, compare, namespace, unpack

NUMBER = 6
FOLDER = "06_iwae_bound"
TITLE = "The IWAE bound and its gradient; reading the fused CUDA log-sum-exp kernel"
MINUTES = "75-105 min"
TEACHES = ("log-sum-exp with the max shift, the normalized importance weights as the gradient "
           "of the log-mean-exp, the IWAE encoder gradient, L_K rising with K towards log p(x), "
           "and how a GPU kernel computes it all in one pass")
RUN_DESCRIPTION = ("L_K against the exact log p(x) on the lecture's toy model, L_K rising with "
                   "K on MNIST, and the CUDA kernel run on the CPU (through the emulation "
                   "header) against the NumPy reference")

K, B, D = 5, 4, 2
NEG_INF = -math.inf


# ------------------------------------------------------------------ the reference (minivae)
def ref_iwae_bound(log_w):
    lse, _ = logsumexp_weights_reference(log_w)
    return lse - math.log(log_w.shape[0])


def ref_iwae_bound_grad(log_w):
    """∂ L_K / ∂ log w_k = w̃_k (minivae/model.py, IWAE._bound_and_backward_inputs)."""
    return logsumexp_weights_reference(log_w)[1]


def log_prior(z):
    return IWAE.log_prior(z)


def ref_log_weights(decoder, x, eps, mean, logvar):
    z = mean + np.exp(0.5 * logvar) * eps
    return decoder.log_px(x, z) + IWAE.log_prior(z) - IWAE.log_posterior_approx(eps, logvar)


def ref_iwae_encoder_grads(log_w, dlogpx_dz, eps, mean, logvar):
    """As IWAE._bound_and_backward_inputs and IWAE._backward (without the 1/B): with g = w̃,
    ∂/∂z_k = g_k (∂ log p(x|z_k)/∂z - z_k); ∂/∂μ = Σ_k ∂/∂z_k;
    ∂/∂v = Σ_k ∂/∂z_k ⊙ ε_k ⊙ ½ e^{v/2} + ½ Σ_k g_k."""
    g = ref_iwae_bound_grad(log_w)
    z = mean + np.exp(0.5 * logvar) * eps
    dz = g[..., None] * (dlogpx_dz - z)
    return dz.sum(axis=0), (dz * eps).sum(axis=0) * 0.5 * np.exp(0.5 * logvar) + \
        0.5 * g.sum(axis=0)[:, None]


def _scale(a, m):
    """exp(a - m) for a <= m, and 1 when a == m (no inf - inf): the kernel's scale()."""
    return 1.0 if a == m else math.exp(a - m)


def ref_lse_push(m, s, x):
    """The kernel's push(): a new max rescales the sum; -inf adds nothing."""
    if x > m:
        return x, s * _scale(m, x) + 1.0
    if x != NEG_INF:
        return m, s + _scale(x, m)
    return m, s


def ref_lse_merge(m1, s1, m2, s2):
    """The kernel's merge()."""
    m = m1 if m1 > m2 else m2
    return m, s1 * _scale(m1, m) + s2 * _scale(m2, m)


def solution():
    """minivae's implementation: minivae.ops.logsumexp_weights_reference and the formulas of
    minivae/model.py; lse_push and lse_merge are the kernel's push() and merge() in Python."""
    return namespace(logsumexp_weights=logsumexp_weights_reference, iwae_bound=ref_iwae_bound,
                     iwae_bound_grad=ref_iwae_bound_grad,
                     iwae_encoder_grads=ref_iwae_encoder_grads,
                     lse_push=ref_lse_push, lse_merge=ref_lse_merge)


# ------------------------------------------------------------------ checks
def _log_w(seed, extreme=True):
    """(K, 6) log-weights: two ordinary columns and, with extreme, columns around -1000 and
    +1000 nats, a column with -inf entries and one with a single finite entry."""
    rng = np.random.default_rng(seed)
    log_w = 3 * rng.standard_normal((K, 6)) - 5
    if extreme:
        log_w[:, 2] = -1000 + 10 * rng.standard_normal(K)
        log_w[:, 3] = 1000 + 10 * rng.standard_normal(K)
        log_w[[0, 2], 4] = NEG_INF
        log_w[1:, 5] = NEG_INF
    return log_w


def _lse_weights(mod):
    log_w = _log_w(60)
    lse, w = unpack(call(mod, "logsumexp_weights", log_w.copy()), 2, "logsumexp_weights")
    ref_lse, ref_w = logsumexp_weights_reference(log_w)
    return [compare("lse", as_array(lse, (6,), "lse"), ref_lse, "minivae.ops"),
            compare("weights", as_array(w, (K, 6), "weights"), ref_w, "minivae.ops")]


def _bound(mod):
    log_w = _log_w(61)
    got = as_array(call(mod, "iwae_bound", log_w.copy()), (6,), "iwae_bound(...)")
    return [compare("L_K", got, ref_iwae_bound(log_w), "minivae.ops logsumexp - log K")]


def _bound_grad(mod):
    log_w = _log_w(62, extreme=False)
    got = call(mod, "iwae_bound_grad", log_w.copy())

    def f():
        return float(ref_iwae_bound(log_w).sum())
    return check_gradient(f, {"log_w": log_w}, {"log_w": got}, prefix="∂L/∂")


def _encoder_grads(mod):
    rng = np.random.default_rng(63)
    mean, logvar = rng.standard_normal((B, D)), 0.7 * rng.standard_normal((B, D))
    eps = rng.standard_normal((K, B, D))
    decoder = LinearGaussianDecoder(rng, D, 5)
    x = rng.standard_normal((B, 5))
    z = mean + np.exp(0.5 * logvar) * eps
    log_w = ref_log_weights(decoder, x, eps, mean, logvar)
    dmean, dlogvar = unpack(call(mod, "iwae_encoder_grads", log_w, decoder.grad_z(x, z),
                                 eps.copy(), mean.copy(), logvar.copy()), 2,
                            "iwae_encoder_grads")

    def f():
        return float(ref_iwae_bound(ref_log_weights(decoder, x, eps, mean, logvar)).sum())
    return check_gradient(f, {"mean": mean, "logvar": logvar}, {"mean": dmean, "logvar": dlogvar})


def _columns():
    """Columns (lists of floats) to fold: random, huge, increasing (each entry a new max),
    -inf first, all -inf."""
    rng = np.random.default_rng(64)
    return [list(3 * rng.standard_normal(9)), list(-1000 + 30 * rng.standard_normal(7)),
            list(np.linspace(-800, 800, 6)), [NEG_INF, 2.0, NEG_INF, 1.0, -3.0],
            [NEG_INF, NEG_INF]]


def _pair(value, what):
    m, s = unpack(value, 2, what)
    try:
        return float(m), float(s)
    except (TypeError, ValueError):
        raise CheckFailed(f"{what} should return two floats (m, s)") from None


def _fold_results(pairs, columns, what):
    """Comparisons of m + log s and m against the reference lse and the max of each column."""
    lse = [m + math.log(s) if s > 0 else (NEG_INF if s == 0 else math.nan) for m, s in pairs]
    ref = logsumexp_weights_reference(np.array([c + [NEG_INF] * (9 - len(c))
                                                for c in columns]).T)[0]
    return [compare(f"m + log s ({what})", np.array(lse), ref, "minivae.ops"),
            compare(f"m ({what})", np.array([m for m, _ in pairs]),
                    np.array([max(c) for c in columns]), "the column's max")]


def _push(mod):
    columns = _columns()
    pairs = []
    for col in columns:
        m, s = NEG_INF, 0.0
        for x in col:
            m, s = _pair(call(mod, "lse_push", m, s, float(x)), "lse_push")
        pairs.append((m, s))
    return _fold_results(pairs, columns, "folded with lse_push")


def _merge(mod):
    columns = _columns()
    pairs = []
    for col in columns:
        # Each entry its own pair, plus empty pairs; merged as a tree, as the warp's shuffles do.
        level = [ref_lse_push(NEG_INF, 0.0, x) for x in col] + [(NEG_INF, 0.0)] * 3
        while len(level) > 1:
            nxt = [_pair(call(mod, "lse_merge", *level[i], *level[i + 1]), "lse_merge")
                   for i in range(0, len(level) - 1, 2)]
            level = nxt + ([level[-1]] if len(level) % 2 else [])
        pairs.append(level[0])
    return _fold_results(pairs, columns, "merged with lse_merge")


CHECKS = [
    ("logsumexp_weights", _lse_weights),
    ("iwae_bound", _bound),
    ("iwae_bound_grad", _bound_grad),
    ("iwae_encoder_grads", _encoder_grads),
    ("lse_push", _push),
    ("lse_merge", _merge),
]


# ------------------------------------------------------------------ now on real data
def _toy(args):
    n, reps, ks = (3, 5, (1, 10, 100)) if args.quick else (5, 50, (1, 10, 100, 1000, 10000))
    _, x = toy.sample(n, seed=args.seed)
    exact = toy.log_marginal(x)
    rng = np.random.default_rng(args.seed)
    print(f"1. The lecture's toy model (d = 1, p = 2), where quadrature gives log p(x) exactly. "
          f"L_K with the prior as\n   proposal, {reps} draws averaged, {n} points x ~ p(x); "
          f"mean log p(x) = {exact.mean():.4f}:")
    for k in ks:
        vals = []
        for _ in range(reps):
            z = rng.standard_normal((k, n))
            log_w = toy.log_joint(x[None], z) - toy.log_prior(z)     # w = p(x|z): q = p(z)
            vals.append(ref_iwae_bound(log_w).mean())
        se = np.std(vals, ddof=1) / np.sqrt(reps)
        print(f"   K = {k:6d}   L_K = {np.mean(vals):9.4f} ± {se:.4f}   gap log p(x) - L_K = "
              f"{exact.mean() - np.mean(vals):8.4f}")
    print("   (± one standard error of the average: a gap within it of 0 is L_K = log p(x) to "
          "the precision of the draws.)")


def _mnist(args):
    n_train, seconds, n_test, ks = (500, 2, 20, (1, 5, 50)) if args.quick else \
        (10000, 25, 100, (1, 5, 50, 500))
    x_train, _, x_test, _ = mnist(n_train=n_train, binarize=False)
    x_eval = (np.random.default_rng(1).random(x_test.shape) < x_test).astype(float)[:n_test]
    model = IWAE(784, 20, hidden=(100,), seed=args.seed)
    print(f"\n2. An IWAE 784-100-20 trained with K = 5 for {seconds} s on {n_train} MNIST "
          f"digits; L_K on {n_test} test digits:")
    train(model, x_train, seconds=seconds, k=5, seed=args.seed)
    for k in ks:
        model.rng = backend.default_rng(args.seed)
        print(f"   K = {k:4d}   L_K = {test_bound(model, x_eval, k, batch_size=20):8.2f} nats")
    print("   L_K rises with K (Burda et al.'s theorem) towards log p(x); the estimate of log p(x) "
          "in papers is L_5000.")
    return model, x_eval


def _kernel(args, model, x_eval):
    from . import kernel_cpu
    from .. import cuda
    print("\n3. The fused CUDA kernel (kernels/logsumexp_weights.cu) against the NumPy "
          "reference (minivae.ops), on\n   the model's own log-weights and on columns with "
          "special values.")
    k = 50 if args.quick else 500
    log_w, _ = model.log_weights(x_eval, k)
    log_w = backend.to_numpy(log_w).astype(np.float64)
    special = np.full((k, 4), -5.0)
    special[:, 0] = -np.inf                        # all -inf: lse -inf, weights 0
    special[::2, 1] = -np.inf                      # some -inf: weight 0
    special[:, 2] = np.linspace(-1000, 1000, k)    # a spread of 2000 nats
    special[3, 3] = np.nan                         # NaN: the whole column NaN
    inputs = np.concatenate([log_w, special], axis=1)

    def report(where, fn):
        for dtype in (np.float64, np.float32):
            x = inputs.astype(dtype)
            t0 = time.perf_counter()
            lse, w = fn(x)
            dt = time.perf_counter() - t0
            ref_lse, ref_w = logsumexp_weights_reference(x)
            same = np.array_equal(np.isnan(lse), np.isnan(ref_lse)) and \
                np.array_equal(np.isnan(w), np.isnan(ref_w))
            with np.errstate(invalid="ignore"):
                e_lse = np.nanmax(np.where(lse == ref_lse, 0, np.abs(lse - ref_lse) /
                                           np.abs(ref_lse)))
                e_w = np.nanmax(np.abs(w - ref_w))
            print(f"   {where:<22} {np.dtype(dtype).name}: ({k}, {x.shape[1]})  max rel. diff. "
                  f"of lse {e_lse:.1e}, max abs. diff. of weights {e_w:.1e}, NaN in the same "
                  f"places: {'yes' if same else 'NO'}  ({1e3 * dt:.0f} ms)")

    try:
        kernel = kernel_cpu.EmulatedKernel()
    except RuntimeError as e:
        print(f"   (skipped on the CPU: {e})")
    else:
        grid, block = cuda.launch_shape(k, inputs.shape[1], 8)
        print(f"   compiled with the host compiler through kernels/cuda_emulation.h; launch "
              f"shape for float64: grid {grid[0]}, block {block[0]} x {block[1]}")
        report("CPU (emulated threads)", kernel)
    ok, why = cuda.gpu_available()
    if ok:
        import cupy
        report(f"GPU ({why})", lambda x: tuple(cupy.asnumpy(a) for a in
                                               cuda.logsumexp_weights(cupy.asarray(x))))
    else:
        print(f"   (no GPU run: {why})")


def run(args):
    _toy(args)
    model, x_eval = _mnist(args)
    _kernel(args, model, x_eval)
