"""Lab 6: the IWAE bound and its gradient; the fused CUDA kernel's running (max, sum) pairs.

Checks: logsumexp_weights and iwae_bound against minivae.ops.logsumexp_weights_reference on
random log-weights, including columns of ±1000 nats and -inf entries; iwae_bound_grad and
iwae_encoder_grads against five-point finite differences (the latter through a small
linear-Gaussian decoder); lse_push and lse_merge by folding columns (random, huge, with -inf
entries, empty) into pairs and comparing m + log s with the reference log-sum-exp and m with
the column's max.
"""
import math

import numpy as np

from ..model import IWAE
from ..ops import logsumexp_weights_reference
from .common import LinearGaussianDecoder
from .core import CheckFailed, as_array, call, check_gradient, compare, unpack

NUMBER = 6
FOLDER = "06_iwae_bound"
TITLE = "The IWAE bound and its gradient; reading the fused CUDA log-sum-exp kernel"
MINUTES = "75-105 min"
TEACHES = ("log-sum-exp with the max shift, the normalized importance weights as the gradient "
           "of the log-mean-exp, the IWAE encoder gradient, L_K rising with K towards log p(x), "
           "and how a GPU kernel computes it all in one pass")

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
    return _namespace(logsumexp_weights=logsumexp_weights_reference, iwae_bound=ref_iwae_bound,
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


def _namespace(**functions):
    import types
    ns = types.SimpleNamespace(**functions)
    ns.__file__ = None
    return ns
