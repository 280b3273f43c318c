"""The IWAE/VAE bounds: gradients against finite differences, masks, contract, bad input."""
import numpy as np
import pytest

import minivae
from minivae.gradcheck import check_model, format_report, max_error

from helpers import data_for, randomize_params

ARCHITECTURES = [((), "tanh"), ((5,), "tanh"), ((5, 4), "relu"), ((4, 3), "softplus")]


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "student_t"])
@pytest.mark.parametrize("hidden,activation", ARCHITECTURES)
@pytest.mark.parametrize("k", [1, 2, 7])
def test_iwae_gradient(likelihood, hidden, activation, k):
    model = minivae.IWAE(6, 3, hidden=hidden, activation=activation, likelihood=likelihood,
                         dtype="float64", seed=1)
    # Seeds chosen so that no ReLU pre-activation lies within the finite-difference stencil
    # of its kink (there the numerical derivative is meaningless, not the analytic one wrong).
    randomize_params(model, seed=k + 100)
    rng = np.random.default_rng(10 + k)
    x = data_for(likelihood, (4, 6), rng)
    report = check_model(model, x, k, eps=rng.standard_normal((k, 4, 3)))
    assert max_error(report) < 1e-6, "\n" + format_report(report)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "student_t"])
@pytest.mark.parametrize("k", [1, 5])
def test_masked_gradient_and_missing_values_are_ignored(likelihood, k):
    model = minivae.IWAE(6, 2, hidden=(5,), likelihood=likelihood, dtype="float64", seed=2)
    randomize_params(model, seed=3)
    rng = np.random.default_rng(4)
    x = data_for(likelihood, (5, 6), rng)
    mask = rng.random((5, 6)) < 0.6
    eps = rng.standard_normal((k, 5, 2))
    report = check_model(model, x, k, eps=eps, mask=mask)
    assert max_error(report) < 1e-6, "\n" + format_report(report)
    # Whatever the missing entries hold, NaN included, nothing changes.
    x_nan = np.where(mask, x, np.nan)
    b1, g1 = model.bound_and_grads(x, k, eps=eps, mask=mask)
    b2, g2 = model.bound_and_grads(x_nan, k, eps=eps, mask=mask)
    assert b1 == b2 and all(np.array_equal(g1[n], g2[n]) for n in g1)
    # A full mask is the unmasked bound.
    assert np.array_equal(model.bound(x, k, eps=eps, mask=np.ones_like(mask)),
                          model.bound(x, k, eps=eps))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("hidden", [(), (5, 4)])
@pytest.mark.parametrize("k", [1, 3])
def test_analytic_kl_vae_gradient(likelihood, hidden, k):
    model = minivae.VAE(6, 3, hidden=hidden, likelihood=likelihood, dtype="float64",
                        analytic_kl=True)
    randomize_params(model, seed=5)
    rng = np.random.default_rng(6)
    x = data_for(likelihood, (4, 6), rng)
    mask = rng.random((4, 6)) < 0.7
    report = check_model(model, x, k, eps=rng.standard_normal((k, 4, 3)), mask=mask)
    assert max_error(report) < 1e-6, "\n" + format_report(report)


def test_contract_shapes_names_and_dtypes():
    model = minivae.IWAE(784, 50)
    enc = ["encoder.0", "encoder.1", "encoder.mean", "encoder.logvar"]
    dec = ["decoder.0", "decoder.1", "decoder.logits"]
    assert list(model.params) == [f"{n}.{p}" for n in enc + dec for p in "Wb"]
    assert model.params["encoder.0.W"].shape == (784, 200)
    assert model.params["decoder.logits.W"].shape == (200, 784)
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert not any(model.params["encoder.0.b"]) and np.ptp(model.params["encoder.0.W"]) > 0
    x = (np.random.default_rng(0).random((3, 784)) < 0.3).astype(np.float32)
    b = model.bound(x, 4)
    assert b.shape == (3,) and b.dtype == np.float32
    value, grads = model.bound_and_grads(x, 4)
    assert set(grads) == set(model.params)
    assert all(grads[n].shape == p.shape and grads[n].dtype == p.dtype
               for n, p in model.params.items())
    assert np.isfinite(float(value))
    heads = {"gaussian": ["mean", "logvar"], "student_t": ["loc", "log_scale", "df"]}
    for lik, names in heads.items():
        m = minivae.IWAE(5, 2, hidden=(), likelihood=lik)
        assert [n for n in m.params if n.startswith("decoder")] == \
            [f"decoder.{h}.{p}" for h in names for p in "Wb"]


