"""Small shared helpers for the tests (not a conftest: imported explicitly where used)."""
import csv

import numpy as np


def randomize_params(model, seed=0, scale=0.5):
    """Give every parameter (biases included) a seeded random value.

    Freshly initialised models have zero biases, and tiny ReLU networks then have units whose
    pre-activation is exactly 0 for every input: a kink where finite differences are
    meaningless. Random biases put every pre-activation away from the kink.
    """
    rng = np.random.default_rng(seed)
    for p in model.params.values():
        p[...] = scale * rng.standard_normal(p.shape)
    return model


def data_for(likelihood, shape, rng):
    """Data the likelihood accepts: binary for Bernoulli, real otherwise."""
    if likelihood == "bernoulli":
        return (rng.random(shape) < 0.5).astype(np.float64)
    return rng.standard_normal(shape)


def run_cli(argv, capsys):
    """(exit code, stdout, stderr) of ``minivae ARGV`` run in-process."""
    from minivae import cli
    try:
        code = cli.main(argv)
    except SystemExit as e:                   # argparse's own errors (also one line, code 2)
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def read_rows(path):
    """The rows of a CSV file, as lists of strings."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))
