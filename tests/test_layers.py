"""Finite-difference checks of every layer, activation and observation model (float64)."""
import numpy as np
import pytest

from minivae import layers
from minivae.gradcheck import check_function, check_layer, format_report, max_error
from minivae.likelihoods import LIKELIHOODS, make
from helpers import dev, host

TOL = 1e-6


def assert_passes(report):
    assert max_error(report) < TOL, "\n" + format_report(report)


def test_affine():
    rng = np.random.default_rng(0)
    inputs = dev({"x": rng.standard_normal((5, 4)), "W": rng.standard_normal((4, 3)),
                  "b": rng.standard_normal(3)})

    def backward(dout, cache):
        dx, dW, db = layers.affine_backward(dout, cache)
        return {"x": dx, "W": dW, "b": db}
    assert_passes(check_layer(layers.affine_forward, backward, inputs))


@pytest.mark.parametrize("name", sorted(layers.ACTIVATIONS))
def test_activation(name):
    forward, backward = layers.ACTIVATIONS[name]
    rng = np.random.default_rng(2)
    a = rng.standard_normal((6, 5)) * 3
    a[np.abs(a) < 0.05] = 0.5          # keep ReLU's kink out of the finite-difference stencil
    report = check_layer(lambda a: forward(a), lambda d, c: {"a": backward(d, c)}, dev({"a": a}))
    assert_passes(report)


def test_softplus_is_stable_for_large_inputs():
    y, cache = layers.softplus_forward(dev(np.array([-800.0, 0.0, 800.0])))
    assert np.allclose(host(y), [0.0, np.log(2.0), 800.0])
    assert np.allclose(host(layers.softplus_backward(dev(np.ones(3)), cache)), [0.0, 0.5, 1.0])


@pytest.mark.parametrize("activation", sorted(layers.ACTIVATIONS))
def test_mlp(activation):
    rng = np.random.default_rng(3)
    params = dev({"net.0.W": rng.standard_normal((4, 5)), "net.0.b": rng.standard_normal(5),
                  "net.1.W": rng.standard_normal((5, 3)), "net.1.b": rng.standard_normal(3)})
    x, dout = dev(rng.standard_normal((7, 4)), rng.standard_normal((7, 3)))
    h, caches = layers.mlp_forward(x, params, "net", 2, activation)
    grads = {}
    dx = layers.mlp_backward(dout, caches, "net", activation, grads)

    def f():
        return float((layers.mlp_forward(x, params, "net", 2, activation)[0] * dout).sum())
    assert_passes(check_function(f, dict(params, x=x), dict(grads, x=dx)))


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
@pytest.mark.parametrize("masked", [False, True])
def test_observation_model(name, masked):
    """∂ Σ_j m_j log Φ(x_j | η_j) / ∂η against finite differences, with and without a mask."""
    model = make(name, 3 if name == "categorical" else None)
    rng = np.random.default_rng(4)
    shape = (3, 5)
    x = (rng.random(shape) < 0.5) * 1.0 if name == "bernoulli" else rng.standard_normal(shape)
    if name == "categorical":                 # codes 0..2, three logits per feature
        x = rng.integers(0, 3, shape).astype(float)
    head_shape = shape + (() if model.per_feature == 1 else (model.per_feature,))
    heads = dev({h: rng.standard_normal(head_shape) for h in model.heads})
    x, mask = dev(x, rng.random(shape) < 0.6 if masked else np.ones(shape, bool))
    mask_h = mask if model.per_feature == 1 else mask[..., None]

    def f():
        return float((model.log_prob(x, **heads) * mask).sum())
    analytic = {h: g * mask_h for h, g in model.log_prob_grads(x, **heads).items()}
    assert_passes(check_function(f, heads, analytic))


def test_observation_models_are_normalised():
    """Each log-density integrates (sums) to 1 over x: a check of the constants."""
    from scipy.integrate import quad
    lik = LIKELIHOODS
    assert np.isclose(np.exp(host(lik["bernoulli"].log_prob(dev(np.array([0.0, 1.0])),
                                                           0.7))).sum(), 1)
    for name, heads in (("gaussian", (0.3, -0.4)), ("student_t", (0.3, -0.4, 0.2))):
        heads = dev(*(np.array(h) for h in heads))
        total, _ = quad(lambda x: float(np.exp(host(lik[name].log_prob(dev(np.array(x)),
                                                                        *heads)))),
                        -np.inf, np.inf)
        assert abs(total - 1) < 1e-8, name


def test_bernoulli_log_prob_from_extreme_logits():
    from minivae.likelihoods import Bernoulli
    lp = host(Bernoulli.log_prob(*dev(np.array([1.0, 0.0], np.float32),
                                      np.array([-200.0, 200.0], np.float32))))
    assert np.all(np.isfinite(lp)) and np.allclose(lp, [-200.0, -200.0])
