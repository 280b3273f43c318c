"""Lab 3: backpropagation by hand (affine, tanh, ReLU, softplus, an MLP).

Checks: each backward against five-point finite differences of the layer's forward (minivae's
own, so a broken forward in the exercise file cannot hide a wrong backward), with the scalar
L = Σ out ⊙ dout for a fixed random dout, as in CS231n's assignments.
"""
import time

import numpy as np

from .. import gradcheck, layers
from ..model import IWAE
from .common import mnist, random_params
from .core import CheckFailed, as_array, as_dict, call, check_gradient, namespace, unpack

NUMBER = 3
FOLDER = "03_backprop"
TITLE = "Backpropagation by hand: affine, tanh, ReLU, softplus, an MLP"
MINUTES = "60-90 min"
TEACHES = ("the chain rule as a backward pass: caches, dout, why an activation's cache can be "
           "its output, and checking a gradient with finite differences")
RUN_DESCRIPTION = ("check the full model's hand-written gradients on MNIST digits, for each "
                   "activation, and measure what a backward pass costs against the forward "
                   "(and against finite differences)")


# ------------------------------------------------------------------ checks
def _affine(mod):
    rng = np.random.default_rng(30)
    x, W, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    dout = rng.standard_normal((5, 3))
    _, cache = call(mod, "affine_forward", x, W, b)
    dx, g = unpack(call(mod, "affine_backward", dout, cache), 2, "affine_backward")
    g = as_dict(g, ("W", "b"), "affine_backward's second value")

    def f():
        return float((layers.affine_forward(x, W, b)[0] * dout).sum())
    return check_gradient(f, {"x": x, "W": W, "b": b}, {"x": dx, "W": g["W"], "b": g["b"]})


def _activation_inputs(name, rng, shape=(6, 5)):
    a = 1.5 * rng.standard_normal(shape)
    if name == "relu":          # keep away from the kink at 0, where the derivative jumps
        a = np.sign(a) * (0.05 + np.abs(a))
    if name == "softplus":      # include larger |a|, where σ(a) is near 0 or 1
        a[0, :3] = (-12.0, 12.0, -6.0)
    return a


def _activation(name):
    ref_forward = getattr(layers, f"{name}_forward")

    def check(mod):
        rng = np.random.default_rng(31)
        a = _activation_inputs(name, rng)
        dout = rng.standard_normal(a.shape)
        _, y = call(mod, f"{name}_forward", a)
        da = call(mod, f"{name}_backward", dout, y)

        def f():
            return float((ref_forward(a)[0] * dout).sum())
        return check_gradient(f, {"a": a}, {"a": da})
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


def solution():
    """minivae's own layers (minivae/layers.py)."""
    names = ["affine_forward", "affine_backward", "ACTIVATIONS", "mlp_forward", "mlp_backward"]
    names += [f"{a}_{d}" for a in ("tanh", "relu", "softplus") for d in ("forward", "backward")]
    return namespace(**{n: getattr(layers, n) for n in names})


# ------------------------------------------------------------------ now on real data
def run(args):
    rng = np.random.default_rng(args.seed)
    n, hidden, entries = (2, (16,), 4) if args.quick else (8, (64, 32), 20)
    x, _, _, _ = mnist(n_train=n, seed=args.seed)
    print(f"1. The whole model's gradient, by hand, on {n} binarized MNIST digits: an IWAE "
          f"784-{'-'.join(map(str, hidden))}-20 (K = 5), float64, random parameters,\n"
          f"   every parameter array checked on {entries} entries against finite differences.")
    for activation in ("tanh", "relu", "softplus"):
        model = IWAE(784, 20, hidden=hidden, activation=activation, dtype="float64",
                     seed=args.seed)
        random_params(model.params, rng, scale=0.1)
        report = gradcheck.check_model(model, x, k=5, max_entries=entries)
        errors = [r["max_rel_error"] for r in report.values()]
        name = max(report, key=lambda a: report[a]["max_rel_error"])
        r = report[name]
        print(f"   {activation:<9} {len(report)} arrays, {model.n_params:,} parameters: median "
              f"of the arrays' worst errors {np.median(errors):.1e}; worst {r['max_rel_error']:.1e} "
              f"at {name}{list(r['index'])}: analytic {r['analytic']:.3e}, numerical "
              f"{r['numerical']:.3e}")
    size = abs(float(model.bound(x, 5).mean()))
    print(f"   Errors above 1e-6 here are round-off, not wrong gradients: the bound is about "
          f"{-size:.0f} nats, so each\n   finite difference carries an absolute error near "
          f"1e-16 x {size:.0f} / h = {1e-16 * size / 1e-4:.0e}, large next to gradient entries "
          f"of 1e-5\n   or less (an analytic 0 is a weight of a pixel that is 0 in every "
          f"digit). With ReLU, a much larger\n   error means that a step of h = 1e-4 crossed a "
          f"unit's kink at 0, where the derivative jumps.")

    hidden, batch, reps = ((50,), 20, 2) if args.quick else ((200, 200), 100, 10)
    xb, _, _, _ = mnist(n_train=batch, seed=args.seed)
    model = IWAE(784, 50, hidden=hidden, seed=args.seed)       # float32, as trained
    eps = model.rng.standard_normal((5, batch, 50), dtype="float32")
    model.bound(xb, 5, eps=eps)                                   # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        model.bound(xb, 5, eps=eps, check=False)
    t_fwd = (time.perf_counter() - t0) / reps
    t0 = time.perf_counter()
    for _ in range(reps):
        model.bound_and_grads(xb, 5, eps=eps, check=False)
    t_both = (time.perf_counter() - t0) / reps
    print(f"\n2. What the backward pass costs: IWAE 784-{'-'.join(map(str, hidden))}-50, "
          f"{model.n_params:,} parameters, a batch of {batch} digits, K = 5 (float32, CPU):\n"
          f"   forward (the bound)           {1e3 * t_fwd:8.1f} ms\n"
          f"   forward + backward (gradient) {1e3 * t_both:8.1f} ms   "
          f"({t_both / t_fwd:.1f} x the forward)\n"
          f"   finite differences would need 4 forwards per parameter: "
          f"{4 * model.n_params * t_fwd / 3600:,.1f} hours for one gradient.")
