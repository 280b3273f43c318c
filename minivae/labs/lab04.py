"""Lab 4: observation models' log-densities and their gradients w.r.t. the decoder's outputs.

Checks: each log-density against minivae.likelihoods' and against SciPy's (scipy.stats, and
scipy.special.log_expit for extreme logits, where a naive log σ(ℓ) gives -inf); each gradient
against minivae's and against five-point finite differences of minivae's log-density (so the
gradient check does not depend on your log-density being right), with the scalar
L = Σ c ⊙ log Φ(x | η) for fixed random weights c.

bernoulli_log_prob_and_grads, the fused form whose formula the IWAE's training step runs, is checked the same
way (its log Φ against minivae's fused function, bernoulli_log_prob and SciPy; its gradient
against minivae's and finite differences of minivae's fused log Φ), on the training step's
shapes (x (B, D) against logits (K, B, D)), and on extreme float32 logits (|ℓ| > 100), where
it must give neither -inf nor NaN.
"""
import numpy as np
from scipy import special, stats

from .core import (CheckFailed, as_array, as_dict, call, check_gradient, compare, library,
                   unpack)

NUMBER = 4
FOLDER = "04_observation_models"
TITLE = "Observation models: Bernoulli, Gaussian and Student's t log-densities and gradients"
MINUTES = "45-75 min"
TEACHES = ("the gradient of log p(x|z) with respect to the decoder's outputs, where every "
           "gradient of a DLVM starts; parametrising with unconstrained heads; stable "
           "log-densities; the fused Bernoulli form (one tanh) the training step runs")
KINDS = ("bernoulli", "gaussian", "student_t")
FUSED = "bernoulli_log_prob_and_grads"
SOLUTION = [f"minivae.likelihoods.{kind}_{what}" for kind in KINDS
            for what in ("log_prob", "grads")] + [f"minivae.likelihoods.{FUSED}"]
HEADS = {"bernoulli": ("logits",), "gaussian": ("mean", "logvar"),
         "student_t": ("loc", "log_scale", "df")}
SHAPE = (4, 6)
#: Relative error allowed against a float64 reference for float32 results: a few float32
#: roundings, measured against the floor 1e-4 of the relative error where log Φ ≈ 0.
FLOAT32_TOL = 1e-4
#: Extreme float32 logits (|ℓ| > 100: e^{|ℓ|} overflows, e^{-|ℓ|} is subnormal or 0) with x on
#: each side: log Φ is ≈ 0 or ≈ -|ℓ|, never -inf or NaN.
EXTREME = [(-800.0, 1.0), (800.0, 0.0), (800.0, 1.0), (-800.0, 0.0), (150.0, 0.0),
           (-150.0, 1.0), (101.0, 1.0), (-101.0, 0.0), (3e4, 0.0), (-3e4, 0.0)]


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


def _fused(mod, x, logits, what):
    """The student's (log Φ, ∂ log Φ/∂ℓ) as float64 arrays of the broadcast shape, finite."""
    shape = np.broadcast_shapes(np.shape(x), np.shape(logits))
    out = unpack(call(mod, FUSED, x, logits), 2, f"{FUSED}(...)")
    log_phi = as_array(out[0], shape, f"{FUSED}(...)[0]")
    d = as_array(as_dict(out[1], ("logits",), f"{FUSED}(...)[1]")["logits"], shape,
                 f'{FUSED}(...)[1]["logits"]')
    for name, a in (("log Φ", log_phi), ("∂/∂ℓ", d)):
        bad = ~np.isfinite(a)
        if bad.any():
            i = tuple(int(j) for j in np.argwhere(bad)[0])
            value = "NaN" if np.isnan(a[i]) else f"{a[i]:g}"
            raise CheckFailed(f"{name} is {value} at {list(i)} {what}, where "
                              f"ℓ = {np.broadcast_to(logits, shape)[i]:.6g} and "
                              f"x = {np.broadcast_to(x, shape)[i]:g}")
    return log_phi, d


def _fused_check(mod):
    rng = np.random.default_rng(42)
    x, heads = _inputs("bernoulli", rng)
    logits = heads["logits"]
    c = rng.standard_normal(SHAPE)
    log_phi, d = _fused(mod, x, logits, "(float64)")
    lib_phi, lib_d = library(SOLUTION, FUSED)(x, logits)

    def f():
        return float((c * library(SOLUTION, FUSED)(x, logits)[0]).sum())
    out = check_gradient(f, {"logits": logits}, {"logits": c * d}, prefix="∂/∂") + [
        compare("log Φ", log_phi, lib_phi, "minivae.likelihoods"),
        compare("∂/∂logits", d, lib_d["logits"], "minivae.likelihoods"),
        # the training step's log Φ is the one the bound is evaluated with
        compare("log Φ", log_phi, library(SOLUTION, "bernoulli_log_prob")(x, logits),
                "minivae's bernoulli_log_prob"),
        compare("log Φ", log_phi, _scipy_log_prob("bernoulli", x, heads), "SciPy")]

    # The training step's shapes: x (B, D), logits (K, B, D).
    big = 3 * rng.standard_normal((3, *SHAPE))
    log_phi, d = _fused(mod, x, big, "(x of shape (B, D), logits of shape (K, B, D))")
    lib_phi, lib_d = library(SOLUTION, FUSED)(x, big)
    out += [compare("log Φ (K, B, D)", log_phi, lib_phi, "minivae.likelihoods"),
            compare("∂/∂logits (K, B, D)", d, lib_d["logits"], "minivae.likelihoods")]

    # Extreme logits in float32: finite, and right to float32's precision.
    ell = np.array([e for e, _ in EXTREME], dtype=np.float32)
    xe = np.array([v for _, v in EXTREME], dtype=np.float32)
    columns = {i: f"ℓ = {e:g} with x = {v:g}, float32" for i, (e, v) in enumerate(EXTREME)}
    log_phi, d = _fused(mod, xe, ell, "(float32)")
    l64, x64 = ell.astype(float), xe.astype(float)
    ref = _scipy_log_prob("bernoulli", x64, {"logits": l64})
    return out + [
        compare("log Φ (float32)", log_phi, ref, "SciPy", tol=FLOAT32_TOL, columns=columns),
        compare("∂/∂logits (float32)", d, x64 - special.expit(l64), "SciPy",
                tol=FLOAT32_TOL, columns=columns)]


CHECKS = [(f"{kind}_{what}", (_log_prob_check if what == "log_prob" else _grads_check)(kind))
          for kind in KINDS for what in ("log_prob", "grads")]
CHECKS.insert(2, (FUSED, _fused_check))      # in the exercise file, after bernoulli_grads
