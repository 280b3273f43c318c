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

import numpy as np

from ... import backend, checkpoint, data, plots, train as training
from ...evaluate import posterior_means

#: The two latent points of the lecture's slides.
LECTURE_POINTS = ((-1.2033, 0.5340), (0.0791, -1.8165))


def add_arguments(parser):
    parser.add_argument("--out", default="runs/latent2d", help="run directory "
                        "(default: runs/latent2d)")
    parser.add_argument("--hidden", type=int, default=500,
                        help="H, the width of the one tanh hidden layer (default: 500)")
    parser.add_argument("--k", type=int, default=1, help="K of the bound L_K (default: 1, "
                        "the VAE)")
    parser.add_argument("--epochs", type=int, default=50, help="passes over the data "
                        "(default: 50)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--data", default="mnist-subset", choices=data.DATASETS)
    parser.add_argument("--data-dir", default=None, help="for --data mnist: the IDX files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true",
                        help="replace a run already in OUT")
    parser.add_argument("--plots-only", action="store_true",
                        help="do not train: draw the figures from OUT/checkpoint.npz")
    parser.add_argument("--grid", type=int, default=20,
                        help="the manifold figure shows GRID x GRID images (default: 20)")
    parser.add_argument("--quiet", action="store_true")


def decoded_images(model, z):
    """E[x|z] = Sigmoid(f(z)) for z (m, 2): the Bernoulli means as an (m, 784) host array."""
    return backend.to_numpy(model.observation_mean(backend.asarray(np.asarray(z, dtype=float),
                                                                   dtype=model.dtype)))


def draw_figures(model, x_train, y_train, out, seed=0, grid=20):
    """The four figures of the example for a trained 2-D model; returns their paths."""
    if model.z_dim != 2:
        raise ValueError(f"this example needs z_dim = 2, the model has {model.z_dim}")
    paths = [plots.plot_decoded_points(os.path.join(out, "lecture_points.png"),
                                               LECTURE_POINTS,
                                               decoded_images(model, LECTURE_POINTS))]
    path = os.path.join(out, "manifold.png")
    plots.save_manifold(model, path, n=grid)
    paths.append(path)
    rng = np.random.default_rng(seed)
    samples = plots.sample_images(model, 64, seed=seed)
    shown = x_train[rng.choice(len(x_train), 64, replace=False)]
    paths.append(plots.plot_samples_beside_data(os.path.join(out, "samples.png"),
                                                        samples, shown))
    n = min(3000, len(x_train))
    xb = data.fixed_binarize(x_train[:n], seed) if model.likelihood.name == "bernoulli" \
        else x_train[:n]
    codes = posterior_means(model, xb)
    paths.append(plots.plot_latent_codes(
        os.path.join(out, "latent.png"), codes, y_train[:n],
        points=[(f"({a}, {b})", (a, b)) for a, b in LECTURE_POINTS]))
    return paths


def run(args):
    if args.grid < 2:
        raise ValueError(f"--grid must be at least 2, got {args.grid}")
    ckpt = os.path.join(args.out, training.CHECKPOINT)
    if not args.plots_only:
        config = training.TrainConfig(
            data=args.data, data_dir=args.data_dir, likelihood="bernoulli", k=args.k,
            z_dim=2, hidden=(args.hidden,), activation="tanh", epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, seed=args.seed, eval_n=1000)
        training.train(config, args.out, force=args.force, quiet=args.quiet)
    elif not os.path.isfile(ckpt):
        raise ValueError(f"{ckpt} does not exist: train first (without --plots-only)")
    saved = checkpoint.load(ckpt)
    model = saved.model()
    cfg = saved.train_config
    ds = data.load_dataset(cfg.get("data", args.data), cfg.get("data_dir", args.data_dir))
    for path in draw_figures(model, ds.x_train, ds.y_train, args.out, args.seed, args.grid):
        print("wrote", path)
    z = np.asarray(LECTURE_POINTS)
    print("lecture points: mean pixel intensity of f(z):",
          ", ".join(f"z = ({a}, {b}): {m:.3f}" for (a, b), m in
                    zip(LECTURE_POINTS, decoded_images(model, z).mean(axis=1))))
