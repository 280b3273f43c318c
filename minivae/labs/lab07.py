"""Lab 7: training a DLVM on MNIST: the 2-D latent example, generation, the latent manifold,
VAE against IWAE.

No gradients here. Every function is compared with minivae's own (minivae.optim.adam_step,
which Adam.step calls; minivae.plots.manifold_grid and ancestral_sample, which the figures and
`minivae sample` call; minivae.evaluate.active_units, which `minivae evaluate` calls) on the
same inputs, and with a property independent of it: Adam's first step has size lr·|g|/(|g|+ε),
the grid's prior probabilities Φ(z) are evenly spaced in the picture's order, the sample's
means are SciPy's logistic sigmoid of the logits, A is the variance of the means.
"""
import numpy as np
from scipy import special, stats

from ..model import IWAE
from .core import as_array, call, compare, library, unpack

NUMBER = 7
FOLDER = "07_training_mnist"
TITLE = "Training a DLVM on MNIST: the 2-D latent space, generation, VAE against IWAE"
MINUTES = "60 min + training"
TEACHES = ("what training a DLVM looks like: Adam climbing the bound, the lecture's 2-D latent "
           "example and its learned manifold, ancestral sampling, and how the IWAE bound "
           "changes the model it trains (log-likelihood, active units)")
SOLUTION = [
    "minivae.optim.adam_step",
    "minivae.plots.manifold_grid",
    "minivae.plots.ancestral_sample",
    "minivae.evaluate.active_units",
]


def _adam(mod):
    rng = np.random.default_rng(70)
    out = []
    for t, lr, b1, b2, eps in ((1, 1e-3, 0.9, 0.999, 1e-4), (7, 0.05, 0.8, 0.99, 1e-8)):
        param, grad = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
        m = 0.1 * rng.standard_normal((3, 4)) if t > 1 else np.zeros((3, 4))
        s = 0.1 * rng.random((3, 4)) if t > 1 else np.zeros((3, 4))
        got = unpack(call(mod, "adam_step", param, grad, m, s, t, lr, b1, b2, eps), 3,
                     "adam_step")
        ref = library(SOLUTION, "adam_step")(param, grad, m, s, t, lr, b1, b2, eps)
        got = [as_array(g, r.shape, name) for g, r, name in
               zip(got, ref, ("param_new", "m_new", "s_new"))]
        for name, g, r in zip(("param_new", "m_new", "s_new"), got, ref):
            out.append(compare(f"{name} (t = {t})", g, r, "minivae.optim"))
        if t == 1:      # from m = s = 0, the bias-corrected first step is lr g / (|g| + ε)
            out.append(compare("param_new - param (t = 1)", got[0] - param,
                               lr * grad / (np.abs(grad) + eps), "lr g / (|g| + ε)"))
    return out


def _grid(mod):
    out = []
    for n, low, high in ((5, 0.05, 0.95), (4, 0.1, 0.8)):
        got = as_array(call(mod, "manifold_grid", n, low, high), (n * n, 2), "manifold_grid(...)")
        p = stats.norm.cdf(got).reshape(n, n, 2)
        even = np.linspace(low, high, n)
        out += [compare(f"z (n = {n})", got, library(SOLUTION, "manifold_grid")(n, low, high),
                        "minivae.plots"),
                compare(f"Φ(z_1) along each row (n = {n})", p[..., 0],
                        np.broadcast_to(even, (n, n)), "evenly spaced, increasing"),
                compare(f"Φ(z_2) down each column (n = {n})", p[..., 1],
                        np.broadcast_to(even[::-1, None], (n, n)), "evenly spaced, decreasing")]
    return out


def _sample(mod):
    model = IWAE(12, 2, hidden=(5,), dtype="float64", seed=3)
    for p in model.params.values():
        p[...] = np.random.default_rng(71).standard_normal(p.shape)
    rng = np.random.default_rng(72)
    z, u = rng.standard_normal((6, 2)), rng.random((6, 12))
    u[0, :3] = (0.0, np.nextafter(1.0, 0.0), 0.5)        # the ends of [0, 1)

    def decode_logits(z):
        return model.decode(z)["logits"]
    means, x = unpack(call(mod, "ancestral_sample", decode_logits, z, u), 2, "ancestral_sample")
    means, x = as_array(means, (6, 12), "means"), as_array(x, (6, 12), "x")
    lib_means, lib_x = library(SOLUTION, "ancestral_sample")(decode_logits, z, u)
    expit = special.expit(decode_logits(z))
    return [compare("means", means, lib_means, "minivae.plots"),
            compare("x", x, lib_x, "minivae.plots"),
            compare("means", means, expit, "scipy.special.expit(logits)"),
            compare("x", x, (u < expit).astype(float), "[u < E[x|z]]")]


def _active(mod):
    rng = np.random.default_rng(73)
    means = rng.standard_normal((50, 6)) * np.array([1.0, 0.5, 0.2, 0.09, 0.05, 0.001])
    n, a = unpack(call(mod, "active_units", means), 2, "active_units")
    lib_n, lib_a = library(SOLUTION, "active_units")(means)
    a = as_array(a, (6,), "A")
    return [compare("n_active", as_array(n, (), "n_active"), lib_n, "minivae.evaluate"),
            compare("A", a, lib_a, "minivae.evaluate"),
            compare("A", a, np.var(means, axis=0), "np.var(posterior_means, axis=0)"),
            compare("n_active", n, (np.var(means, axis=0) > 1e-2).sum(), "count of A > 0.01")]


CHECKS = [
    ("adam_step", _adam),
    ("manifold_grid", _grid),
    ("ancestral_sample", _sample),
    ("active_units", _active),
]
