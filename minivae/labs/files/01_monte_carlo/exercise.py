"""Lab 1: Monte Carlo and importance sampling. Fill in the NotImplementedError stubs.

We estimate an integral I = ∫ f(x) p(x) dx = E_p[f(x)] from K random draws.

Conventions (the checks call your functions with these):
- ``sample_p(k, rng)`` / ``sample_q(k, rng)`` return an array of k draws (along axis 0); call
  them once, with the rng you are given.
- ``log_p(x)`` / ``log_q(x)`` return log-densities, ``f(x)`` the integrand, elementwise.
- An estimator returns ``(value, variance)``: the estimate, and the estimated variance of the
  estimator = (unbiased sample variance of the K terms, i.e. with ddof=1) / K.

Check your work with:   python -m minivae.labs check 1
"""
import numpy as np


def simple_monte_carlo(f, sample_p, k, rng):
    """Î_MC = (1/K) Σ_k f(x_k) with x_1..x_K ~ p. Return (value, variance)."""
    raise NotImplementedError("simple_monte_carlo: return (value, variance)")


def importance_sampling(f, log_p, sample_q, log_q, k, rng):
    """Î_IS = (1/K) Σ_k f(x_k) p(x_k) / q(x_k) with x_1..x_K ~ q. Return (value, variance).
    Compute the ratio p/q from the log-densities."""
    raise NotImplementedError("importance_sampling: return (value, variance)")


# ---------------------------------------------------------------- a case in closed form
# I = E_p[exp(a x)] with p = N(0, 1), so f(x) = exp(a x) and I = exp(a² / 2).
# Proposals q_m = N(m, 1); m = 0 is simple Monte Carlo.

def is_term_variance(a, m):
    """σ²(m) = Var_q[f(x) p(x) / q(x)] for x ~ q_m = N(m, 1): the variance of one term of the
    importance sampling estimator (so Var(Î_IS) = σ²(m) / K). a, m: floats -> float."""
    raise NotImplementedError("is_term_variance: return σ²(m)")


def optimal_log_density(x, a):
    """log q*(x), the log-density of the proposal with zero variance, q* = f p / I, at x
    (an array): it is a density you know by name."""
    raise NotImplementedError("optimal_log_density: return log q*(x), elementwise")
