"""Diffusion models (DDPM): train on 2-D toys or MNIST, sample, evaluate the bound in bits/dim.

Examples:
  minivae diffusion train --data ring --out runs/ring          # 2-D ring of Gaussians (~1 min)
  minivae diffusion train --data lecture --out runs/lecture    # the lecture's toy DLVM
  minivae diffusion train --data mnist-subset --out runs/dm    # 14 x 14 MNIST, U-Net (~12 min CPU)
  minivae diffusion train --out runs/dm --resume --epochs 250  # continue a run
  minivae diffusion sample runs/dm --sampler ddim --steps 50   # samples.png (+ toys: beside data)
  minivae diffusion evaluate runs/ring                         # −L_vlb vs the exact log p(x)

Train writes the run directory as `minivae train` does: config.json, checkpoint.npz (after every
epoch, atomically), metrics.jsonl, curves.png. Exit codes: 0 done, 1 training diverged
(NaN/inf: the checkpoint keeps the last good epoch), 2 bad input (nothing written), 130
interrupted (resume with --resume). See docs/diffusion.md.
"""
import argparse

from .. import options

GROUPS = (("data", ("data", "data_dir", "downsample", "n_train")),
          ("model", ("T", "schedule", "variance", "denoiser", "hidden", "local", "time_dim",
                     "activation", "dtype")),
          ("optimisation", ("epochs", "batch_size", "lr", "lr_decay", "ema_decay", "ema_warmup",
                            "seed")),
          ("monitoring", ("eval_n", "eval_t")))


#: argparse types of DiffusionConfig's fields beside the shared ones (options._TYPES).
TYPES = {"downsample": int, "n_train": options.positive_int, "T": options.positive_int,
         "time_dim": options.positive_int, "lr_decay": options.probability,
         "ema_decay": options.probability, "ema_warmup": options.nonnegative_int,
         "local": options.nonnegative_int,
         "eval_t": options.positive_int}


def add_arguments(parser):
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    p = actions.add_parser("train", help="train a DDPM, writing a run directory",
                           description=__doc__, formatter_class=parser.formatter_class)
    from ...diffusion.config import DiffusionConfig
    options.add_config_arguments(p, config_class=DiffusionConfig, groups=GROUPS, types=TYPES)
    options.add_run_arguments(p, default_out="runs/diffusion")

    p = actions.add_parser("sample", help="draw samples of a trained run (samples.png)")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by minivae diffusion "
                   "train")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where to write the PNG and .npy files (default: RUN_DIR)")
    p.add_argument("--n", type=options.positive_int, default=None,
                   help="number of samples (default: 100 images, 2000 toy points)")
    p.add_argument("--sampler", choices=("ancestral", "ddim"), default="ancestral",
                   help="ancestral: Ho et al.'s T-step chain; ddim: Song et al.'s deterministic "
                   "path in --steps steps (default: ancestral)")
    p.add_argument("--steps", type=options.positive_int, default=50,
                   help="DDIM steps (default: 50)")
    p.add_argument("--clip", action=argparse.BooleanOptionalAction, default=None,
                   help="clip each step's guess x̂_0 to the data range [−1, 1] (Ho et al.'s "
                   "clip_denoised; a sampling heuristic, the bound is unchanged) (default: on "
                   "for images, off for the unbounded toys)")
    p.add_argument("--seed", type=options.seed, default=0, help="seed of x_T (default: 0)")

    p = actions.add_parser("evaluate", help="the test bound −L_vlb in nats and bits/dim")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by minivae diffusion "
                   "train")
    p.add_argument("--n", type=options.nonnegative_int, default=None,
                   help="test points to score, spread over the test set (default: all)")
    p.add_argument("--variance", choices=("beta", "posterior"), default=None,
                   help="σ_t² of the reverse steps to score with (default: the run's)")
    p.add_argument("--seed", type=options.seed, default=0,
                   help="seed of the noise x_t ~ q(x_t|x_0) of each term (default: 0)")
    p.add_argument("--quiet", action="store_true", help="print nothing but the result line")


def run(args):
    return {"train": train, "sample": sample, "evaluate": evaluate}[args.action](args)


def train(args):
    from ...diffusion.training import DiffusionRun
    from .. import runs
    summary = runs.train_from_args(args, run_class=DiffusionRun,
                                   command="minivae diffusion train")
    if not args.quiet:
        runs.print_summary(summary, args.out, "test bound (nats)", "minivae diffusion")


def _load(run_dir, exact=True):
    import os
    from ... import checkpoint
    from ...diffusion.config import DiffusionConfig, load_data
    from .. import runs
    if not os.path.isdir(run_dir):
        raise ValueError(f"{run_dir}: no such run directory")
    ckpt = checkpoint.load(os.path.join(run_dir, runs.CHECKPOINT))
    config = runs.saved_config(ckpt, DiffusionConfig)
    return ckpt, ckpt.model(), config, load_data(config, exact=exact)


