"""The U-Net denoiser and its layers (conv.py, unet.py): values against direct loops,
finite-difference checks (float64, relative error < 1e-6) of the convolution, pooling,
upsampling and the whole denoiser, shapes and dtypes, the initialisation, the EMA warm-up, and
an exact resume of a tiny U-Net run."""
import os

import numpy as np
import pytest

from minivae import backend, checkpoint
from minivae.diffusion import DDPM
from minivae.diffusion.config import DENOISER_PRESETS, PRESETS, DiffusionConfig
from minivae.diffusion.conv import (avgpool_backward, avgpool_forward, conv_backward,
                                    conv_forward, im2col_backward, im2col_forward,
                                    upsample_backward, upsample_forward)
from minivae.diffusion.ddpm import DENOISERS
from minivae.diffusion.unet import init_unet, unet_backward, unet_forward, unet_shapes
from minivae.gradcheck import check_function, check_layer, format_report, max_error
from minivae.optim import Adam

from helpers import run_cli

TOL = 1e-6


def assert_passes(report):
    assert max_error(report) < TOL, "\n" + format_report(report)


def dev(a):
    return backend.asarray(np.asarray(a, dtype=np.float64))


def np_(a):
    return backend.to_numpy(a)


def reference_conv(x, W, b, k):
    """The convolution by its definition: out[n,i,j,f] = b_f + Σ_{di,dj,c} x[n,i+di−r,j+dj−r,c]
    W[(di k + dj) C + c, f], with zeros outside the image."""
    n, h, w, c = x.shape
    r = k // 2
    out = np.tile(b, (n, h, w, 1)).astype(np.float64)
    for i in range(h):
        for j in range(w):
            for di in range(k):
                for dj in range(k):
                    ii, jj = i + di - r, j + dj - r
                    if 0 <= ii < h and 0 <= jj < w:
                        rows = W[(di * k + dj) * c:(di * k + dj + 1) * c]        # (C, F)
                        out[:, i, j] += x[:, ii, jj] @ rows
    return out


@pytest.mark.parametrize("k, shape, f", [(3, (2, 4, 5, 3), 2), (3, (1, 3, 3, 1), 4),
                                         (5, (2, 4, 4, 2), 3), (1, (2, 3, 2, 2), 3)])
def test_conv_is_the_definition_and_its_backward_passes_finite_differences(k, shape, f):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    W = rng.standard_normal((k * k * shape[3], f))
    b = rng.standard_normal(f)
    out, _ = conv_forward(dev(x), dev(W), dev(b))
    assert out.shape == shape[:3] + (f,)
    assert np.allclose(np_(out), reference_conv(x, W, b, k), rtol=1e-12, atol=1e-12)

    def backward(dout, cache):
        dx, dW, db = conv_backward(dout, cache)
        return {"x": dx, "W": dW, "b": db}
    assert_passes(check_layer(conv_forward, backward, {"x": dev(x), "W": dev(W), "b": dev(b)}))
    dout = dev(rng.standard_normal(out.shape))
    _, cache = conv_forward(dev(x), dev(W), dev(b))
    dx, dW, _ = conv_backward(dout, cache, need_dx=False)
    assert dx is None and dW.shape == W.shape


def test_im2col_rows_are_the_zero_padded_neighbourhoods():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 3, 2))
    p, cache = im2col_forward(dev(x), 3)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = np.stack([padded[:, di:di + 4, dj:dj + 3] for di in range(3) for dj in range(3)],
                    axis=3).reshape(24, 18)                # (N·H·W, 9·C), offset-major
    assert np.array_equal(np_(p), want)
    dout = dev(rng.standard_normal((24, 18)))
    assert_passes(check_function(lambda: float((im2col_forward(dev_x, 3)[0] * dout).sum()),
                                 {"x": (dev_x := dev(x))}, {"x": im2col_backward(dout, cache)}))


