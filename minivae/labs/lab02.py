"""Lab 2: linear latent variable models: PPCA's closed form, factor analysis by EM, log p(x).

No gradients here: every check compares the student's function with minivae.lecture.linear on random
linear-Gaussian data, by the relative error of the worst entry. PPCA's W is only defined up to
a rotation, so the check compares W Wᵀ; the EM step is compared with the reference step from
the same (W, ψ), and 30 steps of the student's EM must never lower the log-likelihood.
"""
import numpy as np

from ..lecture.linear import PPCA, FactorAnalysis, fa_em_step, log_marginal, posterior
from .common import mnist
from .core import CheckFailed, as_array, call, compare, namespace, unpack

NUMBER = 2
FOLDER = "02_linear_models"
TITLE = "Linear latent variable models: PPCA in closed form, factor analysis by EM"
MINUTES = "60-90 min"
TEACHES = ("the marginal likelihood of a linear-Gaussian model (Woodbury, determinant lemma), "
           "the exact posterior, PPCA's maximum likelihood from an eigendecomposition, EM and "
           "its monotone log-likelihood: the exact versions of what a DLVM approximates")
RUN_DESCRIPTION = ("fit PPCA and factor analysis to MNIST digits for several latent "
                   "dimensions; compare their test log-likelihoods and watch EM climb")


# ------------------------------------------------------------------ the reference (minivae)
def ref_ppca_fit(X, d):
    m = PPCA(d).fit(X)
    return m.components_.T, m.mean_, m.noise_variance_


# One iteration of the loop of minivae.lecture.linear.FactorAnalysis.fit (without its floor on ψ).
ref_fa_em_step = fa_em_step


def solution():
    """minivae.lecture.linear: log_marginal, posterior, PPCA.fit and FactorAnalysis.fit's EM step."""
    return namespace(log_marginal=log_marginal, posterior=posterior, ppca_fit=ref_ppca_fit,
                     fa_em_step=ref_fa_em_step)


