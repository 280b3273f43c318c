"""minivae.memory: the estimates are upper bounds of what a step really allocates (measured
with tracemalloc), not wildly so, and a size that cannot fit is one ValueError saying what fits
(issue 12, item 9)."""
import tracemalloc

import numpy as np
import pytest

from minivae import backend, memory
from minivae.model import IWAE

SHAPES = [("bernoulli", 20, 50, (200, 200), 50, "float32"),
          ("gaussian", 10, 40, (64,), 5, "float64"),
          ("student_t", 8, 30, (32, 16), 3, "float32"),
          ("bernoulli", 5, 100, (), 2, "float64")]


@pytest.mark.skipif(backend.name != "numpy", reason="tracemalloc sees host (NumPy) memory only")
@pytest.mark.parametrize("likelihood,B,K,hidden,z_dim,dtype", SHAPES)
def test_step_estimate_bounds_the_measured_peak(likelihood, B, K, hidden, z_dim, dtype):
    model = IWAE(784, z_dim, hidden=hidden, likelihood=likelihood, dtype=dtype)
    x = (np.random.default_rng(0).random((B, 784)) < 0.5).astype(dtype)
    model.bound_and_grads(x, K)                                  # warm up (lazy buffers)
    tracemalloc.start()
    try:
        model.bound_and_grads(x, K)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    peak += model.workspace.nbytes                # the step's reused arrays, allocated at warm-up
    estimate = memory.step_bytes(K * B, 784, z_dim, hidden, len(model.likelihood.heads), dtype)
    assert peak <= estimate <= 4 * peak


def test_model_bytes_counts_the_parameters():
    model = IWAE(30, 4, hidden=(7, 5), likelihood="student_t", dtype="float64")
    assert memory.n_params(30, 4, (7, 5), 3) == model.n_params
    assert memory.model_bytes(30, 4, (7, 5), 3, "float64", training=False) == 8 * model.n_params


def test_check_refuses_with_one_line_saying_what_fits():
    memory.check("small", 10, available=100)
    with pytest.raises(memory.TooLarge, match=r"big needs about 1.0 GB of memory, more than "
                                              r"the 1.0 MB available; try less") as info:
        memory.check("big", 10 ** 9, "try less", available=10 ** 6)
    assert isinstance(info.value, ValueError) and isinstance(info.value, MemoryError)
    with pytest.raises(ValueError, match=r"k up to \d+ fits with batch_size 20"):
        memory.check_training(784, 50, (200, 200), 1, "float32", batch=20, k=100000,
                              available=2 * 10 ** 9)
    with pytest.raises(ValueError, match=r"x_dim=784, z_dim=50, hidden=\(99999999999,\)"):
        memory.check_training(784, 50, (99999999999,), 1, "float32", batch=20, k=5,
                              available=2 * 10 ** 9)
    memory.check_training(784, 50, (200, 200), 1, "float32", batch=20, k=50,
                          available=2 * 10 ** 9)


def test_available_bytes_is_a_positive_number_here():
    available = memory.available_bytes()
    assert available is None or available > 0
