"""The linear-Gaussian model (hidden=()): where every quantity has a closed form.

With decoder x = W z + b + noise, noise ~ N(0, σ² I), the marginal is
p(x) = N(x; b, WᵀW + σ² I) and the posterior p(z|x) = N(M⁻¹ W (x - b)/σ², M⁻¹) with
M = I + W Wᵀ/σ². When W has orthogonal rows, M is diagonal, the diagonal Gaussian encoder can
be set to the exact posterior, and then every importance weight equals p(x): L_K = log p(x)
for every K and every ε.
"""
import numpy as np
import pytest
from scipy.stats import multivariate_normal

import minivae
from helpers import host

D, d = 5, 2


def exact_model(seed=0, likelihood="gaussian", analytic_kl=None):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((D, d)))
    W = (np.array([1.5, 0.7])[:, None] * q.T)           # (d, D), orthogonal rows
    b = rng.standard_normal(D)
    sigma2 = 0.3
    M = np.eye(d) + W @ W.T / sigma2                       # diagonal
    Minv = np.diag(1 / np.diag(M))
    model = (minivae.IWAE(D, d, hidden=(), likelihood=likelihood, dtype="float64")
             if analytic_kl is None else
             minivae.VAE(D, d, hidden=(), likelihood=likelihood, dtype="float64",
                         analytic_kl=analytic_kl))
    p = model.params
    p["decoder.mean.W"][...] = W
    p["decoder.mean.b"][...] = b
    p["decoder.logvar.W"][...] = 0
    p["decoder.logvar.b"][...] = np.log(sigma2)
    A = W.T @ Minv / sigma2                                # (D, d): posterior mean map
    p["encoder.mean.W"][...] = A
    p["encoder.mean.b"][...] = -b @ A
    p["encoder.logvar.W"][...] = 0
    p["encoder.logvar.b"][...] = np.log(np.diag(Minv))
    marginal = multivariate_normal(b, W.T @ W + sigma2 * np.eye(D))
    return model, marginal, rng


@pytest.mark.parametrize("k", [1, 2, 7, 50])
def test_exact_posterior_makes_every_bound_exact(k):
    model, marginal, rng = exact_model()
    x = marginal.rvs(6, random_state=1)
    log_px = marginal.logpdf(x)
    for trial in range(3):
        eps = rng.standard_normal((k, 6, d)) * (1 + 3 * trial)   # even far-out noise
        assert np.allclose(host(model.bound(x, k, eps=eps)), log_px, rtol=0, atol=1e-10)
        log_w, _ = model.log_weights(x, k, eps=eps)
        assert np.allclose(host(log_w), log_px, rtol=0, atol=1e-10)


def test_exact_posterior_makes_the_analytic_kl_bound_exact_in_expectation():
    """With q = p(z|x), L_1 = log p(x) - KL(q‖p(z|x)) = log p(x); the analytic-KL estimator
    equals it up to Monte Carlo error of E_q[log p(x|z)] (checked with many samples)."""
    model, marginal, rng = exact_model(analytic_kl=True)
    x = marginal.rvs(4, random_state=2)
    value = host(model.bound(x, 200000))
    assert np.allclose(value, marginal.logpdf(x), atol=0.01)


def perturbed(seed=0):
    model, marginal, rng = exact_model(seed)
    model.params["encoder.mean.b"][...] += 0.8              # an inexact encoder
    model.params["encoder.logvar.b"][...] -= 0.7
    return model, marginal, rng


def test_bounds_increase_with_k_towards_log_px():
    """Monte Carlo averages: L_1 ≤ L_5 ≤ L_50 ≤ log p(x), and the gap shrinks with K.

    Each E[L_K] is estimated from R = 4000 independent draws; the orderings are asserted
    with a margin of 4 standard errors of the difference.
    """
    model, marginal, rng = perturbed()
    x = marginal.rvs(3, random_state=3)
    log_px = marginal.logpdf(x)
    R = 4000
    means, ses = {}, {}
    for k in (1, 5, 50):
        # R independent replications in one call: x repeated R times, fresh ε for each row.
        draws = host(model.bound(np.tile(x, (R, 1)), k)).reshape(R, len(x))     # (R, B)
        means[k], ses[k] = draws.mean(0), draws.std(0) / np.sqrt(R)
    for lo, hi in ((1, 5), (5, 50)):
        margin = 4 * np.hypot(ses[lo], ses[hi])
        assert np.all(means[lo] < means[hi] + margin)
        assert np.all(means[hi] - means[lo] > 0.05)                   # strictly, not by luck
    assert np.all(means[50] < log_px + 4 * ses[50])
    gaps = [np.mean(log_px - means[k]) for k in (1, 5, 50)]
    assert gaps[0] > gaps[1] > gaps[2] > 0


def test_analytic_and_monte_carlo_vae_bounds_agree_in_expectation():
    """E_ε[L_1 with sampled KL] = L_1 with analytic KL: both estimate the same ELBO.

    With the same ε, the two differ only in the KL term, so we compare their means over
    R = 20000 draws; the tolerance is 4 standard errors of the difference of the means.
    """
    model, marginal, rng = perturbed(1)
    analytic = minivae.VAE(D, d, hidden=(), likelihood="gaussian", dtype="float64",
                           analytic_kl=True)
    for n, p in model.params.items():
        analytic.params[n][...] = p
    x = marginal.rvs(3, random_state=4)
    R = 20000
    eps = rng.standard_normal((R, 3, d))
    mc = host(model.log_weights(x, R, eps=eps)[0])           # (R, B): one L_1 draw per row
    log_px_z, _ = analytic.forward(x, R, eps=eps)
    log_px_z = host(log_px_z)
    mean, logvar = host(*analytic.encode(x))
    kl = 0.5 * (mean ** 2 + np.exp(logvar) - 1 - logvar).sum(-1)
    an = log_px_z - kl
    diff = mc - an
    se = diff.std(0) / np.sqrt(R)
    assert np.all(np.abs(diff.mean(0)) < 4 * se), (diff.mean(0), se)
    assert np.allclose(host(analytic.bound(x, R, eps=eps)), an.mean(0))
