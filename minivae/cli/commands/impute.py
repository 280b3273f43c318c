"""Fill in the missing cells of a numeric CSV file with MIWAE (Mattei & Frellsen 2019).

Reads INPUT.csv (a header line, then numeric cells; an empty cell or NaN marks a missing
value), trains a deep latent variable model on the incomplete data with the MIWAE bound and
writes OUTPUT.csv: the same columns in the same order, observed cells exactly as they were,
missing cells filled with the single imputation E[x_miss | x_obs] estimated by importance
sampling. In a column whose observed cells are all integers the imputed values are rounded to
integers (--keep-float keeps them as they are). With --likelihood categorical every column is
a categorical variable coded 0..C-1, and a missing cell gets the most probable category under
the importance-weighted predictive Σ_l w̃_l p(x_j | z_l).

A table mixing real and categorical columns: --categorical COLS names the categorical columns,
by header name or by 0-based index, separated by commas (--categorical colour,3; a name that
is also a number means the column of that name). Each holds
integer codes 0..C-1 (C = 1 + its largest observed code; a column of text labels must be coded
first), gets a categorical model of its own C and is imputed by its most probable category
(written as an integer); the other columns use --likelihood (student_t or gaussian).

With --n-imputations M it writes M completed data sets instead, OUTPUT_1.csv ... OUTPUT_M.csv,
each one draw from p(x_miss | x_obs) by sampling importance resampling (multiple imputation).

Nothing is written when the input is unusable (a non-numeric column, a column with no observed
value, a file that does not parse, a categorical column holding something other than
non-negative integer codes): the command prints one line and exits with code 2.
See docs/missing-data.md.
"""
import argparse
import os
import tempfile
import time

from .. import CommandError, csvio, runs
from ..options import hidden_widths, nonnegative_int, positive_int, positive_real, seed
from ...checkpoint import atomic_write_many
from ...impute import MIWAEImputer, check_codes


