"""Lab 2, now on real data: `minivae lab run 2 [--quick]`.

PPCA (closed form) and factor analysis (EM) fitted to MNIST digits for several latent
dimensions d; their log-likelihoods on training and test digits, and EM climbing.

Your log_marginal, posterior, ppca_fit and fa_em_step are the library's minivae.lecture.linear
functions while this runs (once they pass the checks): PPCA.fit calls ppca_fit,
FactorAnalysis.fit calls fa_em_step, and both models' scores call log_marginal.
"""
import numpy as np

from minivae.labs.common import mnist
from minivae.lecture.linear import PPCA, FactorAnalysis

DESCRIPTION = ("fit PPCA and factor analysis to MNIST digits for several latent dimensions; "
               "compare their test log-likelihoods and watch EM climb")


def main(args):
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
    figures = {}
    for d in dims:
        ppca = PPCA(d).fit(x_train)
        fa = FactorAnalysis(d, max_iter=iters, tol=1e-4, seed=args.seed).fit(x_train)
        print(f"{d:4d}{ppca.score(x_train):13.1f}{ppca.score(x_test):12.1f}"
              f"{fa.score(x_train):12.1f}{fa.score(x_test):12.1f}{fa.n_iter_:16d}")
        figures[f"PPCA test log-lik., d={d}"] = float(ppca.score(x_test))
        figures[f"FA test log-lik., d={d}"] = float(fa.score(x_test))
    ll = np.array(fa.loglike_)
    print(f"\nEM for d = {dims[-1]}: the log-likelihood after iterations 1, 2, 5, 10, ..., last:\n  "
          + "  ".join(f"{ll[i]:.1f}" for i in sorted({0, 1, 4, 9, 49, 99, len(ll) - 1})
                      if i < len(ll)))
    print(f"  it never decreases: smallest change {np.diff(ll).min():.2e} nats.")
    print("\nFactor analysis, with one noise variance per pixel, beats PPCA's single σ²: pixels "
          "near the border vary\nfar less than those in the middle. A larger d explains more "
          "of each digit. These linear models are\nthe baseline that a DLVM's non-linear "
          "decoder improves on.")
    return figures
