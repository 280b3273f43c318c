"""The gradient's signal-to-noise ratio against K for the IWAE, STL and DReG estimators.

Examples:
  minivae snr runs/iwae5                        # K = 1, 5, 50, 500; 100 draws of ε; 20 images
  minivae snr runs/iwae5 --k 1,5,50 --reps 50 --batch 10 --out figures/

Reproduces Rainforth et al. (2018)'s experiment at a fixed trained model: for each K, the
gradient of L_K on one fixed minibatch of training images is estimated --reps times with fresh
noise ε (the same ε for every estimator), and each parameter's SNR = |mean| / sd is averaged
over the encoder's and over the decoder's parameters. Expect the IWAE encoder's SNR to fall
with K, DReG's to rise, and the decoder's to rise for all (its estimator is the same for all
three, so its columns agree). Prints the table and writes snr.json and snr.png (in RUN_DIR, or
--out). See docs/estimators.md.
"""
import os
import time

from .. import options
from ..options import nonnegative_int, positive_int


def _ks(text):
    import argparse
    try:
        ks = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k takes integers separated by commas, got "
                                         f"{text!r}") from None
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"every K must be >= 1, got {text!r}")
    return ks


def add_arguments(parser):
    from ...bound import ESTIMATORS
    options.add_run_data_arguments(parser)
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
    ckpt, model, config, rd = runs.load_run(args.run_dir, args.data, args.data_dir)
    index = evaluate.spread_subset(len(rd.x_train), args.batch)
    x = rd.x_train[index]
    if config.binarize == "dynamic":            # one fixed binarization of the minibatch
        x = data.fixed_binarize(x, args.seed)
    out = args.out or args.run_dir
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    with runs.progress_bar(len(args.k) * args.reps, "SNR", unit="draw") as bar:
        rows = snr.gradient_snr(model, x, args.k, estimators, args.reps, args.seed,
                                on_step=lambda: bar.update(1))
    seconds = time.perf_counter() - start
    print(f"{model!r} after {ckpt.epoch} epochs; {args.batch} training images, {args.reps} "
          f"draws of ε per K ({seconds:.1f} s)")
    print(snr.format_table(rows))
    runs.write_json(os.path.join(out, "snr.json"),
                    {"rows": rows, "reps": args.reps, "batch": args.batch, "seed": args.seed,
                     "epoch": ckpt.epoch, "model": repr(model), "seconds": seconds,
                     "ks": list(args.k), "estimators": list(estimators)})
    plots.save_snr(rows, os.path.join(out, "snr.png"))
    print(f"wrote {os.path.join(out, 'snr.json')}, {os.path.join(out, 'snr.png')}")
