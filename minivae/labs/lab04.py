"""Lab 4: observation models' log-densities and their gradients w.r.t. the decoder's outputs.

Checks: each log-density against minivae.likelihoods on random inputs (including extreme
logits, where a naive log σ(ℓ) gives -inf); each gradient against five-point finite
differences of minivae's log-density (so the gradient check does not depend on your
log-density being right), with the scalar L = Σ c ⊙ log Φ(x | η) for fixed random weights c.
"""
import numpy as np

from ..likelihoods import Bernoulli, Gaussian, StudentT
from .core import VALUE_TOL, as_array, as_dict, call, check_gradient, compare

NUMBER = 4
FOLDER = "04_observation_models"
TITLE = "Observation models: Bernoulli, Gaussian and Student's t log-densities and gradients"
MINUTES = "45-75 min"
TEACHES = ("the gradient of log p(x|z) with respect to the decoder's outputs, where every "
           "gradient of a DLVM starts; parametrising with unconstrained heads; stable "
           "log-densities")

SHAPE = (4, 6)
MODELS = {"bernoulli": Bernoulli, "gaussian": Gaussian, "student_t": StudentT}


def _inputs(kind, rng):
    """x and the heads, random, as float64 arrays of SHAPE."""
    if kind == "bernoulli":
        x = (rng.random(SHAPE) < 0.5).astype(float)
        logits = 3 * rng.standard_normal(SHAPE)
        return x, {"logits": logits}
    x = 2 * rng.standard_normal(SHAPE)
    if kind == "gaussian":
        return x, {"mean": rng.standard_normal(SHAPE), "logvar": rng.standard_normal(SHAPE)}
    return x, {"loc": rng.standard_normal(SHAPE), "log_scale": 0.5 * rng.standard_normal(SHAPE),
               "df": 2 * rng.standard_normal(SHAPE)}


def _log_prob_check(kind):
    model = MODELS[kind]

    def check(mod):
        rng = np.random.default_rng(40)
        x, heads = _inputs(kind, rng)
        if kind == "bernoulli":               # extreme logits: log σ(ℓ) must not give -inf
            x[0, :4] = (1.0, 0.0, 1.0, 0.0)
            heads["logits"][0, :4] = (-800.0, 800.0, 40.0, -40.0)
        yours = as_array(call(mod, f"{kind}_log_prob", x, **heads), SHAPE,
                         f"{kind}_log_prob(...)")
        return [compare("log Φ", yours, model.log_prob(x, **heads),
                        f"minivae.likelihoods.{model.__name__}.log_prob", VALUE_TOL)]
    return check


def _grads_check(kind):
    model = MODELS[kind]

    def check(mod):
        rng = np.random.default_rng(41)
        x, heads = _inputs(kind, rng)
        c = rng.standard_normal(SHAPE)
        got = as_dict(call(mod, f"{kind}_grads", x, **heads), model.heads, f"{kind}_grads")
        analytic = {h: c * as_array(got[h], SHAPE, f'{kind}_grads(...)["{h}"]')
                    for h in model.heads}

        def f():
            return float((c * model.log_prob(x, **heads)).sum())
        return check_gradient(f, heads, analytic, prefix="∂/∂")
    return check


CHECKS = [(f"{kind}_{what}", (_log_prob_check if what == "log_prob" else _grads_check)(kind))
          for kind in MODELS for what in ("log_prob", "grads")]


def solution():
    """minivae's own observation models (minivae/likelihoods.py)."""
    fns = {}
    for kind, model in MODELS.items():
        fns[f"{kind}_log_prob"] = model.log_prob
        fns[f"{kind}_grads"] = model.log_prob_grads
    return _namespace(**fns)


def _namespace(**functions):
    import types
    ns = types.SimpleNamespace(**functions)
    ns.__file__ = None
    return ns
