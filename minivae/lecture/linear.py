"""Linear-Gaussian latent variable models: probabilistic PCA and factor analysis.

The lecture's first latent variable models, before the decoder becomes a neural network:

    z ~ N(0, I_d),    x | z ~ N(W z + mu, Psi),    so    x ~ N(mu, C),  C = W W^T + Psi,

with x in R^p, z in R^d (d < p), W of shape (p, d) and a diagonal noise covariance Psi:
Psi = sigma^2 I_p for probabilistic PCA (Tipping & Bishop, 1999), Psi = Diag(psi_1..psi_p) for
factor analysis. Everything is in closed form: the marginal log-likelihood, the exact posterior
p(z|x) = N(G W^T Psi^-1 (x - mu), G) with G = (I_d + W^T Psi^-1 W)^-1, and the Gaussian
expectations and KL divergences that make up the VAE bound (used to check the bound's two
decompositions numerically, see ``tests/test_decompositions.py``).

The two estimators follow scikit-learn's conventions (``fit``, ``score``, ``score_samples``,
``transform``, ``sample``; attributes ``components_`` = W^T of shape (d, p), ``mean_`` = mu,
``noise_variance_``) and ``score`` is exactly scikit-learn's ``PCA.score`` /
``FactorAnalysis.score``: the mean of log N(x_n; mu, C) over the rows. Plain NumPy/SciPy on the
host: these models are small demonstrations, not part of the GPU path.
"""
import numpy as np
import scipy.linalg

from .. import backend, validate
from ..likelihoods import LOG_2PI
from ..model import IWAE
from ..optim import Adam
from ..train import train_epoch



# --- closed forms of the linear-Gaussian model --------------------------------------------------

def _inner(W, psi):
    """A = I_d + W^T Psi^-1 W (d, d): the posterior precision, and the matrix whose determinant
    gives |C| = |A| prod(psi) (the matrix determinant lemma)."""
    return np.eye(W.shape[1]) + (W.T / psi) @ W


def log_marginal(X, W, mu, psi):
    """log p(x_n) = log N(x_n; mu, W W^T + Diag(psi)) for each row, shape (n,).

    X (n, p), W (p, d), mu (p,), psi (p,) > 0. Uses the Woodbury identity
    C^-1 = Psi^-1 - Psi^-1 W A^-1 W^T Psi^-1 and |C| = |A| |Psi|, so the cost is O(n p d), never
    a p x p inverse.
    """
    X, W, mu, psi = (np.asarray(a, dtype=float) for a in (X, W, mu, psi))
    Xc = X - mu
    cho = scipy.linalg.cho_factor(_inner(W, psi), lower=True)
    B = Xc / psi @ W                                            # (n, d) = (x - mu)^T Psi^-1 W
    quad = np.sum(Xc * Xc / psi, axis=1) - np.sum(B * scipy.linalg.cho_solve(cho, B.T).T, axis=1)
    logdet = 2.0 * np.sum(np.log(np.diag(cho[0]))) + np.sum(np.log(psi))
    return -0.5 * (X.shape[1] * LOG_2PI + logdet + quad)


def posterior(X, W, mu, psi):
    """The exact posterior p(z|x_n) = N(m_n, G): means m (n, d) and the shared covariance G (d, d).

    G = (I_d + W^T Psi^-1 W)^-1 and m_n = G W^T Psi^-1 (x_n - mu): conjugacy of the Gaussian
    prior and the linear-Gaussian likelihood. G does not depend on x.
    """
    X, W, mu, psi = (np.asarray(a, dtype=float) for a in (X, W, mu, psi))
    G = np.linalg.inv(_inner(W, psi))
    G = 0.5 * (G + G.T)                                         # symmetric to rounding
    return (X - mu) / psi @ W @ G, G