def test_conv_rejects_a_weight_matrix_of_the_wrong_size():
    with pytest.raises(ValueError, match="rows") as e:
        conv_forward(dev(np.zeros((1, 3, 3, 2))), dev(np.zeros((10, 4))), dev(np.zeros(4)))
    assert "\n" not in str(e.value)


def test_avgpool_and_upsample_values_and_gradients():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 6, 3))
    pooled, shape = avgpool_forward(dev(x))
    want = (x[:, 0::2, 0::2] + x[:, 1::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 1::2]) / 4
    assert np.allclose(np_(pooled), want, rtol=1e-14)
    up, _ = upsample_forward(dev(want))
    assert up.shape == x.shape
    for a in (0, 1):
        for b in (0, 1):
            assert np.array_equal(np_(up)[:, a::2, b::2], want)
    assert_passes(check_layer(lambda x: avgpool_forward(x),
                              lambda dout, cache: {"x": avgpool_backward(dout, cache)},
                              {"x": dev(x)}))
    assert_passes(check_layer(lambda x: upsample_forward(x),
                              lambda dout, cache: {"x": upsample_backward(dout, cache)},
                              {"x": dev(want)}))
    with pytest.raises(ValueError, match="even") as e:
        avgpool_forward(dev(np.zeros((1, 7, 7, 1))))
    assert "\n" not in str(e.value)


def random_unet(x_dim, hidden, time_dim, seed, scale):
    rng = np.random.default_rng(seed)
    params = init_unet(x_dim, hidden, time_dim, seed, "float64")
    for p in params.values():       # random values (no zeros: the zero-initialised maps too)
        p[...] = dev(scale * rng.standard_normal(p.shape))
    return params


@pytest.mark.parametrize("activation", ["relu", "tanh", "softplus"])
@pytest.mark.parametrize("hidden, side", [((3,), 4), ((3, 2), 4), ((2, 3, 2), 8)])
def test_unet_gradients(hidden, side, activation):
    """Every parameter, x_t and t, against finite differences (float64, < 1e-6)."""
    rng = np.random.default_rng(3)
    D, n = side * side, 2
    params = random_unet(D, hidden, 4, seed=4, scale=0.2)     # ReLU kinks off the stencil
    x, t = dev(rng.standard_normal((n, D))), dev(rng.random(n) * 5)
    dout = dev(rng.standard_normal((n, D)))
    eps_hat, cache = unet_forward(x, t, params, activation)
    assert eps_hat.shape == (n, D)
    grads = {}
    dx, dt = unet_backward(dout, cache, grads)
    assert set(grads) == set(params)
    grads.update(x=dx, t=dt)

    def f():
        return float((unet_forward(x, t, params, activation)[0] * dout).sum())
    assert_passes(check_function(f, dict(params, x=x, t=t), grads))


def test_ddpm_unet_loss_and_grads():
    """The whole training step with the U-Net: q_sample -> unet -> L_simple -> backward."""
    rng = np.random.default_rng(5)
    model = DDPM(x_dim=16, T=20, schedule="cosine", hidden=(3, 2), time_dim=4,
                 activation="softplus", dtype="float64", denoiser="unet")
    for p in model.params.values():
        p[...] = dev(0.3 * rng.standard_normal(p.shape))
    x0, eps = dev(rng.standard_normal((3, 16))), dev(rng.standard_normal((3, 16)))
    t = backend.asarray(rng.integers(1, 21, size=3))
    _, grads = model.loss_and_grads(x0, t=t, eps=eps)
    assert_passes(check_function(lambda: float(model.loss_and_grads(x0, t=t, eps=eps)[0]),
                                 model.params, grads))


