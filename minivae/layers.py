"""Layers with explicit backward passes, in the style of CS231n's layer code (lab 3).

Every layer is a pair::

    out, cache = layer_forward(x, ...)
    dx, dW, db = affine_backward(dout, cache)     # a layer with parameters
    da = activation_backward(dout, cache)         # an activation

where ``dout`` is ∂L/∂out for some scalar L, and the backward returns ∂L/∂ of each input of
the forward, in the forward's argument order. Caches hold only what the backward needs. Shapes
use N for the number of rows (examples, or samples × examples) and (D_in, D_out) for widths.
"""
from .backend import xp
from .likelihoods import softplus


# ---------------------------------------------------------------- affine map h = x W + b
def affine_forward(x, W, b):
    """out = x @ W + b.

    x: (N, D_in), W: (D_in, D_out), b: (D_out,) -> out: (N, D_out); cache = (x, W).
    """
    out = x @ W
    out += b                          # in place: no second (N, D_out) array
    return out, (x, W)


def affine_backward(dout, cache, need_dx=True):
    """Backward of out = x W + b:  ∂L/∂x = dout Wᵀ,  ∂L/∂W = xᵀ dout,  ∂L/∂b = Σ_n dout_n.

    dout: (N, D_out), cache = (x, W) -> dx: (N, D_in), dW: (D_in, D_out), db: (D_out,).
    ``need_dx=False`` (an option lab 3 leaves out): x is data, e.g. the encoder's input, so dx is
    None and the product dout Wᵀ is skipped (a seventh of a VAE step with K = 1).
    """
    x, W = cache
    return (dout @ W.T if need_dx else None), x.T @ dout, dout.sum(axis=0)


# ---------------------------------------------------------------- activations
# Each activation's derivative can be written with its *output* alone, so the cache is just
# the output: tanh' = 1 - tanh², relu' = [y > 0], softplus'(a) = σ(a) = 1 - e^{-y}.

def tanh_forward(a):
    """y = tanh(a); cache = y."""
    y = xp.tanh(a)
    return y, y


def tanh_backward(dout, y):
    """∂L/∂a = dout ⊙ (1 - y²), since d tanh(a)/da = 1 - tanh(a)²."""
    da = y * y
    xp.subtract(1, da, out=da)        # in place: one new array instead of three
    da *= dout
    return da


def relu_forward(a):
    """y = max(a, 0); cache = y."""
    y = xp.maximum(a, 0)
    return y, y


def relu_backward(dout, y):
    """∂L/∂a = dout ⊙ [a > 0] (= [y > 0]); the derivative at a = 0 is taken as 0."""
    return dout * (y > 0)


def softplus_forward(a):
    """y = softplus(a) = log(1 + e^a), computed without overflow; cache = y."""
    y = softplus(a)
    return y, y


def softplus_backward(dout, y):
    """∂L/∂a = dout ⊙ σ(a), with σ(a) = 1 - e^{-y} computed as -expm1(-y) (exact for tiny y)."""
    return dout * -xp.expm1(-y)


ACTIVATIONS = {
    "tanh": (tanh_forward, tanh_backward),
    "relu": (relu_forward, relu_backward),
    "softplus": (softplus_forward, softplus_backward),
}


# ---------------------------------------------------------------- MLP
def mlp_forward(x, params, prefix, n_hidden, activation):
    """The hidden part of an MLP: n_hidden affine layers each followed by the activation.

    Layer i uses params[f"{prefix}.{i}.W"] and params[f"{prefix}.{i}.b"].
    x: (N, D_in) -> h: (N, H_last) (x itself when n_hidden == 0); cache: list of
    (affine cache, activation cache), one per layer.
    """
    act_forward, _ = ACTIVATIONS[activation]
    caches = []
    h = x
    for i in range(n_hidden):
        a, affine_cache = affine_forward(h, params[f"{prefix}.{i}.W"], params[f"{prefix}.{i}.b"])
        h, act_cache = act_forward(a)
        caches.append((affine_cache, act_cache))
    return h, caches


def mlp_backward(dh, caches, prefix, activation, grads, need_dx=True):
    """Backward of :func:`mlp_forward`: the chain rule through the layers, last layer first.

    dh: (N, H_last) = ∂L/∂h. Stores ∂L/∂W and ∂L/∂b of layer i in grads[f"{prefix}.{i}.W"] and
    grads[f"{prefix}.{i}.b"] (a dict keyed like the params) and returns dx = ∂L/∂x, (N, D_in)
    (None with ``need_dx=False``, when x is data: see :func:`affine_backward`).
    """
    _, act_backward = ACTIVATIONS[activation]
    for i in reversed(range(len(caches))):
        affine_cache, act_cache = caches[i]
        da = act_backward(dh, act_cache)
        dh, grads[f"{prefix}.{i}.W"], grads[f"{prefix}.{i}.b"] = \
            affine_backward(da, affine_cache, need_dx=need_dx or i > 0)
    return dh
