"""The bridge from PPCA to deep models: a linear-Gaussian IWAE trained by maximising L_K.

minivae's ``IWAE(x_dim=p, z_dim=d, hidden=(), likelihood="gaussian")`` has an affine decoder,
x | z ~ N(W z + b, Diag(exp(V z + c))), and an affine Gaussian encoder. Holding V = 0 makes the
noise independent of z (factor analysis); also tying the entries of c (one shared log σ²)
makes it exactly the PPCA model, whose maximum log-likelihood ℓ_max on the data is known in
closed form (:class:`minivae.linear.PPCA`). Training by stochastic gradient ascent on L_K can
only approach it from below:

    L_K(θ, γ) ≤ ℓ(θ) ≤ ℓ_max,    ℓ_max - L_K = (ℓ_max - ℓ(θ)) + (ℓ(θ) - L_K),

an optimisation gap plus the bound's gap. For the linear-Gaussian model the exact posterior is
Gaussian with a mean linear in x, so the encoder can make the bound tight at a maximum (up to
the rotation of W, which the diagonal encoder chooses for it), and both gaps shrink with training
for K = 1 as for K = 50.

The constraints are imposed on the gradient: ∂L/∂V is set to 0 and ∂L/∂c replaced by its mean
over the p features (the gradient of the shared parameter, divided by p), so that Adam, which
acts per coordinate, keeps every entry of c equal.
"""
import numpy as np

from . import backend
from .linear import PPCA, log_marginal
from .model import IWAE
from .optim import Adam


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
    history = []
    decay = (final_lr / lr) ** (1.0 / max(steps - 1, 1)) if final_lr else 1.0
    for _ in range(steps):
        xb = backend.asarray(X[rng.integers(0, n, batch)])
        value, grads = model.bound_and_grads(xb, k)
        grads["decoder.logvar.W"] = grads["decoder.logvar.W"] * 0
        if tied:
            gc = grads["decoder.logvar.b"]
            grads["decoder.logvar.b"] = gc * 0 + gc.mean()
        opt.step(grads)
        opt.lr *= decay
        history.append(float(value))
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
