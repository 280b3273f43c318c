"""Lab 2: linear latent variable models: PPCA's closed form, factor analysis by EM, log p(x).

No gradients here. Every function is compared with minivae.lecture.linear's on random linear-Gaussian
data, and with something independent of it: SciPy's multivariate normal density for log p(x),
Bayes' rule log p(x) = log p(x|z) + log p(z) - log p(z|x) at arbitrary z for the posterior,
the eigendecomposition of S for PPCA, and the monotone log-likelihood of 30 EM steps. PPCA's W
is only defined up to a rotation, so the checks compare W Wᵀ.
"""
import numpy as np
from scipy import stats

from .core import CheckFailed, as_array, call, compare, library, unpack

NUMBER = 2
FOLDER = "02_linear_models"
TITLE = "Linear latent variable models: PPCA in closed form, factor analysis by EM"
MINUTES = "60-90 min"
TEACHES = ("the marginal likelihood of a linear-Gaussian model (Woodbury, determinant lemma), "
           "the exact posterior, PPCA's maximum likelihood from an eigendecomposition, EM and "
           "its monotone log-likelihood: the exact versions of what a DLVM approximates")
SOLUTION = [
    "minivae.lecture.linear.log_marginal",
    "minivae.lecture.linear.posterior",
    "minivae.lecture.linear.ppca_fit",
    "minivae.lecture.linear.fa_em_step",
]


def _data(seed, n=300, p=7, d=2):
    """Linear-Gaussian data with heteroscedastic noise, and random (W, μ, ψ) to evaluate at."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((p, d))
    mu = rng.normal(2.0, 1.0, p)
    psi = rng.uniform(0.2, 1.0, p)
    X = rng.standard_normal((n, d)) @ W.T + mu + rng.standard_normal((n, p)) * np.sqrt(psi)
    W0, mu0, psi0 = rng.standard_normal((p, d)), rng.standard_normal(p), rng.uniform(0.3, 2, p)
    return X, W0, mu0, psi0


def _log_marginal(mod):
    X, W, mu, psi = _data(20)
    got = as_array(call(mod, "log_marginal", X, W, mu, psi), (len(X),), "log_marginal(...)")
    scipy_ref = stats.multivariate_normal(mu, W @ W.T + np.diag(psi)).logpdf(X)
    return [compare("log p(x)", got, library(SOLUTION, "log_marginal")(X, W, mu, psi),
                    "minivae.lecture.linear"),
            compare("log p(x)", got, scipy_ref, "scipy.stats.multivariate_normal")]


def _posterior(mod):
    X, W, mu, psi = _data(21)
    m, G = unpack(call(mod, "posterior", X, W, mu, psi), 2, "posterior")
    lib_m, lib_G = library(SOLUTION, "posterior")(X, W, mu, psi)
    m, G = as_array(m, lib_m.shape, "m"), as_array(G, lib_G.shape, "G")
    out = [compare("m", m, lib_m, "minivae.lecture.linear"),
           compare("G", G, lib_G, "minivae.lecture.linear")]
    # Bayes' rule holds at every z: log p(x) = log p(x|z) + log p(z) - log p(z|x).
    z = np.random.default_rng(26).standard_normal(m.shape)
    try:
        log_post = np.array([stats.multivariate_normal(mi, G).logpdf(zi) for mi, zi in zip(m, z)])
    except (ValueError, np.linalg.LinAlgError):
        raise CheckFailed("G is not a covariance matrix (symmetric positive definite)") from None
    bayes = (stats.norm.logpdf(X, z @ W.T + mu, np.sqrt(psi)).sum(1)
             + stats.norm.logpdf(z).sum(1) - log_post)
    marginal = stats.multivariate_normal(mu, W @ W.T + np.diag(psi)).logpdf(X)
    return out + [compare("log p(x|z) + log p(z) - log N(z; m, G)", bayes, marginal,
                          "log p(x) (Bayes' rule)", tol=1e-9)]


def _ppca(mod):
    out = []
    for seed, d in ((22, 2), (23, 3)):
        X, _, _, _ = _data(seed, d=2)
        W, mu, s2 = unpack(call(mod, "ppca_fit", X, d), 3, "ppca_fit")
        W = as_array(W, (X.shape[1], d), "W")
        lib_W, lib_mu, lib_s2 = library(SOLUTION, "ppca_fit")(X, d)
        # Tipping & Bishop from the eigendecomposition of S (1/n): σ² the mean of the rest.
        lam, U = np.linalg.eigh(np.cov(X.T, bias=True))
        lam, U = lam[::-1], U[:, ::-1]
        eig_s2 = lam[d:].mean()
        eig_W = U[:, :d] * np.sqrt(lam[:d] - eig_s2)
        out += [compare(f"W Wᵀ (d={d})", W @ W.T, lib_W @ lib_W.T, "minivae.lecture.linear"),
                compare(f"mu (d={d})", as_array(mu, lib_mu.shape, "mu"), lib_mu,
                        "minivae.lecture.linear"),
                compare(f"sigma2 (d={d})", as_array(s2, (), "sigma2"), lib_s2,
                        "minivae.lecture.linear"),
                compare(f"W Wᵀ (d={d})", W @ W.T, eig_W @ eig_W.T, "eigh of S", tol=1e-6),
                compare(f"sigma2 (d={d})", s2, eig_s2, "eigh of S", tol=1e-6)]
    return out


def _loglike(S, W, psi):
    """The mean log-likelihood per example from the covariance S (data centred at μ̂)."""
    C = W @ W.T + np.diag(psi)
    _, logdet = np.linalg.slogdet(C)
    return -0.5 * (len(psi) * np.log(2 * np.pi) + logdet + np.trace(np.linalg.solve(C, S)))


def _fa(mod):
    X, W, _, psi = _data(24, d=2)
    Xc = X - X.mean(axis=0)
    S = Xc.T @ Xc / len(X)
    W1, psi1 = unpack(call(mod, "fa_em_step", S, W, psi), 2, "fa_em_step")
    lib_W1, lib_psi1 = library(SOLUTION, "fa_em_step")(S, W, psi)
    out = [compare("W_new", as_array(W1, W.shape, "W_new"), lib_W1, "minivae.lecture.linear"),
           compare("psi_new", as_array(psi1, psi.shape, "psi_new"), lib_psi1,
                   "minivae.lecture.linear")]
    # 30 steps of the EM from a fresh start: the log-likelihood must never decrease.
    rng = np.random.default_rng(25)
    W, psi = rng.standard_normal(W.shape), np.diag(S).copy()
    ll = [_loglike(S, W, psi)]
    for i in range(30):
        W, psi = unpack(call(mod, "fa_em_step", S, W, psi), 2, "fa_em_step")
        W, psi = as_array(W, lib_W1.shape, "W_new"), as_array(psi, lib_psi1.shape, "psi_new")
        if np.any(psi <= 0):
            raise CheckFailed(f"psi_new has a non-positive entry after {i + 1} EM steps")
        ll.append(_loglike(S, W, psi))
        if ll[-1] < ll[-2] - 1e-9 * abs(ll[-2]):
            raise CheckFailed(f"EM step {i + 1} lowered the log-likelihood from {ll[-2]:.6f} "
                              f"to {ll[-1]:.6f}: EM never does")
    return out


CHECKS = [
    ("log_marginal", _log_marginal),
    ("posterior", _posterior),
    ("ppca_fit", _ppca),
    ("fa_em_step", _fa),
]
