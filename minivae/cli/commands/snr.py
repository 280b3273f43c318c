"""The gradient's signal-to-noise ratio against K for the IWAE, STL and DReG estimators.

Examples:
  minivae snr runs/iwae5                        # K = 1, 5, 50, 500; 100 draws of ε; 20 images
  minivae snr runs/iwae5 --k 1,5,50 --reps 50 --batch 10 --out figures/
  minivae snr --toy --k 1,5,50,500,5000 --reps 1000 --batch 1 --out figures/toy

Reproduces Rainforth et al. (2018)'s experiment at a fixed trained model: for each K, the
gradient of L_K on one fixed minibatch of training images is estimated --reps times with fresh
noise ε (the same ε for every estimator), and each parameter's SNR = |mean| / sd is averaged
over the encoder's and over the decoder's parameters. Expect the IWAE encoder's SNR to fall
with K and the decoder's to rise for all (its estimator is the same for all three, so its
columns agree); DReG's rises only where the weights are spread (ESS) and light-tailed (k̂ < 1/4),
which trained MNIST models' are not. Prints the table (the mean over parameters and the pooled
SNR, the effective sample size and tail index k̂ of the weights) and writes snr.json and snr.png (in RUN_DIR, or
--out).

--widen-q F multiplies the run's q(z|x) variances by F first (an experiment: a wider q has
lighter-tailed weights). --toy measures the same on Rainforth et al.'s Gaussian toy model near its optimum
(minivae.snr.gaussian_toy: D = d = 20, parameters perturbed by --perturbation), where the
weights are spread and light-tailed and DReG's encoder SNR rises with K; --q-variance below the
posterior's 1/2 gives the weights a heavy tail (the k̂ column), and then it does not. --batch
counts data points drawn from the model, and --out is required. See docs/estimators.md.
"""
import os
import time

from .. import options
from ..options import nonnegative_int, nonnegative_real, positive_int, positive_real


def _ks(text):
    """'1,5,50' -> (1, 5, 50): each K checked as every --k is (options.positive_int)."""
    return tuple(positive_int(t) for t in text.split(","))


def add_arguments(parser):
    from ...bound import ESTIMATORS
    options.add_run_data_arguments(parser, optional=True)
    parser.add_argument("--toy", action="store_true",
                        help="measure on Rainforth et al.'s Gaussian toy model instead of a run")
    parser.add_argument("--perturbation", type=nonnegative_real, default=0.01,
                        help="--toy: sd of the noise added to the optimal parameters "
                        "(default: 0.01)")
    parser.add_argument("--widen-q", type=positive_real, default=None, metavar="F",
                        help="with RUN_DIR: multiply the encoder's variances by F before "
                        "measuring (a wider q has lighter-tailed weights)")
    parser.add_argument("--q-variance", type=positive_real, default=2 / 3,
                        help="--toy: the variance of q(z|x) (default: 2/3, as Rainforth et al.; "
                        "the posterior's is 1/2, and below 3/8 the weights' fourth moment, "
                        "DReG's variance, is infinite)")
    parser.add_argument("--k", type=_ks, default=(1, 5, 50, 500), metavar="K1,K2,...",
                        help="numbers of importance samples (default: 1,5,50,500)")
    parser.add_argument("--estimators", default=",".join(ESTIMATORS), metavar="E1,E2,...",
                        help=f"which estimators (default: {','.join(ESTIMATORS)})")
    parser.add_argument("--reps", type=positive_int, default=100,
                        help="draws of ε per K, at least 2 (default: 100)")
    parser.add_argument("--batch", type=positive_int, default=20,
                        help="training images in the fixed minibatch (default: 20)")
    parser.add_argument("--seed", type=nonnegative_int, default=0,
                        help="seed of the minibatch's binarization and of ε (default: 0)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="where to write snr.json and snr.png (default: RUN_DIR)")


def run(args):
    from ... import data, evaluate, plots, snr
    from .. import runs
    estimators = tuple(e.strip() for e in args.estimators.split(",") if e.strip())
    if args.toy:
        if args.run_dir is not None or args.data is not None or args.data_dir is not None:
            raise ValueError("--toy measures on the toy model: give no RUN_DIR, --data or "
                             "--data-dir with it")
        if args.widen_q is not None:
            raise ValueError("--widen-q is for a RUN_DIR's model; the toy's q is set by "
                             "--q-variance")
        if args.out is None:
            raise ValueError("--toy needs --out DIR (where to write snr.json and snr.png)")
        model, x = snr.gaussian_toy(perturbation=args.perturbation, n=args.batch,
                                    seed=args.seed, q_variance=args.q_variance)
        what, epoch = (f"Gaussian toy (perturbation {args.perturbation:g}, q variance "
                       f"{args.q_variance:.3g})"), None
    else:
        if args.run_dir is None:
            raise ValueError("give a RUN_DIR written by minivae train, or --toy")
        ckpt, model, config, rd = runs.load_run(args.run_dir, args.data, args.data_dir)
        index = evaluate.spread_subset(len(rd.x_train), args.batch)
        x = rd.x_train[index]
        if config.binarize == "dynamic":        # one fixed binarization of the minibatch
            x = data.fixed_binarize(x, args.seed)
        what, epoch = f"{args.batch} training images", ckpt.epoch
        if args.widen_q is not None:
            snr.widen_encoder(model, args.widen_q)
            what += f", q's variances x{args.widen_q:g}"
    snr.check_estimators(estimators)            # before any directory is made
    out = args.out or args.run_dir
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    with runs.progress_bar(len(args.k) * args.reps, "SNR", unit="draw") as bar:
        rows = snr.gradient_snr(model, x, args.k, estimators, args.reps, args.seed,
                                on_step=lambda: bar.update(1))
    seconds = time.perf_counter() - start
    trained = "" if epoch is None else f" after {epoch} epochs"
    print(f"{model!r}{trained}; {what}, {args.reps} draws of ε per K ({seconds:.1f} s)")
    print(snr.format_table(rows, args.reps))
    runs.write_json(os.path.join(out, "snr.json"),
                    {"rows": rows, "reps": args.reps, "batch": args.batch, "seed": args.seed,
                     "epoch": epoch, "model": repr(model), "seconds": seconds,
                     "ks": list(args.k), "estimators": list(estimators), "toy": args.toy,
                     "perturbation": args.perturbation if args.toy else None,
                     "q_variance": args.q_variance if args.toy else None,
                     "widen_q": args.widen_q})
    plots.save_snr(rows, os.path.join(out, "snr.png"),
                   title=f"{what}{trained}, {args.reps} draws of ε per K",
                   floor=snr.noise_floor(args.reps))
    print(f"wrote {os.path.join(out, 'snr.json')}, {os.path.join(out, 'snr.png')}")
