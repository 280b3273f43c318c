"""Lab 4: observation models. Fill in the functions that raise NotImplementedError.

The decoder f_θ(z) outputs the parameters η of p_θ(x|z) = Π_j Φ(x_j | η_j). Each function works
elementwise: all arguments have the same shape (broadcasting allowed) and the result has that
shape too. Every parameter (a "head") is an unconstrained real number:

    Bernoulli   logits ℓ                  Φ(x|ℓ) = σ(ℓ)^x (1 - σ(ℓ))^(1-x),  x ∈ {0, 1}
    Gaussian    mean m, log-variance v    Φ(x|m, v) = N(x; m, e^v)
    Student's t loc μ, log-scale s,       Φ(x|μ, s, ρ) = t_ν(x; μ, e^s),  ν = 3 + softplus(ρ)
                raw degrees of freedom ρ

The *_grads functions return a dict {head name: ∂ log Φ / ∂ head}, each of the same shape;
bernoulli_log_prob_and_grads returns both, (log Φ, {"logits": ...}), as the IWAE's training
step calls it.

Check your work with:   python -m minivae.labs check 4
"""
import numpy as np
from scipy.special import digamma, gammaln  # noqa: F401  (you will need them for Student's t)

LOG_2PI = np.log(2 * np.pi)


def softplus(a):
    """log(1 + e^a) without overflow."""
    return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))


def sigmoid(a):
    """σ(a) = 1 / (1 + e^{-a}) without overflow."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


# ---------------------------------------------------------------- Bernoulli, from logits
def bernoulli_log_prob(x, logits):
    """log Φ(x | ℓ). Must stay finite for any logit (try ℓ = -800 with x = 1)."""
    raise NotImplementedError("bernoulli_log_prob: return log Φ(x|ℓ), elementwise")


def bernoulli_grads(x, logits):
    """Return {"logits": ∂ log Φ(x|ℓ) / ∂ℓ}."""
    raise NotImplementedError('bernoulli_grads: return {"logits": ...}')


def bernoulli_log_prob_and_grads(x, logits):
    """Both at once, as a training step needs them: (log Φ(x|ℓ), {"logits": ∂ log Φ/∂ℓ}).

    Compute them from one T = tanh(ℓ/2) (question D5): no exp, no sigmoid, no softplus. Must
    stay finite for any logit in float32 too (try ℓ = ±150: e^150 overflows float32). x may have
    fewer leading axes than logits (the IWAE calls it with x (B, D) and logits (K, B, D)).
    """
    raise NotImplementedError("bernoulli_log_prob_and_grads: return (log Φ(x|ℓ), "
                              '{"logits": ∂ log Φ/∂ℓ}) from one T = tanh(ℓ/2)')


# ---------------------------------------------------------------- Gaussian, mean and log-variance
def gaussian_log_prob(x, mean, logvar):
    """log N(x; m, e^v)."""
    raise NotImplementedError("gaussian_log_prob: return log N(x; m, e^v), elementwise")


def gaussian_grads(x, mean, logvar):
    """Return {"mean": ∂/∂m, "logvar": ∂/∂v} of log N(x; m, e^v)."""
    raise NotImplementedError('gaussian_grads: return {"mean": ..., "logvar": ...}')


# ---------------------------------------------------------------- Student's t
def student_t_log_prob(x, loc, log_scale, df):
    """log t_ν(x; μ, e^s) with ν = 3 + softplus(df) (df is the raw head ρ)."""
    raise NotImplementedError("student_t_log_prob: return log t_ν(x; μ, e^s), elementwise")


def student_t_grads(x, loc, log_scale, df):
    """Return {"loc": ∂/∂μ, "log_scale": ∂/∂s, "df": ∂/∂ρ} of log t_ν(x; μ, e^s)."""
    raise NotImplementedError('student_t_grads: return {"loc": ..., "log_scale": ..., '
                              '"df": ...}')
