"""Lab 6: the IWAE bound and its gradient; the fused CUDA kernel's running (max, sum) pairs.

Checks: every function against minivae's (minivae.ops.logsumexp_weights, minivae.bound,
minivae.ops.lse_push/lse_merge), and against something independent of it:
logsumexp_weights and iwae_bound against scipy.special.logsumexp on random log-weights and on
named special columns (around ±1000 nats, some -inf entries, a single finite entry, all -inf);
iwae_bound_grad and iwae_encoder_grads against five-point finite differences of minivae's bound
(the latter through a small linear-Gaussian decoder), dreg_encoder_grads against finite
differences of DReG's surrogate (the w̃_k² held fixed, q's parameters frozen at the point), and iwae_bound_grad's special columns
against minivae's; lse_push and lse_merge by folding columns (random, huge, with -inf
entries, empty) into pairs and comparing m + log s with SciPy's log-sum-exp and m with the
column's max.
"""
import math

import numpy as np
from scipy.special import logsumexp

from .common import LinearGaussianDecoder
from .core import CheckFailed, as_array, call, check_gradient, compare, library, unpack

NUMBER = 6
FOLDER = "06_iwae_bound"
TITLE = "The IWAE bound and its gradient; reading the fused CUDA log-sum-exp kernel"
MINUTES = "75-105 min"
TEACHES = ("log-sum-exp with the max shift, the normalized importance weights as the gradient "
           "of the log-mean-exp, the IWAE encoder gradient, L_K rising with K towards log p(x), "
           "and how a GPU kernel computes it all in one pass")
SOLUTION = [
    "minivae.ops.logsumexp_weights",
    "minivae.bound.iwae_bound",
    "minivae.bound.iwae_bound_grad",
    "minivae.bound.iwae_encoder_grads",
    "minivae.bound.dreg_encoder_grads",
    "minivae.ops.lse_push",
    "minivae.ops.lse_merge",
]
K, B, D = 5, 4, 2
NEG_INF = -math.inf
#: The special columns of _log_w(extreme=True), named in a FAIL message.
SPECIAL = {2: "log-weights around -1000 nats", 3: "log-weights around +1000 nats",
           4: "two -inf entries", 5: "a single finite entry", 6: "all -inf"}


def lib(name):
    return library(SOLUTION, name)


def _log_w(seed, extreme=True):
    """(K, 7) log-weights: two ordinary columns and, with extreme, the SPECIAL ones (without,
    seven ordinary columns)."""
    rng = np.random.default_rng(seed)
    log_w = 3 * rng.standard_normal((K, 7)) - 5
    if extreme:
        log_w[:, 2] = -1000 + 10 * rng.standard_normal(K)
        log_w[:, 3] = 1000 + 10 * rng.standard_normal(K)
        log_w[[0, 2], 4] = NEG_INF
        log_w[1:, 5] = NEG_INF
        log_w[:, 6] = NEG_INF
    return log_w


def _scipy_lse_weights(log_w):
    """SciPy's log-sum-exp, and the weights exp(log w - lse), 0 in an all -inf column."""
    lse = logsumexp(log_w, axis=0)
    with np.errstate(invalid="ignore"):
        return lse, np.where(np.isneginf(lse), 0.0, np.exp(log_w - lse))


def _lse_weights(mod):
    log_w = _log_w(60)
    lse, w = unpack(call(mod, "logsumexp_weights", log_w), 2, "logsumexp_weights")
    lse, w = as_array(lse, (7,), "lse"), as_array(w, (K, 7), "weights")
    lib_lse, lib_w = lib("logsumexp_weights")(log_w)
    scipy_lse, scipy_w = _scipy_lse_weights(log_w)
    return [compare("lse", lse, lib_lse, "minivae.ops", columns=SPECIAL),
            compare("weights", w, lib_w, "minivae.ops", columns=SPECIAL),
            compare("lse", lse, scipy_lse, "scipy.special.logsumexp", columns=SPECIAL),
            compare("weights", w, scipy_w, "exp(log w - lse) (SciPy)", columns=SPECIAL)]


