"""Shared by the training, evaluation and command-line tests: a tiny MNIST on disk, tiny runs.

The tests never need the real MNIST files: :func:`write_mnist_dir` writes the four standard
IDX files with a few synthetic "digits" (noisy copies of ten random prototypes), enough for a
model with 16 hidden units to learn something in a few steps.
"""
import gzip
import os

import numpy as np
import pytest

from minivae import train as training
from minivae.cli import runs


def _idx(a, code=0x08):
    header = bytes([0, 0, code, a.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in a.shape)
    return header + a.astype(">u1").tobytes()


def write_mnist_dir(d, n_train=60, n_test=20, seed=0):
    """Four gzipped IDX files of 28 x 28 uint8 images and labels 0..9 in directory ``d``."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((10, 784)) ** 3                      # mostly dark, some bright
    os.makedirs(d, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n)
        grey = np.clip(prototypes[labels] + 0.1 * rng.standard_normal((n, 784)), 0, 1)
        images = np.round(255 * grey).astype(np.uint8).reshape(n, 28, 28)
        for kind, a in (("images-idx3", images), ("labels-idx1", labels.astype(np.uint8))):
            with gzip.open(os.path.join(d, f"{split}-{kind}-ubyte.gz"), "wb") as f:
                f.write(_idx(a))
    return str(d)


def tiny_config(data_dir, **overrides):
    """A TrainConfig that trains in a fraction of a second on :func:`write_mnist_dir` data."""
    kw = dict(data="mnist", data_dir=data_dir, k=3, z_dim=2, hidden=(16,), epochs=2,
              batch_size=20, seed=0)
    kw.update(overrides)
    return training.TrainConfig(**kw)


TINY_ARGS = ["--data", "mnist", "--k", "3", "--z-dim", "2", "--hidden", "16",
             "--batch-size", "20", "--quiet", "--no-plots"]


def read_params(run_dir):
    """(params dict, optimizer slot arrays dict, epoch) of RUN_DIR's checkpoint, as NumPy."""
    with np.load(os.path.join(run_dir, runs.CHECKPOINT)) as z:
        arrays = {k: z[k] for k in z.files if k != "meta"}
    from minivae import checkpoint
    return arrays, checkpoint.load(os.path.join(run_dir, runs.CHECKPOINT)).epoch


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    """A fixture: :func:`write_mnist_dir` in a fresh directory, once per test module (import
    it into the test module to use it)."""
    return write_mnist_dir(tmp_path_factory.mktemp("mnist"))


def train_tiny(tmp_path_factory, data_dir, name, epochs):
    """A tiny run RUN_DIR trained by ``minivae train`` for ``epochs``; returns its path."""
    from minivae.cli import main
    run_dir = str(tmp_path_factory.mktemp("runs") / name)
    assert main(["train", "--out", run_dir, "--data-dir", data_dir, "--epochs", str(epochs)]
                + TINY_ARGS) == 0
    return run_dir