def test_seed_reproducibility_and_eps():
    x = (np.random.default_rng(0).random((4, 10)) < 0.5) * 1.0
    a, b = minivae.IWAE(10, 2, hidden=(8,), seed=3), minivae.IWAE(10, 2, hidden=(8,), seed=3)
    assert np.array_equal(a.bound(x, 5), b.bound(x, 5))
    assert not np.array_equal(a.bound(x, 5), a.bound(x, 5))  # fresh noise each call
    eps = np.zeros((5, 4, 2))
    assert np.array_equal(a.bound(x, 5, eps=eps), a.bound(x, 5, eps=eps))
    c = minivae.IWAE(10, 2, hidden=(8,), seed=4)
    assert not np.array_equal(a.params["encoder.0.W"], c.params["encoder.0.W"])


def test_vae_with_sampled_kl_is_iwae_with_k1():
    x = (np.random.default_rng(0).random((4, 10)) < 0.5) * 1.0
    eps = np.random.default_rng(1).standard_normal((1, 4, 2))
    vae = minivae.VAE(10, 2, hidden=(8,), analytic_kl=False, dtype="float64")
    iwae = minivae.IWAE(10, 2, hidden=(8,), dtype="float64")
    assert np.allclose(vae.bound(x, eps=eps), iwae.bound(x, 1, eps=eps), rtol=0, atol=1e-12)


BAD_INPUT = [
    (dict(x=np.zeros((2, 5))), "shape"),
    (dict(k=0), "k"),
    (dict(k=2.5), "k"),
    (dict(eps=np.zeros((3, 2, 2))), "eps"),
    (dict(x=np.full((2, 6), 0.5)), "binary"),
    (dict(x=np.array([[np.nan, 0, 0, 0, 0, 0], [0.0] * 6])), "NaN"),
    (dict(mask=np.ones((2, 6))), "mask"),
]


@pytest.mark.parametrize("kwargs,words", BAD_INPUT)
def test_bad_input_is_a_clear_error(kwargs, words):
    model = minivae.IWAE(6, 2, hidden=(4,))
    args = dict(x=np.zeros((2, 6)), k=2, eps=None, mask=None)
    args.update(kwargs)
    for method in (model.bound, model.bound_and_grads):
        with pytest.raises(ValueError, match=words):
            method(**args)


@pytest.mark.parametrize("kwargs,words", [(dict(likelihood="poisson"), "likelihood"),
                                          (dict(activation="sigmoid"), "activation"),
                                          (dict(dtype="float16"), "dtype"),
                                          (dict(dtype="nonsense"), "dtype"),
                                          (dict(z_dim=0), "z_dim"),
                                          (dict(hidden=(4, 0)), "hidden")])
def test_bad_configuration_is_a_clear_error(kwargs, words):
    args = dict(x_dim=6, z_dim=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=words):
        minivae.IWAE(**args)


def test_adam_raises_the_bound_on_binary_data():
    """A few hundred Adam steps on data with structure raise L_5 clearly."""
    rng = np.random.default_rng(0)
    prototypes = rng.random((3, 20)) < 0.5
    labels = rng.integers(0, 3, 400)
    flips = rng.random((400, 20)) < 0.05
    data = (prototypes[labels] ^ flips).astype(np.float32)
    model = minivae.IWAE(20, 2, hidden=(16,), seed=0)
    opt = minivae.optim.Adam(model.params, lr=3e-3)
    before = float(model.bound(data, 5).mean())
    for step in range(300):
        batch = data[rng.integers(0, 400, 20)]
        _, grads = model.bound_and_grads(batch, 5)
        opt.step(grads)
    after = float(model.bound(data, 5).mean())
    assert after > before + 4.0, (before, after)      # nats per example


def test_optimizer_state_round_trip():
    model = minivae.IWAE(6, 2, hidden=(4,), seed=0)
    opt = minivae.optim.Adam(model.params, lr=1e-2)
    x = (np.random.default_rng(0).random((8, 6)) < 0.5) * 1.0
    eps = np.random.default_rng(1).standard_normal((3, 8, 2))
    for _ in range(3):
        opt.step(model.bound_and_grads(x, 3, eps=eps)[1])
    saved_params = {n: p.copy() for n, p in model.params.items()}
    state = opt.state_dict()
    opt.step(model.bound_and_grads(x, 3, eps=eps)[1])
    expected = {n: p.copy() for n, p in model.params.items()}
    for n, p in model.params.items():
        p[...] = saved_params[n]
    opt2 = minivae.optim.Adam(model.params)
    opt2.load_state_dict(state)
    opt2.step(model.bound_and_grads(x, 3, eps=eps)[1])
    assert all(np.array_equal(model.params[n], expected[n]) for n in expected)
