"""Lab 1, now on real data: `minivae lab run 1 [--quick]`.

1. The variance of simple Monte Carlo and importance sampling against K and the proposal, on
   I = E[exp(a x)], x ~ N(0, 1), beside the closed form σ²(m) (is_term_variance).
2. log p(x) of a PPCA model of MNIST digits, estimated by importance sampling with the prior,
   a poor proposal and the exact posterior as proposals.

Your simple_monte_carlo, importance_sampling, is_term_variance and optimal_log_density are the
library's minivae.lecture.montecarlo functions while this runs (once they pass the checks).
"""
import math

import numpy as np

from minivae.lecture import montecarlo
from minivae.labs.common import mnist
from minivae.lecture.linear import PPCA, posterior
from minivae.ops import logsumexp_weights

DESCRIPTION = ("the variance of simple Monte Carlo and importance sampling against K and the "
               "proposal; then log p(x) of a PPCA model of MNIST digits, estimated with the "
               "prior, a poor proposal and the exact posterior as proposals")


def variances(args, figures):
    a = 2.0
    ex = montecarlo.ExpUnderGaussian(a)
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
    for name, estimator, m in rows:
        r = montecarlo.replicate(estimator, ks, n_rep, seed=args.seed)
        print(f"   {name:<28}" + "".join(f"{v * k:12.3g}" for v, k in zip(r["variance"], ks))
              + f"{ex.term_variance(m):12.3g}")
        figures[f"K Var, {name.split(' (')[0]}, K={ks[-1]}"] = float(r["variance"][-1] * ks[-1])
    figures["σ²(1), closed form"] = ex.term_variance(1.0)
    print("   Too far a proposal is worse than none; the optimal one has variance 0. (With heavy "
          "tails in f p / q,\n   as for m = 4.5 and simple MC, the empirical variance is itself "
          "very noisy.)")


def log_normal_diag(x, mean, var):
    return -0.5 * (((x - mean) ** 2 / var) + np.log(2 * np.pi * var)).sum(-1)


def ppca_log_likelihood(args, figures):
    n_train, n_test, d = (500, 3, 5) if args.quick else (2000, 5, 10)
    rng = np.random.default_rng(args.seed)
    x_train, _, x_test, _ = mnist(n_train=n_train, n_test=n_test, binarize=False)
    deq = lambda x: (255 * x + rng.random(x.shape)) / 256  # noqa: E731  (dequantize)
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
        lse, _ = logsumexp_weights(log_w[:, None])
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


def main(args):
    figures = {}
    variances(args, figures)
    ppca_log_likelihood(args, figures)
    return figures