# ------------------------------------------------------------------ checks
def _data(seed, n=300, p=7, d=2):
    """Linear-Gaussian data with heteroscedastic noise, and random (W, μ, ψ) to evaluate at."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((p, d))
    mu = rng.normal(2.0, 1.0, p)
    psi = rng.uniform(0.2, 1.0, p)
    X = rng.standard_normal((n, d)) @ W.T + mu + rng.standard_normal((n, p)) * np.sqrt(psi)
    W0, mu0, psi0 = rng.standard_normal((p, d)), rng.standard_normal(p), rng.uniform(0.3, 2, p)
    return X, W0, mu0, psi0


def _log_marginal(mod):
    X, W, mu, psi = _data(20)
    got = as_array(call(mod, "log_marginal", X.copy(), W.copy(), mu.copy(), psi.copy()),
                   (len(X),), "log_marginal(...)")
    return [compare("log p(x)", got, log_marginal(X, W, mu, psi), "minivae.lecture.linear")]


def _posterior(mod):
    X, W, mu, psi = _data(21)
    m, G = unpack(call(mod, "posterior", X.copy(), W.copy(), mu.copy(), psi.copy()), 2,
                  "posterior")
    ref_m, ref_G = posterior(X, W, mu, psi)
    return [compare("m", as_array(m, ref_m.shape, "m"), ref_m, "minivae.lecture.linear"),
            compare("G", as_array(G, ref_G.shape, "G"), ref_G, "minivae.lecture.linear")]


def _ppca(mod):
    out = []
    for seed, d in ((22, 2), (23, 3)):
        X, _, _, _ = _data(seed, d=2)
        W, mu, s2 = unpack(call(mod, "ppca_fit", X.copy(), d), 3, "ppca_fit")
        W = as_array(W, (X.shape[1], d), "W")
        ref_W, ref_mu, ref_s2 = ref_ppca_fit(X, d)
        out += [compare(f"W Wᵀ (d={d})", W @ W.T, ref_W @ ref_W.T, "minivae.lecture.linear.PPCA"),
                compare(f"mu (d={d})", as_array(mu, ref_mu.shape, "mu"), ref_mu,
                        "minivae.lecture.linear.PPCA"),
                compare(f"sigma2 (d={d})", as_array(s2, (), "sigma2"), ref_s2,
                        "minivae.lecture.linear.PPCA")]
    return out


def _loglike(S, W, psi):
    """The mean log-likelihood per example from the covariance S (data centred at μ̂)."""
    C = W @ W.T + np.diag(psi)
    _, logdet = np.linalg.slogdet(C)
    return -0.5 * (len(psi) * np.log(2 * np.pi) + logdet + np.trace(np.linalg.solve(C, S)))


def _fa(mod):
    X, W, _, psi = _data(24, d=2)
    Xc = X - X.mean(axis=0)
    S = Xc.T @ Xc / len(X)
    W1, psi1 = unpack(call(mod, "fa_em_step", S.copy(), W.copy(), psi.copy()), 2, "fa_em_step")
    ref_W1, ref_psi1 = ref_fa_em_step(S, W, psi)
    out = [compare("W_new", as_array(W1, W.shape, "W_new"), ref_W1, "one reference EM step"),
           compare("psi_new", as_array(psi1, psi.shape, "psi_new"), ref_psi1,
                   "one reference EM step")]
    # 30 steps of the student's EM from a fresh start: the log-likelihood must never decrease.
    rng = np.random.default_rng(25)
    W, psi = rng.standard_normal(W.shape), np.diag(S).copy()
    ll = [_loglike(S, W, psi)]
    for i in range(30):
        W, psi = unpack(call(mod, "fa_em_step", S.copy(), W, psi), 2, "fa_em_step")
        W, psi = as_array(W, ref_W1.shape, "W_new"), as_array(psi, ref_psi1.shape, "psi_new")
        if np.any(psi <= 0):
            raise CheckFailed(f"psi_new has a non-positive entry after {i + 1} EM steps")
        ll.append(_loglike(S, W, psi))
        if ll[-1] < ll[-2] - 1e-9 * abs(ll[-2]):
            raise CheckFailed(f"EM step {i + 1} lowered the log-likelihood from {ll[-2]:.6f} "
                              f"to {ll[-1]:.6f}: EM never does")
    return out


CHECKS = [
    ("log_marginal", _log_marginal),
    ("posterior", _posterior),
    ("ppca_fit", _ppca),
    ("fa_em_step", _fa),
]


# ------------------------------------------------------------------ now on real data
def run(args):
    n_train, n_test, dims, iters = (300, 200, (2, 5), 20) if args.quick else \
        (2000, 1000, (2, 10, 30), 150)
    rng = np.random.default_rng(args.seed)
    x_train, _, x_test, _ = mnist(n_train=n_train, n_test=n_test, binarize=False)
    # Pixels that are (almost) never inked in training (the border) would get a near-zero
    # noise variance under FA, and a single inked test pixel would cost thousands of nats: keep
    # the pixels inked in at least 2% of the training digits.
    keep = (x_train > 0).mean(axis=0) >= 0.02
    deq = lambda x: (255 * x[:, keep] + rng.random((len(x), keep.sum()))) / 256  # noqa: E731
    x_train, x_test = deq(x_train), deq(x_test)
    print(f"PPCA and factor analysis of {n_train} MNIST digits, on the p = {keep.sum()} pixels "
          f"inked in at least 2% of them\n(grey levels dequantized with uniform noise); mean "
          f"log-likelihood per digit, in nats, on the training set\nand on {n_test} test "
          f"digits:\n")
    print(f"{'d':>4}{'PPCA train':>13}{'PPCA test':>12}{'FA train':>12}{'FA test':>12}"
          f"{'EM iterations':>16}")
    last = None
    for d in dims:
        ppca = PPCA(d).fit(x_train)
        fa = FactorAnalysis(d, max_iter=iters, tol=1e-4, seed=args.seed).fit(x_train)
        print(f"{d:4d}{ppca.score(x_train):13.1f}{ppca.score(x_test):12.1f}"
              f"{fa.score(x_train):12.1f}{fa.score(x_test):12.1f}{fa.n_iter_:16d}")
        last = fa
    ll = np.array(last.loglike_)
    print(f"\nEM for d = {dims[-1]}: the log-likelihood after iterations 1, 2, 5, 10, ..., last:\n  "
          + "  ".join(f"{ll[i]:.1f}" for i in sorted({0, 1, 4, 9, 49, 99, len(ll) - 1})
                      if i < len(ll)))
    print(f"  it never decreases: smallest change {np.diff(ll).min():.2e} nats.")
    print("\nFactor analysis, with one noise variance per pixel, beats PPCA's single σ²: pixels "
          "near the border vary\nfar less than those in the middle. A larger d explains more "
          "of each digit. These linear models are\nthe baseline that a DLVM's non-linear "
          "decoder improves on.")
