"""Lab 8: missing data with MIWAE: the masked bound, its gradient, imputation by importance
sampling (single: SNIS; multiple: SIR).

Checks: every function against minivae's (minivae.bound.masked_log_weights and
miwae_head_grads, minivae.impute.snis_impute and sir_indices) and against something
independent of it: the log-weights against SciPy's normal densities, with junk in the missing
entries, a complete row and an empty one; the head gradient against five-point finite
differences of minivae's masked bound; the imputation against SciPy's softmax weights; the
resampled indices against the definition (the smallest l with cumsum(w̃)[l] > u, clipped to
L - 1), at u = 0 next to zero weights and at u just below 1.
"""
import math

import numpy as np
from scipy import special, stats

from ..likelihoods import gaussian_grads, gaussian_log_prob
from .core import as_array, call, check_gradient, compare, library

NUMBER = 8
FOLDER = "08_missing_data_miwae"
TITLE = "Missing data with MIWAE: the masked bound and imputation by importance sampling"
MINUTES = "60-90 min"
TEACHES = ("why a factorised decoder makes missing features drop out of the likelihood, the "
           "MIWAE bound and its gradient, single imputation by self-normalised importance "
           "sampling and multiple imputation by resampling")
SOLUTION = [
    "minivae.bound.masked_log_weights",
    "minivae.bound.miwae_head_grads",
    "minivae.impute.snis_impute",
    "minivae.impute.sir_indices",
]
ROWS = {0: "a complete row", 1: "an empty row (every feature missing)"}


def lib(name):
    return library(SOLUTION, name)


def _masked_log_weights(mod):
    rng = np.random.default_rng(80)
    K, B, D, d = 4, 5, 6, 2
    mask = rng.random((B, D)) < 0.6
    mask[0], mask[1] = True, False
    log_phi = np.where(mask, -rng.random((K, B, D)), 100 * rng.standard_normal((K, B, D)))
    logvar = 0.5 * rng.standard_normal((B, d))
    eps = rng.standard_normal((K, B, d))
    z = rng.standard_normal((B, d)) + np.exp(0.5 * logvar) * eps
    got = as_array(call(mod, "masked_log_weights", log_phi, mask, z, eps, logvar), (K, B),
                   "log w")
    log_q = stats.norm.logpdf(eps).sum(-1) - 0.5 * logvar.sum(-1)     # the Jacobian of ε -> z
    direct = np.where(mask, log_phi, 0).sum(-1) + stats.norm.logpdf(z).sum(-1) - log_q
    return [compare("log w", got, lib("masked_log_weights")(log_phi, mask, z, eps, logvar),
                    "minivae.bound", columns=ROWS),
            compare("log w", got, direct, "Σ_observed log Φ + log p(z) - log q(z|x) (SciPy)",
                    columns=ROWS)]


def _head_grads(mod):
    rng = np.random.default_rng(81)
    K, B, D = 5, 4, 6
    x = rng.standard_normal((B, D))
    mask = rng.random((B, D)) < 0.6
    mask[0], mask[1] = True, False
    mean, logvar = rng.standard_normal((K, B, D)), 0.5 * rng.standard_normal((K, B, D))
    rest = rng.standard_normal((K, B))          # log p(z) - log q(z|x), fixed here

    def log_w():
        return (gaussian_log_prob(x, mean, logvar) * mask).sum(axis=-1) + rest

    dlogphi = gaussian_grads(x, mean, logvar)["mean"]
    got = as_array(call(mod, "miwae_head_grads", log_w(), dlogphi, mask), (K, B, D),
                   "∂L/∂mean")
    ref = lib("miwae_head_grads")(log_w(), dlogphi, mask)

    def f():
        return float(library(["minivae.bound.iwae_bound"], "iwae_bound")(log_w()).sum())
    return check_gradient(f, {"mean": mean}, {"mean": got}, prefix="∂L/∂") + \
        [compare("∂L/∂mean", got, ref, "minivae.bound")]


def _snis(mod):
    rng = np.random.default_rng(82)
    L, B, D = 50, 4, 6
    x = rng.standard_normal((B, D))
    mask = rng.random((B, D)) < 0.5
    mask[0] = True
    x_in = np.where(mask, x, np.nan)
    log_w = 20 * rng.standard_normal((L, B)) - 500     # far from 0: needs the max shift
    means = rng.standard_normal((L, B, D))
    got = as_array(call(mod, "snis_impute", x_in, mask, log_w, means), (B, D), "x̂")
    weights = special.softmax(log_w, axis=0)
    return [compare("x̂", got, lib("snis_impute")(x_in, mask, log_w, means), "minivae.impute"),
            compare("x̂", got, np.where(mask, x_in, (weights[..., None] * means).sum(axis=0)),
                    "Σ_l w̃_l E[x|z_l] (SciPy's softmax)")]


SIR_COLUMNS = {0: "u just below 1, where cumsum(w̃) ends below u (a clip to L - 1)",
               1: "u = 0 with w̃_0 = 0 (searchsorted side='right')",
               2: "u = 0 with w̃_0 = w̃_1 = 0"}


def _sir(mod):
    L, B, M = 30, 5, 8
    rng = np.random.default_rng(0)
    log_w = 3 * rng.standard_normal((L, B)) + 200
    log_w[0, 1] = -math.inf
    log_w[:2, 2] = -math.inf
    u = np.random.default_rng(83).random((M, B))
    u[0] = 0.0
    u[1] = np.nextafter(1.0, 0.0)
    got = as_array(call(mod, "sir_indices", log_w, u), (M, B), "indices")
    # The definition: the smallest l with cumsum(w̃)[l] > u, clipped to L - 1 against rounding.
    cdf = np.cumsum(special.softmax(log_w, axis=0), axis=0)
    definition = np.minimum((cdf[None] <= u[:, None]).sum(axis=1), L - 1)
    return [compare("index", got, lib("sir_indices")(log_w, u), "minivae.impute",
                    columns=SIR_COLUMNS),
            compare("index", got, definition, "smallest l with cumsum(w̃)[l] > u",
                    columns=SIR_COLUMNS)]


CHECKS = [
    ("masked_log_weights", _masked_log_weights),
    ("miwae_head_grads", _head_grads),
    ("snis_impute", _snis),
    ("sir_indices", _sir),
]
