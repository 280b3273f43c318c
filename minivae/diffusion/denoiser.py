"""The denoiser ε_θ(x_t, t): an MLP of the project's layers that predicts the noise in x_t.

    φ = time_embedding(t)                  (N, E)   sinusoidal features of t (embedding.py)
    e = act(φ W_time + b_time)             (N, E)   learned time features
    h_0 = x_t                              (N, D)
    h_{i+1} = act([h_i, e] W_i + b_i)      (N, H_i) i = 0..L−1, every layer also reads e
    ε̂ = [h_L, e] W_L + b_L                 (N, D)   linear output: ε ~ N(0, I) is unbounded

Giving the time features to every layer (not only the first) lets each layer switch its
behaviour with the noise level, from "smooth a little" (small t) to "guess the data" (large t);
with ``hidden=()`` the denoiser is the affine map [x_t, e] W_0 + b_0.

Parameters live in a dict, as the VAE's do: ``time.W`` (E, E), ``time.b`` (E,), and
``net.{i}.W`` ((H_i + E), H_{i+1}), ``net.{i}.b`` for i = 0..L (the last is the output layer),
with H_0 = D and H_{L+1} = D.
"""
import math

import numpy

from .. import backend
from ..backend import xp
from ..layers import ACTIVATIONS, affine_backward, affine_forward
from .embedding import time_embedding_backward, time_embedding_forward


def denoiser_shapes(x_dim, hidden, time_dim):
    """(name, fan_in, fan_out) of every affine map of the denoiser, in a fixed order."""
    widths = (x_dim,) + tuple(hidden) + (x_dim,)
    return [("time", time_dim, time_dim)] + [
        (f"net.{i}", widths[i] + time_dim, widths[i + 1]) for i in range(len(widths) - 1)]


def init_denoiser(x_dim, hidden, time_dim, seed, dtype):
    """Glorot-uniform weights U(−a, a), a = √(6 / (fan_in + fan_out)), and zero biases, drawn on
    the host with NumPy (both backends start from the same parameters)."""
    rng = numpy.random.default_rng([seed, 0xD1FF])
    params = {}
    for name, fan_in, fan_out in denoiser_shapes(x_dim, hidden, time_dim):
        a = math.sqrt(6.0 / (fan_in + fan_out))
        params[f"{name}.W"] = backend.asarray(rng.uniform(-a, a, (fan_in, fan_out)), dtype=dtype)
        params[f"{name}.b"] = xp.zeros(fan_out, dtype=dtype)
    return params


def denoiser_forward(x, t, params, activation="relu"):
    """ε̂ = ε_θ(x_t, t). x: (N, D), t: (N,) (integers or reals) -> eps_hat: (N, D); cache."""
    act_forward, _ = ACTIVATIONS[activation]
    time_dim = params["time.W"].shape[0]
    n_layers = sum(1 for name in params if name.startswith("net.") and name.endswith(".W"))
    phi, emb_cache = time_embedding_forward(xp.asarray(t, dtype=x.dtype), time_dim)
    a, time_cache = affine_forward(phi, params["time.W"], params["time.b"])
    e, e_act = act_forward(a)
    h, layers = x, []
    for i in range(n_layers):
        a, aff = affine_forward(xp.concatenate([h, e], axis=1),
                                params[f"net.{i}.W"], params[f"net.{i}.b"])
        if i < n_layers - 1:
            h, act = act_forward(a)
        else:
            h, act = a, None                   # the output layer is linear
        layers.append((aff, act))
    return h, (activation, emb_cache, time_cache, e_act, layers)


def denoiser_backward(deps, cache, grads):
    """Backward of :func:`denoiser_forward`: the chain rule through the layers in reverse.

    deps: (N, D) = ∂L/∂ε̂. Each layer's input [h_i, e] splits its gradient in two: ∂L/∂h_i
    goes down the network, ∂L/∂e is summed over all layers (e feeds every one), then flows
    through the time MLP and the embedding. Adds ∂L/∂W, ∂L/∂b of every affine map into
    ``grads``; returns (∂L/∂x_t (N, D), ∂L/∂t (N,)).
    """
    activation, emb_cache, time_cache, e_act, layers = cache
    _, act_backward = ACTIVATIONS[activation]
    dh, de = deps, 0
    for i in reversed(range(len(layers))):
        aff, act = layers[i]
        da = dh if act is None else act_backward(dh, act)
        dinp, grads[f"net.{i}.W"], grads[f"net.{i}.b"] = affine_backward(da, aff)
        width = dinp.shape[1] - e_act.shape[1]
        dh, de = dinp[:, :width], de + dinp[:, width:]
    da = act_backward(de, e_act)
    dphi, grads["time.W"], grads["time.b"] = affine_backward(da, time_cache)
    return dh, time_embedding_backward(dphi, emb_cache)
