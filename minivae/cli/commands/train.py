"""Train an IWAE (or VAE) on MNIST, writing a checkpoint, metrics and curves into a run directory.

Examples:
  minivae train --out runs/iwae5                       # embedded MNIST subset, L_5, 30 epochs
  minivae train --out runs/vae --k 1 --analytic-kl     # the VAE with its closed-form KL
  minivae train --preset burda --data-dir ~/mnist --epochs 30 --out runs/b   # Burda et al.
  minivae train --preset latent2d --out runs/z2        # the lecture's 2-D latent example
  minivae train --out runs/iwae5 --resume --epochs 40  # continue an existing run

RUN_DIR receives config.json, checkpoint.npz (after every epoch), metrics.jsonl (one line per
epoch) and curves.png. Exit codes: 0 done, 1 training diverged (NaN/inf: the checkpoint keeps
the last good epoch), 2 bad input (nothing written), 130 interrupted (resume with --resume).
See docs/training.md.
"""
from .. import options, runs


def add_arguments(parser):
    from ...train import PRESETS
    titles = {"burda": "Burda et al. 2016, Table 1", "latent2d": "the lecture's 2-D latent "
              "example"}
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="start from a named configuration: " + "; ".join(
                            f"{name} ({titles.get(name, name)}: {options.as_options(fields)})"
                            for name, fields in PRESETS.items())
                        + "; options given beside it override it")
    options.add_config_arguments(parser)
    options.add_run_arguments(parser)


def run(args):
    summary = runs.train_from_args(args, args.preset)
    if not args.quiet:
        test_k = summary["last"]["test_k"] if summary["last"] else None
        runs.print_summary(summary, args.out, f"test L_{test_k}", "minivae")
