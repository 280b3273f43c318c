"""Evaluation: L_K in chunks, the ELBO from the same samples, active units."""
import math

import numpy as np
import pytest
from scipy.special import logsumexp

from minivae import evaluate
from minivae.model import IWAE, VAE
from minivae import backend
from helpers import host, randomize_params


@pytest.fixture(scope="module")
def model_and_data():
    model = randomize_params(IWAE(20, 3, hidden=(8,), dtype="float64", seed=0), scale=0.3)
    x = (np.random.default_rng(1).random((7, 20)) < 0.4).astype(np.float64)
    return model, x


def reference(model, x, k, seed):
    """L_K and the ELBO from the definition, with evaluate's noise (ε of example i from
    default_rng([seed, i]))."""
    bound, elbo = [], []
    for i in range(len(x)):
        eps = np.random.default_rng([seed, i]).standard_normal((k, 1, model.z_dim))
        log_w = host(model.log_weights(x[i:i + 1], k, eps=eps)[0])
        bound.append(logsumexp(log_w[:, 0]) - math.log(k))
        elbo.append(log_w[:, 0].mean())
    return np.array(bound), np.array(elbo)


@pytest.mark.parametrize("chunk", [1, 7, 40, 100, 10_000])
def test_chunks_do_not_change_the_estimate(model_and_data, chunk):
    """Chunk 1 and 7 split K = 50 samples into pieces; 100 holds 2 examples; 10,000 all."""
    model, x = model_and_data
    bound, elbo = evaluate.bound_per_example(model, x, k=50, chunk=chunk, seed=3)
    ref_bound, ref_elbo = reference(model, x, 50, 3)
    np.testing.assert_allclose(bound, ref_bound, rtol=1e-12)
    np.testing.assert_allclose(elbo, ref_elbo, rtol=1e-12)
    assert np.all(elbo <= bound)                      # Jensen, sample by sample


def test_subsets_see_the_same_noise(model_and_data):
    """An image gets the same ε whichever subset it is scored in (given its index)."""
    model, x = model_and_data
    full, _ = evaluate.bound_per_example(model, x, k=10, seed=0)
    index = evaluate.spread_subset(len(x), 3)
    assert list(index) == [0, 2, 4]
    part, _ = evaluate.bound_per_example(model, x[index], k=10, seed=0, index=index)
    np.testing.assert_array_equal(full[index], part)
    other, _ = evaluate.bound_per_example(model, x, k=10, seed=1)
    assert not np.allclose(full, other)
    with pytest.raises(ValueError, match="index"):
        evaluate.bound_per_example(model, x, k=2, index=[0, 1])


def test_spread_subset():
    assert list(evaluate.spread_subset(10_000, 4)) == [0, 2500, 5000, 7500]
    assert list(evaluate.spread_subset(5, None)) == list(range(5))
    assert list(evaluate.spread_subset(5, 9)) == list(range(5))
    assert len(evaluate.spread_subset(5, 0)) == 0


def test_evaluation_leaves_the_model_rng_alone(model_and_data):
    model, x = model_and_data
    state = backend.rng_state(model.rng)
    evaluate.evaluate(model, x, k=5)
    assert backend.rng_state(model.rng) == state


def test_bad_k_and_bad_data(model_and_data):
    model, x = model_and_data
    with pytest.raises(ValueError, match="k"):
        evaluate.bound_per_example(model, x, k=0)
    with pytest.raises(ValueError, match="binary"):
        evaluate.bound_per_example(model, x * 0.5, k=2)
    with pytest.raises(ValueError, match="no test examples"):
        evaluate.evaluate(model, x[:0], k=2)


def test_active_units():
    """A_u = Var_x(μ_u(x)): units whose mean head ignores x are inactive, the others not."""
    model = VAE(20, 4, hidden=(), dtype="float64", seed=0)
    x = (np.random.default_rng(0).random((200, 20)) < 0.5).astype(np.float64)
    W, b = model.params["encoder.mean.W"], model.params["encoder.mean.b"]
    W[:, 1] = 0.0
    W[:, 3] = 0.01                 # Var = 0.01² · Var(Σ_j x_j) = 1e-4 · 5: inactive
    b[:] = 2.0                     # a constant offset moves nothing
    W[:, 0] *= 10
    n, a = evaluate.active_units(evaluate.posterior_means(model, x))
    mu = x @ host(W) + host(b)
    np.testing.assert_allclose(a, mu.var(axis=0), rtol=1e-12)
    assert a[1] == 0 and a[3] < 1e-2 < a[0] and a[2] > 1e-2
    assert n == 2


def test_evaluate_summary(model_and_data):
    model, x = model_and_data
    r = evaluate.evaluate(model, x, k=20, seed=0)
    bound, elbo = reference(model, x, 20, 0)
    assert r["n_test"] == 7 and r["k"] == 20
    assert r["log_likelihood"] == pytest.approx(bound.mean(), rel=1e-12)
    assert r["nll"] == -r["log_likelihood"]
    assert r["elbo"] == pytest.approx(elbo.mean(), rel=1e-12)
    assert r["stderr"] == pytest.approx(bound.std(ddof=1) / math.sqrt(7))
    assert r["active_units"] == sum(v > 1e-2 for v in r["unit_variances"])
    assert len(r["unit_variances"]) == 3
