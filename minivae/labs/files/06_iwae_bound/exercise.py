"""Lab 6: the IWAE bound and its gradient. Fill in the NotImplementedError stubs.

For each example b, K importance samples z_kb = μ_b + e^{v_b/2} ⊙ ε_kb give the log-weights

    log w_kb = log p_θ(x_b | z_kb) + log p(z_kb) - log q_γ(z_kb | x_b),     log_w: (K, B),

and the IWAE bound is L_K(x_b) = log (1/K) Σ_k w_kb. Shapes: K samples, B examples, d latent
dimensions. "Gradient of Σ_b ..." means of the sum over the batch.

Part 2 (lse_push, lse_merge) follows the fused CUDA kernel kernels/logsumexp_weights.cu: read
its comments first. Those two work on plain Python floats (math.exp, math.log, math.inf).

Check your work with:   python -m minivae.labs check 6
"""
import math  # noqa: F401  (for part 2)

import numpy as np

LOG_2PI = np.log(2 * np.pi)


# ---------------------------------------------------------------- part 1: the bound
def logsumexp_weights(log_w):
    """Column by column (over axis 0): lse_b = log Σ_k exp(log_w[k, b]) and the normalized
    weights w̃_kb = exp(log_w[k, b] - lse_b).

    log_w: (K, B) -> (lse (B,), weights (K, B)). Must not overflow or underflow: log-weights of
    -1000 or +1000 nats are ordinary. A log-weight of -inf gets weight 0.
    """
    raise NotImplementedError("logsumexp_weights: return lse, weights")


def iwae_bound(log_w):
    """L_K(x_b) = log (1/K) Σ_k w_kb for each example: (K, B) -> (B,)."""
    raise NotImplementedError("iwae_bound: return L_K, shape (B,)")


def iwae_bound_grad(log_w):
    """The gradient of Σ_b L_K(x_b) with respect to log_w: (K, B) -> (K, B)."""
    raise NotImplementedError("iwae_bound_grad: return ∂(Σ_b L_K)/∂ log_w, shape (K, B)")


def iwae_encoder_grads(log_w, dlogpx_dz, eps, mean, logvar):
    """The gradient of Σ_b L_K(x_b) with respect to the encoder's μ and v (ε held fixed).

    log_w: (K, B) at the samples z = μ + e^{v/2} ⊙ ε; dlogpx_dz: (K, B, d), the decoder's
    ∂ log p_θ(x_b | z_kb) / ∂z_kb; eps: (K, B, d); mean, logvar: (B, d).
    Return (dmean, dlogvar), both (B, d). Remember that log p(z) and log q(z|x) depend on μ and v
    too (at fixed ε: lab 5).
    """
    raise NotImplementedError("iwae_encoder_grads: return dmean, dlogvar")


def dreg_encoder_grads(log_w, dlogpx_dz, eps, mean, logvar):
    """The doubly reparametrised (DReG) estimate of the same gradient (D8, D9):

        Σ_k w̃_k² ∂ log w_k/∂z_k ∂z_k/∂(μ, v),

    where ∂ log w_k/∂z_k counts log p(x|z), log p(z) *and* -log q(z|x) through z (with q's
    parameters held). Same arguments and shapes as iwae_encoder_grads; return (dmean, dlogvar).
    """
    raise NotImplementedError("dreg_encoder_grads: return dmean, dlogvar")


# ---------------------------------------------------------------- part 2: the kernel's pairs
# A running pair (m, s) summarizes the entries seen so far: m = their max, s = Σ exp(x - m).
# The empty pair is (-inf, 0.0); a column's lse is m + log(s).

def lse_push(m, s, x):
    """Fold one entry x into the pair (m, s); return the new (m, s). Keep every exponent <= 0.
    A -inf entry changes nothing, even when m is still -inf (beware -inf - (-inf))."""
    raise NotImplementedError("lse_push: return the new (m, s)")


def lse_merge(m1, s1, m2, s2):
    """Merge two pairs into the pair of all their entries; return (m, s). Either may be empty."""
    raise NotImplementedError("lse_merge: return the merged (m, s)")
