"""The lecture's binary-MNIST example with a 2-D latent space: train it, then draw what it learned.

The decoder is f(z) = Sigmoid(V tanh(W z + b) + β) with z in R², i.e. IWAE(z_dim=2,
hidden=(H,), activation="tanh", likelihood="bernoulli"), trained (by default) with the VAE
bound L_1 on the embedded MNIST subset, dynamically binarized. Writes into OUT, besides the
run's own files (checkpoint.npz, metrics.jsonl, curves.png):

  lecture_points.png   f(z) at the lecture's z = (-1.2033, 0.5340) and z = (0.0791, -1.8165)
  manifold.png         E[x|z] on a 20 x 20 grid of z (equal prior mass per cell; --grid)
  samples.png          model samples beside training images
  latent.png           encoder means of training images, by digit, with the two points marked

Example:
  minivae latent2d --out runs/latent2d                 # H = 500, 50 epochs of L_1
  minivae latent2d --out runs/latent2d --plots-only    # redraw from the saved checkpoint
Exit codes as `minivae train`: 0 done, 1 training diverged, 2 bad input.
See docs/lecture.md.
"""
import os

from ... import data
from .. import options

PRESET = "latent2d"
#: Fields fixed by the example (a 2-D latent space, the lecture's decoder): no option for them.
FIXED = ("z_dim", "likelihood", "activation", "analytic_kl")


def add_arguments(parser):
    from ...train import PRESETS
    options.add_config_arguments(parser, PRESETS[PRESET], skip=FIXED)
    options.add_run_arguments(parser, default_out="runs/latent2d")
    g = parser.add_argument_group("figures")
    g.add_argument("--plots-only", action="store_true",
                   help="do not train: draw the figures from OUT/checkpoint.npz")
    g.add_argument("--grid", type=options.positive_int, default=20,
                   help="the manifold figure shows GRID x GRID images (default: 20)")


def run(args):
    from ... import checkpoint
    from .. import runs
    if args.grid < 2:
        raise ValueError(f"--grid must be at least 2, got {args.grid}")
    ckpt = os.path.join(args.out, runs.CHECKPOINT)
    if not args.plots_only:
        runs.train_from_args(args, PRESET)
    elif not os.path.isfile(ckpt):
        raise ValueError(f"{ckpt} does not exist: train first (without --plots-only)")
    saved = checkpoint.load(ckpt)
    model = saved.model()
    cfg = saved.train_config
    ds = data.load_dataset(cfg.get("data", args.data), cfg.get("data_dir", args.data_dir))
    from ... import plots
    for path in plots.save_latent2d_figures(model, ds.x_train, ds.y_train, args.out,
                                            args.seed or 0, args.grid):
        print("wrote", path)
    print("lecture points: mean pixel intensity of f(z):",
          ", ".join(f"z = ({a}, {b}): {m:.3f}" for (a, b), m in
                    zip(plots.LECTURE_POINTS,
                        plots.decoded_images(model, plots.LECTURE_POINTS).mean(axis=1))))
