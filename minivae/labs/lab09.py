"""Lab 9: diffusion models (q(x_t|x_0), the posterior, the time embedding's backward, L_simple).

Checks: each function against minivae.diffusion's on the same inputs, and against something
independent: q_sample against ᾱ_t computed here as a product of the α_s, the posterior against
Bayes' rule by precision addition, the two gradients against five-point finite differences of
the library's forward.
"""
import math

import numpy as np

from ..diffusion import Schedule
from ..diffusion.embedding import time_embedding_forward
from ..diffusion.loss import simple_loss as library_loss
from .core import as_array, call, check_gradient, compare, compare_scalar, library, unpack

NUMBER = 9
FOLDER = "09_diffusion"
TITLE = "Diffusion models: q(x_t | x_0), the posterior, the time embedding, L_simple"
MINUTES = "60-90 min"
TEACHES = ("a diffusion model as a latent variable model: the closed-form marginal and "
           "posterior of the Gaussian forward process, backprop through a sinusoidal "
           "embedding, the noise-prediction loss and its relation to the bound")
SOLUTION = [
    "minivae.diffusion.forward.q_sample",
    "minivae.diffusion.forward.posterior_mean_var",
    "minivae.diffusion.embedding.time_embedding_forward",
    "minivae.diffusion.embedding.time_embedding_backward",
    "minivae.diffusion.loss.simple_loss",
]
AGAINST = "minivae.diffusion"


def _inputs(seed, kind="linear", T=30, n=7, d=3):
    rng = np.random.default_rng(seed)
    sched = Schedule(T, kind)
    x0, xt, eps = (rng.standard_normal((n, d)) for _ in range(3))
    t = np.concatenate([[1, 2, T], rng.integers(1, T + 1, size=n - 3)])   # both ends included
    return sched, x0, xt, eps, t


def _q_sample(mod):
    out = []
    for kind in ("linear", "cosine"):
        sched, x0, _, eps, t = _inputs(90, kind)
        xt = as_array(call(mod, "q_sample", x0, t, eps, sched), x0.shape, "q_sample's x_t")
        ab = np.array([np.prod(1 - sched.beta[1:s + 1]) for s in t])[:, None]  # Π_{s≤t} α_s
        out += [compare(f"x_t ({kind})", xt, np.sqrt(ab) * x0 + np.sqrt(1 - ab) * eps,
                        "√ᾱ_t x_0 + √(1 − ᾱ_t) ε"),
                compare(f"x_t ({kind})", xt, library(SOLUTION, "q_sample")(x0, t, eps, sched),
                        AGAINST)]
    return out


def _posterior(mod):
    out = []
    for kind in ("linear", "cosine"):
        sched, x0, xt, _, t = _inputs(91, kind)
        mean, var = unpack(call(mod, "posterior_mean_var", x0, xt, t, sched), 2,
                           "posterior_mean_var")
        mean = as_array(mean, x0.shape, "the posterior mean")
        var = as_array(var, (len(t), 1), "the posterior variance")
        # Bayes' rule: q(x_t|x_{t−1}) as a Gaussian in x_{t−1} (precision α_t/β_t, mean
        # x_t/√α_t) times q(x_{t−1}|x_0) (precision 1/(1 − ᾱ_{t−1})), precisions adding.
        a, b = sched.alpha[t][:, None], sched.beta[t][:, None]
        ab_prev = sched.alpha_bar[t - 1][:, None]
        with np.errstate(divide="ignore"):
            prec = a / b + 1 / (1 - ab_prev)                       # +inf at t = 1
        bayes_var = np.where(t[:, None] == 1, 0.0, 1 / prec)
        bayes_mean = np.where(t[:, None] == 1, x0, bayes_var * (np.sqrt(a) * xt / b + np.sqrt(
            ab_prev) * x0 / np.where(t[:, None] == 1, 1.0, 1 - ab_prev)))
        lib_mean, lib_var = library(SOLUTION, "posterior_mean_var")(x0, xt, t, sched)
        out += [compare(f"mean ({kind})", mean, bayes_mean, "Bayes' rule", columns={}),
                compare(f"variance ({kind})", var, bayes_var, "Bayes' rule"),
                compare(f"mean ({kind})", mean, lib_mean, AGAINST),
                compare(f"variance ({kind})", var, lib_var, AGAINST)]
    return out


def _time_embedding(mod):
    rng = np.random.default_rng(92)
    out = []
    for scale in (1.0, 500.0):                       # slow and fast phases both
        t = rng.random(6) * scale
        _, cache = time_embedding_forward(t, 10)
        dout = rng.standard_normal((6, 10))
        dt = as_array(call(mod, "time_embedding_backward", dout, cache), t.shape, "dt")
        ref = library(SOLUTION, "time_embedding_backward")(dout, cache)

        def f():
            return float((time_embedding_forward(t, 10)[0] * dout).sum())
        comps = check_gradient(f, {"t": t}, {"t": dt}) + [compare("dt", dt, ref, AGAINST)]
        for c in comps:
            c.what = f"{c.what} (t up to {scale:g})"
        out += comps
    return out


def _simple_loss(mod):
    rng = np.random.default_rng(93)
    eps_hat, eps = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    loss, d = unpack(call(mod, "simple_loss", eps_hat, eps), 2, "simple_loss")
    lib_loss, lib_d = library(SOLUTION, "simple_loss")(eps_hat, eps)
    d = as_array(d, eps.shape, "deps_hat")

    def f():
        return float(library_loss(eps_hat, eps)[0])
    return check_gradient(f, {"eps_hat": eps_hat}, {"eps_hat": d}) + [
        compare_scalar("loss", loss, float(np.mean((eps - eps_hat) ** 2)), "mean of (ε − ε̂)²"),
        compare_scalar("loss", loss, float(lib_loss), AGAINST),
        compare("deps_hat", d, lib_d, AGAINST)]


CHECKS = [
    ("q_sample", _q_sample),
    ("posterior_mean_var", _posterior),
    ("time_embedding_backward", _time_embedding),
    ("simple_loss", _simple_loss),
]
