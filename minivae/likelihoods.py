"""Observation models Φ(x | η): log-densities and their gradients with respect to η.

The decoder f_θ(z) outputs the parameters η of a fully factorised observation model, one set
of *heads* per feature j. Each model here provides

    log_prob(x, heads)           -> log Φ(x_j | η_j), elementwise, shape (..., D)
    log_prob_grads(x, heads)     -> {head: ∂ log Φ(x_j | η_j) / ∂ head_j}, elementwise

Summing over the features (the observed ones only, under a missing-data mask) is the model's
job, so that the mask lives in one place (:mod:`minivae.model`).

Parametrisations (every head is an unconstrained real number):

- ``bernoulli``: logits ℓ; Φ(x|ℓ) = σ(ℓ)^x (1 - σ(ℓ))^(1-x), x ∈ {0, 1}.
- ``gaussian``: mean m and log-variance v; Φ(x|m, v) = N(x; m, e^v).
- ``student_t``: location μ, log-scale s and raw degrees of freedom r, with scale e^s and
  degrees of freedom ν = 3 + softplus(r) (as in MIWAE: ν > 3 keeps the variance finite).
"""
import math

from .backend import special, xp
from .ops import LOG_2PI, softplus, sigmoid


class Bernoulli:
    """Bernoulli observations parametrised by logits (binary data, e.g. binarised MNIST)."""
    name = "bernoulli"
    heads = ("logits",)

    @staticmethod
    def log_prob(x, logits):
        """log Φ(x|ℓ) = x ℓ - softplus(ℓ).

        Written with softplus instead of log σ(ℓ): log σ(ℓ) underflows to -inf for ℓ ≲ -100
        in float32, while softplus stays exact.
        """
        return x * logits - softplus(logits)

    @staticmethod
    def log_prob_grads(x, logits):
        """∂ log Φ / ∂ℓ = x - σ(ℓ)."""
        return {"logits": x - sigmoid(logits)}

    @staticmethod
    def mean(logits):
        """E[x | ℓ] = σ(ℓ)."""
        return sigmoid(logits)


class Gaussian:
    """Diagonal, heteroscedastic Gaussian observations: a mean and a log-variance per feature."""
    name = "gaussian"
    heads = ("mean", "logvar")

    @staticmethod
    def log_prob(x, mean, logvar):
        """log N(x; m, e^v) = -½ (log 2π + v + (x - m)² e^{-v})."""
        return -0.5 * (LOG_2PI + logvar + (x - mean) ** 2 * xp.exp(-logvar))

    @staticmethod
    def log_prob_grads(x, mean, logvar):
        """∂/∂m = (x - m) e^{-v};  ∂/∂v = ½ ((x - m)² e^{-v} - 1)."""
        r = (x - mean) * xp.exp(-logvar)
        return {"mean": r, "logvar": 0.5 * (r * (x - mean) - 1)}

    @staticmethod
    def mean(mean, logvar):
        """E[x | m, v] = m."""
        return mean


class StudentT:
    """Student's t observations: location, log-scale and degrees of freedom ν = 3 + softplus(r).

    Heavier tails than the Gaussian, which makes it the default for imputing real tabular data
    (MIWAE, Mattei & Frellsen 2019).
    """
    name = "student_t"
    heads = ("loc", "log_scale", "df")
    DF_MIN = 3.0

    @classmethod
    def degrees_of_freedom(cls, df):
        """ν = 3 + softplus(r) for the raw head r."""
        return cls.DF_MIN + softplus(df)

    @classmethod
    def log_prob(cls, x, loc, log_scale, df):
        """log t_ν(x; μ, e^s) = lnΓ((ν+1)/2) - lnΓ(ν/2) - ½ log(νπ) - s - (ν+1)/2 · log(1 + u),
        with u = ((x - μ) e^{-s})² / ν."""
        nu = cls.degrees_of_freedom(df)
        r = (x - loc) * xp.exp(-log_scale)
        return (special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2)
                - 0.5 * xp.log(nu * math.pi) - log_scale
                - (nu + 1) / 2 * xp.log1p(r * r / nu))

    @classmethod
    def log_prob_grads(cls, x, loc, log_scale, df):
        """With r = (x - μ) e^{-s}:

        ∂/∂μ = (ν+1) r e^{-s} / (ν + r²);
        ∂/∂s = (ν+1) r² / (ν + r²) - 1;
        ∂/∂ν = ½ ψ((ν+1)/2) - ½ ψ(ν/2) - 1/(2ν) - ½ log(1 + r²/ν) + (ν+1) r² / (2ν (ν + r²)),
        and ∂/∂(raw df) = ∂/∂ν · σ(raw df), ψ being the digamma function.
        """
        nu = cls.degrees_of_freedom(df)
        r = (x - loc) * xp.exp(-log_scale)
        r2 = r * r
        ratio = (nu + 1) / (nu + r2)
        d_nu = (0.5 * (special.digamma((nu + 1) / 2) - special.digamma(nu / 2)) - 0.5 / nu
                - 0.5 * xp.log1p(r2 / nu) + ratio * r2 / (2 * nu))
        return {"loc": ratio * r * xp.exp(-log_scale),
                "log_scale": ratio * r2 - 1,
                "df": d_nu * sigmoid(df)}

    @staticmethod
    def mean(loc, log_scale, df):
        """E[x | μ, s, ν] = μ (finite since ν > 3)."""
        return loc


LIKELIHOODS = {m.name: m for m in (Bernoulli, Gaussian, StudentT)}
