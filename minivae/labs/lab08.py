"""Lab 8: missing data with MIWAE: the masked bound, its gradient, imputation by importance
sampling (single: SNIS; multiple: SIR).

Checks: masked_log_weights against minivae's IWAE.log_weights with a mask (a small float64
model with Gaussian observations); miwae_head_grads against five-point finite differences of
the masked bound; snis_impute and sir_indices against the computations of
minivae.impute.MIWAEImputer (written out below with minivae.ops.logsumexp_weights_reference), by
the relative error of the worst entry.
"""
import math
import time

import numpy as np

from ..impute import MIWAEImputer
from ..likelihoods import Gaussian
from ..lecture.linear import PPCA, posterior
from ..model import IWAE
from ..ops import logsumexp_weights_reference
from .common import mnist, random_params
from .core import as_array, call, check_gradient, compare, namespace

NUMBER = 8
FOLDER = "08_missing_data_miwae"
TITLE = "Missing data with MIWAE: the masked bound and imputation by importance sampling"
MINUTES = "60-90 min"
TEACHES = ("why a factorised decoder makes missing features drop out of the likelihood, the "
           "MIWAE bound and its gradient, single imputation by self-normalised importance "
           "sampling and multiple imputation by resampling")
RUN_DESCRIPTION = ("SNIS imputation against the exact conditional mean of a PPCA model of "
                   "MNIST digits; then MIWAE on the breast cancer data with half its cells "
                   "missing (the paper's benchmark; needs scikit-learn, which ships the data)")


# ------------------------------------------------------------------ the reference (minivae)
def ref_masked_log_weights(log_phi, mask, z, eps, logvar):
    """As IWAE.forward/log_weights with a mask: Σ_j m_j log Φ_j + log p(z) - log q(z|x)."""
    return (log_phi * mask).sum(axis=-1) + IWAE.log_prior(z) - \
        IWAE.log_posterior_approx(eps, logvar)


def ref_miwae_head_grads(log_w, dlogphi, mask):
    """As IWAE._backward: ∂(Σ_b L_K)/∂η_kbj = w̃_kb m_bj ∂ log Φ_kbj/∂η."""
    w = logsumexp_weights_reference(log_w)[1]
    return w[..., None] * mask * dlogphi


def ref_snis_impute(x, mask, log_w, means):
    """As MIWAEImputer._conditional_mean (one pass): Σ_l w̃_l E[x|z_l], observed entries kept."""
    w = logsumexp_weights_reference(log_w)[1]
    return np.where(mask, x, (w[..., None] * means).sum(axis=0))


def ref_sir_indices(log_w, u):
    """As MIWAEImputer._resample: inverse CDF of the normalized weights, column by column."""
    cdf = np.cumsum(logsumexp_weights_reference(log_w)[1], axis=0)
    idx = np.stack([np.searchsorted(cdf[:, b], u[:, b] * cdf[-1, b], side="right")
                    for b in range(cdf.shape[1])], axis=1)
    return np.minimum(idx, len(cdf) - 1)


def solution():
    """minivae's computations (minivae/model.py and minivae/impute.py), as quoted above."""
    return namespace(masked_log_weights=ref_masked_log_weights,
                     miwae_head_grads=ref_miwae_head_grads, snis_impute=ref_snis_impute,
                     sir_indices=ref_sir_indices)


# ------------------------------------------------------------------ checks
def _masked_log_weights(mod):
    rng = np.random.default_rng(80)
    K, B, D, d = 4, 5, 6, 2
    model = IWAE(D, d, hidden=(4,), likelihood="gaussian", dtype="float64", seed=8)
    random_params(model.params, rng)
    x = rng.standard_normal((B, D))
    mask = rng.random((B, D)) < 0.6
    mask[0] = True                              # a complete row
    mask[1] = False                             # an empty row: log w = log p(z) - log q
    eps = rng.standard_normal((K, B, d))
    ref, cache = model.log_weights(x, K, eps=eps, mask=mask)
    log_phi = Gaussian.log_prob(cache["x"], **cache["heads"])
    log_phi = np.where(mask, log_phi, 100 * rng.standard_normal(log_phi.shape))  # junk
    got = call(mod, "masked_log_weights", log_phi, mask.copy(), cache["z"].copy(), eps.copy(),
               cache["logvar"].copy())
    return [compare("log w", as_array(got, (K, B), "log w"), ref,
                    "minivae.model.IWAE.log_weights(mask=...)")]


