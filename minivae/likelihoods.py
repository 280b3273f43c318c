"""Observation models Φ(x | η): log-densities and their gradients with respect to η (lab 4).

The decoder f_θ(z) outputs the parameters η of a fully factorised observation model,
p_θ(x|z) = Π_j Φ(x_j | η_j), one set of *heads* per feature j. For each model this module
holds two functions, elementwise on arrays of one shape (broadcasting allowed):

    <model>_log_prob(x, *heads)  -> log Φ(x_j | η_j)
    <model>_grads(x, *heads)     -> {head: ∂ log Φ(x_j | η_j) / ∂ head_j}

exactly the functions lab 4 asks for, and a small class per model that bundles them with the
head names and the mean E[x | η] (the form :class:`minivae.model.IWAE` uses). Summing over the
(observed) features is the bound's job (:func:`minivae.bound.masked_log_weights`).

Parametrisations (every head is an unconstrained real number):

- ``bernoulli``: logits ℓ; Φ(x|ℓ) = σ(ℓ)^x (1 - σ(ℓ))^(1-x), x ∈ {0, 1}.
- ``gaussian``: mean m and log-variance v; Φ(x|m, v) = N(x; m, e^v).
- ``student_t``: location μ, log-scale s and raw degrees of freedom r, with scale e^s and
  degrees of freedom ν = 3 + softplus(r) (as in MIWAE: ν > 3 keeps the variance finite).
"""
import math

import numpy

from .backend import special, xp
from .workspace import buffer

#: log 2π, the Gaussian's normalising constant (the one definition in the package's model code).
LOG_2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------- two stable scalar maps
def softplus(a):
    """softplus(a) = log(1 + e^a), computed as max(a, 0) + log1p(e^{-|a|}) (no overflow).

    Its derivative is σ(a) (:func:`sigmoid`).
    """
    return xp.maximum(a, 0) + xp.log1p(xp.exp(-xp.abs(a)))


def sigmoid(a):
    """σ(a) = 1 / (1 + e^{-a}) = d softplus(a) / da, as ½ tanh(a/2) + ½.

    The tanh form cannot overflow and is one vectorised call (ten times faster than a
    branch on the sign of a); its error is a rounding error in absolute terms, which is
    what the gradient x - σ(a) needs.
    """
    return 0.5 * xp.tanh(0.5 * a) + 0.5


# ---------------------------------------------------------------- Bernoulli, from logits
def bernoulli_log_prob(x, logits):
    """log Φ(x|ℓ) = x ℓ - softplus(ℓ)   (= x log σ(ℓ) + (1 - x) log(1 - σ(ℓ))).

    Written with softplus instead of log σ(ℓ): log σ(ℓ) underflows to -inf for ℓ ≲ -100
    in float32, while softplus stays exact. x, logits: same shape (or broadcastable).
    Computed as the first half of :func:`bernoulli_log_prob_and_grads` (the formula there).
    """
    return _bernoulli_log_prob_and_tanh(x - 0.5, logits)[0]


def bernoulli_grads(x, logits):
    """{"logits": ∂ log Φ(x|ℓ)/∂ℓ = x - σ(ℓ)}, elementwise."""
    return {"logits": x - sigmoid(logits)}


# ---------------------------------------------------------------- Gaussian, mean and log-variance
def gaussian_log_prob(x, mean, logvar):
    """log N(x; m, e^v) = -½ (log 2π + v + (x - m)² e^{-v}), elementwise."""
    return -0.5 * (LOG_2PI + logvar + (x - mean) ** 2 * xp.exp(-logvar))


def gaussian_grads(x, mean, logvar):
    """{"mean": ∂/∂m = (x - m) e^{-v},  "logvar": ∂/∂v = ½ ((x - m)² e^{-v} - 1)} of log N."""
    r = (x - mean) * xp.exp(-logvar)
    return {"mean": r, "logvar": 0.5 * (r * (x - mean) - 1)}


# ---------------------------------------------------------------- Student's t
STUDENT_T_DF_MIN = 3.0


def student_t_df(df):
    """ν = 3 + softplus(r) for the raw head r."""
    return STUDENT_T_DF_MIN + softplus(df)


def student_t_log_prob(x, loc, log_scale, df):
    """log t_ν(x; μ, e^s) = lnΓ((ν+1)/2) - lnΓ(ν/2) - ½ log(νπ) - s - (ν+1)/2 · log(1 + r²/ν),

    with r = (x - μ) e^{-s} the standardised residual and ν = 3 + softplus(df), elementwise.
    """
    nu = student_t_df(df)
    r = (x - loc) * xp.exp(-log_scale)
    return (special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2)
            - 0.5 * xp.log(nu * math.pi) - log_scale
            - (nu + 1) / 2 * xp.log1p(r * r / nu))


def student_t_grads(x, loc, log_scale, df):
    """The gradient of log t_ν(x; μ, e^s) with r = (x - μ) e^{-s}, ψ the digamma function:

    ∂/∂μ = (ν+1) r e^{-s} / (ν + r²);
    ∂/∂s = (ν+1) r² / (ν + r²) - 1;
    ∂/∂ν = ½ ψ((ν+1)/2) - ½ ψ(ν/2) - 1/(2ν) - ½ log(1 + r²/ν) + (ν+1) r² / (2ν (ν + r²)),
    and ∂/∂df = ∂/∂ν · σ(df) (ν = 3 + softplus(df)).

    Returns {"loc": ..., "log_scale": ..., "df": ...}, elementwise.
    """
    nu = student_t_df(df)
    r = (x - loc) * xp.exp(-log_scale)
    r2 = r * r
    ratio = (nu + 1) / (nu + r2)
    d_nu = (0.5 * (special.digamma((nu + 1) / 2) - special.digamma(nu / 2)) - 0.5 / nu
            - 0.5 * xp.log1p(r2 / nu) + ratio * r2 / (2 * nu))
    return {"loc": ratio * r * xp.exp(-log_scale),
            "log_scale": ratio * r2 - 1,
            "df": d_nu * sigmoid(df)}