def add_arguments(parser):
    from ...impute import LIKELIHOODS
    from ...layers import ACTIVATIONS
    parser.add_argument("input", metavar="INPUT.csv", help="CSV file with a header line")
    parser.add_argument("--out", required=True, metavar="OUTPUT.csv",
                        help="where to write the completed table")
    parser.add_argument("--z-dim", type=positive_int, default=10, help="latent dimension d (default: 10)")
    parser.add_argument("--hidden", type=hidden_widths, default=(128, 128), metavar="W1,W2",
                        help="hidden layer widths (default: 128,128)")
    parser.add_argument("--activation", choices=tuple(ACTIVATIONS), default="tanh",
                        help="hidden activation (default: tanh, as the paper)")
    parser.add_argument("--likelihood", choices=LIKELIHOODS, default="student_t",
                        help="observation model: student_t or gaussian for real values, "
                        "categorical when every column holds integer codes 0..C-1 (imputed by "
                        "the most probable category) (default: student_t)")
    parser.add_argument("--categorical", default=None, metavar="COLS",
                        help="the categorical columns of a mixed table, by header name or "
                        "0-based index, comma-separated; each holds integer codes 0..C-1 and "
                        "is imputed by its most probable category")
    parser.add_argument("--k", type=positive_int, default=20,
                        help="importance samples K in the training bound (default: 20)")
    parser.add_argument("--epochs", type=positive_int, default=500, help="training epochs (default: 500)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="(default: 64)")
    parser.add_argument("--lr", type=positive_real, default=1e-3, help="Adam learning rate "
                        "(default: 1e-3)")
    parser.add_argument("--n-samples", type=positive_int, default=10000,
                        help="importance samples L for imputing (default: 10000)")
    parser.add_argument("--n-imputations", type=positive_int, default=None, metavar="M",
                        help="write M multiple imputations OUTPUT_1.csv ... OUTPUT_M.csv "
                        "instead of one single imputation")
    parser.add_argument("--keep-float", action="store_true",
                        help="do not round imputed values in integer columns")
    parser.add_argument("--seed", type=seed, default=0, help="random seed (default: 0)")
    parser.add_argument("--verbose", type=nonnegative_int, default=0, metavar="N",
                        help="print the training bound every N epochs to stderr")


def categorical_columns(text, header):
    """The column indices named by --categorical: header names, or else 0-based indices."""
    columns = []
    for item in (t.strip() for t in text.split(",")):
        if item in header:
            j = header.index(item)
        elif item.lstrip("-").isdigit():
            j = int(item)
            if not 0 <= j < len(header):
                raise ValueError(f"--categorical: column index {j} is out of range (the table "
                                 f"has {len(header)} columns, 0..{len(header) - 1})")
        else:
            raise ValueError(f"--categorical: no column named {item!r} (give header names or "
                             f"0-based indices, separated by commas)")
        if j in columns:
            raise ValueError(f"--categorical names column {header[j]!r} twice")
        columns.append(j)
    return columns


def output_paths(out, n_imputations):
    """OUTPUT.csv, or OUTPUT_1.csv ... OUTPUT_M.csv for M multiple imputations."""
    if n_imputations is None:
        return [out]
    stem, ext = os.path.splitext(out)
    return [f"{stem}_{m}{ext}" for m in range(1, n_imputations + 1)]


def run(args):
    if args.n_imputations is not None and args.n_imputations < 1:
        raise ValueError(f"--n-imputations must be at least 1, got {args.n_imputations}")
    paths = output_paths(args.out, args.n_imputations)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):         # fail before training, not after
        raise CommandError(f"the output directory {out_dir} does not exist")
    try:                                   # writable? (a read-only or full file system too)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as e:
        raise CommandError(f"cannot write into the output directory {out_dir} "
                           f"({e.strerror or e})") from None
    if args.categorical is not None and args.likelihood == "categorical":
        raise ValueError("--categorical names the categorical columns of a mixed table; "
                         "--likelihood categorical already makes every column categorical")
    table = csvio.read_csv(args.input)
    categorical = None
    if args.categorical is not None:
        columns = categorical_columns(args.categorical, table.header)
        categorical = check_codes(table.values, columns, names=table.header)  # before training
    imputer = MIWAEImputer(z_dim=args.z_dim, hidden=args.hidden, activation=args.activation,
                           likelihood=args.likelihood, k=args.k, epochs=args.epochs,
                           batch_size=args.batch_size, lr=args.lr, n_samples=args.n_samples,
                           seed=args.seed, verbose=args.verbose, categorical=categorical)
    start = time.perf_counter()
    rows = int((table.missing.any(axis=1)).sum())
    with runs.progress(args.epochs, "training MIWAE", "epoch") as report:
        imputer.fit(table.values, callback=lambda epoch, bound: report(epoch))
    with runs.progress(rows, f"imputing (L = {args.n_samples})", "row") as report:
        completed = imputer.transform(table.values, n_imputations=args.n_imputations,
                                      on_progress=report)
    if args.n_imputations is None:
        completed = completed[None]
    # All files or none (a failure while writing the third leaves no first and second).
    # Integer columns are rounded unless --keep-float; categorical columns always hold codes.
    rounded = [(not args.keep_float and table.integer[j]) or j in imputer.categorical_
               for j in range(len(table.header))]
    atomic_write_many([(path, csvio.to_text(csvio.format_rows(table, c, rounded)))
                       for path, c in zip(paths, completed)])
    n, D = table.values.shape
    what = "1 file" if len(paths) == 1 else f"{len(paths)} files"
    print(f"imputed {int(table.missing.sum())} of {n * D} cells ({n} rows x {D} columns) in "
          f"{time.perf_counter() - start:.1f} s (final MIWAE bound "
          f"{imputer.history_[-1]:.4g}); wrote {what}: {', '.join(paths)}")
