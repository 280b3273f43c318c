"""Reproduce Burda et al. (2016) Table 1: VAE and IWAE on MNIST, NLL (L_5000) and active units.

Examples:
  minivae reproduce --data-dir ~/mnist --epochs 3280             # the paper's full budget
  minivae reproduce --data-dir ~/mnist --epochs 10 --n-test 1000 # a budget for a laptop
  minivae reproduce --data-dir ~/mnist --epochs 30               # continues the runs above

Trains, one after the other, the paper's 1-stochastic-layer model (784-200-200-50, tanh,
Bernoulli, dynamic binarization, batch 20, Adam with beta1 = 0.9, beta2 = 0.999, eps = 1e-4 and
the burda learning-rate schedule cut to --epochs passes) with each objective of --models, then
scores each with L_K (K = --k-eval, 5000 in the paper) on the test set (or --n-test images
spread evenly over it), and prints the table next to the paper's numbers (after 3280 passes).

Each model is an ordinary run directory OUT/NAME (minivae evaluate and sample work on it);
running the command again with more --epochs resumes the runs instead of starting over.
Models: vae-K is the VAE bound E_q[log p(x|z)] - KL with the KL in closed form and K samples
for the expectation (Burda et al.'s "VAE with k samples": the same objective and expected
gradient as their average of K one-sample bounds, with less variance); iwae-K is L_K.
The results go to OUT/reproduce.json. See docs/training.md.
"""
import json
import os
import re
import time

from ... import checkpoint, evaluate, train as training
from ...train import parse_hidden
from .train import _nonnegative_int, _positive_int

#: Burda et al. (2016), Table 1, MNIST, one stochastic layer: k -> (NLL, active units).
PAPER = {"vae": {1: (86.76, 19), 5: (86.47, 20), 50: (86.35, 20)},
         "iwae": {1: (86.76, 19), 5: (85.54, 22), 50: (84.78, 25)}}
DEFAULT_MODELS = "vae-1,iwae-5,iwae-50"


def parse_models(text):
    """'vae-1,iwae-5' -> [('vae', 1), ('iwae', 5)]."""
    models = []
    for item in text.split(","):
        m = re.fullmatch(r"\s*(vae|iwae)-(\d+)\s*", item.lower())
        if not m or int(m.group(2)) < 1:
            raise ValueError(f"--models wants items like vae-1 or iwae-50 (objective-K, K >= 1), "
                             f"got {item!r}")
        models.append((m.group(1), int(m.group(2))))
    if len(set(models)) != len(models):
        raise ValueError(f"--models lists a model twice: {text!r}")
    return models