# ---------------------------------------------------------------- the models, as the IWAE uses them
def bernoulli_log_prob_and_grads(x, logits, work=None):
    """Both Bernoulli functions at once: (log Φ(x|ℓ), {"logits": x - σ(ℓ)}), elementwise.

    A training step needs both for each of its K·B·D logits, so they share one
    T = tanh(ℓ/2) = 2σ(ℓ) - 1 and, given a :class:`minivae.workspace.Workspace` ``work``,
    are written into its arrays instead of new ones:

        log Φ(x|ℓ) = x ℓ - softplus(ℓ) = (x - ½) ℓ - |ℓ|/2 + log1p(|T|) - log 2,
        x - σ(ℓ) = (x - ½) - ½ T,

    since softplus(ℓ) = max(ℓ, 0) + log1p(e^{-|ℓ|}), max(ℓ, 0) = (ℓ + |ℓ|)/2 and
    1 + e^{-|ℓ|} = 2 / (1 + |T|). Unlike e^{-|ℓ|}, |T| never becomes a subnormal number (which
    makes exp and log1p twenty times slower once |ℓ| > 87 in float32, where training drives the
    logits of pixels that are always black), and log1p(|T|) ∈ [0, log 2] is well conditioned.
    x: (B, D) or the logits' shape, broadcast against logits (K, B, D).
    """
    x_half = x - 0.5                                   # on the (B, D) data, not the K-fold grid
    log_phi, d = _bernoulli_log_prob_and_tanh(x_half, logits, work)
    d *= -0.5
    d += x_half                                        # x - σ(ℓ) = (x - ½) - ½ T
    return log_phi, {"logits": d}


def _bernoulli_log_prob_and_tanh(x_half, logits, work=None):
    """(log Φ(x|ℓ), T = tanh(ℓ/2)) from x - ½ and ℓ, as in :func:`bernoulli_log_prob_and_grads`:
    eleven passes over memory, six of them in place (an update in place moves half the memory
    of a copy), into ``work``'s arrays if given."""
    logits = xp.asarray(logits)                        # (a number, in the labs' checks)
    shape = numpy.broadcast_shapes(getattr(x_half, "shape", ()), logits.shape)   # host logic
    dt = numpy.promote_types(getattr(x_half, "dtype", logits.dtype), logits.dtype)
    log_phi = buffer(work, "bernoulli.log_phi", shape, dt)
    t = buffer(work, "bernoulli.tanh", shape, dt)
    u = buffer(work, "bernoulli.scratch", shape, dt)
    xp.multiply(logits, 0.5, out=t)                    # ℓ/2
    xp.abs(t, out=log_phi)
    xp.multiply(logits, x_half, out=u)
    xp.subtract(u, log_phi, out=log_phi)               # (x - ½) ℓ - |ℓ|/2, exact for binary x
    xp.tanh(t, out=t)                                  # T
    xp.abs(t, out=u)
    xp.log1p(u, out=u)
    u -= math.log(2.0)                                 # log1p(|T|) - log 2 = -log1p(e^{-|ℓ|})
    log_phi += u
    return log_phi, t


class ObservationModel:
    """What :class:`minivae.model.IWAE` uses of an observation model beyond the subclasses'
    ``name``, ``heads``, ``log_prob``, ``log_prob_grads`` and ``mean``."""

    @classmethod
    def log_prob_and_grads(cls, x, work=None, **heads):
        """(log Φ(x|η), {head: ∂ log Φ/∂head}) for a training step, which needs both: the two
        functions one after the other, unless the model has a fused form (Bernoulli)."""
        return cls.log_prob(x, **heads), cls.log_prob_grads(x, **heads)


class Bernoulli(ObservationModel):
    """Bernoulli observations parametrised by logits (binary data, e.g. binarised MNIST)."""
    name = "bernoulli"
    heads = ("logits",)
    log_prob = staticmethod(bernoulli_log_prob)
    log_prob_grads = staticmethod(bernoulli_grads)
    log_prob_and_grads = staticmethod(bernoulli_log_prob_and_grads)

    @staticmethod
    def mean(logits):
        """E[x | ℓ] = σ(ℓ)."""
        return sigmoid(logits)


class Gaussian(ObservationModel):
    """Diagonal, heteroscedastic Gaussian observations: a mean and a log-variance per feature."""
    name = "gaussian"
    heads = ("mean", "logvar")
    log_prob = staticmethod(gaussian_log_prob)
    log_prob_grads = staticmethod(gaussian_grads)

    @staticmethod
    def mean(mean, logvar):
        """E[x | m, v] = m."""
        return mean


class StudentT(ObservationModel):
    """Student's t observations: location, log-scale and degrees of freedom ν = 3 + softplus(r).

    Heavier tails than the Gaussian, which makes it the default for imputing real tabular data
    (MIWAE, Mattei & Frellsen 2019).
    """
    name = "student_t"
    heads = ("loc", "log_scale", "df")
    DF_MIN = STUDENT_T_DF_MIN
    log_prob = staticmethod(student_t_log_prob)
    log_prob_grads = staticmethod(student_t_grads)
    degrees_of_freedom = staticmethod(student_t_df)

    @staticmethod
    def mean(loc, log_scale, df):
        """E[x | μ, s, ν] = μ (finite since ν > 3)."""
        return loc


LIKELIHOODS = {m.name: m for m in (Bernoulli, Gaussian, StudentT)}
