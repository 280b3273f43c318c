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
import os
import re
import time

from ... import checkpoint, evaluate, train as training
from .. import options, runs
from ..options import nonnegative_int, positive_int

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


#: The preset of every model, and the settings of this command that differ from it.
PRESET = "burda"
DEFAULTS = dict(training.PRESETS[PRESET], eval_n=1000)
#: Fields fixed by the paper's protocol (or set per model by --models): no option for them.
FIXED = ("binarize", "likelihood", "k", "analytic_kl", "activation", "dtype", "batch_size", "lr",
         "schedule", "eval_k")


def add_arguments(parser):
    options.add_config_arguments(parser, DEFAULTS, skip=FIXED, required=("epochs",))
    g = parser.add_argument_group("the table")
    g.add_argument("--models", default=DEFAULT_MODELS,
                   help=f"comma-separated objectives to train, vae-K or iwae-K "
                   f"(default: {DEFAULT_MODELS}; the paper's table has vae-1, vae-5, "
                   "vae-50, iwae-1, iwae-5, iwae-50)")
    g.add_argument("--n-test", type=nonnegative_int, default=None,
                   help="score only N test images, spread evenly over the test set "
                   "(default: all 10,000)")
    g.add_argument("--k-eval", type=positive_int, default=evaluate.DEFAULT_K,
                   help=f"importance samples of the test log-likelihood (default: "
                   f"{evaluate.DEFAULT_K})")
    g.add_argument("--chunk", type=positive_int, default=evaluate.DEFAULT_CHUNK,
                   help=f"examples x samples per evaluation pass (default: "
                   f"{evaluate.DEFAULT_CHUNK})")
    g.add_argument("--out", default="runs/reproduce", metavar="DIR",
                   help="where the run directories go (default: runs/reproduce)")
    g.add_argument("--quiet", action="store_true", help="print only the table")


def run_config(args, objective, k):
    """The configuration of model objective-k: the burda preset with the options given."""
    return training.TrainConfig.preset(
        PRESET, **dict(DEFAULTS, **options.config_overrides(args), k=k,
                       analytic_kl=objective == "vae"))


def train_one(args, objective, k):
    """Train (or resume, or reuse) OUT/objective-kK; returns its run directory."""
    run_dir = os.path.join(args.out, f"{objective}-k{k}")
    config = run_config(args, objective, k)
    resume = os.path.isfile(os.path.join(run_dir, runs.CHECKPOINT))
    if resume:
        config = runs.config_for_resume(run_dir, {
            f: getattr(config, f) for f in ("data", "binarize", "k", "analytic_kl", "z_dim",
                                            "hidden", "schedule", "seed", "epochs", "eval_n")})
    runs.train(config, run_dir, resume=resume, quiet=args.quiet)
    return run_dir


def format_table(results, args, config, n_test_total):
    """The table in the layout of Burda et al.'s Table 1: rows k, columns VAE and IWAE."""
    ks = sorted({k for _, k in results})
    n_test = results[next(iter(results))]["n_test"] if results else 0
    epochs = sorted({r["epoch"] for r in results.values()})
    passes = "/".join(str(e) for e in epochs)
    lines = [
        "Burda, Grosse & Salakhutdinov (2016), Table 1: MNIST, 1 stochastic layer "
        f"(784-{'-'.join(map(str, config.hidden))}-{config.z_dim}), dynamic binarization",
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
        ckpt = checkpoint.load(os.path.join(run_dir, runs.CHECKPOINT))
        model = ckpt.model()
        if not args.quiet:
            print(f"{objective}-k{k}: scoring {len(x_test)} test images with L_{args.k_eval} ...",
                  flush=True)
        with runs.progress(len(x_test), f"{objective}-k{k}: L_{args.k_eval}", "img",
                           quiet=args.quiet) as report:
            r = evaluate.evaluate(model, x_test, k=args.k_eval, chunk=args.chunk, seed=0,
                                  index=index, on_progress=report)
        r.update(epoch=ckpt.epoch, data=probe.data, objective=objective, train_k=k)
        runs.write_json(os.path.join(run_dir, runs.EVALUATION), r)
        results[(objective, k)] = r
    table = format_table(results, args, probe, len(rd.x_test))
    print(table)
    summary = {"epochs": args.epochs, "k_eval": args.k_eval, "n_test": len(x_test),
               "data": probe.data, "seconds": round(time.perf_counter() - t0, 1),
               "paper": {o: {str(k): v for k, v in d.items()} for o, d in PAPER.items()},
               "results": [dict(r, model=f"{o}-k{k}") for (o, k), r in results.items()],
               "table": table}
    path = os.path.join(args.out, "reproduce.json")
    runs.write_json(path, summary)
    if not args.quiet:
        print(f"wrote {path}")
