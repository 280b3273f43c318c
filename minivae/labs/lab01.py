"""Lab 1: Monte Carlo and importance sampling: estimators, their variance, the optimal proposal.

No gradients here: every check compares the student's function with minivae's reference
(minivae.lecture.montecarlo) on the same inputs, by the relative error |a - b| / max(|a| + |b|, 1e-4)
of the worst entry. The estimators are called with identically seeded generators, so the
student's and the reference draw the same samples and must agree to round-off.
"""
import math

import numpy as np

from ..lecture import montecarlo
from ..lecture.linear import PPCA, posterior
from ..lecture.montecarlo import ExpUnderGaussian
from ..ops import logsumexp_weights_reference
from .common import mnist
from .core import as_array, call, compare, namespace, unpack

NUMBER = 1
FOLDER = "01_monte_carlo"
TITLE = "Monte Carlo and importance sampling: estimators, variance, the optimal proposal"
MINUTES = "45-60 min"
TEACHES = ("unbiased estimators and their 1/K variance, importance sampling in log space, "
           "how the proposal sets the variance, and why the posterior is the ideal proposal "
           "(the idea behind the VAE's encoder)")
RUN_DESCRIPTION = ("the variance of simple Monte Carlo and importance sampling against K and "
                   "the proposal; then log p(x) of a PPCA model of MNIST digits, estimated with "
                   "the prior, a poor proposal and the exact posterior as proposals")


# ------------------------------------------------------------------ the reference (minivae)
def ref_estimator(fn):
    def wrapped(*args):
        est = fn(*args)
        return float(est.value), float(est.variance)
    return wrapped


def ref_optimal_log_density(x, a):
    """q* = f p / I = N(a, 1) for f = exp(a x), p = N(0, 1) (ExpUnderGaussian's docstring)."""
    return ExpUnderGaussian.log_normal(x, a)


def solution():
    """minivae.lecture.montecarlo's estimators and ExpUnderGaussian's closed forms."""
    return namespace(
        simple_monte_carlo=montecarlo.simple_monte_carlo,
        importance_sampling=montecarlo.importance_sampling,
        is_term_variance=lambda a, m: ExpUnderGaussian(a).term_variance(m),
        optimal_log_density=ref_optimal_log_density)


# ------------------------------------------------------------------ checks
def _estimate(value, what):
    v, var = unpack(value, 2, what)
    return as_array(v, (), f"{what}'s value"), as_array(var, (), f"{what}'s variance")


def _simple(mod):
    out = []
    for a, k, seed in ((1.5, 200, 10), (0.5, 37, 11)):
        ex = ExpUnderGaussian(a)
        sampler = ex.sampler(0.0)
        v, var = _estimate(call(mod, "simple_monte_carlo", ex.f, sampler, k,
                                np.random.default_rng(seed)), "simple_monte_carlo")
        ref = montecarlo.simple_monte_carlo(ex.f, sampler, k, np.random.default_rng(seed))
        out += [compare("value", v, ref.value, "minivae.lecture.montecarlo"),
                compare("variance", var, ref.variance, "minivae.lecture.montecarlo")]
    return out


def _importance(mod):
    out = []
    for a, m, k, seed in ((1.5, 1.0, 200, 12), (2.0, 3.0, 41, 13)):
        ex = ExpUnderGaussian(a)
        log_q = lambda x, m=m: ex.log_normal(x, m)  # noqa: E731
        args = (ex.f, ex.log_p, ex.sampler(m), log_q, k)
        v, var = _estimate(call(mod, "importance_sampling", *args, np.random.default_rng(seed)),
                           "importance_sampling")
        ref = montecarlo.importance_sampling(*args, np.random.default_rng(seed))
        out += [compare("value", v, ref.value, "minivae.lecture.montecarlo"),
                compare("variance", var, ref.variance, "minivae.lecture.montecarlo")]
    return out


def _term_variance(mod):
    cases = [(2.0, 0.0), (2.0, 1.0), (2.0, 2.0), (1.0, -0.5), (0.7, 2.5)]
    got = np.array([float(as_array(call(mod, "is_term_variance", a, m), (),
                                   "is_term_variance(...)")) for a, m in cases])
    ref = np.array([ExpUnderGaussian(a).term_variance(m) for a, m in cases])
    return [compare("σ²(m)", got, ref, "ExpUnderGaussian.term_variance")]


def _optimal(mod):
    x = np.linspace(-3, 5, 9)
    out = []
    for a in (0.5, 2.0):
        got = as_array(call(mod, "optimal_log_density", x.copy(), a), x.shape,
                       "optimal_log_density(...)")
        out.append(compare(f"log q* (a = {a})", got, ref_optimal_log_density(x, a),
                           "f p / I in closed form"))
    return out


