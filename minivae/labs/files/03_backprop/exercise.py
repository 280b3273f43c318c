"""Lab 3: backpropagation by hand. Fill in the functions that raise NotImplementedError.

Every layer is a CS231n-style pair::

    out, cache = layer_forward(inputs...)
    dx, dW, db = affine_backward(dout, cache)      # a layer with parameters
    da = activation_backward(dout, cache)          # an activation

where dout = ∂L/∂out for some scalar L, and the backward returns ∂L/∂(each input of the
forward), in the forward's argument order. The forward passes are given: read them to see
what each cache holds. Shapes: N rows, D_in -> D_out.

Check your work with:   python -m minivae.labs check 3
"""
import numpy as np


# ---------------------------------------------------------------- affine map  out = x W + b
def affine_forward(x, W, b):
    """x: (N, D_in), W: (D_in, D_out), b: (D_out,) -> out: (N, D_out); cache = (x, W)."""
    return x @ W + b, (x, W)


def affine_backward(dout, cache):
    """Backward of out = x W + b.

    dout: (N, D_out); cache = (x, W) from affine_forward.
    Return dx, dW, db with shapes (N, D_in), (D_in, D_out) and (D_out,).
    """
    x, W = cache
    raise NotImplementedError("affine_backward: return dx, dW, db")


# ---------------------------------------------------------------- activations (cache = output)
def tanh_forward(a):
    """y = tanh(a); cache = y."""
    y = np.tanh(a)
    return y, y


def tanh_backward(dout, y):
    """Return da = ∂L/∂a, same shape as dout, using only the cached output y = tanh(a)."""
    raise NotImplementedError("tanh_backward: return da")


def relu_forward(a):
    """y = max(a, 0); cache = y."""
    y = np.maximum(a, 0)
    return y, y


def relu_backward(dout, y):
    """Return da = ∂L/∂a, using only y = max(a, 0) (take the derivative at a = 0 to be 0)."""
    raise NotImplementedError("relu_backward: return da")


def softplus_forward(a):
    """y = softplus(a) = log(1 + e^a), computed without overflow; cache = y."""
    y = np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))
    return y, y


def softplus_backward(dout, y):
    """Return da = ∂L/∂a, using only y = softplus(a). Hint: write σ(a) with y."""
    raise NotImplementedError("softplus_backward: return da")


ACTIVATIONS = {
    "tanh": (tanh_forward, tanh_backward),
    "relu": (relu_forward, relu_backward),
    "softplus": (softplus_forward, softplus_backward),
}


# ---------------------------------------------------------------- a multilayer perceptron
def mlp_forward(x, params, prefix, n_hidden, activation):
    """n_hidden affine layers, each followed by the activation.

    Layer i uses params[f"{prefix}.{i}.W"] and params[f"{prefix}.{i}.b"].
    x: (N, D_in) -> h: (N, H_last); cache = list of (affine cache, activation cache) per layer.
    """
    act_forward, _ = ACTIVATIONS[activation]
    caches = []
    h = x
    for i in range(n_hidden):
        a, affine_cache = affine_forward(h, params[f"{prefix}.{i}.W"], params[f"{prefix}.{i}.b"])
        h, act_cache = act_forward(a)
        caches.append((affine_cache, act_cache))
    return h, caches


def mlp_backward(dh, caches, prefix, activation, grads):
    """Backward of mlp_forward: the chain rule through the layers, last layer first.

    dh: (N, H_last) = ∂L/∂h. Store ∂L/∂W and ∂L/∂b of layer i in grads[f"{prefix}.{i}.W"] and
    grads[f"{prefix}.{i}.b"] (grads is a dict you fill in), and return dx = ∂L/∂x, (N, D_in).
    Use your layer backwards above (ACTIVATIONS[activation][1] is the activation's backward).
    """
    _, act_backward = ACTIVATIONS[activation]
    raise NotImplementedError("mlp_backward: fill in grads and return dx")
