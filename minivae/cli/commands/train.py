"""Train an IWAE (or VAE) on MNIST, writing a checkpoint, metrics and curves into a run directory.

Examples:
  minivae train --out runs/iwae5                       # embedded MNIST subset, L_5, 30 epochs
  minivae train --out runs/vae --k 1 --analytic-kl     # the VAE with its closed-form KL
  minivae train --data mnist --data-dir ~/mnist --schedule burda --epochs 30 --out runs/b
  minivae train --out runs/iwae5 --resume --epochs 40  # continue an existing run

RUN_DIR receives config.json, checkpoint.npz (after every epoch), metrics.jsonl (one line per
epoch) and curves.png. Exit codes: 0 done, 1 training diverged (NaN/inf: the checkpoint keeps
the last good epoch), 2 bad input (nothing written), 130 interrupted (resume with --resume).
See docs/training.md.
"""
import argparse
import os

from ... import train as training
from .. import Interrupted, hidden_widths
from ...train import TrainConfig

D = TrainConfig.__dataclass_fields__


def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _nonnegative_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def _positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


def add_model_arguments(parser):
    """The options that define a run, with None defaults (so a resume can tell what was given)."""
    from ... import data
    g = parser.add_argument_group("data")
    g.add_argument("--data", choices=data.DATASETS, default=None,
                   help=f"training data (default: {D['data'].default}, shipped with minivae)")
    g.add_argument("--data-dir", default=None, metavar="DIR",
                   help=f"directory of the four MNIST IDX files for --data mnist "
                   f"(default: ${data.ENV_VAR})")
    g.add_argument("--binarize", choices=data.BINARIZATIONS, default=None,
                   help="dynamic: a fresh Bernoulli draw of every pixel at every minibatch "
                   "(Burda et al.); fixed: drawn once from --seed; none: grey levels in [0, 1] "
                   "(default: dynamic for bernoulli, none otherwise)")
    g = parser.add_argument_group("model and objective")
    g.add_argument("--likelihood", choices=("bernoulli", "gaussian", "student_t"), default=None,
                   help=f"observation model p(x|z) (default: {D['likelihood'].default})")
    g.add_argument("--k", type=_positive_int, default=None,
                   help=f"importance samples K of the bound L_K; 1 is the VAE "
                   f"(default: {D['k'].default})")
    g.add_argument("--analytic-kl", action="store_const", const=True, default=None,
                   help="train the VAE bound E_q[log p(x|z)] - KL(q||p) with the KL in closed "
                   "form (the expectation estimated with --k samples)")
    g.add_argument("--z-dim", type=_positive_int, default=None,
                   help=f"latent dimension d (default: {D['z_dim'].default})")
    g.add_argument("--hidden", type=hidden_widths, default=None, metavar="W1,W2,...",
                   help="hidden layer widths of the encoder, reversed for the decoder; empty "
                   "for affine maps (default: 200,200, Burda et al.'s 784-200-200-50)")
    g.add_argument("--activation", choices=("tanh", "relu", "softplus"), default=None,
                   help=f"hidden activation (default: {D['activation'].default})")
    g.add_argument("--dtype", choices=("float32", "float64"), default=None,
                   help=f"floating point type (default: {D['dtype'].default})")
    g = parser.add_argument_group("optimisation")
    g.add_argument("--epochs", type=_nonnegative_int, default=None,
                   help=f"passes over the training data (default: {training.DEFAULT_EPOCHS}, or "
                   f"all {training.BURDA_PASSES} of the burda schedule); with --resume, the new "
                   "total")
    g.add_argument("--batch-size", type=_positive_int, default=None,
                   help=f"minibatch size (default: {D['batch_size'].default}, as Burda et al.)")
    g.add_argument("--lr", type=_positive_float, default=None,
                   help=f"Adam learning rate; the burda schedule starts there "
                   f"(default: {D['lr'].default:g})")
    g.add_argument("--schedule", choices=training.SCHEDULES, default=None,
                   help="constant, or burda: 3^i passes at lr * 10^(-i/7) for i = 0..7 "
                   "(3280 passes; cut short by --epochs) (default: constant)")
    g.add_argument("--seed", type=_nonnegative_int, default=None,
                   help="seeds the initialisation, the noise, the shuffling and the "
                   "binarization (default: 0)")
    g = parser.add_argument_group("monitoring")
    g.add_argument("--eval-n", type=_nonnegative_int, default=None,
                   help="test images scored after every epoch (default: all; 0: none)")
    g.add_argument("--eval-k", type=_positive_int, default=None,
                   help="K of the per-epoch test bound (default: --k)")


def add_arguments(parser):
    add_model_arguments(parser)
    g = parser.add_argument_group("run directory")
    g.add_argument("--out", default="runs/default", metavar="RUN_DIR",
                   help="run directory (default: runs/default)")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in RUN_DIR from its checkpoint (its saved settings "
                   "are kept; --epochs sets the new total)")
    g.add_argument("--force", action="store_true",
                   help="start over in a RUN_DIR that holds a run (deletes its checkpoint, "
                   "metrics, config, curves and evaluation)")
    g.add_argument("--quiet", action="store_true", help="print nothing but errors")
    g.add_argument("--no-plots", action="store_true", help="do not draw curves.png at the end")


def config_overrides(args):
    """The run options given on the command line, as TrainConfig field -> value."""
    given = {}
    for name in D:
        value = getattr(args, name, None)
        if value is not None:
            given[name] = value
    return given


def run(args):
    given = config_overrides(args)
    if args.resume:
        config = training.config_for_resume(args.out, given)
    else:
        config = TrainConfig(**given)
    try:
        summary = training.train(config, args.out, resume=args.resume, force=args.force,
                                 quiet=args.quiet, plots=not args.no_plots)
    except KeyboardInterrupt:
        ckpt = os.path.join(args.out, training.CHECKPOINT)
        raise Interrupted(f"{ckpt} holds the last completed epoch: continue with `minivae "
                          f"train --out {args.out} --resume`" if os.path.isfile(ckpt)
                          else "") from None
    if not args.quiet:
        last = summary["last"]
        if last is None:
            print(f"{args.out}: already trained for {summary['epoch']} epochs; pass --epochs "
                  f"with --resume to train further")
        else:
            print(f"done: {args.out} after {summary['epoch']} epochs"
                  + ("" if last["test_bound"] is None else
                     f", test L_{last['test_k']} = {last['test_bound']:.3f}")
                  + f"; next: minivae evaluate {args.out}, minivae sample {args.out}")
    return 0
