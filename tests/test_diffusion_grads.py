"""Finite-difference checks (float64, relative error < 1e-6) of the diffusion model's gradients:
the time embedding, both denoisers (parameters, x_t and t: the MLP and the residual FiLM MLP),
the simple loss, and the whole L_simple step of DDPM.loss_and_grads at fixed t and ε."""
import numpy as np
import pytest

from minivae import backend
from minivae.diffusion import DDPM, simple_loss, time_embedding_backward, time_embedding_forward
from minivae.diffusion.ddpm import DENOISERS
from minivae.diffusion.local import patches_backward, patches_forward
from minivae.gradcheck import check_function, check_layer, format_report, max_error

TOL = 1e-6


def assert_passes(report):
    assert max_error(report) < TOL, "\n" + format_report(report)


def dev(a):
    return backend.asarray(np.asarray(a, dtype=np.float64))


@pytest.mark.parametrize("t_scale", [1.0, 300.0])
def test_time_embedding(t_scale):
    rng = np.random.default_rng(0)
    inputs = {"t": dev(rng.random(7) * t_scale)}

    def forward(t):
        return time_embedding_forward(t, 12)
    assert_passes(check_layer(forward, lambda dout, cache: {"t": time_embedding_backward(dout, cache)},
                              inputs))


def test_time_embedding_rejects_odd_dimension():
    with pytest.raises(ValueError, match="even"):
        time_embedding_forward(dev([1.0]), 5)


def random_params(denoiser, x_dim, hidden, time_dim, seed, **extra):
    rng = np.random.default_rng(seed)
    params = DENOISERS[denoiser][0](x_dim, hidden, time_dim, seed, "float64", **extra)
    for p in params.values():          # random values (no zeros: the resmlp's zero-initialised
        p[...] = dev(0.5 * rng.standard_normal(p.shape))   # maps too), ReLU kinks off the stencil
    return params


@pytest.mark.parametrize("activation", ["relu", "tanh", "softplus"])
@pytest.mark.parametrize("denoiser, hidden, extra", [
    ("mlp", (), {}), ("mlp", (6,), {}), ("mlp", (5, 4), {}), ("resmlp", (5,), {}),
    ("resmlp", (4, 4), {}), ("resmlp", (4,), {"local": 3})])   # local: 4 x 4 images
def test_denoiser(denoiser, activation, hidden, extra):
    _, forward, backward, _ = DENOISERS[denoiser]
    rng = np.random.default_rng(1)
    x_dim, n = (16, 3) if extra else (3, 6)
    params = random_params(denoiser, x_dim, hidden, 4, seed=2, **extra)
    x, t = dev(rng.standard_normal((n, x_dim))), dev(rng.random(n) * 5)
    dout = dev(rng.standard_normal((n, x_dim)))
    eps_hat, cache = forward(x, t, params, activation)
    grads = {}
    dx, dt = backward(dout, cache, grads)
    assert set(grads) == set(params)
    grads.update(x=dx, t=dt)

    def f():
        return float((forward(x, t, params, activation)[0] * dout).sum())
    inputs = dict(params, x=x, t=t)
    assert_passes(check_function(f, inputs, grads))


def test_patches_are_the_zero_padded_neighbourhoods_and_their_backward_the_transpose():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 16))
    xd = dev(x)
    p, M = patches_forward(xd, k=3)
    padded = np.pad(x.reshape(2, 4, 4), ((0, 0), (1, 1), (1, 1)))
    want = np.stack([padded[:, i:i + 3, j:j + 3].reshape(2, 9)
                     for i in range(4) for j in range(4)], axis=1).reshape(32, 9)
    assert np.array_equal(backend.to_numpy(p), want)
    dout = dev(rng.standard_normal((32, 9)))
    assert_passes(check_function(lambda: float((patches_forward(xd, k=3)[0] * dout).sum()),
                                 {"x": xd}, {"x": patches_backward(dout, M)}))
    with pytest.raises(ValueError, match="square"):
        patches_forward(dev(np.zeros((1, 15))))


def test_simple_loss():
    rng = np.random.default_rng(3)
    eps_hat, eps = dev(rng.standard_normal((5, 4))), dev(rng.standard_normal((5, 4)))
    _, deps_hat = simple_loss(eps_hat, eps)
    assert_passes(check_function(lambda: float(simple_loss(eps_hat, eps)[0]),
                                 {"eps_hat": eps_hat}, {"eps_hat": deps_hat}))
    # the value itself: the mean of the squared errors over examples and coordinates
    loss = float(simple_loss(eps_hat, eps)[0])
    ref = np.mean((backend.to_numpy(eps_hat) - backend.to_numpy(eps)) ** 2)
    assert abs(loss - ref) < 1e-12


@pytest.mark.parametrize("schedule, denoiser, hidden, local", [("linear", "mlp", (5, 4), 0),
                                                              ("cosine", "mlp", (5, 4), 0),
                                                              ("linear", "resmlp", (5, 5), 2)])
def test_ddpm_loss_and_grads(schedule, denoiser, hidden, local):
    """The whole training step: q_sample -> denoiser -> L_simple -> backward, at fixed t, ε."""
    rng = np.random.default_rng(4)
    D = 9 if local else 3                                    # 3 x 3 images for the local branch
    model = DDPM(x_dim=D, T=20, schedule=schedule, hidden=hidden, time_dim=6,
                 activation="tanh", dtype="float64", seed=0, denoiser=denoiser, local=local)
    for p in model.params.values():
        p[...] = dev(0.5 * rng.standard_normal(p.shape))
    x0 = dev(rng.standard_normal((8, D)))
    t = backend.asarray(rng.integers(1, 21, size=8))
    eps = dev(rng.standard_normal((8, D)))
    _, grads = model.loss_and_grads(x0, t=t, eps=eps)

    def f():
        return float(model.loss_and_grads(x0, t=t, eps=eps)[0])
    assert_passes(check_function(f, model.params, grads))


def test_objective_is_minus_the_loss_with_the_same_draws():
    """objective_and_grads (what the training loop maximises) is −L_simple and −its gradient,
    with t and ε drawn from the model's generator as loss_and_grads draws them."""
    rng = np.random.default_rng(5)
    x0 = dev(rng.standard_normal((6, 3)))
    a = DDPM(x_dim=3, T=20, hidden=(5,), time_dim=4, dtype="float64", seed=1)
    b = DDPM(x_dim=3, T=20, hidden=(5,), time_dim=4, dtype="float64", seed=1)
    loss, g = a.loss_and_grads(x0)
    value, h = b.objective_and_grads(x0)
    assert float(value) == -float(loss)
    for n in g:
        assert np.array_equal(backend.to_numpy(h[n]), -backend.to_numpy(g[n]))
