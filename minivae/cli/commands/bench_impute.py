"""Benchmark MIWAE imputation on the breast cancer data against mean, MICE and missForest.

The protocol of the MIWAE authors' notebooks (Mattei & Frellsen 2019): the Wisconsin breast
cancer data (569 x 30, shipped with scikit-learn), standardised with the full-data mean and
standard deviation; 50% of all cells removed completely at random (NumPy seed 1234); MIWAE
trained with K = 20 and imputing with L = 10,000; the score is the mean squared error over the
removed cells, on the standardised scale. Baselines: mean imputation, scikit-learn's
IterativeImputer with BayesianRidge (MICE-like) and with ExtraTreesRegressor(n_estimators=100)
(missForest-like). Needs scikit-learn (pip install -e .[bench]). See docs/missing-data.md.
"""
import sys
import time
import warnings

import numpy

from ... import backend, data
from ...impute import MIWAEImputer
from .. import runs
from ..options import nonnegative_int, positive_int, positive_real, seed

#: The authors' own figures for MIWAE on this protocol, from their published notebooks.
PUBLISHED = [("MIWAE, authors' TF1 notebook (tanh, d=10, 601 epochs)", 0.300),
             ("MIWAE, authors' TF2 notebook (ReLU, d=10, 1001 epochs)", 0.287)]


def add_arguments(parser):
    from ...impute import LIKELIHOODS
    from ...layers import ACTIVATIONS
    parser.add_argument("--epochs", type=positive_int, default=600,
                        help="MIWAE training epochs (default: 600, the TF1 notebook's)")
    parser.add_argument("--activation", choices=tuple(ACTIVATIONS), default="tanh")
    parser.add_argument("--likelihood", choices=LIKELIHOODS, default="student_t")
    parser.add_argument("--z-dim", type=positive_int, default=10)
    parser.add_argument("--k", type=positive_int, default=20)
    parser.add_argument("--lr", type=positive_real, default=1e-3)
    parser.add_argument("--n-samples", type=positive_int, default=10000,
                        help="importance samples L for imputing (default: 10000)")
    parser.add_argument("--seed", type=seed, default=0, help="MIWAE's seed (default: 0)")
    parser.add_argument("--missing-seed", type=seed, default=1234,
                        help="seed of the missing-cell pattern (default: 1234, the authors')")
    parser.add_argument("--eval-every", type=nonnegative_int, default=0, metavar="N",
                        help="also report the imputation MSE every N epochs (costs one "
                        "imputation each)")
    parser.add_argument("--skip-baselines", action="store_true",
                        help="run MIWAE only (no scikit-learn imputers)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")


def mse(xhat, xfull, mask):
    """Mean squared error over the removed cells."""
    return float(numpy.mean((xhat - xfull)[~mask] ** 2))


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def baselines(xmiss, seed=0, on_progress=None):
    """(name, imputed, seconds) for mean imputation, MICE-like and missForest-like imputers;
    ``on_progress(n_done)`` after each."""
    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401 (enables the next)
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.impute import IterativeImputer
    from sklearn.linear_model import BayesianRidge

    out = []
    xhat, t = _timed(lambda: numpy.where(numpy.isnan(xmiss), numpy.nanmean(xmiss, axis=0),
                                         xmiss))
    out.append(("mean imputation", xhat, t))
    if on_progress is not None:
        on_progress(len(out))
    for name, est in [("IterativeImputer + BayesianRidge (MICE-like)", BayesianRidge()),
                      ("IterativeImputer + ExtraTrees(100) (missForest-like)",
                       ExtraTreesRegressor(n_estimators=100, random_state=seed))]:
        with warnings.catch_warnings():
            # Its default 10 rounds rarely meet the tolerance; the authors ran it as is.
            warnings.simplefilter("ignore", ConvergenceWarning)
            imp = IterativeImputer(estimator=est, random_state=seed)
            xhat, t = _timed(lambda: imp.fit_transform(xmiss))
        out.append((name, xhat, t))
        if on_progress is not None:
            on_progress(len(out))
    return out


def run(args):
    xfull, xmiss, mask = data.breast_cancer_problem(args.missing_seed)
    n, p = xfull.shape
    print(f"breast cancer: {n} x {p}, {int((~mask).sum())} cells removed (seed "
          f"{args.missing_seed}); MIWAE d={args.z_dim}, hidden 128,128, {args.activation}, "
          f"{args.likelihood}, K={args.k}, L={args.n_samples}, {args.epochs} epochs",
          file=sys.stderr)
    imputer = MIWAEImputer(z_dim=args.z_dim, activation=args.activation,
                           likelihood=args.likelihood, k=args.k, epochs=args.epochs, lr=args.lr,
                           n_samples=args.n_samples, seed=args.seed)
    curve, tracking = [], [0.0]

    def track(epoch, bound):
        # The learning curve costs one imputation per point: timed apart, excluded from training.
        if args.eval_every and epoch % args.eval_every == 0 and epoch < args.epochs:
            # Restore the noise generator afterwards, so that tracking leaves training unchanged.
            state = backend.rng_state(imputer.model_.rng)
            err, t = _timed(lambda: mse(imputer.transform(xmiss), xfull, mask))
            backend.set_rng_state(imputer.model_.rng, state)
            tracking[0] += t
            curve.append({"epoch": epoch, "bound": bound, "mse": err})
            print(f"epoch {epoch}: bound {bound:.4f}, imputation MSE {err:.4f}", file=sys.stderr)

    # Progress bars on a terminal only (runs.progress), as `minivae impute` shows.
    with runs.progress(args.epochs, "training MIWAE", "epoch") as report:
        _, t_train = _timed(lambda: imputer.fit(
            xmiss, callback=lambda epoch, bound: (report(epoch), track(epoch, bound))))
    t_train -= tracking[0]
    n_rows = int(numpy.isnan(xmiss).any(axis=1).sum())
    with runs.progress(n_rows, f"imputing (L = {args.n_samples})", "row") as report:
        xhat, t_impute = _timed(lambda: imputer.transform(xmiss, on_progress=report))
    err = mse(xhat, xfull, mask)
    print(f"epoch {args.epochs}: bound {imputer.history_[-1]:.4f}, imputation MSE {err:.4f}",
          file=sys.stderr)
    rows = [{"method": f"MIWAE (minivae, {args.activation}, d={args.z_dim}, {args.epochs} "
                       f"epochs)", "mse": err, "seconds": t_train + t_impute,
             "train_seconds": t_train, "impute_seconds": t_impute}]
    if not args.skip_baselines:
        with runs.progress(3, "baselines (mean, MICE, missForest)", "imputer") as report:
            done = baselines(xmiss, args.seed, on_progress=report)
        rows += [{"method": name, "mse": mse(xhat, xfull, mask), "seconds": t}
                 for name, xhat, t in done]
    rows += [{"method": name, "mse": value, "seconds": None} for name, value in PUBLISHED]

    print("| method | MSE (removed cells, standardised) | time |")
    print("|---|---:|---:|")
    for r in rows:
        t = "published" if r["seconds"] is None else f"{r['seconds']:.1f} s"
        if "train_seconds" in r:
            t += f" ({r['train_seconds']:.1f} train + {r['impute_seconds']:.1f} impute)"
        print(f"| {r['method']} | {r['mse']:.3f} | {t} |")
    if args.json:
        config = {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "json"}
        runs.write_json(args.json, {"config": config, "results": rows, "curve": curve,
                                    "history": imputer.history_})
