"""Small shared helpers for the tests (not a conftest: imported explicitly where used)."""
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