def kl_gaussians(m0, S0, m1, S1):
    """KL(N(m0, S0) || N(m1, S1)) for each row: m0, m1 (n, d); S0, S1 (d, d) or (n, d, d).

    0.5 [tr(S1^-1 S0) + (m1 - m0)^T S1^-1 (m1 - m0) - d + log|S1| - log|S0|].
    """
    m0, m1 = np.atleast_2d(m0), np.atleast_2d(m1)
    shape = m0.shape + m0.shape[-1:]                            # (n, d, d)
    S0, S1 = np.broadcast_to(S0, shape), np.broadcast_to(S1, shape)
    d = m0.shape[-1]
    S1inv = np.linalg.inv(S1)
    diff = m1 - m0
    trace = np.einsum("nij,nji->n", S1inv, S0)
    maha = np.einsum("ni,nij,nj->n", diff, S1inv, diff)
    return 0.5 * (trace + maha - d + np.linalg.slogdet(S1)[1] - np.linalg.slogdet(S0)[1])


def expected_log_likelihood(X, W, mu, psi, m, S):
    """E_{z ~ N(m_n, S_n)}[log N(x_n; W z + mu, Diag(psi))] for each row, shape (n,).

    The reconstruction term of the VAE bound in closed form: the Gaussian log-density at the mean
    plus the spread of W z, -0.5 tr(Psi^-1 W S W^T). m (n, d); S (d, d) or (n, d, d).
    """
    X, W, mu, psi, m = (np.asarray(a, dtype=float) for a in (X, W, mu, psi, m))
    S = np.broadcast_to(S, m.shape + m.shape[-1:])
    r = X - m @ W.T - mu
    spread = np.einsum("ij,njk,ik->n", W / psi[:, None], S, W)   # tr(Psi^-1 W S_n W^T)
    return -0.5 * (X.shape[1] * LOG_2PI + np.sum(np.log(psi)) + np.sum(r * r / psi, axis=1)
                   + spread)


def fa_em_step(S, W, psi):
    """One EM iteration of factor analysis, from the sample covariance S (p, p).

    E step: G = (I + Wᵀ Ψ⁻¹ W)⁻¹, β = G Wᵀ Ψ⁻¹ (d, p), so E[z|x] = β (x - mean) and
    E[z zᵀ|x] averaged over the data is G + β S βᵀ. M step: W ← S βᵀ (G + β S βᵀ)⁻¹,
    ψ ← diag(S - W β S). W: (p, d), psi: (p,) -> (W, psi), psi without any floor.
    """
    G = np.linalg.inv(_inner(W, psi))
    beta = G @ (W.T / psi)                              # (d, p)
    SbT = S @ beta.T                                    # (p, d)
    W = np.linalg.solve(G + beta @ SbT, SbT.T).T        # the Ezz matrix is symmetric
    return W, np.diag(S) - np.sum(W * SbT, axis=1)


def ppca_fit(X, d):
    """The maximum-likelihood PPCA fit (Tipping & Bishop 1999) of the rows of X (n, p).

    With λ_1 >= ... >= λ_p the eigenvalues of S = (1/n) Σ_n (x_n - x̄)(x_n - x̄)ᵀ and U_d its top-d
    eigenvectors: μ = x̄, σ² = (1 / (p - d)) Σ_{j > d} λ_j and W = U_d (Λ_d - σ² I)^{1/2} (the
    R = I member of the W R that all have the same likelihood). Returns (W (p, d), mu (p,),
    sigma2 (a float)). (Lab 2; PPCA.fit.)
    """
    n, p = X.shape
    Xc, mu, c = _centred_in_units(X)                      # no overflow for data of size 1e200
    # The SVD of the centred data gives the eigen decomposition of S without forming it.
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    lam = np.zeros(p)
    lam[:s.size] = s ** 2 / n                             # n <= p: the rest are zero
    lam = _scaled_back("variance", lam, c)
    sigma2 = float(np.mean(lam[d:]))
    if sigma2 <= 0:
        raise ValueError("the data have no variance outside the top n_components directions; "
                         "sigma^2 = 0 has no likelihood")
    W = Vt[:d].T * np.sqrt(np.maximum(lam[:d] - sigma2, 0.0))
    return W, mu, sigma2