def _bound(mod):
    log_w = _log_w(61)
    got = as_array(call(mod, "iwae_bound", log_w), (7,), "iwae_bound(...)")
    return [compare("L_K", got, lib("iwae_bound")(log_w), "minivae.bound", columns=SPECIAL),
            compare("L_K", got, logsumexp(log_w, axis=0) - math.log(K),
                    "scipy.special.logsumexp - log K", columns=SPECIAL)]


def _bound_grad(mod):
    log_w = _log_w(62, extreme=False)
    got = call(mod, "iwae_bound_grad", log_w)

    def f():
        return float(lib("iwae_bound")(log_w).sum())
    out = check_gradient(f, {"log_w": log_w}, {"log_w": got}, prefix="∂L/∂")
    # Where a finite difference is meaningless (±1000 nats, -inf entries, an all -inf
    # column: L_K = -inf, and the gradient is 0 there, not NaN), against minivae's.
    special = _log_w(63)
    got = as_array(call(mod, "iwae_bound_grad", special), (K, 7), "iwae_bound_grad(...)")
    return out + [compare("∂L/∂log_w", got, lib("iwae_bound_grad")(special), "minivae.bound",
                          columns=SPECIAL)]


def _log_weights(decoder, x, eps, mean, logvar):
    """log w = log p(x|z) + log p(z) - log q(z|x) at z = μ + e^{v/2} ε, with minivae's bound."""
    from .. import bound
    z = bound.reparametrize(mean, logvar, eps)
    return decoder.log_px(x, z) + bound.log_prior(z) - bound.log_q(eps, logvar)


def _encoder_problem(mod, name, seed):
    """An encoder-gradient check's inputs (μ, v, ε, a small linear-Gaussian decoder, x, log w,
    ∂ log p(x|z)/∂z), the student's ``name``(log_w, dlogpx_dz, eps, mean, logvar) and the
    library's, compared; returns (inputs, student's (dmean, dlogvar), comparisons)."""
    from .. import bound
    rng = np.random.default_rng(seed)
    mean, logvar = rng.standard_normal((B, D)), 0.7 * rng.standard_normal((B, D))
    eps = rng.standard_normal((K, B, D))
    decoder = LinearGaussianDecoder(rng, D, 5)
    x = rng.standard_normal((B, 5))
    log_w = _log_weights(decoder, x, eps, mean, logvar)
    dlogpx_dz = decoder.grad_z(x, bound.reparametrize(mean, logvar, eps))
    dmean, dlogvar = unpack(call(mod, name, log_w, dlogpx_dz, eps, mean, logvar), 2, name)
    dmean, dlogvar = as_array(dmean, (B, D), "dmean"), as_array(dlogvar, (B, D), "dlogvar")
    lib_dmean, lib_dlogvar = lib(name)(log_w, dlogpx_dz, eps, mean, logvar)
    inputs = dict(mean=mean, logvar=logvar, eps=eps, decoder=decoder, x=x, log_w=log_w)
    return inputs, {"mean": dmean, "logvar": dlogvar}, \
        [compare("dmean", dmean, lib_dmean, "minivae.bound"),
         compare("dlogvar", dlogvar, lib_dlogvar, "minivae.bound")]


def _encoder_grads(mod):
    p, grads, same = _encoder_problem(mod, "iwae_encoder_grads", 64)
    mean, logvar = p["mean"], p["logvar"]

    def f():
        return float(lib("iwae_bound")(_log_weights(p["decoder"], p["x"], p["eps"], mean,
                                                    logvar)).sum())
    return check_gradient(f, {"mean": mean, "logvar": logvar}, grads) + same