def test_unet_shapes_dtype_and_initialisation():
    model = DDPM(x_dim=64, T=10, hidden=(4, 6, 8), time_dim=8, denoiser="unet")
    names = {n.rsplit(".", 1)[0] for n in model.params}
    assert {"in", "down.1.in", "down.2.in", "mid.0", "up.1.in", "up.0.in", "out",
            "skip"} <= names and "down.0.in" not in names and "up.2.in" not in names
    assert model.params["down.1.in.W"].shape == (4, 6)                 # 1 x 1 convolutions
    assert model.params["up.0.in.W"].shape == (6, 4)
    assert model.params["up.0.0.W"].shape == (9 * 4, 4)                # 3 x 3
    assert model.params["mid.0.W"].shape == (2 * 2 * 8, 4 * 8)         # 8 -> 4 -> 2 pixels
    assert model.n_params == sum((r[1] + 1) * r[2] for r in unet_shapes(64, (4, 6, 8), 8))
    assert all(p.dtype == np.float32 for p in model.params.values())
    rng = np.random.default_rng(6)
    x = backend.asarray(rng.standard_normal((5, 64)).astype(np.float32))
    t = backend.asarray(np.array([1, 2, 5, 9, 10]))
    eps, cache = unet_forward(x, t, model.params)
    assert eps.shape == (5, 64) and eps.dtype == np.float32
    grads = {}
    dx, _ = unet_backward(backend.asarray(np.ones((5, 64), np.float32)), cache, grads)
    assert dx.dtype == np.float32 and all(g.dtype == np.float32 for g in grads.values())
    # fresh: every block is the identity and the skip is 0, so t (read only through FiLM
    # and the skip) does not change the output yet; the output is not 0 (conv_out is Glorot)
    same_x = backend.asarray(np.repeat(np_(x)[:1], 5, axis=0))
    out = np_(unet_forward(same_x, t, model.params)[0])
    assert np.array_equal(out, np.repeat(out[:1], 5, axis=0)) and np.abs(out).max() > 0
    for name, p in model.params.items():
        zero = name.endswith((".1.W", ".film.W")) or name.startswith("skip") \
            or name.endswith(".b")
        assert (float(abs(p).max()) == 0) == zero, name


@pytest.mark.parametrize("bad, match", [(dict(x_dim=15), "square"),
                                        (dict(x_dim=36, hidden=(2, 2, 2)), "divisible"),
                                        (dict(hidden=()), "at least one")])
def test_unet_refuses_images_it_cannot_halve(bad, match):
    with pytest.raises(ValueError, match=match) as e:
        DDPM(**dict(dict(x_dim=16, hidden=(2, 2), denoiser="unet"), **bad))
    assert "\n" not in str(e.value)


def test_config_defaults_and_refusals_for_unet():
    cfg = DiffusionConfig(data="mnist-subset", denoiser="unet")
    assert cfg.hidden == DENOISER_PRESETS["images", "unet"]["hidden"] and cfg.local == 0
    assert DiffusionConfig(data="mnist-subset", denoiser="resmlp").local == 64
    assert DiffusionConfig(data="mnist-subset", denoiser="mlp").local == 0
    assert PRESETS["images"]["denoiser"] in DENOISERS
    for bad, match in ((dict(data="ring", denoiser="unet"), "images"),
                       (dict(data="mnist-subset", denoiser="unet", hidden=(4, 4, 4)),
                        "divisible"),                      # 14 x 14 halves once only
                       (dict(data="mnist-subset", denoiser="unet", local=8), "local")):
        with pytest.raises(ValueError, match=match) as e:
            DiffusionConfig(**bad)
        assert "\n" not in str(e.value)
    assert DiffusionConfig(data="mnist-subset", denoiser="unet", downsample=1,
                           hidden=(2, 2, 2)).hidden == (2, 2, 2)    # 28 -> 14 -> 7


