"""Lab 9: diffusion models. Fill in the functions that raise NotImplementedError.

Each is a function of minivae.diffusion with the same name and signature; the checker compares
yours with the library's, and `run 9 --mine` trains a diffusion model with yours.

A ``schedule`` is a minivae.diffusion.Schedule: ``schedule.at("alpha_bar", t, x.dtype)`` is ᾱ_t
as an (N, 1) column for the steps t (N,) (likewise "alpha", "beta"). Shapes: x0, xt, eps
(N, D); t (N,) integers in 1..T.

Check your work with:   minivae lab check 9
"""
import math

import numpy as np


# ---------------------------------------------------------------- D1: q(x_t | x_0)
def q_sample(x0, t, eps, schedule):
    """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, a draw from q(x_t | x_0) given the noise ε: (N, D)."""
    raise NotImplementedError("q_sample: return x_t")


# ---------------------------------------------------------------- D2: q(x_{t−1} | x_t, x_0)
def posterior_mean_var(x0, xt, t, schedule):
    """Mean μ̃_t (N, D) and variance β̃_t (N, 1) of q(x_{t−1} | x_t, x_0).

    Hint: ᾱ_{t−1} = ᾱ_t / α_t.
    """
    raise NotImplementedError("posterior_mean_var: return mean, var")


# ---------------------------------------------------------------- D5: the time embedding
def time_embedding_forward(t, dim, max_period=10000.0):
    """φ(t) = [sin(ω_k t)]_k ⊕ [cos(ω_k t)]_k, ω_k = max_period^(−k/m), m = dim/2.

    t: (N,) float -> out: (N, dim); cache = (ω (m,), sin (N, m), cos (N, m)). Given.
    """
    m = dim // 2
    omega = np.exp(-math.log(max_period) / m * np.arange(m, dtype=t.dtype))
    arg = t[:, None] * omega
    s, c = np.sin(arg), np.cos(arg)
    return np.concatenate([s, c], axis=1), (omega, s, c)


def time_embedding_backward(dout, cache):
    """∂L/∂t (N,) from dout = ∂L/∂φ (N, dim) and the cache of time_embedding_forward."""
    omega, s, c = cache
    raise NotImplementedError("time_embedding_backward: return dt")


# ---------------------------------------------------------------- D6: the simple loss
def simple_loss(eps_hat, eps):
    """L = (1/(N D)) Σ_n ‖ε_n − ε̂_n‖² and ∂L/∂ε̂ (N, D): return loss, deps_hat."""
    raise NotImplementedError("simple_loss: return loss, deps_hat")
