"""Small shared helpers for the tests (not a conftest: imported explicitly where used).

Backend-agnostic tests: the suite runs on NumPy and, with ``MINIVAE_BACKEND=cupy``, on the
device (on a GPU, or under the strict CuPy stand-in ``../shared/tools/fakecupy``). Test data are
made on the host with NumPy, handed to the library with :func:`dev` (where a function takes
backend arrays), and results come back with :func:`host` (the backend's ``to_numpy``) before
being compared with NumPy/SciPy references.
"""
import csv

import numpy as np
import pytest

from minivae import backend

ON_DEVICE = backend.name == "cupy"


def host(*arrays):
    """NumPy copies of backend arrays (or of anything array-like); one array for one argument."""
    out = tuple(backend.to_numpy(a) for a in arrays)
    return out[0] if len(out) == 1 else out


def dev(*arrays):
    """Backend arrays of host data (copied to the device under CuPy); dicts map their values."""
    def one(a):
        if isinstance(a, dict):
            return {k: backend.asarray(v) for k, v in a.items()}
        return backend.asarray(a)
    out = tuple(one(a) for a in arrays)
    return out[0] if len(out) == 1 else out


def host_only(reason):
    """Skip a test under MINIVAE_BACKEND=cupy because what it checks lives on the host."""
    return pytest.mark.skipif(ON_DEVICE, reason=f"host-only: {reason}")


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
