"""Helpers shared by the labs' checks and "now on real data" parts."""
import time

import numpy as np

from .. import backend, data, optim
from ..model import IWAE, VAE


def mnist(n_train=None, n_test=None, binarize=True, seed=0):
    """The embedded MNIST subset as float64 host arrays: (x_train, y_train, x_test, y_test),
    the first n rows of each split, binarized once (fixed, from ``seed``) when asked."""
    ds = data.load_dataset("mnist-subset")
    if binarize:
        ds = data.prepare(ds, "fixed", seed=seed)
    return (ds.x_train[:n_train], ds.y_train[:n_train], ds.x_test[:n_test], ds.y_test[:n_test])


def random_params(params, rng, scale=0.5):
    """Give every parameter (biases included) a random value, in place: fresh models have zero
    biases, and ReLU units sitting exactly at their kink make finite differences meaningless."""
    for p in params.values():
        p[...] = scale * rng.standard_normal(p.shape)
    return params


def train(model, x_train, epochs=None, seconds=None, k=1, batch_size=100, lr=1e-3, seed=0,
          log=None):
    """A minimal training loop (the real one is ``minivae train``): Adam on the bound L_k,
    dynamic binarization of grey-level x_train, for a number of epochs or seconds (whichever
    comes first). Returns the list of (epoch, mean training bound)."""
    rng = np.random.default_rng(seed)
    draw = backend.default_rng(seed + 1)
    opt = optim.Adam(model.params, lr=lr)
    history, t0, epoch = [], time.perf_counter(), 0
    while (epochs is None or epoch < epochs) and \
            (seconds is None or time.perf_counter() - t0 < seconds):
        total, n, partial = 0.0, 0, False
        for idx in data.epoch_batches(len(x_train), batch_size, rng):
            xb = data.make_batch(x_train, idx, "dynamic", draw)
            value, grads = model.bound_and_grads(xb, k, check=False)
            opt.step(grads)
            total += float(value) * len(idx)
            n += len(idx)
            if seconds is not None and time.perf_counter() - t0 > seconds:
                partial = n < len(x_train)
                break
        epoch += 1
        history.append((epoch, total / max(n, 1)))
        if log:
            log(f"   epoch {epoch:3d}  training bound {total / max(n, 1):9.2f} nats "
                f"({time.perf_counter() - t0:5.1f} s)"
                + (f", stopped after {n} of {len(x_train)} digits (time budget)" if partial else ""))
    return history


def test_bound(model, x, k, batch_size=100):
    """The mean bound L_k over the rows of x (in batches)."""
    vals = [backend.to_numpy(model.bound(x[i:i + batch_size], k))
            for i in range(0, len(x), batch_size)]
    return float(np.concatenate(vals).mean())


__all__ = ["mnist", "random_params", "train", "test_bound", "IWAE", "VAE"]


class LinearGaussianDecoder:
    """A small decoder in closed form for the checks of labs 5 and 6:
    p(x|z) = N(x; z A + c, diag(e^s)), with ∂ log p(x|z)/∂z = ((x - z A - c) e^{-s}) Aᵀ."""

    def __init__(self, rng, d, p):
        from ..likelihoods import Gaussian
        self.gaussian = Gaussian
        self.A = rng.standard_normal((d, p)) / np.sqrt(d)
        self.c = rng.standard_normal(p)
        self.s = 0.3 * rng.standard_normal(p)

    def log_px(self, x, z):
        """x (B, p), z (K, B, d) -> log p(x_b | z_kb), (K, B)."""
        return self.gaussian.log_prob(x, z @ self.A + self.c, self.s).sum(axis=-1)

    def grad_z(self, x, z):
        """∂ log p(x_b | z_kb) / ∂z_kb, (K, B, d)."""
        return self.gaussian.log_prob_grads(x, z @ self.A + self.c, self.s)["mean"] @ self.A.T
