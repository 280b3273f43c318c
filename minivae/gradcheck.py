"""Finite-difference gradient checks, as in CS231n's assignments.

The analytic gradient a of a scalar function f is compared, entry by entry, with a centred
finite difference n and the relative error

    rel = |a - n| / max(|a| + |n|, tiny)

is reported, worst entry first. With float64 and a correct gradient, rel is around 1e-9 or
below; a wrong gradient typically gives 1e-2 to 1.

The difference is the five-point centred stencil

    n = [f(x - 2h) - 8 f(x - h) + 8 f(x + h) - f(x + 2h)] / (12 h),

whose error is O(h⁴) instead of the two-point formula's O(h²): with h = 1e-4 the truncation
error is far below the 1e-6 relative error we want to resolve, while round-off stays near
1e-12 (the two-point formula cannot reach both at once for functions the size of a bound).
``tiny`` keeps entries whose true gradient is zero (or nearly) from dividing by zero: they
pass when |a - n| < 1e-6 · tiny.

Usage::

    report = check_model(model, x, k=5, eps=eps)      # every parameter of a model
    print(format_report(report)); assert max_error(report) < 1e-6

    report = check_function(f, {"x": x, "W": W}, grads)  # any f(inputs) -> float with grads
"""
import numpy

from . import backend

DEFAULT_H = 1e-4
DEFAULT_TINY = 1e-4
DEFAULT_MAX_ENTRIES = 60


def numerical_gradient_entry(f, array, index, h=DEFAULT_H):
    """Five-point centred difference of f() with respect to array[index] (restored after)."""
    old = array[index].item()
    values = []
    for step in (-2, -1, 1, 2):
        array[index] = old + step * h
        values.append(float(f()))
    array[index] = old
    f_m2, f_m1, f_p1, f_p2 = values
    return (f_m2 - 8 * f_m1 + 8 * f_p1 - f_p2) / (12 * h)


def rel_error(a, n, tiny=DEFAULT_TINY):
    """|a - n| / max(|a| + |n|, tiny), elementwise."""
    a, n = numpy.asarray(a, dtype=float), numpy.asarray(n, dtype=float)
    return numpy.abs(a - n) / numpy.maximum(numpy.abs(a) + numpy.abs(n), tiny)


def _indices(shape, max_entries, rng):
    """All entries of a small array, or a seeded random subset of a large one."""
    size = int(numpy.prod(shape))
    flat = numpy.arange(size) if size <= max_entries else \
        rng.choice(size, size=max_entries, replace=False)
    return [numpy.unravel_index(i, shape) for i in flat]


def check_function(f, inputs, analytic, h=DEFAULT_H, tiny=DEFAULT_TINY,
                   max_entries=DEFAULT_MAX_ENTRIES, seed=0):
    """Compare analytic gradients of a scalar function with finite differences.

    f : callable with no arguments returning a float; it must read the arrays of ``inputs``,
        which are perturbed in place (so pass the live arrays, in float64).
    inputs : dict name -> array; analytic : dict name -> gradient of the same shape.
    Returns a report: dict name -> {"max_rel_error", "index", "analytic", "numerical",
    "checked"} describing the worst entry of each input.
    """
    rng = numpy.random.default_rng(seed)
    report = {}
    for name, array in inputs.items():
        if array.dtype != numpy.float64:
            raise ValueError(f"gradient checks need float64 arrays; {name} is {array.dtype}")
        grad = backend.to_numpy(analytic[name])
        if grad.shape != array.shape:
            raise ValueError(f"analytic gradient of {name} has shape {grad.shape}, "
                             f"expected {array.shape}")
        worst = {"max_rel_error": 0.0, "index": None, "analytic": 0.0, "numerical": 0.0}
        indices = _indices(array.shape, max_entries, rng)
        for index in indices:
            num = numerical_gradient_entry(f, array, index, h)
            err = float(rel_error(grad[index], num, tiny))
            if err >= worst["max_rel_error"]:
                worst = {"max_rel_error": err, "index": tuple(int(i) for i in index),
                         "analytic": float(grad[index]), "numerical": num}
        worst["checked"] = len(indices)
        report[name] = worst
    return report


def check_layer(forward, backward, inputs, seed=0, **kwargs):
    """Check a CS231n-style layer pair: ``out, cache = forward(**inputs)`` and
    ``dx..., grads = backward(dout, cache)``.

    The scalar checked is f = Σ out ⊙ dout for a fixed random dout, whose gradient the
    backward must return. ``backward`` must return a dict name -> gradient for (a subset of)
    the inputs; wrap the layer's own backward to build it. Returns a report (see
    :func:`check_function`).
    """
    rng = numpy.random.default_rng(seed)
    out, cache = forward(**inputs)
    dout = backend.asarray(rng.standard_normal(out.shape))
    analytic = backward(dout, cache)

    def f():
        return float((forward(**inputs)[0] * dout).sum())
    return check_function(f, {n: inputs[n] for n in analytic}, analytic, seed=seed, **kwargs)


def check_model(model, x, k, eps=None, mask=None, names=None, **kwargs):
    """Check every parameter of a float64 model's ``bound_and_grads`` at fixed noise eps."""
    if model.dtype != "float64":
        raise ValueError("gradient checks need a model with dtype='float64'")
    if eps is None:
        eps = model.rng.standard_normal((k, backend.asarray(x).shape[0], model.z_dim))
    _, grads = model.bound_and_grads(x, k, eps=eps, mask=mask)
    names = list(model.params) if names is None else names

    def f():
        return float(model.bound(x, k, eps=eps, mask=mask).mean())
    return check_function(f, {n: model.params[n] for n in names}, grads, **kwargs)


def max_error(report):
    """The worst relative error over all entries of a report."""
    return max(r["max_rel_error"] for r in report.values())


def format_report(report, threshold=1e-6):
    """A readable table: one line per array with its worst entry, PASS or FAIL."""
    lines = [f"{'array':<22} {'max rel err':>12} {'worst entry':>14} {'analytic':>13} "
             f"{'numerical':>13}  checked"]
    for name, r in report.items():
        status = "PASS" if r["max_rel_error"] < threshold else "FAIL"
        lines.append(f"{name:<22} {r['max_rel_error']:12.3e} {str(r['index']):>14} "
                     f"{r['analytic']:13.6e} {r['numerical']:13.6e}  {r['checked']:>4}  "
                     f"{status}")
    return "\n".join(lines)
