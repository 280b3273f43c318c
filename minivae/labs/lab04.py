"""Lab 4: observation models' log-densities and their gradients w.r.t. the decoder's outputs.

Checks: each log-density against minivae.likelihoods' and against SciPy's (scipy.stats, and
scipy.special.log_expit for extreme logits, where a naive log σ(ℓ) gives -inf); each gradient
against minivae's and against five-point finite differences of minivae's log-density (so the
gradient check does not depend on your log-density being right), with the scalar
L = Σ c ⊙ log Φ(x | η) for fixed random weights c.
"""
import numpy as np
from scipy import special, stats

from .core import as_array, as_dict, call, check_gradient, compare, library

NUMBER = 4
FOLDER = "04_observation_models"
TITLE = "Observation models: Bernoulli, Gaussian and Student's t log-densities and gradients"
MINUTES = "45-75 min"
TEACHES = ("the gradient of log p(x|z) with respect to the decoder's outputs, where every "
           "gradient of a DLVM starts; parametrising with unconstrained heads; stable "
           "log-densities")
KINDS = ("bernoulli", "gaussian", "student_t")
SOLUTION = [f"minivae.likelihoods.{kind}_{what}" for kind in KINDS
            for what in ("log_prob", "grads")]
HEADS = {"bernoulli": ("logits",), "gaussian": ("mean", "logvar"),
         "student_t": ("loc", "log_scale", "df")}
SHAPE = (4, 6)


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


def _scipy_log_prob(kind, x, heads):
    """The same log-densities from SciPy (ν = 3 + softplus(ρ) for the t's raw head ρ)."""
    if kind == "bernoulli":
        ell = heads["logits"]
        return x * special.log_expit(ell) + (1 - x) * special.log_expit(-ell)
    if kind == "gaussian":
        return stats.norm.logpdf(x, heads["mean"], np.exp(0.5 * heads["logvar"]))
    nu = 3 + np.logaddexp(0, heads["df"])
    return stats.t.logpdf(x, nu, heads["loc"], np.exp(heads["log_scale"]))


def _log_prob_check(kind):
    name = f"{kind}_log_prob"

    def check(mod):
        rng = np.random.default_rng(40)
        x, heads = _inputs(kind, rng)
        columns = {}
        if kind == "bernoulli":               # extreme logits: log σ(ℓ) must not give -inf
            x[0, :4] = (1.0, 0.0, 1.0, 0.0)
            heads["logits"][0, :4] = (-800.0, 800.0, 40.0, -40.0)
            columns = {0: "ℓ = -800 with x = 1", 1: "ℓ = 800 with x = 0",
                       2: "ℓ = 40 with x = 1", 3: "ℓ = -40 with x = 0"}
        yours = as_array(call(mod, name, x, **heads), SHAPE, f"{name}(...)")
        return [compare("log Φ", yours, library(SOLUTION, name)(x, **heads),
                        "minivae.likelihoods", columns=columns),
                compare("log Φ", yours, _scipy_log_prob(kind, x, heads), "SciPy",
                        columns=columns)]
    return check


def _grads_check(kind):
    name, log_prob = f"{kind}_grads", f"{kind}_log_prob"

    def check(mod):
        rng = np.random.default_rng(41)
        x, heads = _inputs(kind, rng)
        c = rng.standard_normal(SHAPE)
        got = as_dict(call(mod, name, x, **heads), HEADS[kind], name)
        got = {h: as_array(got[h], SHAPE, f'{name}(...)["{h}"]') for h in HEADS[kind]}
        ref = library(SOLUTION, name)(x, **heads)

        def f():
            return float((c * library(SOLUTION, log_prob)(x, **heads)).sum())
        return check_gradient(f, heads, {h: c * got[h] for h in HEADS[kind]}, prefix="∂/∂") + \
            [compare(f"∂/∂{h}", got[h], ref[h], "minivae.likelihoods") for h in HEADS[kind]]
    return check


CHECKS = [(f"{kind}_{what}", (_log_prob_check if what == "log_prob" else _grads_check)(kind))
          for kind in KINDS for what in ("log_prob", "grads")]
