"""logsumexp_weights against scipy, on random and extreme inputs."""
import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from minivae import likelihoods, ops
from helpers import dev, host


def logsumexp_weights(log_w):
    """minivae's logsumexp_weights (the fused kernel under CuPy) on host data, as NumPy."""
    return host(*ops.logsumexp_weights(dev(log_w)))


def softplus(a):
    return host(likelihoods.softplus(dev(a)))


def sigmoid(a):
    return host(likelihoods.sigmoid(dev(a)))


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (50, 20), (5000, 3)])
@pytest.mark.parametrize("scale", [1.0, 1e4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_scipy(shape, scale, dtype):
    rng = np.random.default_rng(0)
    log_w = (rng.standard_normal(shape) * scale).astype(dtype)
    lse, w = logsumexp_weights(log_w)
    assert lse.dtype == dtype and w.dtype == dtype
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    ref = logsumexp(log_w.astype(np.float64), axis=0)
    assert np.allclose(lse, ref, rtol=rtol, atol=rtol)
    assert np.allclose(w, softmax(log_w.astype(np.float64), axis=0), rtol=rtol, atol=1e-7)
    assert np.allclose(w.sum(axis=0), 1, rtol=rtol)
    assert not np.isnan(lse).any() and not np.isnan(w).any()


def test_minus_inf_entries_and_columns():
    log_w = np.array([[0.0, -np.inf, -1e4], [-np.inf, -np.inf, 1e4], [1.0, -np.inf, -np.inf]])
    lse, w = logsumexp_weights(log_w)
    assert np.allclose(lse[[0, 2]], logsumexp(log_w[:, [0, 2]], axis=0))
    assert lse[1] == -np.inf                       # all -inf: lse -inf, weights 0, no NaN
    assert np.all(w[:, 1] == 0)
    assert w[1, 0] == 0 and w[2, 2] == 0           # a -inf entry gets weight 0
    assert not np.isnan(w).any()


def test_plus_inf_gives_uniform_weight_on_the_infinite_entries():
    log_w = np.array([[np.inf, 0.0], [3.0, np.inf], [np.inf, np.inf], [-np.inf, 1.0]])
    lse, w = logsumexp_weights(log_w)
    assert np.all(lse == np.inf)
    assert np.array_equal(w, [[0.5, 0.0], [0.0, 0.5], [0.5, 0.5], [0.0, 0.0]])


def test_nan_poisons_its_column_only():
    log_w = np.array([[np.nan, 0.0], [1.0, 2.0]])
    lse, w = logsumexp_weights(log_w)
    assert np.isnan(lse[0]) and np.isnan(w[:, 0]).all()
    assert np.isclose(lse[1], logsumexp([0.0, 2.0])) and not np.isnan(w[:, 1]).any()


def test_softplus_and_sigmoid_are_stable():
    a = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    assert np.allclose(softplus(a), np.logaddexp(0, a))
    assert np.allclose(sigmoid(a), 0.5 * (1 + np.tanh(a / 2)))
