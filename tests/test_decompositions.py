"""The VAE bound's two decompositions, checked in the linear-Gaussian model.

For any q(z|x),
    L_1 = E_q[log p(x, z) - log q(z|x)]
        = ℓ(θ) - KL(q ‖ p(z|x))                  (1: the gap is the posterior KL)
        = E_q[log p(x|z)] - KL(q ‖ p(z))          (2: reconstruction minus prior KL)
With hidden=() and a Gaussian likelihood, minivae's IWAE is the linear-Gaussian model, where
ℓ(θ), p(z|x) and all the Gaussian expectations are closed forms (minivae.lecture.linear).

The engine's side is made exact as well: log w(ε) = log p(x|z) + log p(z) - log q(z|x) at
z = μ + σ ⊙ ε is a quadratic polynomial in ε, and the 2d points ±√d e_i with weights 1/(2d)
integrate every polynomial of degree ≤ 3 exactly against N(0, I_d). So averaging the model's
own log-weights over those points is E_q[...] up to rounding, and each decomposition is
compared with the engine at 1e-9, not at a Monte Carlo tolerance.
"""
import numpy as np
import pytest

import minivae
from minivae.lecture.linear import expected_log_likelihood, kl_gaussians, log_marginal, posterior
from helpers import host

P, D = 6, 3                      # x in R^6, z in R^3


def random_linear_model(seed):
    """A linear-Gaussian IWAE (float64) with random decoder and an inexact encoder."""
    rng = np.random.default_rng(seed)
    model = minivae.IWAE(P, D, hidden=(), likelihood="gaussian", dtype="float64", seed=seed)
    prm = model.params
    prm["decoder.mean.W"][...] = rng.normal(0, 1, (D, P))
    prm["decoder.mean.b"][...] = rng.normal(0, 1, P)
    prm["decoder.logvar.W"][...] = 0                       # noise independent of z
    prm["decoder.logvar.b"][...] = rng.normal(-1, 0.3, P)
    for name in ("encoder.mean.W", "encoder.mean.b", "encoder.logvar.W", "encoder.logvar.b"):
        prm[name][...] = rng.normal(0, 0.3, prm[name].shape)
    W = host(prm["decoder.mean.W"]).T                      # (P, D): x = W z + b + noise
    b, psi = host(prm["decoder.mean.b"]), np.exp(host(prm["decoder.logvar.b"]))
    x = rng.standard_normal((5, D)) @ W.T + b + rng.standard_normal((5, P)) * np.sqrt(psi)
    return model, x, W, b, psi


def cubature_eps(batch):
    """The 2d points ±√d e_i as eps of shape (2d, batch, d), exact for degree ≤ 3."""
    pts = np.sqrt(D) * np.concatenate([np.eye(D), -np.eye(D)])
    return np.repeat(pts[:, None, :], batch, axis=1)


def closed_forms(model, x, W, b, psi):
    m_q, logvar_q = host(*model.encode(x))
    S_q = np.stack([np.diag(np.exp(v)) for v in logvar_q])          # (B, d, d)
    m_post, S_post = posterior(x, W, b, psi)
    return {
        "loglik": log_marginal(x, W, b, psi),
        "kl_posterior": kl_gaussians(m_q, S_q, m_post, S_post),
        "reconstruction": expected_log_likelihood(x, W, b, psi, m_q, S_q),
        "kl_prior": kl_gaussians(m_q, S_q, np.zeros_like(m_q), np.eye(D)),
    }


def engine_expectations(model, x):
    """E_q of log w and of log p(x|z) from the engine's own forward pass, by exact cubature."""
    eps = cubature_eps(len(x))
    log_w, cache = model.log_weights(x, len(eps), eps=eps)
    log_px, _ = model.forward(x, len(eps), eps=eps)
    return host(log_w.mean(axis=0), log_px.mean(axis=0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bound_is_loglik_minus_kl_to_the_posterior(seed):
    model, x, W, b, psi = random_linear_model(seed)
    c = closed_forms(model, x, W, b, psi)
    L1, _ = engine_expectations(model, x)
    assert np.all(c["kl_posterior"] > 0.05)                          # q is really inexact
    np.testing.assert_allclose(L1, c["loglik"] - c["kl_posterior"], rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bound_is_reconstruction_minus_kl_to_the_prior(seed):
    model, x, W, b, psi = random_linear_model(seed)
    c = closed_forms(model, x, W, b, psi)
    L1, rec = engine_expectations(model, x)
    np.testing.assert_allclose(rec, c["reconstruction"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(L1, c["reconstruction"] - c["kl_prior"], rtol=0, atol=1e-9)
    # The analytic-KL VAE subtracts KL(q ‖ p(z)) itself: with the same cubature its bound is
    # E_q[log p(x|z)] - KL exactly.
    vae = minivae.VAE(P, D, hidden=(), likelihood="gaussian", dtype="float64", analytic_kl=True)
    for name, value in model.params.items():
        vae.params[name][...] = value
    eps = cubature_eps(len(x))
    np.testing.assert_allclose(host(vae.bound(x, len(eps), eps=eps)),
                               c["reconstruction"] - c["kl_prior"], rtol=0, atol=1e-9)


def test_monte_carlo_bound_agrees_with_the_decompositions():
    """The ordinary estimator, with random ε, is centred on the same value (a sanity check of
    the cubature argument: 200,000 draws, within 5 standard errors)."""
    model, x, W, b, psi = random_linear_model(3)
    c = closed_forms(model, x, W, b, psi)
    n = 200_000
    log_w, _ = model.log_weights(x, n, eps=np.random.default_rng(0).standard_normal((n, 5, D)))
    log_w = host(log_w)
    se = log_w.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(log_w.mean(axis=0) - (c["loglik"] - c["kl_posterior"])) < 5 * se)


def test_kl_to_the_posterior_vanishes_at_the_exact_posterior():
    """With q = p(z|x) (representable when the posterior covariance is diagonal), KL = 0 and
    L_1 = ℓ(θ): both decompositions then say the same thing as the closed forms."""
    model, x, W, b, psi = random_linear_model(4)
    psi = np.full(P, psi.mean())
    q_, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((P, D)))
    W = q_ * np.array([2.0, 1.0, 0.5])                  # orthogonal columns: G diagonal
    prm = model.params
    prm["decoder.mean.W"][...] = W.T
    prm["decoder.logvar.b"][...] = np.log(psi)
    G = np.linalg.inv(np.eye(D) + W.T @ W / psi[0])
    A = W @ G / psi[0]                                  # m = A^T (x - b)
    prm["encoder.mean.W"][...] = A
    prm["encoder.mean.b"][...] = -b @ A
    prm["encoder.logvar.W"][...] = 0
    prm["encoder.logvar.b"][...] = np.log(np.diag(G))
    c = closed_forms(model, x, W, b, psi)
    np.testing.assert_allclose(c["kl_posterior"], 0, atol=1e-10)
    L1, _ = engine_expectations(model, x)
    np.testing.assert_allclose(L1, c["loglik"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(c["reconstruction"] - c["kl_prior"], c["loglik"], atol=1e-9)
