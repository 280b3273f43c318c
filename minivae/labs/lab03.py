"""Lab 3: backpropagation by hand (affine, tanh, ReLU, softplus, an MLP).

Checks: each backward against minivae.layers' backward on the same inputs, and against
five-point finite differences of minivae's forward (so a broken forward in the exercise file
cannot hide a wrong backward), with the scalar L = Σ out ⊙ dout for a fixed random dout, as in
CS231n's assignments.
"""
import numpy as np

from .. import layers
from .core import CheckFailed, as_array, call, check_gradient, compare, library, unpack

NUMBER = 3
FOLDER = "03_backprop"
TITLE = "Backpropagation by hand: affine, tanh, ReLU, softplus, an MLP"
MINUTES = "60-90 min"
TEACHES = ("the chain rule as a backward pass: caches, dout, why an activation's cache can be "
           "its output, and checking a gradient with finite differences")
SOLUTION = [
    # The forwards are given in the exercise file; the backwards are the exercise.
    "minivae.layers.affine_forward",
    "minivae.layers.tanh_forward",
    "minivae.layers.relu_forward",
    "minivae.layers.softplus_forward",
    "minivae.layers.mlp_forward",
    "minivae.layers.affine_backward",
    "minivae.layers.tanh_backward",
    "minivae.layers.relu_backward",
    "minivae.layers.softplus_backward",
    "minivae.layers.mlp_backward",
]


# ------------------------------------------------------------------ checks
def _affine(mod):
    rng = np.random.default_rng(30)
    x, W, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    dout = rng.standard_normal((5, 3))
    _, cache = call(mod, "affine_forward", x, W, b)
    dx, dW, db = unpack(call(mod, "affine_backward", dout, cache), 3, "affine_backward")
    lib_dx, lib_dW, lib_db = library(SOLUTION, "affine_backward")(dout, (x, W))
    values = [compare("dx", as_array(dx, x.shape, "dx"), lib_dx, "minivae.layers"),
              compare("dW", as_array(dW, W.shape, "dW"), lib_dW, "minivae.layers"),
              compare("db", as_array(db, b.shape, "db"), lib_db, "minivae.layers")]

    def f():
        return float((layers.affine_forward(x, W, b)[0] * dout).sum())
    return check_gradient(f, {"x": x, "W": W, "b": b}, {"x": dx, "W": dW, "b": db}) + values


def _activation_inputs(name, rng, shape=(6, 5)):
    a = 1.5 * rng.standard_normal(shape)
    if name == "relu":          # keep away from the kink at 0, where the derivative jumps
        a = np.sign(a) * (0.05 + np.abs(a))
    if name == "softplus":      # include larger |a|, where σ(a) is near 0 or 1
        a[0, :3] = (-12.0, 12.0, -6.0)
    return a


def _activation(name):
    lib_forward = getattr(layers, f"{name}_forward")

    def check(mod):
        rng = np.random.default_rng(31)
        a = _activation_inputs(name, rng)
        dout = rng.standard_normal(a.shape)
        _, y = lib_forward(a)
        da = as_array(call(mod, f"{name}_backward", dout, y), a.shape, "da")
        lib_da = library(SOLUTION, f"{name}_backward")(dout, y)

        def f():
            return float((lib_forward(a)[0] * dout).sum())
        return check_gradient(f, {"a": a}, {"a": da}) + \
            [compare("da", da, lib_da, "minivae.layers")]
    return check


def _mlp_params(activation, rng, sizes=(4, 5, 3)):
    """Random parameters of a 2-hidden-layer MLP, redrawn until no ReLU unit sits near 0."""
    while True:
        params = {}
        for i in range(len(sizes) - 1):
            params[f"net.{i}.W"] = rng.standard_normal((sizes[i], sizes[i + 1]))
            params[f"net.{i}.b"] = rng.standard_normal(sizes[i + 1])
        x = rng.standard_normal((6, sizes[0]))
        h, pre = x, []
        for i in range(len(sizes) - 1):
            a = h @ params[f"net.{i}.W"] + params[f"net.{i}.b"]
            pre.append(np.abs(a).min())
            h = layers.ACTIVATIONS[activation][0](a)[0]
        if activation != "relu" or min(pre) > 0.02:
            return x, params


def _mlp(mod):
    rng = np.random.default_rng(32)
    out = []
    for activation in ("tanh", "relu", "softplus"):
        x, params = _mlp_params(activation, rng)
        h, caches = call(mod, "mlp_forward", x, params, "net", 2, activation)
        dout = rng.standard_normal(np.shape(h))
        grads = {}
        dx = call(mod, "mlp_backward", dout, caches, "net", activation, grads)
        dx = as_array(dx, x.shape, "mlp_backward's dx")

        lib_grads = {}
        lib_dx = library(SOLUTION, "mlp_backward")(
            dout, layers.mlp_forward(x, params, "net", 2, activation)[1], "net", activation,
            lib_grads)

        def f():
            return float((layers.mlp_forward(x, params, "net", 2, activation)[0] * dout).sum())
        analytic = {"x": dx}
        for name in params:
            if name not in grads:
                raise CheckFailed(f"mlp_backward did not store grads[{name!r}]")
            analytic[name] = grads[name]
        try:
            comps = check_gradient(f, {"x": x, **params}, analytic)
        except CheckFailed as e:
            raise CheckFailed(f"{e} (activation {activation})") from None
        comps += [compare("dx", dx, lib_dx, "minivae.layers")]
        comps += [compare("d" + n, as_array(grads[n], params[n].shape, n), lib_grads[n],
                          "minivae.layers") for n in params]
        for c in comps:
            c.what = f"{c.what} ({activation})"
        out += comps
    return out


CHECKS = [
    ("affine_backward", _affine),
    ("tanh_backward", _activation("tanh")),
    ("relu_backward", _activation("relu")),
    ("softplus_backward", _activation("softplus")),
    ("mlp_backward", _mlp),
]
