"""Plot the training curves of a run (train and test bound per epoch) from its metrics.jsonl.

Example:
  minivae plot runs/iwae5                  # writes runs/iwae5/curves.png
  minivae plot runs/iwae5 --out curves.png

`minivae train` draws the same picture when it finishes; this redraws it at any time, e.g.
while a long run is still training.
"""
import os


def add_arguments(parser):
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by minivae train")
    parser.add_argument("--out", default=None, metavar="PATH",
                        help="the PNG file to write, or a directory to write curves.png into "
                        "(default: RUN_DIR/curves.png)")


def run(args):
    from ... import plots
    from ..runs import CURVES, METRICS, read_metrics
    metrics = os.path.join(args.run_dir, METRICS)
    if not os.path.isfile(metrics):
        raise ValueError(f"{metrics} does not exist: is {args.run_dir} a run directory?")
    rows = read_metrics(metrics)
    if not rows:
        raise ValueError(f"{metrics} holds no complete epoch yet")
    out = args.out or os.path.join(args.run_dir, CURVES)
    if os.path.isdir(out):                 # --out DIR: the picture goes into DIR
        out = os.path.join(out, CURVES)
    plots.save_curves(rows, out)
    print(f"wrote {out} ({len(rows)} epochs)")
