"""Lab 2: linear latent variable models. Fill in the NotImplementedError stubs.

The model, with x ∈ R^p, z ∈ R^d (d < p), W: (p, d), μ: (p,) and a diagonal noise covariance
Ψ = Diag(ψ), ψ: (p,) > 0:

    z ~ N(0, I_d),    x | z ~ N(W z + μ, Ψ),    so    x ~ N(μ, C),   C = W Wᵀ + Ψ.

PPCA is Ψ = σ² I_p; factor analysis (FA) lets every ψ_j differ. Rows of X are examples: (n, p).
Use numpy / scipy freely (np.linalg.eigh, np.linalg.slogdet, np.linalg.solve, ...).

Check your work with:   python -m minivae.labs check 2
"""
import numpy as np


def log_marginal(X, W, mu, psi):
    """log p(x_n) = log N(x_n; μ, W Wᵀ + Diag(ψ)) for each row of X: (n, p) -> (n,)."""
    raise NotImplementedError("log_marginal: return log p(x_n), shape (n,)")


def posterior(X, W, mu, psi):
    """The exact posterior p(z | x_n) = N(m_n, G): return (m, G) with m: (n, d), G: (d, d)."""
    raise NotImplementedError("posterior: return m (n, d), G (d, d)")


def ppca_fit(X, d):
    """The maximum-likelihood PPCA fit (Tipping & Bishop), with the sample covariance
    S = (1/n) Σ_n (x_n - x̄)(x_n - x̄)ᵀ. Return (W (p, d), mu (p,), sigma2 (a float)).
    (W is only defined up to a rotation W R: the checks compare W Wᵀ.)"""
    raise NotImplementedError("ppca_fit: return W, mu, sigma2")


def fa_em_step(S, W, psi):
    """One EM iteration of factor analysis, from the sample covariance S (p, p) (data centred
    by their mean, which is μ's maximum-likelihood value).

    E-step: the posterior of each z_n (see posterior()), summarised through S.
    M-step: maximise the expected complete-data log-likelihood in W, then in ψ (with the new W).
    Return (W_new (p, d), psi_new (p,)).
    """
    raise NotImplementedError("fa_em_step: return W_new, psi_new")
