"""The log-sum-exp of the importance weights: the one place this math lives.

:func:`logsumexp_weights` computes, column by column, lse = log Σ_k w_k and the normalized
importance weights w̃_k = w_k / Σ_l w_l from log-weights log w (K, B). On the CuPy backend it
runs the fused CUDA kernel of ``kernels/logsumexp_weights.cu``; on NumPy, and as the reference
the kernel is tested against, :func:`logsumexp_weights_reference`. The kernel's one-pass rule,
the running pair (max, sum) of the "online log-sum-exp", is :func:`lse_push` and
:func:`lse_merge`, written in Python on floats (lab 6, part 2).

:mod:`minivae.bound` builds the IWAE bound L_K and its gradient on these.
"""
import math

import numpy

from .backend import xp

NEG_INF = -math.inf


def _real_log_weights(log_w):
    """log_w as a float32/float64 array: integers promoted to float64 (as NumPy does), float16
    to float32 (the kernel's smallest type); anything else (bool, complex, object, strings)
    refused with a one-line ValueError.

    Only the dtype is read, never the values: no device sync on the GPU path.
    """
    if not hasattr(log_w, "dtype"):
        log_w = numpy.asarray(log_w)          # a list: read its dtype on the host first
    dtype = numpy.dtype(log_w.dtype)
    if dtype.kind not in "iuf":               # checked before CuPy sees an object/str array
        raise ValueError(f"logsumexp_weights needs real log-weights (float or integer), "
                         f"got dtype {dtype}")
    log_w = xp.asarray(log_w)
    if dtype.kind in "iu":
        return log_w.astype(numpy.float64)
    return log_w if dtype.itemsize >= 4 else log_w.astype(numpy.float32)


def logsumexp_weights_reference(log_w):
    """Log-sum-exp over axis 0 and the normalized weights, in array operations.

    This is the reference that the CUDA kernel reproduces; see :func:`logsumexp_weights`
    for the contract.
    """
    log_w = _real_log_weights(log_w)
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
        Float32 or float64 (integers are promoted to float64, float16 to float32; other
        dtypes are refused with a ValueError).

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
    log_w = _real_log_weights(log_w)
    if _fused is not None:
        return _fused(log_w)
    return logsumexp_weights_reference(log_w)


# ---------------------------------------------------------------- the kernel's online rule
# A running pair (m, s) summarizes the entries seen so far: m = their max, s = Σ exp(x - m).
# The empty pair is (-inf, 0.0); a column's lse is m + log(s). These are push() and merge() of
# kernels/logsumexp_weights.cu, on Python floats: the reference for lab 6's part 2.

def _scale(a, m):
    """exp(a - m) for a <= m, defined as 1 when a == m so that inf - inf never happens."""
    return 1.0 if a == m else math.exp(a - m)


def lse_push(m, s, x):
    """Fold one entry x into the pair (m, s); return the new (m, s).

    x > m (a new max): (x, s·e^{m-x} + 1), the old terms rescaled to the new max; otherwise
    (m, s + e^{x-m}). Every exponent is <= 0. A -inf entry changes nothing (even when m is still
    -inf: no -inf - (-inf)); a NaN makes s NaN, which then poisons the column's result.
    """
    if x > m:
        return x, s * _scale(m, x) + 1.0
    if x != NEG_INF:
        return m, s + _scale(x, m)
    return m, s


def lse_merge(m1, s1, m2, s2):
    """Merge two pairs into the pair of all their entries: m = max(m1, m2),
    s = s1·e^{m1-m} + s2·e^{m2-m}. Associative and commutative; either pair may be empty."""
    m = m1 if m1 > m2 else m2
    return m, s1 * _scale(m1, m) + s2 * _scale(m2, m)


# The one dispatch point to the GPU kernel (kernels/logsumexp_weights.cu): chosen once, from the
# backend. The import is inside the branch so that the NumPy path never loads minivae.cuda.
from . import backend as _backend  # noqa: E402 (next to its one use)

_fused = None
if _backend.name == "cupy":
    from .cuda import logsumexp_weights as _fused