def _mean_loglike_from_cov(S, W, psi):
    """(1/n) sum_n log N(x_n; mean, C) from the sample covariance S (ddof 0) alone:
    -0.5 [p log 2 pi + log|C| + tr(C^-1 S)], O(p^2 d) whatever n (EM evaluates it every step)."""
    p = S.shape[0]
    cho = scipy.linalg.cho_factor(_inner(W, psi), lower=True)
    WtPinv = W.T / psi                                          # (d, p)
    # tr(C^-1 S) = tr(Psi^-1 S) - tr(A^-1 W^T Psi^-1 S Psi^-1 W)   (Woodbury)
    M = WtPinv @ S @ WtPinv.T
    trace = np.sum(np.diag(S) / psi) - np.trace(scipy.linalg.cho_solve(cho, M))
    logdet = 2.0 * np.sum(np.log(np.diag(cho[0]))) + np.sum(np.log(psi))
    return float(-0.5 * (p * LOG_2PI + logdet + trace))


# --- the estimators ------------------------------------------------------------------------------

def _centred_in_units(X):
    """(Xc, mean, c): the centred data in units of c, Xc = (X - mean) / c, with c a power of two
    near max |x|, so that every |Xc| < 4.

    In these units squares and sums of squares cannot overflow, and dividing by a power of two
    is exact: the covariance c² XcᵀXc / n is the same number as before wherever that was
    finite, and for data of size 1e200 it is computed (or refused by name) instead of being inf.
    """
    size = float(np.max(np.abs(X)))
    c = float(np.ldexp(1.0, np.frexp(size)[1] - 1)) if size > 0 else 1.0   # |X / c| < 2
    mean = (X / c).mean(axis=0)
    return X / c - mean, mean * c, c


def _scaled_back(name, value, c):
    """value · c² (a variance back in the data's units), refusing an overflow by name."""
    with np.errstate(over="ignore", under="ignore"):
        out = value * c * c
    if not np.all(np.isfinite(out)):
        raise ValueError(f"X's {name} overflows float64 (the data, up to about {c:.3g}, are "
                         "too large to be squared); rescale X")
    if np.any((out == 0) & (value != 0)):
        raise ValueError(f"X's {name} underflows float64 (the data, up to about {c:.3g}, are "
                         "too small to be squared); rescale X")
    return out


class _LinearGaussian:
    """Shared by PPCA and FactorAnalysis once fitted: W = components_.T, mu = mean_, psi."""

    def __init__(self, n_components):
        self.n_components = validate.positive_int("n_components", n_components)

    def _check_X(self, X, fitting=False):
        X = validate.finite_real_array("X", X, "float64")
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        validate.nonempty("X", X)
        if fitting:
            if not self.n_components < X.shape[1]:
                raise ValueError(f"n_components={self.n_components} must be smaller than the "
                                 f"number of features {X.shape[1]}")
            if X.shape[0] < 2:
                raise ValueError("fit needs at least 2 samples")
        else:
            self._check_fitted()
            if X.shape[1] != self.mean_.shape[0]:
                raise ValueError(f"X has {X.shape[1]} features, the model was fitted with "
                                 f"{self.mean_.shape[0]}")
        return X

    def _check_fitted(self):
        if not hasattr(self, "components_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet; call fit(X)")

    @property
    def _psi(self):
        """The noise variances as a (p,) vector, whatever the model's parametrisation."""
        return np.broadcast_to(np.asarray(self.noise_variance_, dtype=float), self.mean_.shape)

    def get_covariance(self):
        """C = W W^T + Psi (p, p): the model covariance of x."""
        return self.components_.T @ self.components_ + np.diag(self._psi)

    def score_samples(self, X):
        """log p(x_n) under the fitted model for each row of X (n, p), shape (n,)."""
        X = self._check_X(X)
        with np.errstate(over="ignore", invalid="ignore"):
            out = log_marginal(X, self.components_.T, self.mean_, self._psi)
        if not np.all(np.isfinite(out)):
            raise ValueError("the log-likelihood of X overflows float64 (X is too many "
                             "standard deviations from the model's mean)")
        return out

    def score(self, X, y=None):
        """The mean log-likelihood per sample, (1/n) sum_n log p(x_n) (scikit-learn's score)."""
        return float(np.mean(self.score_samples(X)))

    def posterior(self, X):
        """The exact posterior p(z|x_n) = N(m_n, G): means (n, d) and covariance (d, d)."""
        X = self._check_X(X)
        return posterior(X, self.components_.T, self.mean_, self._psi)

    def transform(self, X):
        """The posterior means E[z | x_n], shape (n, d)."""
        return self.posterior(X)[0]

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)

    def sample(self, n, seed=None):
        """n draws x = W z + mu + e, z ~ N(0, I_d), e ~ N(0, Psi): shape (n, p).

        seed : an integer, or None for fresh entropy (a different draw each call)."""
        self._check_fitted()
        n = validate.positive_int("n", n)
        rng = validate.generator("seed", seed)
        z = rng.standard_normal((n, self.n_components))
        e = rng.standard_normal((n, self.mean_.shape[0])) * np.sqrt(self._psi)
        return z @ self.components_ + self.mean_ + e


