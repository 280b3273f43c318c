"""Lab 8: missing data with MIWAE. Fill in the NotImplementedError stubs.

Each row x = (x^o, x^m) comes with a mask (B, D) of booleans, True = observed. The decoder
factorises, p_θ(x|z) = Π_j Φ(x_j | η_j(z)), so the likelihood of what was observed is
p_θ(x^o|z) = Π_{j observed} Φ(x_j | η_j(z)), and the MIWAE bound is the IWAE bound of p_θ(x^o),

    L_K(x^o) = log (1/K) Σ_k w_k,   log w_k = log p_θ(x^o|z_k) + log p(z_k) - log q_γ(z_k|x^o).

Shapes: K (or L) samples, B rows, D features, d latent dimensions.

Check your work with:   python -m minivae.labs check 8
"""
import numpy as np

LOG_2PI = np.log(2 * np.pi)


def masked_log_weights(log_phi, mask, z, eps, logvar):
    """log w_k for each sample and row, (K, B).

    log_phi: (K, B, D), log Φ(x_bj | η_kbj) for every feature, observed or not (the values at
    missing entries are meaningless); mask: (B, D) bool; z, eps: (K, B, d) with
    z = μ + e^{v/2} ⊙ ε; logvar: (B, d), the encoder's v. (lab 5 has log q.)
    """
    raise NotImplementedError("masked_log_weights: return log w, shape (K, B)")


def miwae_head_grads(log_w, dlogphi, mask):
    """The gradient of Σ_b L_K(x_b^o) with respect to one decoder head η, (K, B, D).

    log_w: (K, B), the log-weights; dlogphi: (K, B, D), ∂ log Φ(x_bj | η_kbj) / ∂η_kbj from the
    observation model (lab 4), computed for every entry; mask: (B, D) bool.
    """
    raise NotImplementedError("miwae_head_grads: return ∂(Σ_b L_K)/∂η, shape (K, B, D)")


def snis_impute(x, mask, log_w, means):
    """Single imputation by self-normalised importance sampling.

    x: (B, D) with anything (e.g. NaN) in the missing entries; log_w: (L, B) the log-weights of
    L samples z_l ~ q(z|x^o); means: (L, B, D), E[x | z_l] from the decoder.
    Return x̂ (B, D): the observed entries of x unchanged, the missing ones Σ_l w̃_l E[x_j|z_l].
    """
    raise NotImplementedError("snis_impute: return the completed x, shape (B, D)")


def sir_indices(log_w, u):
    """Multiple imputation by sampling importance resampling: for each row b and each of the
    M uniforms u[:, b] in [0, 1), the index l of the sample drawn with probability w̃_lb, by
    inverting the cumulative sum of the normalized weights: the smallest l with
    cumsum(w̃)[l] > u. log_w: (L, B), u: (M, B) -> (M, B) integers in 0..L-1."""
    raise NotImplementedError("sir_indices: return indices, shape (M, B)")
