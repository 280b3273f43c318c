"""Monte Carlo and importance sampling estimates of an integral I = ∫ f(x) p(x) dx.

The two estimators behind every bound in minivae, on their own:

- simple Monte Carlo, x_1..x_K ~ p:             Î_MC = (1/K) Σ_k f(x_k);
- importance sampling, x_1..x_K ~ q (q > 0 where f p ≠ 0):
                                                Î_IS = (1/K) Σ_k f(x_k) p(x_k) / q(x_k).

Both are unbiased, with variance Var(Î) = σ² / K where σ² is the variance of one term
(Var_p f(x) for MC, Var_q[f p / q] for IS): the error decays as 1/√K whatever the dimension.
The variance of IS depends on q; for f > 0 the optimal proposal q*(x) = f(x) p(x) / I makes every
term equal to I, so Î_IS = I exactly (variance 0) — useless in practice (it needs I), but it
says what a good proposal looks like: close to f·p. The VAE's encoder plays the role of q for
f = p(x|z), the integral being p(x) = ∫ p(x|z) p(z) dz.

Everything takes callables and a ``numpy.random.Generator``, so lab 1 can plug in its own f, p
and q. :class:`ExpUnderGaussian` is a worked example where everything is in closed form.
"""
from collections import namedtuple

import numpy as np

from .. import validate
from ..likelihoods import LOG_2PI

#: An estimate and the estimated variance of the estimator (the sample variance of the K terms
#: divided by K: its square root is the standard error).
Estimate = namedtuple("Estimate", "value variance")


def _estimate(terms):
    terms = np.asarray(terms, dtype=float)
    k = terms.shape[0]
    var = terms.var(axis=0, ddof=1) / k if k > 1 else np.full(terms.shape[1:], np.nan)
    return Estimate(terms.mean(axis=0), var)


def simple_monte_carlo(f, sample_p, k, rng):
    """Î_MC = (1/K) Σ f(x_k), x_k ~ p. ``sample_p(k, rng)`` returns K draws (along axis 0)."""
    k = validate.positive_int("k", k)
    return _estimate(f(sample_p(k, rng)))


def importance_sampling(f, log_p, sample_q, log_q, k, rng):
    """Î_IS = (1/K) Σ f(x_k) p(x_k)/q(x_k), x_k ~ q, with the weights p/q computed in log space.

    ``log_p`` and ``log_q`` are log-densities; ``sample_q(k, rng)`` returns K draws from q.
    """
    k = validate.positive_int("k", k)
    x = sample_q(k, rng)
    return _estimate(f(x) * np.exp(log_p(x) - log_q(x)))


def replicate(estimator, ks, n_rep, seed=0):
    """Run ``estimator(k, rng)`` (returning an :class:`Estimate`) ``n_rep`` times for each K.

    Returns a dict with ``k`` (len(ks),), ``values`` (len(ks), n_rep) and ``variance`` (len(ks),):
    the empirical variance of the estimates across replicates, which should decay like σ²/K.
    """
    rng = np.random.default_rng(seed)
    values = np.array([[estimator(int(k), rng).value for _ in range(n_rep)] for k in ks])
    return {"k": np.asarray(ks), "values": values, "variance": values.var(axis=1, ddof=1)}


def is_term_variance(a, m):
    """σ²(m) = Var_q[f(x) p(x) / q(x)] for f(x) = exp(a x), p = N(0, 1), q = N(m, 1): the
    variance of one term of the importance sampling estimator of I = E_p[exp(a x)] = e^{a²/2}.

    E_q[(f p / q)²] = ∫ e^{2 a x} p(x)² / q(x) dx = exp(m²/2 + (2a - m)²/2) (complete the
    square), and σ²(m) = E_q[(f p / q)²] - I²; m = 0 is simple Monte Carlo. (Lab 1.)
    """
    return float(np.exp(m ** 2 / 2 + (2 * a - m) ** 2 / 2) - np.exp(a ** 2))


def log_normal(x, m):
    """log N(x; m, 1), elementwise over the array x."""
    return -0.5 * (x - m) ** 2 - 0.5 * LOG_2PI


def optimal_log_density(x, a):
    """log q*(x) for the zero-variance proposal q* = f p / I of I = E_p[exp(a x)], p = N(0, 1):
    exp(a x) N(x; 0, 1) / e^{a²/2} = N(x; a, 1). Elementwise over the array x. (Lab 1.)"""
    return log_normal(x, a)


class ExpUnderGaussian:
    """I = E_p[exp(a x)] with p = N(0, 1): I = exp(a²/2), a closed-form test bed.

    f p = exp(a x) φ(x) = I φ(x - a), so the optimal proposal is q* = N(a, 1). For a Gaussian
    proposal q = N(m, 1) the variance of one IS term is

        σ²(m) = E_q[(f p / q)²] - I² = exp(m²/2 + (2a - m)²/2) - exp(a²),

    (simple MC is m = 0: σ² = exp(2a²) - exp(a²)), zero at m = a. The larger a, the further the
    mass of f·p sits from p's and the worse simple MC does.
    """

    def __init__(self, a=2.0):
        self.a = float(a)
        self.exact = float(np.exp(self.a ** 2 / 2))

    def f(self, x):
        return np.exp(self.a * x)

    log_normal = staticmethod(log_normal)        # log N(x; m, 1)

    def log_p(self, x):
        return self.log_normal(x, 0.0)

    @staticmethod
    def sampler(m):
        """A function (k, rng) -> k draws from N(m, 1)."""
        return lambda k, rng: m + rng.standard_normal(k)

    def term_variance(self, m):
        """σ²(m), the variance of one term f p / q with q = N(m, 1) (m = 0: simple MC)."""
        return is_term_variance(self.a, m)

    def simple_mc(self, k, rng):
        return simple_monte_carlo(self.f, self.sampler(0.0), k, rng)

    def importance(self, m):
        """The IS estimator with proposal N(m, 1), as a function (k, rng) -> Estimate."""
        log_q = lambda x: self.log_normal(x, m)  # noqa: E731
        return lambda k, rng: importance_sampling(self.f, self.log_p, self.sampler(m), log_q,
                                                  k, rng)

    def optimal(self, k, rng):
        """IS with q* = f p / I = N(a, 1): every term equals I."""
        return importance_sampling(self.f, self.log_p, self.sampler(self.a),
                                   lambda x: optimal_log_density(x, self.a), k, rng)