class PPCA(_LinearGaussian):
    """Probabilistic PCA fitted by its closed-form maximum-likelihood solution.

    Tipping & Bishop (1999): with lambda_1 >= ... >= lambda_p the eigenvalues of the sample
    covariance S = X_c^T X_c / (n - ddof) and U_d its top-d eigenvectors,

        sigma^2 = (1 / (p - d)) sum_{j > d} lambda_j,    W = U_d (Lambda_d - sigma^2 I)^{1/2}

    (up to a rotation W R that leaves the likelihood unchanged; this is the R = I one). ``ddof=0``
    (default) is the maximum-likelihood estimate; ``ddof=1`` is scikit-learn's ``PCA``, whose
    covariance is unbiased, and then ``score`` reproduces ``sklearn.decomposition.PCA.score``
    (when n > p; scikit-learn averages the discarded eigenvalues over min(n, p) - d of them,
    Tipping & Bishop over p - d).

    Attributes after ``fit``: ``components_`` (d, p) = W^T (note: scaled loadings, not the unit
    directions of scikit-learn's PCA, which are the rows of ``components_`` normalised),
    ``explained_variance_`` (d,) = lambda_1..lambda_d, ``noise_variance_`` = sigma^2 (a float),
    ``mean_`` (p,).
    """

    def __init__(self, n_components, ddof=0):
        super().__init__(n_components)
        self.ddof = validate.choice("ddof", ddof, (0, 1))   # ML, or scikit-learn's PCA

    def fit(self, X, y=None):
        X = self._check_X(X, fitting=True)
        n = X.shape[0]
        W, self.mean_, s2 = ppca_fit(X, self.n_components)
        # ddof=1 scales S, hence every eigenvalue, by c = n / (n - 1): σ² by c and W by √c.
        c = n / (n - self.ddof)
        self.noise_variance_ = s2 * c
        self.components_ = W.T * np.sqrt(c)
        # W's columns are orthogonal with squared norms λ_i - σ²: the top eigenvalues back.
        self.explained_variance_ = (self.components_ ** 2).sum(axis=1) + self.noise_variance_
        return self