CHECKS = [
    ("simple_monte_carlo", _simple),
    ("importance_sampling", _importance),
    ("is_term_variance", _term_variance),
    ("optimal_log_density", _optimal),
]


# ------------------------------------------------------------------ now on real data
def _variances(args):
    a = 2.0
    ex = ExpUnderGaussian(a)
    n_rep = 200 if args.quick else 2000
    ks = (10, 100, 1000)
    print(f"1. I = E[exp({a:g} x)], x ~ N(0, 1), exactly {ex.exact:.4f}. The variance of each "
          f"estimator over {n_rep} repetitions,\n   times K (constant when Var = σ²/K), against "
          f"the closed form σ²(m):")
    print(f"   {'estimator':<28}" + "".join(f"{'K=' + str(k):>12}" for k in ks) + f"{'σ²(m)':>12}")
    rows = [("simple MC (q = p, m = 0)", ex.simple_mc, 0.0),
            ("IS, q = N(1, 1)", ex.importance(1.0), 1.0),
            ("IS, q = N(4.5, 1) (too far)", ex.importance(4.5), 4.5),
            ("IS, q* = N(2, 1) (optimal)", ex.optimal, a)]
    for name, est, m in rows:
        r = montecarlo.replicate(est, ks, n_rep, seed=args.seed)
        print(f"   {name:<28}" + "".join(f"{v * k:12.3g}" for v, k in zip(r["variance"], ks))
              + f"{ex.term_variance(m):12.3g}")
    print("   Too far a proposal is worse than none; the optimal one has variance 0. (With heavy "
          "tails in f p / q,\n   as for m = 4.5 and simple MC, the empirical variance is itself "
          "very noisy.)")


def _ppca(args):
    n_train, n_test, d = (500, 3, 5) if args.quick else (2000, 5, 10)
    rng = np.random.default_rng(args.seed)
    x_train, _, x_test, _ = mnist(n_train=n_train, n_test=n_test, binarize=False)
    deq = lambda x: (255 * x + rng.random(x.shape)) / 256  # noqa: E731
    x_train, x_test = deq(x_train), deq(x_test)
    model = PPCA(d).fit(x_train)
    W, mu = model.components_.T, model.mean_
    psi = np.full(784, model.noise_variance_)
    exact = model.score_samples(x_test)
    m, G = posterior(x_test, W, mu, psi)
    L = np.linalg.cholesky(G)
    print(f"\n2. A PPCA model of MNIST (d = {d}, fitted to {n_train} digits): x = W z + μ + "
          f"noise, z ~ N(0, I). log p(x) = log ∫ p(x|z) p(z) dz\n   is known in closed form; "
          f"estimate it by importance sampling, log p̂ = log (1/K) Σ_k p(x|z_k) p(z_k) / "
          f"q(z_k), for {n_test} test digits:")

    def log_normal_diag(x, mean, var):
        return -0.5 * (((x - mean) ** 2 / var) + np.log(2 * np.pi * var)).sum(-1)

    def estimate(k, proposal, i):
        e = rng.standard_normal((k, d))
        if proposal == "prior":
            z, log_q = e, log_normal_diag(e, 0, 1)
        else:
            scale = 1.0 if proposal == "posterior" else 3.0
            z = m[i] + scale * e @ L.T
            # log N(z; m, scale² G) via the Cholesky factor L of G.
            log_q = log_normal_diag(e, 0, 1) - d * math.log(scale) - np.log(np.diag(L)).sum()
        log_w = log_normal_diag(x_test[i], z @ W.T + mu, psi) + log_normal_diag(z, 0, 1) - log_q
        lse, _ = logsumexp_weights_reference(log_w[:, None])
        return float(lse[0] - math.log(k))

    k = 1000 if args.quick else 5000
    print(f"   {'digit':<7}{'exact':>11}{'q = prior':>14}{'q = posterior, 3x wider':>26}"
          f"{'q = posterior, K = 1':>22}")
    for i in range(n_test):
        print(f"   {i:<7}{exact[i]:11.2f}{estimate(k, 'prior', i):14.2f}"
              f"{estimate(k, 'wide', i):26.2f}{estimate(1, 'posterior', i):22.2f}")
    print(f"   (K = {k} for the first two.) From the prior, almost no z explains a digit: the "
          f"estimate is far too low.\n   The exact posterior p(z|x) is the optimal proposal: "
          f"every weight equals p(x), and one sample gives log p(x)\n   exactly. A VAE's "
          f"encoder q(z|x) learns to approximate it (lab 5).")


def run(args):
    _variances(args)
    _ppca(args)
