"""Lab 1: Monte Carlo and importance sampling: estimators, their variance, the optimal proposal.

No gradients here. The estimators are compared with minivae.lecture.montecarlo's on identically seeded
generators (the same samples, so they must agree to round-off), and with the mean and the
ddof=1 variance of the terms they average; the closed forms with the library's and with
SciPy's normal density or a quadrature of the variance's defining integral.
"""
import numpy as np
from scipy import integrate, stats

from .core import as_array, call, compare, library, unpack

NUMBER = 1
FOLDER = "01_monte_carlo"
TITLE = "Monte Carlo and importance sampling: estimators, variance, the optimal proposal"
MINUTES = "45-60 min"
TEACHES = ("unbiased estimators and their 1/K variance, importance sampling in log space, "
           "how the proposal sets the variance, and why the posterior is the ideal proposal "
           "(the idea behind the VAE's encoder)")
SOLUTION = [
    "minivae.lecture.montecarlo.simple_monte_carlo",
    "minivae.lecture.montecarlo.importance_sampling",
    "minivae.lecture.montecarlo.is_term_variance",
    "minivae.lecture.montecarlo.optimal_log_density",
]


def _f(a):
    return lambda x: np.exp(a * x)


def _sampler(m):
    return lambda k, rng: m + rng.standard_normal(k)


def _log_normal(m):
    return lambda x: stats.norm.logpdf(x, m, 1.0)


def _estimate(value, what):
    v, var = unpack(value, 2, what)
    return as_array(v, (), f"{what}'s value"), as_array(var, (), f"{what}'s variance")


def _value_and_variance(v, var, ref, terms, name):
    """An estimate (value v, variance var of the mean) against the library's on the same draws
    and against the K terms themselves: their mean, and their sample variance over K."""
    return [compare("value", v, ref.value, "minivae.lecture.montecarlo"),
            compare("variance", var, ref.variance, "minivae.lecture.montecarlo"),
            compare("value", v, terms.mean(), f"the mean of {name}"),
            compare("variance", var, terms.var(ddof=1) / len(terms), f"var({name}, ddof=1) / K")]


def _simple(mod):
    out = []
    for a, k, seed in ((1.5, 200, 10), (0.5, 37, 11)):
        args = (_f(a), _sampler(0.0), k)
        v, var = _estimate(call(mod, "simple_monte_carlo", *args, np.random.default_rng(seed)),
                           "simple_monte_carlo")
        ref = library(SOLUTION, "simple_monte_carlo")(*args, np.random.default_rng(seed))
        terms = _f(a)(_sampler(0.0)(k, np.random.default_rng(seed)))
        out += _value_and_variance(v, var, ref, terms, "terms")
    return out


def _importance(mod):
    out = []
    for a, m, k, seed in ((1.5, 1.0, 200, 12), (2.0, 3.0, 41, 13)):
        args = (_f(a), _log_normal(0.0), _sampler(m), _log_normal(m), k)
        v, var = _estimate(call(mod, "importance_sampling", *args, np.random.default_rng(seed)),
                           "importance_sampling")
        ref = library(SOLUTION, "importance_sampling")(*args, np.random.default_rng(seed))
        x = _sampler(m)(k, np.random.default_rng(seed))
        terms = _f(a)(x) * stats.norm.pdf(x, 0, 1) / stats.norm.pdf(x, m, 1)
        out += _value_and_variance(v, var, ref, terms, "f p / q")
    return out


def _term_variance(mod):
    cases = [(2.0, 0.0), (2.0, 1.0), (2.0, 2.0), (1.0, -0.5), (0.7, 2.5)]
    got = np.array([float(as_array(call(mod, "is_term_variance", a, m), (),
                                   "is_term_variance(...)")) for a, m in cases])
    ref = np.array([library(SOLUTION, "is_term_variance")(a, m) for a, m in cases])

    def by_quadrature(a, m):
        # σ²(m) = ∫ (f p / q)² q dx - I², with I = e^{a²/2}; the integrand, a Gaussian bump
        # around x = 2a - m, is evaluated in log space.
        def integrand(x):
            return np.exp(2 * a * x + 2 * stats.norm.logpdf(x) - stats.norm.logpdf(x, m, 1))
        c = 2 * a - m
        second, _ = integrate.quad(integrand, c - 20, c + 20, epsabs=0, epsrel=1e-12,
                                   limit=200)
        return second - np.exp(a * a)
    quad = np.array([by_quadrature(a, m) for a, m in cases])
    return [compare("σ²(m)", got, ref, "minivae.lecture.montecarlo"),
            compare("σ²(m)", got, quad, "quadrature of E_q[(f p / q)²] - I²", tol=1e-6)]


def _optimal(mod):
    x = np.linspace(-3, 5, 9)
    out = []
    for a in (0.5, 2.0):
        got = as_array(call(mod, "optimal_log_density", x, a), x.shape,
                       "optimal_log_density(...)")
        f_p_over_i = a * x + stats.norm.logpdf(x) - a * a / 2
        out += [compare(f"log q* (a = {a})", got, library(SOLUTION, "optimal_log_density")(x, a),
                        "minivae.lecture.montecarlo"),
                compare(f"log q* (a = {a})", got, f_p_over_i, "log f + log p - log I")]
    return out


CHECKS = [
    ("simple_monte_carlo", _simple),
    ("importance_sampling", _importance),
    ("is_term_variance", _term_variance),
    ("optimal_log_density", _optimal),
]
