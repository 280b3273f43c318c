"""Helpers shared by the labs' checks and their "now on real data" parts (labs/NN_*/run.py)."""
import time

import numpy as np

from .. import backend, data
from .. import train as training
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


def fit(x_train, config=None, log=lambda line: print(line, flush=True), label="", **fields):
    """Train a model with minivae's training loop (minivae.train.Run: Adam on L_K, minibatches,
    dynamic binarization), for ``config.epochs`` passes over x_train (grey levels, float32).
    ``config`` is a :class:`minivae.train.TrainConfig` (e.g. ``TrainConfig.preset("latent2d",
    epochs=10)``), or ``fields`` are its fields. Returns the model."""
    cfg = config if config is not None else training.TrainConfig(eval_n=0, **fields)
    run = training.Run.fresh(cfg, x_train.shape[1])
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        bound = run.train_epoch(x_train)
        run.epoch += 1
        if log:
            log(f"   {label}epoch {epoch + 1}/{cfg.epochs}: training bound L_{cfg.k} = "
                f"{bound:8.2f} nats ({time.perf_counter() - t0:.1f} s)")
    return run.model


def test_bound(model, x, k, batch_size=100):
    """The mean bound L_k over the rows of x (in batches)."""
    vals = [backend.to_numpy(model.bound(x[i:i + batch_size], k))
            for i in range(0, len(x), batch_size)]
    return float(np.concatenate(vals).mean())


__all__ = ["mnist", "random_params", "fit", "test_bound", "IWAE", "VAE"]


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