def add_arguments(parser):
    from ... import data
    parser.add_argument("--data", choices=data.DATASETS, default="mnist",
                        help="training and test data (default: mnist, the paper's; "
                        "mnist-subset for a quick trial)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help=f"directory of the four MNIST IDX files (default: ${data.ENV_VAR})")
    parser.add_argument("--epochs", type=_nonnegative_int, required=True,
                        help=f"passes over the training data per model (the paper: "
                        f"{training.BURDA_PASSES})")
    parser.add_argument("--n-test", type=_nonnegative_int, default=None,
                        help="score only N test images, spread evenly over the test set "
                        "(default: all 10,000)")
    parser.add_argument("--k-eval", type=_positive_int, default=evaluate.DEFAULT_K,
                        help=f"importance samples of the test log-likelihood (default: "
                        f"{evaluate.DEFAULT_K})")
    parser.add_argument("--models", default=DEFAULT_MODELS,
                        help=f"comma-separated objectives to train, vae-K or iwae-K "
                        f"(default: {DEFAULT_MODELS}; the paper's table has vae-1, vae-5, "
                        "vae-50, iwae-1, iwae-5, iwae-50)")
    parser.add_argument("--out", default="runs/reproduce", metavar="DIR",
                        help="where the run directories go (default: runs/reproduce)")
    parser.add_argument("--seed", type=_nonnegative_int, default=0, help="(default: 0)")
    parser.add_argument("--chunk", type=_positive_int, default=evaluate.DEFAULT_CHUNK,
                        help=f"examples x samples per evaluation pass (default: "
                        f"{evaluate.DEFAULT_CHUNK})")
    parser.add_argument("--hidden", default="200,200",
                        help="hidden widths, to try the benchmark on a smaller model "
                        "(default: 200,200, the paper's)")
    parser.add_argument("--z-dim", type=_positive_int, default=50,
                        help="latent dimension (default: 50, the paper's)")
    parser.add_argument("--eval-n", type=_nonnegative_int, default=1000,
                        help="test images in the per-epoch test bound of each run "
                        "(default: 1000)")
    parser.add_argument("--quiet", action="store_true", help="print only the table")


def run_config(args, objective, k):
    return training.TrainConfig(
        data=args.data, data_dir=args.data_dir, binarize="dynamic", likelihood="bernoulli",
        k=k, analytic_kl=objective == "vae", z_dim=args.z_dim, hidden=parse_hidden(args.hidden),
        activation="tanh", dtype="float32", epochs=args.epochs, batch_size=20, lr=1e-3,
        schedule="burda", seed=args.seed, eval_n=args.eval_n)


def train_one(args, objective, k):
    """Train (or resume, or reuse) OUT/objective-kK; returns its run directory."""
    run_dir = os.path.join(args.out, f"{objective}-k{k}")
    config = run_config(args, objective, k)
    resume = os.path.isfile(os.path.join(run_dir, training.CHECKPOINT))
    if resume:
        config = training.config_for_resume(run_dir, {
            f: getattr(config, f) for f in ("data", "binarize", "k", "analytic_kl", "z_dim",
                                            "hidden", "schedule", "seed", "epochs", "eval_n")})
    training.train(config, run_dir, resume=resume, quiet=args.quiet)
    return run_dir


def format_table(results, args, n_test_total):
    """The table in the layout of Burda et al.'s Table 1: rows k, columns VAE and IWAE."""
    ks = sorted({k for _, k in results})
    n_test = results[next(iter(results))]["n_test"] if results else 0
    epochs = sorted({r["epoch"] for r in results.values()})
    passes = "/".join(str(e) for e in epochs)
    lines = [
        "Burda, Grosse & Salakhutdinov (2016), Table 1: MNIST, 1 stochastic layer "
        f"(784-{args.hidden.replace(',', '-')}-{args.z_dim}), dynamic binarization",
        f"this run: {passes} of {training.BURDA_PASSES} passes; NLL = -L_{args.k_eval} on "
        f"{'all ' if n_test == n_test_total else f'{n_test} (evenly spread) of '}{n_test_total} "
        "test images; (paper) after 3280 passes, NLL = -L_5000 on all 10,000",
        "",
        f"{'':>4}  {'VAE':^30}  {'IWAE':^30}",
        f"{'k':>4}  {'NLL':>8} {'(paper)':>8} {'active':>6} {'(pap)':>5}  "
        f"{'NLL':>8} {'(paper)':>8} {'active':>6} {'(pap)':>5}",
    ]

    def cell(objective, k):
        r = results.get((objective, k))
        paper = PAPER[objective].get(k)
        nll = f"{r['nll']:8.2f}" if r else f"{'-':>8}"
        active = f"{r['active_units']:>6}" if r else f"{'-':>6}"
        p_nll = f"({paper[0]:.2f})" if paper else ""
        p_act = f"({paper[1]})" if paper else ""
        return f"{nll} {p_nll:>8} {active} {p_act:>5}"

    for k in ks:
        lines.append(f"{k:>4}  {cell('vae', k)}  {cell('iwae', k)}")
    return "\n".join(lines)


def run(args):
    models = parse_models(args.models)
    parse_hidden(args.hidden)                                   # bad widths fail before training
    # Check the data once, up front: a missing directory fails now, not after an hour.
    probe = run_config(args, *models[0])
    rd = training.load_data(probe)
    os.makedirs(args.out, exist_ok=True)
    index = evaluate.spread_subset(len(rd.x_test), args.n_test)
    x_test = rd.x_test[index]
    if len(x_test) == 0:
        raise ValueError("--n-test 0 leaves no test images to score")
    results, t0 = {}, time.perf_counter()
    for objective, k in models:
        run_dir = train_one(args, objective, k)
        ckpt = checkpoint.load(os.path.join(run_dir, training.CHECKPOINT))
        model = ckpt.model()
        if not args.quiet:
            print(f"{objective}-k{k}: scoring {len(x_test)} test images with L_{args.k_eval} ...",
                  flush=True)
        r = evaluate.evaluate(model, x_test, k=args.k_eval, chunk=args.chunk, seed=0,
                              index=index)
        r.update(epoch=ckpt.epoch, data=args.data, objective=objective, train_k=k)
        checkpoint.atomic_write(os.path.join(run_dir, "evaluation.json"),
                                   json.dumps(r, indent=2) + "\n")
        results[(objective, k)] = r
    table = format_table(results, args, len(rd.x_test))
    print(table)
    summary = {"epochs": args.epochs, "k_eval": args.k_eval, "n_test": len(x_test),
               "data": args.data, "seconds": round(time.perf_counter() - t0, 1),
               "paper": {o: {str(k): v for k, v in d.items()} for o, d in PAPER.items()},
               "results": [dict(r, model=f"{o}-k{k}") for (o, k), r in results.items()],
               "table": table}
    path = os.path.join(args.out, "reproduce.json")
    checkpoint.atomic_write(path, json.dumps(summary, indent=2) + "\n")
    if not args.quiet:
        print(f"wrote {path}")