def _head_grads(mod):
    rng = np.random.default_rng(81)
    K, B, D = 5, 4, 6
    x = rng.standard_normal((B, D))
    mask = rng.random((B, D)) < 0.6
    mean, logvar = rng.standard_normal((K, B, D)), 0.5 * rng.standard_normal((K, B, D))
    rest = rng.standard_normal((K, B))          # log p(z) - log q(z|x), fixed here

    def log_w():
        return (Gaussian.log_prob(x, mean, logvar) * mask).sum(axis=-1) + rest

    dlogphi = Gaussian.log_prob_grads(x, mean, logvar)["mean"]
    got = call(mod, "miwae_head_grads", log_w(), dlogphi, mask.copy())

    def f():
        lse, _ = logsumexp_weights_reference(log_w())
        return float((lse - math.log(K)).sum())
    return check_gradient(f, {"mean": mean}, {"mean": got}, prefix="∂L/∂")


def _snis(mod):
    rng = np.random.default_rng(82)
    L, B, D = 50, 4, 6
    x = rng.standard_normal((B, D))
    mask = rng.random((B, D)) < 0.5
    mask[0] = True
    x_in = np.where(mask, x, np.nan)
    log_w = 20 * rng.standard_normal((L, B)) - 500     # far from 0: needs the max shift
    means = rng.standard_normal((L, B, D))
    got = call(mod, "snis_impute", x_in.copy(), mask.copy(), log_w.copy(), means.copy())
    got = as_array(got, (B, D), "x̂")
    return [compare("x̂", got, ref_snis_impute(x_in, mask, log_w, means),
                    "Σ_l w̃_l E[x|z_l] (minivae.impute)")]


def _sir(mod):
    rng = np.random.default_rng(83)
    L, B, M = 30, 5, 8
    log_w = 3 * rng.standard_normal((L, B)) + 200
    u = rng.random((M, B))
    got = as_array(call(mod, "sir_indices", log_w.copy(), u.copy()), (M, B), "indices")
    return [compare("index", got, ref_sir_indices(log_w, u), "inverse CDF (minivae.impute)")]


CHECKS = [
    ("masked_log_weights", _masked_log_weights),
    ("miwae_head_grads", _head_grads),
    ("snis_impute", _snis),
    ("sir_indices", _sir),
]


# ------------------------------------------------------------------ now on real data
def add_arguments(parser):
    parser.add_argument("--epochs", type=int, default=None,
                        help="MIWAE training epochs (default 60; --quick: 2)")


def _digits(n_train, n_test, rng):
    """14 x 14 grey MNIST digits (every other pixel), dequantized: rows of 196 features."""
    x_train, _, x_test, _ = mnist(n_train=n_train, n_test=n_test, binarize=False)
    small = lambda x: x.reshape(-1, 28, 28)[:, ::2, ::2].reshape(len(x), -1)  # noqa: E731
    deq = lambda x: (255 * small(x) + rng.random((len(x), 196))) / 256  # noqa: E731
    return deq(x_train), deq(x_test)


def _log_normal(x, mean, var):
    return -0.5 * (((x - mean) ** 2 / var) + np.log(2 * np.pi * var)).sum(-1)


