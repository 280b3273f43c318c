"""Draw pictures of a trained run: prior samples, reconstructions, and for z_dim = 2 the manifold.

Examples:
  minivae sample runs/iwae5                  # samples.png, reconstructions.png into RUN_DIR
  minivae sample runs/z2 --out pictures/     # + manifold.png, latent_scatter.png (z_dim = 2)
  minivae sample runs/iwae5 --draws          # draws x ~ p(x|z) instead of E[x|z]

Writes PNG files (matplotlib's Agg backend, no display needed):
  samples.png          --n images E[x|z] (or draws) for z ~ N(0, I)
  reconstructions.png  test images with E[x | z = mean of q(z|x)] below them
  manifold.png         (z_dim = 2) E[x|z] on a --grid x --grid grid of z = inverse normal CDF
  latent_scatter.png   (z_dim = 2) the means of q(z|x) of --n-scatter test images by digit
  curves.png           the training curves from metrics.jsonl (when it has any epochs)
"""
import os

from .. import options
from ..options import nonnegative_int, positive_int


def add_arguments(parser):
    options.add_run_data_arguments(parser)
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="where to write the PNG files (default: RUN_DIR)")
    parser.add_argument("--n", type=positive_int, default=100,
                        help="number of prior samples (default: 100, a 10 x 10 grid)")
    parser.add_argument("--draws", action="store_true",
                        help="show draws from p(x|z) rather than the means E[x|z]")
    parser.add_argument("--n-recon", type=positive_int, default=30,
                        help="test images to reconstruct (default: 30)")
    parser.add_argument("--grid", type=positive_int, default=20,
                        help="manifold grid size for z_dim = 2 (default: 20)")
    parser.add_argument("--n-scatter", type=positive_int, default=2000,
                        help="test images in the latent scatter for z_dim = 2 (default: 2000)")
    parser.add_argument("--seed", type=nonnegative_int, default=0,
                        help="seed of the prior samples (default: 0)")


def run(args):
    from ... import plots
    from .. import runs
    ckpt, model, config, rd = runs.load_run(args.run_dir, args.data, args.data_dir)
    check_memory(args, model.x_dim, model.z_dim)
    out = args.out or args.run_dir
    os.makedirs(out, exist_ok=True)
    written = []

    def path(name):
        written.append(os.path.join(out, name))
        return written[-1]

    plots.save_samples(model, path("samples.png"), n=args.n, draws=args.draws, seed=args.seed)
    plots.save_reconstructions(model, rd.x_test[:args.n_recon], path("reconstructions.png"))
    if model.z_dim == 2:
        plots.save_manifold(model, path("manifold.png"), n=args.grid)
        plots.save_latent_scatter(model, rd.x_test[:args.n_scatter], rd.y_test[:args.n_scatter],
                                  path("latent_scatter.png"))
    rows = runs.read_metrics(os.path.join(args.run_dir, runs.METRICS))
    if rows:
        plots.save_curves(rows, path(runs.CURVES))
    print(f"{model!r} after {ckpt.epoch} epochs: wrote {', '.join(written)}")


def check_memory(args, x_dim, z_dim):
    """Refuse, before drawing or writing anything, a picture too large for memory (the figures
    are drawn one after the other, so the largest one counts)."""
    from ... import memory
    figures = {"--n": args.n, "--n-recon": 2 * args.n_recon}
    if z_dim == 2:
        figures["--grid"] = args.grid ** 2
    option, images = max(figures.items(), key=lambda item: item[1])
    available = memory.available_bytes()
    if available is None:
        return
    most = int(memory.USABLE * available // memory.picture_bytes(1, x_dim))
    limit = {"--n": most, "--n-recon": most // 2, "--grid": int(most ** 0.5)}[option]
    value = getattr(args, option[2:].replace("-", "_"))
    memory.check(f"a figure of {images} images ({option} {value})",
                 memory.picture_bytes(images, x_dim), f"{option} up to {limit} fits", available)