def _dreg_encoder_grads(mod):
    """DReG (Tucker et al. 2019): the gradient with respect to μ, v of the surrogate
    Σ_kb c_kb [log p(x_b|z_kb) + log p(z_kb) - log q_0(z_kb)], z = μ + e^{v/2} ε, with
    c = w̃² and q_0's mean and variance held at the point; and minivae's own."""
    from .. import bound
    from ..likelihoods import LOG_2PI
    p, grads, same = _encoder_problem(mod, "dreg_encoder_grads", 66)
    mean, logvar, eps = p["mean"], p["logvar"], p["eps"]
    c = bound.iwae_bound_grad(p["log_w"]) ** 2
    mean0, logvar0 = mean.copy(), logvar.copy()

    def f():
        z = bound.reparametrize(mean, logvar, eps)
        log_q0 = (-0.5 * (z - mean0) ** 2 * np.exp(-logvar0) - 0.5 * logvar0
                  - 0.5 * LOG_2PI).sum(axis=-1)
        return float((c * (p["decoder"].log_px(p["x"], z) + bound.log_prior(z)
                           - log_q0)).sum())
    return check_gradient(f, {"mean": mean, "logvar": logvar}, grads) + same


def _columns():
    """Columns (lists of floats) to fold: random, huge, increasing (each entry a new max),
    -inf first, all -inf."""
    rng = np.random.default_rng(65)
    return [list(3 * rng.standard_normal(9)), list(-1000 + 30 * rng.standard_normal(7)),
            list(np.linspace(-800, 800, 6)), [NEG_INF, 2.0, NEG_INF, 1.0, -3.0],
            [NEG_INF, NEG_INF]]


COLUMN_NAMES = {0: "random", 1: "around -1000", 2: "increasing from -800 to 800",
                3: "-inf entries first", 4: "all -inf"}


def _pair(value, what):
    m, s = unpack(value, 2, what)
    try:
        return float(m), float(s)
    except (TypeError, ValueError):
        raise CheckFailed(f"{what} should return two floats (m, s)") from None


def _fold_results(pairs, columns, what):
    """m + log s and m against SciPy's log-sum-exp and the max of each column."""
    lse = [m + math.log(s) if s > 0 else (NEG_INF if s == 0 else math.nan) for m, s in pairs]
    ref = np.array([logsumexp(c) for c in columns])
    return [compare(f"m + log s ({what})", np.array(lse), ref, "scipy.special.logsumexp",
                    columns=COLUMN_NAMES),
            compare(f"m ({what})", np.array([m for m, _ in pairs]),
                    np.array([max(c) for c in columns]), "the column's max",
                    columns=COLUMN_NAMES)]


def _fold(push, col):
    m, s = NEG_INF, 0.0
    for x in col:
        m, s = push(m, s, float(x))
    return m, s


def _push(mod):
    columns = _columns()
    pairs = [_fold(lambda m, s, x: _pair(call(mod, "lse_push", m, s, x), "lse_push"), col)
             for col in columns]
    ref = [_fold(lib("lse_push"), col) for col in columns]
    return _fold_results(pairs, columns, "folded with lse_push") + [
        compare("(m, s) (folded with lse_push)", np.array(pairs), np.array(ref), "minivae.ops")]


def _merge(mod):
    columns = _columns()
    out = []
    for merge in (lambda *a: _pair(call(mod, "lse_merge", *a), "lse_merge"), lib("lse_merge")):
        pairs = []
        for col in columns:
            # Each entry its own pair, plus empty pairs; merged as a tree, as a warp's shuffles.
            level = [(x, 1.0) if x != NEG_INF else (NEG_INF, 0.0) for x in col]
            level += [(NEG_INF, 0.0)] * 3
            while len(level) > 1:
                nxt = [merge(*level[i], *level[i + 1]) for i in range(0, len(level) - 1, 2)]
                level = nxt + ([level[-1]] if len(level) % 2 else [])
            pairs.append(level[0])
        out.append(pairs)
    return _fold_results(out[0], columns, "merged with lse_merge") + [
        compare("(m, s) (merged with lse_merge)", np.array(out[0]), np.array(out[1]),
                "minivae.ops")]


CHECKS = [
    ("logsumexp_weights", _lse_weights),
    ("iwae_bound", _bound),
    ("iwae_bound_grad", _bound_grad),
    ("iwae_encoder_grads", _encoder_grads),
    ("dreg_encoder_grads", _dreg_encoder_grads),
    ("lse_push", _push),
    ("lse_merge", _merge),
]
