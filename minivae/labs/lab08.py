"""Lab 8: missing data with MIWAE: the masked bound, its gradient, imputation by importance
sampling (single: SNIS; multiple: SIR).

Checks: masked_log_weights against minivae's IWAE.log_weights with a mask (a small float64
model with Gaussian observations); miwae_head_grads against five-point finite differences of
the masked bound; snis_impute and sir_indices against the computations of
minivae.impute.MIWAEImputer (written out below with minivae.ops.logsumexp_weights_reference), by
the relative error of the worst entry.
"""
import math

import numpy as np

from ..likelihoods import Gaussian
from ..model import IWAE
from ..ops import logsumexp_weights_reference
from .common import random_params
from .core import as_array, call, check_gradient, compare

NUMBER = 8
FOLDER = "08_missing_data_miwae"
TITLE = "Missing data with MIWAE: the masked bound and imputation by importance sampling"
MINUTES = "60-90 min"
TEACHES = ("why a factorised decoder makes missing features drop out of the likelihood, the "
           "MIWAE bound and its gradient, single imputation by self-normalised importance "
           "sampling and multiple imputation by resampling")


# ------------------------------------------------------------------ the reference (minivae)
def ref_masked_log_weights(log_phi, mask, z, eps, logvar):
    """As IWAE.forward/log_weights with a mask: Σ_j m_j log Φ_j + log p(z) - log q(z|x)."""
    return (log_phi * mask).sum(axis=-1) + IWAE.log_prior(z) - \
        IWAE.log_posterior_approx(eps, logvar)


def ref_miwae_head_grads(log_w, dlogphi, mask):
    """As IWAE._backward: ∂(Σ_b L_K)/∂η_kbj = w̃_kb m_bj ∂ log Φ_kbj/∂η."""
    w = logsumexp_weights_reference(log_w)[1]
    return w[..., None] * mask * dlogphi


def ref_snis_impute(x, mask, log_w, means):
    """As MIWAEImputer._conditional_mean (one pass): Σ_l w̃_l E[x|z_l], observed entries kept."""
    w = logsumexp_weights_reference(log_w)[1]
    return np.where(mask, x, (w[..., None] * means).sum(axis=0))


def ref_sir_indices(log_w, u):
    """As MIWAEImputer._resample: inverse CDF of the normalized weights, column by column."""
    cdf = np.cumsum(logsumexp_weights_reference(log_w)[1], axis=0)
    idx = np.stack([np.searchsorted(cdf[:, b], u[:, b] * cdf[-1, b], side="right")
                    for b in range(cdf.shape[1])], axis=1)
    return np.minimum(idx, len(cdf) - 1)


def solution():
    """minivae's computations (minivae/model.py and minivae/impute.py), as quoted above."""
    return _namespace(masked_log_weights=ref_masked_log_weights,
                     miwae_head_grads=ref_miwae_head_grads, snis_impute=ref_snis_impute,
                     sir_indices=ref_sir_indices)


# ------------------------------------------------------------------ checks
def _masked_log_weights(mod):
    rng = np.random.default_rng(80)
    K, B, D, d = 4, 5, 6, 2
    model = IWAE(D, d, hidden=(4,), likelihood="gaussian", dtype="float64", seed=8)
    random_params(model.params, rng)
    x = rng.standard_normal((B, D))
    mask = rng.random((B, D)) < 0.6
    mask[0] = True                              # a complete row
    mask[1] = False                             # an empty row: log w = log p(z) - log q
    eps = rng.standard_normal((K, B, d))
    ref, cache = model.log_weights(x, K, eps=eps, mask=mask)
    log_phi = Gaussian.log_prob(cache["x"], **cache["heads"])
    log_phi = np.where(mask, log_phi, 100 * rng.standard_normal(log_phi.shape))  # junk
    got = call(mod, "masked_log_weights", log_phi, mask.copy(), cache["z"].copy(), eps.copy(),
               cache["logvar"].copy())
    return [compare("log w", as_array(got, (K, B), "log w"), ref,
                    "minivae.model.IWAE.log_weights(mask=...)")]


def _head_grads(mod):
    rng = np.random.default_rng(81)
    K, B, D = 5, 4, 6
    x = rng.standard_normal((B, D))
    mask = rng.random((B, D)) < 0.6
    mean, logvar = rng.standard_normal((K, B, D)), 0.5 * rng.standard_normal((K, B, D))
    rest = rng.standard_normal((K, B))          # log p(z) - log q(z|x), fixed here

    def log_w():
        return (Gaussian.log_prob(x, mean, logvar) * mask).sum(axis=-1) + rest

    dlogphi = Gaussian.log_prob_grads(x, mean, logvar)["mean"]
    got = call(mod, "miwae_head_grads", log_w(), dlogphi, mask.copy())

    def f():
        lse, _ = logsumexp_weights_reference(log_w())
        return float((lse - math.log(K)).sum())
    return check_gradient(f, {"mean": mean}, {"mean": got}, prefix="∂L/∂")


def _snis(mod):
    rng = np.random.default_rng(82)
    L, B, D = 50, 4, 6
    x = rng.standard_normal((B, D))
    mask = rng.random((B, D)) < 0.5
    mask[0] = True
    x_in = np.where(mask, x, np.nan)
    log_w = 20 * rng.standard_normal((L, B)) - 500     # far from 0: needs the max shift
    means = rng.standard_normal((L, B, D))
    got = call(mod, "snis_impute", x_in.copy(), mask.copy(), log_w.copy(), means.copy())
    got = as_array(got, (B, D), "x̂")
    return [compare("x̂", got, ref_snis_impute(x_in, mask, log_w, means),
                    "Σ_l w̃_l E[x|z_l] (minivae.impute)")]


def _sir(mod):
    rng = np.random.default_rng(83)
    L, B, M = 30, 5, 8
    log_w = 3 * rng.standard_normal((L, B)) + 200
    u = rng.random((M, B))
    got = as_array(call(mod, "sir_indices", log_w.copy(), u.copy()), (M, B), "indices")
    return [compare("index", got, ref_sir_indices(log_w, u), "inverse CDF (minivae.impute)")]


CHECKS = [
    ("masked_log_weights", _masked_log_weights),
    ("miwae_head_grads", _head_grads),
    ("snis_impute", _snis),
    ("sir_indices", _sir),
]


def _namespace(**functions):
    import types
    ns = types.SimpleNamespace(**functions)
    ns.__file__ = None
    return ns
