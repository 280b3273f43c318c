"""Numerically careful elementwise and reduction operations shared by the model code.

The most important one is :func:`logsumexp_weights`, the single place where the IWAE bound's
log-sum-exp and its normalized importance weights are computed. On the CuPy backend it runs the
fused CUDA kernel of ``kernels/logsumexp_weights.cu``; on NumPy it runs the reference below.
"""
import math

from .backend import xp

LOG_2PI = math.log(2.0 * math.pi)


def softplus(a):
    """softplus(a) = log(1 + e^a), computed as max(a, 0) + log1p(e^{-|a|}) (no overflow)."""
    return xp.maximum(a, 0) + xp.log1p(xp.exp(-xp.abs(a)))


def sigmoid(a):
    """σ(a) = 1 / (1 + e^{-a}) = d softplus(a) / da, as ½ tanh(a/2) + ½.

    The tanh form cannot overflow and is one vectorised call (ten times faster than a
    branch on the sign of a); its error is a rounding error in absolute terms, which is
    what the gradient x - σ(a) needs.
    """
    return 0.5 * xp.tanh(0.5 * a) + 0.5


def logsumexp_weights_reference(log_w):
    """Log-sum-exp over axis 0 and the normalized weights, in array operations.

    This is the NumPy reference that the CUDA kernel reproduces; see :func:`logsumexp_weights`
    for the contract.
    """
    log_w = xp.asarray(log_w)
    inf = xp.inf
    m = xp.max(log_w, axis=0)                      # NaN anywhere in a column -> m is NaN
    pos_inf = m == inf
    # A column holding +inf: the limit of the weights is uniform over its +inf entries. Rewrite
    # those columns as 0 (for +inf) and -inf (elsewhere) so that one code path handles them.
    log_w = xp.where(pos_inf, xp.where(log_w == inf, 0.0, -inf), log_w).astype(log_w.dtype)
    m = xp.where(pos_inf, 0.0, m).astype(log_w.dtype)
    # Shift by the column max (the max-shift trick): every exponent is <= 0, so nothing
    # overflows and the largest term is exactly 1. An all -inf column has no finite max; shift
    # it by 0 instead, which gives e = 0 and sum = 0 without producing -inf - (-inf) = NaN.
    shift = xp.where(m == -inf, 0.0, m).astype(log_w.dtype)
    e = xp.exp(log_w - shift)
    s = xp.sum(e, axis=0)
    empty = s == 0                                 # all -inf (a NaN sum is not empty)
    safe_s = xp.where(empty, 1.0, s).astype(log_w.dtype)
    lse = xp.where(empty, -inf, shift + xp.log(safe_s)).astype(log_w.dtype)
    lse = xp.where(pos_inf, inf, lse).astype(log_w.dtype)
    weights = e / safe_s
    return lse, weights


def logsumexp_weights(log_w):
    """Log-sum-exp over the K samples and the normalized importance weights.

    Parameters
    ----------
    log_w : array, shape (K, B) (or (K, ...)): the log importance weights
        log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) of each example (a column).

    Returns
    -------
    lse : array, shape (B,): log Σ_k exp(log w_k), computed with the max shift.
    normalized_weights : array, shape (K, B): w̃_k = exp(log w_k - lse) = softmax_k(log w),
        the weights of the IWAE gradient Σ_k w̃_k ∇ log w_k. Each column sums to 1.

    Special values, column by column (the CUDA kernel does exactly the same):

    - -inf entries get weight 0 (a sample the model gives zero density);
    - a column of all -inf: lse = -inf, weights all 0 (no NaN);
    - +inf entries: lse = +inf and the weights are uniform over the +inf entries (the limit as
      those entries grow together), 0 elsewhere;
    - a NaN anywhere in a column: lse and every weight of that column are NaN, so that
      training notices.
    """
    if _fused is not None:
        return _fused(log_w)
    return logsumexp_weights_reference(log_w)


# The one dispatch point to the GPU kernel (kernels/logsumexp_weights.cu): chosen once, from the
# backend. The import is inside the branch so that the NumPy path never loads minivae.cuda.
from . import backend as _backend  # noqa: E402 (next to its one use)

_fused = None
if _backend.name == "cupy":
    from .cuda import logsumexp_weights as _fused