class FactorAnalysis(_LinearGaussian):
    """Factor analysis fitted by EM, recording the log-likelihood at every iteration.

    EM for x = W z + mu + e, e ~ N(0, Diag(psi)) (Rubin & Thayer, 1982): with S the sample
    covariance (ddof = 0) and the exact posterior E[z_n] = beta (x_n - mu), beta = G W^T Psi^-1,

        E-step:  E[z z^T]-average  = G + beta S beta^T                 (d, d)
        M-step:  W   <- S beta^T (G + beta S beta^T)^-1
                 psi <- diag(S - W beta S)

    Each iteration cannot decrease the log-likelihood (the EM guarantee; ``loglike_`` lets a test
    check it). Stops when the mean log-likelihood per sample rises by less than ``tol`` or after
    ``max_iter`` iterations. Attributes: ``components_`` (d, p) = W^T, ``noise_variance_`` (p,),
    ``mean_`` (p,), ``loglike_`` (list: the mean log-likelihood per sample after each iteration;
    scikit-learn's attribute of that name holds the total), ``n_iter_``.
    """

    def __init__(self, n_components, max_iter=1000, tol=1e-8, seed=0, min_noise=1e-8):
        super().__init__(n_components)
        self.max_iter = validate.positive_int("max_iter", max_iter)
        self.tol = validate.real("tol", tol, at_least=0)
        self.seed = validate.seed("seed", seed)
        self.min_noise = validate.positive_real("min_noise", min_noise)

    def fit(self, X, y=None):
        X = self._check_X(X, fitting=True)
        n, p = X.shape
        d = self.n_components
        Xc, self.mean_, c = _centred_in_units(X)
        S = _scaled_back("covariance", Xc.T @ Xc / n, c)
        var = np.diag(S).copy()
        constant = np.flatnonzero(var == 0)
        if constant.size:
            # psi_j -> 0 makes the likelihood unbounded: no maximum-likelihood fit exists.
            raise ValueError(f"X's column {constant[0]} is constant ({constant.size} constant "
                             "column(s)): factor analysis needs every feature to vary; drop "
                             "constant columns")
        # A floor on psi keeps Psi^-1 finite when a feature is (nearly) explained by the factors
        # (a "Heywood case"), relative to the feature's scale.
        floor = self.min_noise * np.maximum(var, np.finfo(float).tiny)
        rng = np.random.default_rng(self.seed)
        W = rng.standard_normal((p, d)) * np.sqrt(var)[:, None] / np.sqrt(d)
        psi = np.maximum(var, floor)
        self.loglike_ = []
        for it in range(self.max_iter):
            W, psi = fa_em_step(S, W, psi)
            psi = np.maximum(psi, floor)
            self.loglike_.append(_mean_loglike_from_cov(S, W, psi))
            if it > 0 and self.loglike_[-1] - self.loglike_[-2] < self.tol:
                break
        self.components_, self.noise_variance_, self.n_iter_ = W.T, psi, it + 1
        return self


# --- the bridge to deep models: a linear-Gaussian IWAE trained by maximising L_K ---------------
#
# The bridge from PPCA to deep models: a linear-Gaussian IWAE trained by maximising L_K.
#
# minivae's ``IWAE(x_dim=p, z_dim=d, hidden=(), likelihood="gaussian")`` has an affine decoder,
# x | z ~ N(W z + b, Diag(exp(V z + c))), and an affine Gaussian encoder. Holding V = 0 makes the
# noise independent of z (factor analysis); also tying the entries of c (one shared log σ²)
# makes it exactly the PPCA model, whose maximum log-likelihood ℓ_max on the data is known in
# closed form (:class:`minivae.lecture.linear.PPCA`). Training by stochastic gradient ascent on L_K can
# only approach it from below:
#
#     L_K(θ, γ) ≤ ℓ(θ) ≤ ℓ_max,    ℓ_max - L_K = (ℓ_max - ℓ(θ)) + (ℓ(θ) - L_K),
#
# an optimisation gap plus the bound's gap. For the linear-Gaussian model the exact posterior is
# Gaussian with a mean linear in x, so the encoder can make the bound tight at a maximum (up to
# the rotation of W, which the diagonal encoder chooses for it), and both gaps shrink with training
# for K = 1 as for K = 50.
#
# The constraints are imposed on the gradient: ∂L/∂V is set to 0 and ∂L/∂c replaced by its mean
# over the p features (the gradient of the shared parameter, divided by p), so that Adam, which
# acts per coordinate, keeps every entry of c equal.

