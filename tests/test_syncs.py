"""The device-to-host synchronisation budget of training and evaluation, on the CuPy path.

A sync stalls the host until the GPU has finished everything queued, so the loops keep them
out of the steps: a training epoch reads its bookkeeping (the epoch's bound, the finiteness of
every parameter) once, at its end, and ``evaluate`` reads each chunk's results once. Counted
with the CuPy stand-in's counters (``cupy._stats``, ../shared/tools/fakecupy), so these tests
run only under it: ``PYTHONPATH=../shared/tools/fakecupy MINIVAE_BACKEND=cupy pytest``.
"""
import math

import numpy as np
import pytest

from minivae import backend
from train_helpers import mnist_dir, tiny_config  # noqa: F401 (a fixture)


def _stand_in_stats():
    if backend.name != "cupy":
        return None
    import cupy
    return getattr(cupy, "_stats", None)


STATS = _stand_in_stats()
pytestmark = pytest.mark.skipif(
    STATS is None, reason="counts syncs with the CuPy stand-in's counters (cupy._stats): run "
    "with PYTHONPATH=../shared/tools/fakecupy MINIVAE_BACKEND=cupy")


def syncs():
    counts = STATS.counts()
    return sum(counts.get(kind, 0) for kind in STATS.SYNC_KINDS)


def count(fn, *args, **kwargs):
    before = syncs()
    result = fn(*args, **kwargs)
    return syncs() - before, result


def input_checks(model, x):
    """The syncs of the model's input checks (finite, binary, ...) of x, whatever they are."""
    n, _ = count(model._check_inputs, backend.asarray(x), 1, None, None)
    return n


def test_a_training_epoch_reads_its_bookkeeping_once(tmp_path, mnist_dir):
    from minivae import train as training
    from minivae.cli import runs
    cfg = tiny_config(mnist_dir, epochs=1, eval_n=0)
    rd = training.load_data(cfg)
    run = training.Run.fresh(cfg, rd.x_train.shape[1])
    n_steps = math.ceil(len(rd.x_train) / cfg.batch_size)
    assert n_steps >= 3
    # The first minibatch of an epoch is checked (its input, and the finiteness of its bound
    # and gradient): what that costs, on a copy of the model.
    first, _ = count(training.Run.fresh(cfg, rd.x_train.shape[1]).model.bound_and_grads,
                     backend.asarray(rd.x_test[:cfg.batch_size]), cfg.k, check=True)
    assert first <= 4
    # Nobody watching (no progress bar): the first minibatch's checks and one read of the
    # epoch's bound and every parameter's finiteness; no other step reads anything.
    n, bound = count(run.train_epoch, rd.x_train)
    assert n == first + 1 and np.isfinite(bound)
    # A whole run's epoch: the same, one pass of the test bound (one transfer for its single
    # chunk), and the checkpoint (each array copied once, and the two generator states).
    n_arrays = 3 * len(run.model.params)                  # parameters, Adam's m and s
    runs.train(tiny_config(mnist_dir, epochs=1), str(tmp_path / "one"), quiet=True,
               plots=False)
    n1, _ = count(runs.train, tiny_config(mnist_dir, epochs=1), str(tmp_path / "a"),
                  quiet=True, plots=False)
    n2, _ = count(runs.train, tiny_config(mnist_dir, epochs=2), str(tmp_path / "b"),
                  quiet=True, plots=False)
    assert n2 - n1 == first + 1 + 1 + (n_arrays + 2)


def test_a_diverged_parameter_is_caught_in_the_same_read():
    # A finite bound but a parameter gone to inf at step 3 (the generic loop, with SGD): the
    # one read at the end says so.
    from minivae import train as training
    from minivae.optim import SGD
    xp = backend.xp
    params = {"w": xp.zeros(3)}

    def objective(batch):
        grad = xp.full(3, np.inf if batch[0] == 3 else 1.0)
        return xp.asarray(-1.0), {"w": grad}
    n = syncs()
    with pytest.raises(training.Diverged, match="parameter became NaN or inf"):
        training.train_epoch(objective, SGD(params, lr=0.1), [[1, 1], [2, 2], [3, 3], [4, 4]])
    assert syncs() - n == 1


@pytest.mark.parametrize("n, k, chunk", [(7, 50, 100), (5, 30, 10_000), (3, 40, 15)])
def test_evaluate_reads_each_chunk_once(n, k, chunk):
    from minivae import evaluate
    from minivae.model import IWAE
    model = IWAE(20, 3, hidden=(8,), dtype="float64", seed=0)
    x = (np.random.default_rng(1).random((n, 20)) < 0.4).astype(np.float64)
    per_pass, _ = evaluate.pass_plan(n, k, chunk)
    passes = math.ceil(n / per_pass)
    # The input checks once, one transfer per pass of rows (its pieces of samples are
    # combined on the device), and the posterior means (one batch: the encoder's input
    # checks and one transfer).
    checks = input_checks(model, x)
    assert checks <= 3
    got, result = count(evaluate.evaluate, model, x, k=k, chunk=chunk)
    assert got == checks + passes + checks + 1
    assert result["n_test"] == n