def test_ema_warmup_weights_the_first_steps_not_the_initialisation():
    """d_n = min(d, (1 + n) / (w + n)) after step n: with w = 10, d = 0.999, θ̄_1 = 0.18 θ_0 +
    0.82 θ_1; ema_warmup = 0 is the constant decay."""
    rng = np.random.default_rng(7)
    x = dev(rng.standard_normal((20, 2)))
    models = [DDPM(x_dim=2, T=10, hidden=(4,), time_dim=4, dtype="float64", ema_decay=0.999,
                   ema_warmup=w) for w in (10, 0)]
    start = {n: np_(p).copy() for n, p in models[0].params.items()}
    thetas = []
    for model in models:
        opt = Adam(model.params, lr=0.05)
        for _ in range(2):
            opt.step(model.objective_and_grads(x)[1])
            model.update_ema(opt.t)
            thetas.append({n: np_(p).copy() for n, p in model.params.items()})
    d1, d2 = 2 / 11, 3 / 12
    for n in start:
        want = d2 * (d1 * start[n] + (1 - d1) * thetas[0][n]) + (1 - d2) * thetas[1][n]
        assert np.allclose(np_(models[0].ema[n]), want, rtol=1e-12, atol=1e-15)
        plain = 0.999 * (0.999 * start[n] + 0.001 * thetas[2][n]) + 0.001 * thetas[3][n]
        assert np.allclose(np_(models[1].ema[n]), plain, rtol=1e-12, atol=1e-15)
    # late in training the warm-up is over: d_n = d
    late = DDPM(x_dim=2, T=10, hidden=(4,), time_dim=4, dtype="float64", ema_decay=0.9)
    before = {n: np_(p).copy() for n, p in late.ema.items()}
    for p in late.params.values():
        p += 1.0
    late.update_ema(1000)
    for n in before:
        assert np.allclose(np_(late.ema[n]), before[n] + 0.1, rtol=1e-12, atol=1e-15)


def test_a_checkpoint_saved_before_the_warmup_loads_without_it(tmp_path):
    model = DDPM(x_dim=2, T=10, hidden=(4,), time_dim=4, ema_decay=0.9)
    path = str(tmp_path / "old.npz")
    checkpoint.save(path, model)
    arrays, meta = checkpoint.load_arrays(path)
    del meta["model"]["config"]["ema_warmup"]           # as written before the warm-up existed
    checkpoint.save_arrays(path, arrays, meta)
    assert checkpoint.load(path).model().ema_warmup == 0
    assert DDPM(x_dim=2, T=10, hidden=(4,), time_dim=4, ema_decay=0.9).ema_warmup == 10


TINY_IMAGES = ["--data", "mnist-subset", "--downsample", "7", "--denoiser", "unet",
               "--hidden", "2,3", "--T", "12", "--time-dim", "4", "--batch-size", "500",
               "--eval-n", "20", "--eval-t", "3", "--dtype", "float64", "--ema-decay", "0.9"]


def test_unet_run_resumes_bit_for_bit(tmp_path, capsys):
    """4 x 4 MNIST (downsample 7), a two-level U-Net with EMA and warm-up: 2 epochs at once,
    or 1 epoch then --resume to 2, give the same checkpoint, bit for bit."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    code, _, err = run_cli(["diffusion", "train", *TINY_IMAGES, "--epochs", "2", "--out", a,
                            "--quiet", "--no-plots"], capsys)
    assert code == 0, err
    assert run_cli(["diffusion", "train", *TINY_IMAGES, "--epochs", "1", "--out", b, "--quiet",
                    "--no-plots"], capsys)[0] == 0
    code, _, err = run_cli(["diffusion", "train", "--out", b, "--resume", "--epochs", "2",
                            "--quiet", "--no-plots"], capsys)
    assert code == 0, err
    ca, cb = (checkpoint.load(os.path.join(d, "checkpoint.npz")) for d in (a, b))
    assert ca.epoch == cb.epoch == 2 and ca.meta["model"]["config"]["denoiser"] == "unet"
    assert ca.meta["model"]["config"]["ema_warmup"] == 10
    keys = {k for k in ca.arrays if k != "meta"}
    assert keys == {k for k in cb.arrays if k != "meta"}
    assert any(k.startswith("ema/down.0.film") for k in keys)
    for k in keys:
        assert np.array_equal(ca.arrays[k], cb.arrays[k]), k