def linear_gaussian_parameters(model):
    """(W (p, d), b (p,), psi (p,)) on the host from a linear-Gaussian IWAE: W = decoder.mean.W^T
    (minivae's affine maps compute z @ W + b), psi = exp(decoder.logvar.b). Requires
    hidden=(), likelihood="gaussian" and decoder.logvar.W = 0 (noise independent of z)."""
    if model.hidden != () or model.likelihood.name != "gaussian":
        raise ValueError("needs IWAE(..., hidden=(), likelihood='gaussian')")
    p = {k: backend.to_numpy(v) for k, v in model.params.items()}
    if np.any(p["decoder.logvar.W"] != 0):
        raise ValueError("decoder.logvar.W must be 0 for a linear-Gaussian model")
    return p["decoder.mean.W"].T, p["decoder.mean.b"], np.exp(p["decoder.logvar.b"])


def fit_linear_iwae(X, z_dim, k, steps=3000, batch=100, lr=3e-3, seed=0, tied=True,
                    final_lr=None):
    """Train IWAE(p, z_dim, hidden=(), likelihood="gaussian", float64) on X (n, p) by Adam ascent
    on L_K, with the decoder's noise held independent of z and, if ``tied``, shared across
    features (PPCA). ``final_lr``: decay the step size geometrically from lr to it (stochastic
    gradients need a shrinking step to settle). Returns (model, list of the minibatch bounds)."""
    X = np.asarray(X, dtype=float)
    n, p = X.shape
    model = IWAE(p, z_dim, hidden=(), likelihood="gaussian", dtype="float64", seed=seed)
    prm = model.params
    prm["decoder.logvar.W"][...] = 0
    # Start at the data's mean and overall variance: the optimum of b is the mean, and it saves
    # the early steps from fitting scale alone.
    prm["decoder.mean.b"][...] = backend.asarray(X.mean(axis=0))
    prm["decoder.logvar.b"][...] = float(np.log(X.var(axis=0).mean()))
    opt = Adam(prm, lr=lr)
    rng = np.random.default_rng(seed)
    decay = (final_lr / lr) ** (1.0 / max(steps - 1, 1)) if final_lr else 1.0

    def objective(idx):
        value, grads = model.bound_and_grads(backend.asarray(X[idx]), k)
        grads["decoder.logvar.W"] = grads["decoder.logvar.W"] * 0      # noise independent of z
        if tied:                                  # one shared log σ²: the mean gradient
            gc = grads["decoder.logvar.b"]
            grads["decoder.logvar.b"] = gc * 0 + gc.mean()
        return value, grads

    def decay_lr(step):
        opt.lr *= decay

    history = []
    train_epoch(objective, opt, (rng.integers(0, n, batch) for _ in range(steps)),
                on_step=decay_lr, history=history)
    return model, history


def bridge_gap(X, z_dim, k, steps=3000, batch=100, lr=3e-3, seed=0, eval_draws=20,
               final_lr=None):
    """Train a linear-Gaussian IWAE with L_K on X and compare it with PPCA's maximum.

    Returns a dict of mean nats per example over X: ``ppca`` = ℓ_max (closed form),
    ``loglik`` = ℓ(θ) of the trained decoder (closed form), ``bound`` = L_K(θ, γ) averaged over
    ``eval_draws`` independent draws of the K samples, its standard error ``bound_se``, and
    ``gap`` = ℓ_max - L_K, ``optimisation_gap`` = ℓ_max - ℓ(θ), ``bound_gap`` = ℓ(θ) - L_K.
    """
    X = np.asarray(X, dtype=float)
    ppca = PPCA(z_dim).fit(X).score(X)
    model, _ = fit_linear_iwae(X, z_dim, k, steps, batch, lr, seed, final_lr=final_lr)
    W, b, psi = linear_gaussian_parameters(model)
    loglik = float(np.mean(log_marginal(X, W, b, psi)))
    xb = backend.asarray(X)
    draws = np.array([float(backend.to_numpy(model.bound(xb, k)).mean())
                      for _ in range(eval_draws)])
    bound = float(draws.mean())
    return {"k": k, "ppca": ppca, "loglik": loglik, "bound": bound,
            "bound_se": float(draws.std(ddof=1) / np.sqrt(eval_draws)),
            "gap": ppca - bound, "optimisation_gap": ppca - loglik, "bound_gap": loglik - bound}
