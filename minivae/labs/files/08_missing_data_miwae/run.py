"""Lab 8, now on real data: `minivae lab run 8 [--quick] [--epochs N]`.

1. SNIS imputation against the exact conditional mean E[x^m | x^o] of a PPCA model of MNIST
   digits, for a growing number L of samples and two proposals.
2. MIWAE on the breast cancer data with half its cells missing (the paper's benchmark; needs
   scikit-learn, which ships the data), trained for a fixed number of epochs (60; --quick: 2):
   single imputation by SNIS, multiple imputation by SIR.

Your masked_log_weights, miwae_head_grads, snis_impute and sir_indices are the library's while
this runs, once they pass the checks: part 1 imputes with your snis_impute; the MIWAE imputer
trains with your masked_log_weights (miwae_head_grads is the composition the model writes out
step by step), imputes with your snis_impute and resamples with your sir_indices.
"""
import math
import time

import numpy as np

from minivae import impute
from minivae.impute import MIWAEImputer
from minivae.labs.common import mnist
from minivae.lecture.linear import PPCA, posterior

DESCRIPTION = ("SNIS imputation against the exact conditional mean of a PPCA model of MNIST "
               "digits; then MIWAE on the breast cancer data with half its cells missing (the "
               "paper's benchmark; needs scikit-learn, which ships the data)")


def add_arguments(parser):
    parser.add_argument("--epochs", type=int, default=None,
                        help="MIWAE training epochs (default 60; --quick: 2)")


def digits(n_train, n_test, rng):
    """14 x 14 grey MNIST digits (every other pixel), dequantized: rows of 196 features."""
    x_train, _, x_test, _ = mnist(n_train=n_train, n_test=n_test, binarize=False)
    small = lambda x: x.reshape(-1, 28, 28)[:, ::2, ::2].reshape(len(x), -1)  # noqa: E731
    deq = lambda x: (255 * small(x) + rng.random((len(x), 196))) / 256  # noqa: E731
    return deq(x_train), deq(x_test)


def log_normal(x, mean, var):
    return -0.5 * (((x - mean) ** 2 / var) + np.log(2 * np.pi * var)).sum(-1)


def snis_vs_exact(args, rng, figures):
    n_train, n_test, d = (300, 5, 5) if args.quick else (2000, 50, 10)
    x_train, x_test = digits(n_train, n_test, rng)
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
                log_q = log_normal(e, 0, 1) - d * math.log(2) - np.log(np.diag(chol)).sum()
            else:
                z, log_q = e, log_normal(e, 0, 1)
            log_w = log_normal(x_test[:, mask], z @ Wo.T + muo, s2) + log_normal(z, 0, 1) \
                - log_q
            means = z @ W.T + mu                                # E[x|z_l], (L, n, 196)
            imputed = impute.snis_impute(x_test, masks, log_w, means)[:, ~mask]
            errs.append(np.sqrt(((imputed - exact) ** 2).mean()))
        print(f"   {L:7d}{errs[0]:22.4f}{errs[1]:32.4f}")
        figures[f"PPCA: RMS error of SNIS, prior, L={L}"] = float(errs[0])
    print("   SNIS converges to the conditional mean as L grows, much faster with a proposal "
          "close to the\n   posterior: MIWAE's encoder q(z|x^o) is trained to be one.")


def miwae(args, rng, figures):
    try:
        from minivae.data import breast_cancer_problem as make_problem
        xfull, xmiss, _ = make_problem()
    except ValueError as e:  # scikit-learn (which ships the data) is missing
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
    figures["MIWAE: MSE of SNIS"] = mse(X_hat)
    print(f"   MIWAE, single imputation (SNIS)                 {mse(X_hat):.3f}   "
          f"({seconds:.0f} s; bound {imp.history_[0]:.1f} -> {imp.history_[-1]:.1f})")
    draws = imp.transform(xmiss, n_imputations=5)
    figures["MIWAE: MSE of a SIR draw"] = float(np.mean([mse(d) for d in draws]))
    print(f"   MIWAE, 5 multiple imputations (SIR): MSE of each draw "
          f"{np.mean([mse(d) for d in draws]):.3f}, of their mean {mse(draws.mean(axis=0)):.3f}")
    print("   A single draw is worse than the conditional mean (it adds the model's noise), "
          "but the draws' spread\n   is the uncertainty a single imputation hides. The "
          "authors report 0.30 after 600 epochs;\n   `minivae bench-impute` runs the whole "
          "benchmark with its baselines (docs/missing-data.md).")


def main(args):
    rng = np.random.default_rng(args.seed)
    figures = {}
    snis_vs_exact(args, rng, figures)
    miwae(args, rng, figures)
    return figures