def sample(args):
    import os
    import numpy as np
    from ... import backend, plots
    from ...checkpoint import atomic_write
    from ...diffusion import images
    ckpt, model, config, rd = _load(args.run_dir, exact=False)
    if args.sampler == "ddim" and args.steps > model.T:
        raise ValueError(f"--steps {args.steps} exceeds the run's T = {model.T}")
    out = args.out or args.run_dir
    os.makedirs(out, exist_ok=True)
    toy = config.kind == "toy"
    n = args.n or (2000 if toy else 100)
    x = backend.to_numpy(model.sample(n, args.sampler, args.steps,
                                      rng=backend.default_rng(args.seed), clip=args.clip))
    clipped = model.clip is not None if args.clip is None else args.clip
    how = f"{args.sampler}" + (f", {args.steps} steps" if args.sampler == "ddim" else
                               f", {model.T} steps") + ("" if clipped else ", x̂_0 unclipped")
    png = os.path.join(out, f"samples_{args.sampler}.png")
    if toy:
        plots.plot_diffusion_toy(png, rd.x_test, x, title=f"{config.data}: data (test points) "
                                 f"and DDPM samples ({how}), epoch {ckpt.epoch}")
    else:
        plots.save_image_samples(images.to_unit(x), png, f"DDPM samples ({how}), epoch "
                                 f"{ckpt.epoch}", side=rd.side)
    npy = os.path.join(out, f"samples_{args.sampler}.npy")
    atomic_write(npy, lambda f: np.save(f, x))
    print(f"{model!r} after {ckpt.epoch} epochs: wrote {png}, {npy}")


def evaluate(args):
    import json
    import math
    import os
    import time
    import numpy as np
    from ... import backend, plots
    from ...diffusion import bits_per_dim
    from ...diffusion.schedule import Schedule
    from .. import runs
    ckpt, model, config, rd = _load(args.run_dir)
    if args.variance is not None and args.variance != model.schedule.variance:
        model.schedule = Schedule(model.T, model.schedule.kind, args.variance)
    n = len(rd.x_test) if args.n is None else min(args.n, len(rd.x_test))
    index = np.linspace(0, len(rd.x_test) - 1, n).round().astype(int)
    t0 = time.perf_counter()
    bar = runs.progress_bar(model.T, "bound: steps t", "t", quiet=args.quiet)
    try:
        terms = model.vlb_terms(backend.asarray(rd.x_test[index]),
                                backend.default_rng(args.seed), on_step=lambda t: bar.update())
    finally:
        bar.close()
    bound = -backend.to_numpy(terms).sum(axis=1).astype(np.float64)
    seconds = time.perf_counter() - t0
    if not np.all(np.isfinite(bound)):
        raise ValueError("the bound is not finite on some test points; the model has diverged")
    result = {"epoch": ckpt.epoch, "n": n, "T": model.T, "variance": model.schedule.variance,
              "bound_nats": float(bound.mean()),
              "bound_se": float(bound.std(ddof=1) / math.sqrt(n)) if n > 1 else None,
              "seed": args.seed, "seconds": round(seconds, 1)}
    if config.kind == "images":
        result["bits_per_dim"] = float(bits_per_dim(-bound.mean(), model.x_dim))
        line = (f"test bound on {n} images ({rd.side} x {rd.side}, 8-bit): "
                f"{result['bound_nats']:.2f} ± {result['bound_se']:.2f} nats = "
                f"{result['bits_per_dim']:.3f} bits/dim")
    else:
        exact = rd.exact[index]
        gap = bound - exact
        result.update(exact_nats=float(exact.mean()), gap=float(gap.mean()),
                      gap_se=float(gap.std(ddof=1) / math.sqrt(n)) if n > 1 else None)
        line = (f"test bound on {n} points: {result['bound_nats']:.3f} nats; exact log p(x): "
                f"{result['exact_nats']:.3f}; gap {result['gap']:.3f} ± {result['gap_se']:.3f}")
        plots.plot_diffusion_toy(os.path.join(args.run_dir, "bound.png"), rd.x_test,
                                 backend.to_numpy(model.sample(len(rd.x_test),
                                                               rng=backend.default_rng(0))),
                                 exact, bound, title=f"{config.data}, epoch {ckpt.epoch}")
    runs.write_json(os.path.join(args.run_dir, runs.EVALUATION), result)
    print(f"{line} (T = {model.T}, σ_t² = {model.schedule.variance}, epoch {ckpt.epoch}, "
          f"{seconds:.0f} s)")
