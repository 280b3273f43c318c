"""Evaluate a trained run: test log-likelihood L_K (K = 5000), ELBO and active units.

Examples:
  minivae evaluate runs/iwae5                    # L_5000 on the run's whole test set
  minivae evaluate runs/iwae5 --n-test 500 --k 1000

The model is read from RUN_DIR/checkpoint.npz and scored on the test set of the data it was
trained on (binarized once with a fixed seed for dynamically binarized runs), or on --data.
Prints a table and writes RUN_DIR/evaluation.json (or --json PATH). L_K is computed in chunks
of at most --chunk examples x samples, so memory stays bounded whatever K. See
docs/training.md.
"""
import os

from .. import options
from ..options import nonnegative_int, positive_int


def add_arguments(parser):
    from ... import evaluate
    options.add_run_data_arguments(parser)
    parser.add_argument("--k", type=positive_int, default=evaluate.DEFAULT_K,
                        help=f"importance samples per test image (default: "
                        f"{evaluate.DEFAULT_K}, Burda et al.'s protocol)")
    parser.add_argument("--n-test", type=nonnegative_int, default=None,
                        help="score only N test images, spread evenly over the test set "
                        "(default: all)")
    parser.add_argument("--chunk", type=positive_int, default=evaluate.DEFAULT_CHUNK,
                        help="examples x samples per pass, which bounds memory to about "
                        f"CHUNK x 784 numbers per array (default: {evaluate.DEFAULT_CHUNK})")
    parser.add_argument("--seed", type=nonnegative_int, default=0,
                        help="seed of the importance samples (default: 0)")
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="where to write the results (default: RUN_DIR/evaluation.json)")


def format_table(result, model, epoch):
    k = result["k"]
    se = "" if result["stderr"] is None else f" ± {result['stderr']:.2f}"
    rows = [("model", f"{model!r}"), ("epochs trained", str(epoch)),
            ("test images", str(result["n_test"])),
            (f"log-likelihood L_{k}", f"{result['log_likelihood']:.3f}{se}"),
            (f"NLL = -L_{k}", f"{result['nll']:.3f}"),
            ("ELBO (L_1)", f"{result['elbo']:.3f}"),
            ("active units (A_u > 1e-2)", f"{result['active_units']} of {model.z_dim}"),
            ("time", f"{result['seconds']:.1f} s")]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def run(args):
    from ... import evaluate
    from .. import runs
    ckpt, model, config, rd = runs.load_run(args.run_dir, args.data, args.data_dir)
    index = evaluate.spread_subset(len(rd.x_test), args.n_test)
    with runs.progress(len(index), f"L_{args.k}", "img") as report:
        result = evaluate.evaluate(model, rd.x_test[index], k=args.k, chunk=args.chunk,
                                   seed=args.seed, index=index, on_progress=report)
    result.update(epoch=ckpt.epoch, data=args.data or config.data, seed=args.seed,
                  chunk=args.chunk, model=repr(model))
    print(format_table(result, model, ckpt.epoch))
    out = args.json or os.path.join(args.run_dir, runs.EVALUATION)
    runs.write_json(out, result)
    print(f"wrote {out}")