def _snis_vs_exact(args, rng):
    n_train, n_test, d = (300, 5, 5) if args.quick else (2000, 50, 10)
    x_train, x_test = _digits(n_train, n_test, rng)
    model = PPCA(d).fit(x_train)
    W, mu, s2 = model.components_.T, model.mean_, model.noise_variance_
    mask = np.zeros(196, bool)
    mask[98:] = True                               # the bottom half observed, the top missing
    Wo, muo, psio = W[mask], mu[mask], np.full(mask.sum(), s2)
    m, G = posterior(x_test[:, mask], Wo, muo, psio)          # exact p(z | x^o)
    exact = m @ W[~mask].T + mu[~mask]                        # E[x^m | x^o]
    print(f"1. A PPCA model (d = {d}) of {n_train} 14x14 MNIST digits. Hide the top half of "
          f"{n_test} test digits: E[x^m|x^o] is\n   known exactly. SNIS estimates it from L "
          f"samples z_l ~ q and the weights w_l = p(x^o|z_l) p(z_l) / q(z_l);\n   root mean "
          f"squared difference from the exact conditional mean (pixel values are in [0, 1]):")
    chol = np.linalg.cholesky(G)
    masks = np.broadcast_to(mask, x_test.shape)
    print(f"   {'L':>7}{'q = p(z), the prior':>22}{'q = exact posterior, 2x wider':>32}")
    for L in ((10, 100, 1000) if args.quick else (10, 100, 1000, 10000)):
        errs = []
        for wide in (False, True):
            e = rng.standard_normal((L, n_test, d))
            if wide:
                z = m + 2 * e @ chol.T
                log_q = _log_normal(e, 0, 1) - d * math.log(2) - np.log(np.diag(chol)).sum()
            else:
                z, log_q = e, _log_normal(e, 0, 1)
            log_w = _log_normal(x_test[:, mask], z @ Wo.T + muo, s2) + _log_normal(z, 0, 1) \
                - log_q
            means = z @ W.T + mu                                # E[x|z_l], (L, n, 196)
            imputed = ref_snis_impute(x_test, masks, log_w, means)[:, ~mask]
            errs.append(np.sqrt(((imputed - exact) ** 2).mean()))
        print(f"   {L:7d}{errs[0]:22.4f}{errs[1]:32.4f}")
    print("   SNIS converges to the conditional mean as L grows, much faster with a proposal "
          "close to the\n   posterior: MIWAE's encoder q(z|x^o) is trained to be one.")


def _miwae(args, rng):
    try:
        from ..cli.commands.bench_impute import make_problem
        xfull, xmiss, _ = make_problem()
    except Exception as e:  # scikit-learn (which ships the data) missing: a CommandError
        print(f"\n2. (skipped: {e})")
        return
    epochs, L = (2, 50) if args.quick else (60, 1000)
    epochs = args.epochs or epochs
    miss = np.isnan(xmiss)
    n, p = xfull.shape
    print(f"\n2. MIWAE on real tabular data, the paper's benchmark: the Wisconsin breast cancer "
          f"data ({n} x {p},\n   standardized), 50% of the cells removed completely at random. "
          f"d = 10, K = 20, Student's t observations,\n   {epochs} epochs (the paper: 600); "
          f"imputation with L = {L}. Mean squared error on the removed cells:")
    t0 = time.perf_counter()
    imp = MIWAEImputer(z_dim=10, hidden=(128, 128), k=20, epochs=epochs, n_samples=L,
                       seed=args.seed)
    X_hat = imp.fit_transform(xmiss)
    seconds = time.perf_counter() - t0
    mse = lambda xh: float(((xh - xfull)[miss] ** 2).mean())  # noqa: E731
    print(f"   mean imputation (each column's observed mean)   "
          f"{mse(np.where(miss, np.nanmean(xmiss, axis=0), xfull)):.3f}")
    print(f"   MIWAE, single imputation (SNIS)                 {mse(X_hat):.3f}   "
          f"({seconds:.0f} s; bound {imp.history_[0]:.1f} -> {imp.history_[-1]:.1f})")
    draws = imp.transform(xmiss, n_imputations=5)
    print(f"   MIWAE, 5 multiple imputations (SIR): MSE of each draw "
          f"{np.mean([mse(d) for d in draws]):.3f}, of their mean {mse(draws.mean(axis=0)):.3f}")
    print("   A single draw is worse than the conditional mean (it adds the model's noise), "
          "but the draws' spread\n   is the uncertainty a single imputation hides. The "
          "authors report 0.30 after 600 epochs;\n   `minivae bench-impute` runs the whole "
          "benchmark with its baselines (docs/missing-data.md).")


def run(args):
    rng = np.random.default_rng(args.seed)
    _snis_vs_exact(args, rng)
    _miwae(args, rng)
