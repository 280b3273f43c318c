"""The lecture's bounds, step by step: free functions with explicit backward passes.

These are the functions labs 5, 6 and 8 ask a student to write, under the same names, with the
same signatures, shapes and scaling; :class:`minivae.model.IWAE` is composed of them. The model,
in the lecture's notation (shapes: K samples, B examples, D features, d latent dimensions):

- encoder   q_γ(z|x) = N(z; μ, diag e^v), with μ, v = (B, d) the encoder's outputs;
- samples   z_k = μ + e^{v/2} ⊙ ε_k,  ε_k ~ N(0, I)                       (reparametrize)
- prior     p(z) = N(z; 0, I)                                              (log_prior)
- decoder   η = f_θ(z) and p_θ(x|z) = Π_j Φ(x_j | η_j)                   (minivae.likelihoods)
- weights   log w_k = log p_θ(x^o|z_k) + log p(z_k) - log q_γ(z_k|x)     (masked_log_weights)
- IWAE      L_K(x) = log (1/K) Σ_k w_k,   ∂L_K/∂log w_k = w̃_k = w_k / Σ_l w_l
- VAE       L_1(x) = E_q[log p_θ(x|z)] - KL(q_γ(z|x) ‖ p(z))               (kl_divergence)

Conventions. Every gradient is taken with ε held fixed (the reparametrisation trick). The
functions the labs ask for return the gradient of the *sum* over the batch, Σ_b, so each has
the shape of its variable; the model, which maximises the batch *mean*, divides by B once, in
the weights g it passes down. The two composable backward steps the model uses,
:func:`head_grads` and :func:`log_weights_backward`, take those weights g = ∂L/∂log w (K, B)
explicitly, which is also where another gradient estimator of the encoder plugs in.

Everything works on the backend's arrays through ``xp`` (NumPy or CuPy), in the input's dtype.
"""
import math

from .backend import xp
from .likelihoods import LOG_2PI
from .ops import logsumexp_weights  # its one home is ops (with the GPU dispatch); re-exported


# ---------------------------------------------------------------- q_γ(z|x): the reparametrisation
def reparametrize(mean, logvar, eps):
    """z_k = μ + e^{v/2} ⊙ ε_k.

    mean, logvar: (B, d); eps: (K, B, d) -> z: (K, B, d).
    """
    return mean + xp.exp(0.5 * logvar) * eps


def reparametrize_backward(dz, eps, logvar):
    """The backward of :func:`reparametrize` at fixed ε: given dz = ∂L/∂z (K, B, d),

        ∂L/∂μ = Σ_k ∂L/∂z_k,     ∂L/∂v = Σ_k ∂L/∂z_k ⊙ ε_k ⊙ ½ e^{v/2},

    since ∂z_k/∂μ = I and ∂z_k/∂v = diag(½ e^{v/2} ⊙ ε_k). Returns (dmean, dlogvar), both (B, d).
    """
    return dz.sum(axis=0), (dz * eps).sum(axis=0) * (0.5 * xp.exp(0.5 * logvar))


# ---------------------------------------------------------------- the log-densities of log w
def log_prior(z):
    """log p(z) = Σ_i log N(z_i; 0, 1) = -½ ‖z‖² - (d/2) log 2π, over the last axis.

    z: (..., d) -> (...). Its gradient is ∂ log p(z)/∂z = -z.
    """
    return -0.5 * (z * z).sum(axis=-1) - 0.5 * z.shape[-1] * LOG_2PI


def log_q(eps, logvar):
    """log q_γ(z_k|x) at z_k = μ + e^{v/2} ⊙ ε_k, written with ε:

        log q = Σ_i (-½ ε_i² - ½ v_i - ½ log 2π),

    since (z - μ)² e^{-v} = ε². It does not depend on μ (a Gaussian's density at a point a
    fixed number of standard deviations from its mean does not move with the mean), and
    ∂ log q/∂v = -½ at fixed ε (the log-determinant of the map ε ↦ z).
    eps: (K, B, d), logvar: (B, d) -> (K, B).
    """
    return -0.5 * (eps * eps).sum(axis=-1) - 0.5 * logvar.sum(axis=-1) \
        - 0.5 * eps.shape[-1] * LOG_2PI


def masked_log_likelihood(log_phi, mask):
    """log p_θ(x^o|z_k) = Σ_j m_j log Φ(x_j | η_kj): the decoder factorises, so the missing
    features simply drop out (MIWAE).

    log_phi: (K, B, D), log Φ for every feature (the values at missing entries are ignored);
    mask: (B, D) bool, True = observed, or None when every feature is observed -> (K, B).
    """
    return log_phi.sum(axis=-1) if mask is None else (log_phi * mask).sum(axis=-1)


def masked_log_weights(log_phi, mask, z, eps, logvar):
    """log w_k = log p_θ(x^o|z_k) + log p(z_k) - log q_γ(z_k|x), shape (K, B).

    log_phi: (K, B, D), log Φ(x_j | η_kj) for every feature (the values at missing entries
    are ignored, :func:`masked_log_likelihood`); mask: (B, D) bool, True = observed, or None
    when every feature is observed; z, eps: (K, B, d); logvar: (B, d), the encoder's v.
    """
    return masked_log_likelihood(log_phi, mask) + log_prior(z) - log_q(eps, logvar)


# ---------------------------------------------------------------- the VAE bound, analytic KL
def kl_divergence(mean, logvar):
    """KL(N(μ, diag e^v) ‖ N(0, I)) = ½ Σ_i (μ_i² + e^{v_i} - 1 - v_i), per example.

    mean, logvar: (B, d) -> (B,).
    """
    return 0.5 * (mean * mean + xp.exp(logvar) - 1 - logvar).sum(axis=-1)


def kl_grads(mean, logvar):
    """The gradient of Σ_b KL_b:  ∂KL/∂μ = μ,  ∂KL/∂v = ½ (e^v - 1) (as expm1, exact near 0).

    mean, logvar: (B, d) -> (dmean, dlogvar), both (B, d).
    """
    return mean, 0.5 * xp.expm1(logvar)


def vae_encoder_grads(dlogpx_dz, eps, mean, logvar):
    """The gradient of Σ_b L_1(x_b), L_1 = (1/K) Σ_k log p_θ(x|z_k) - KL, with respect to μ, v:

        ∂L_1/∂μ = (1/K) Σ_k g_k - μ,
        ∂L_1/∂v = (1/K) Σ_k g_k ⊙ ε_k ⊙ ½ e^{v/2} - ½ (e^v - 1),

    with g_k = ∂ log p_θ(x|z_k)/∂z_k = dlogpx_dz (K, B, d), from the decoder's backward pass.
    eps: (K, B, d); mean, logvar: (B, d) -> (dmean, dlogvar), both (B, d).
    """
    K = eps.shape[0]
    dmean, dlogvar = reparametrize_backward(dlogpx_dz / K, eps, logvar)
    kl_dmean, kl_dlogvar = kl_grads(mean, logvar)
    return dmean - kl_dmean, dlogvar - kl_dlogvar


# ---------------------------------------------------------------- the IWAE bound
def iwae_bound(log_w):
    """L_K(x_b) = log (1/K) Σ_k w_kb = logsumexp_k(log w_kb) - log K: (K, B) -> (B,).

    An all -inf column gives -inf (no sample has any density), a NaN in a column gives NaN.
    """
    lse, _ = logsumexp_weights(log_w)
    return lse - math.log(log_w.shape[0])


def iwae_bound_grad(log_w):
    """The gradient of Σ_b L_K(x_b) with respect to log w: ∂L_K/∂log w_k = w_k / Σ_l w_l = w̃_k,

    the normalized importance weights (the softmax over k of each column). (K, B) -> (K, B).
    An all -inf column (L_K = -inf, flat in every direction) gets zeros, not NaN.
    """
    _, normalized_weights = logsumexp_weights(log_w)
    return normalized_weights


# ---------------------------------------------------------------- backward through log w
def head_grads(g, dlogphi, mask, out=None):
    """∂L/∂η for one decoder head, given g = ∂L/∂log w (K, B):

        ∂L/∂η_kbj = g_kb · m_bj · ∂ log Φ(x_bj | η_kbj)/∂η_kbj,

    since log w_kb depends on η_kbj only through m_bj log Φ(x_bj | η_kbj).
    g: (K, B); dlogphi: (K, B, D), ∂ log Φ/∂η for every entry (lab 4); mask: (B, D) bool or
    None (every feature observed) -> (K, B, D), written into ``out`` if given (it may be
    dlogphi itself: the training step scales its workspace array in place). (A categorical
    head has a trailing axis of C logits, (K, B, D, C); g and the mask are broadcast over it.)
    """
    extra = (1,) * (dlogphi.ndim - g.ndim - 1)
    d = xp.multiply(g.reshape(g.shape + (1,) + extra), dlogphi, out=out)
    if mask is not None:
        d *= mask.reshape(mask.shape + extra)
    return d


def log_weights_backward(g, dz, z, eps, logvar):
    """∂L/∂μ and ∂L/∂v at fixed ε, for L depending on log w (K, B) with weights g = ∂L/∂log w.

    log w_k = log p_θ(x|z_k) + log p(z_k) - log q_γ(z_k|x) depends on (μ, v) through z_k in
    its first two terms (∂ log p(z)/∂z = -z) and on v directly in the third (∂(-log q)/∂v = ½
    at fixed ε, :func:`log_q`):

        ∂L/∂z_k = dz_k - g_k z_k,    (μ, v) by :func:`reparametrize_backward`,    ∂L/∂v += ½ Σ_k g_k.

    dz: (K, B, d) = Σ_k g_k ∂ log p_θ(x|z_k)/∂z_k already weighted, as the decoder's backward
    pass returns it; g: (K, B); z, eps: (K, B, d); logvar: (B, d) -> (dmean, dlogvar), (B, d).
    """
    dmean, dlogvar = reparametrize_backward(dz - g[..., None] * z, eps, logvar)
    return dmean, dlogvar + 0.5 * g.sum(axis=0)[:, None]


def iwae_encoder_grads(log_w, dlogpx_dz, eps, mean, logvar):
    """The gradient of Σ_b L_K(x_b) with respect to the encoder's μ and v (ε held fixed):

        ∂L_K/∂μ = Σ_k w̃_k (g_k - z_k),
        ∂L_K/∂v = Σ_k w̃_k ((g_k - z_k) ⊙ ε_k ⊙ ½ e^{v/2} + ½),

    with w̃ = :func:`iwae_bound_grad` and g_k = ∂ log p_θ(x|z_k)/∂z_k = dlogpx_dz (K, B, d).
    log_w: (K, B); eps: (K, B, d); mean, logvar: (B, d) -> (dmean, dlogvar), both (B, d).
    """
    w = iwae_bound_grad(log_w)
    z = reparametrize(mean, logvar, eps)
    return log_weights_backward(w, w[..., None] * dlogpx_dz, z, eps, logvar)


# ---------------------------------------------------------------- encoder gradient estimators
#: The estimators of the encoder's gradient (the decoder's is the same for all three).
ESTIMATORS = ("iwae", "stl", "dreg")


def path_grads(g, dz, z, eps, logvar):
    """∂/∂z_k of Σ_k g_k log w_k through z_k only, the *path* term (q's parameters held):

        ∂ log w_k/∂z_k = ∂ log p_θ(x|z_k)/∂z_k - z_k + ε_k e^{-v/2},

    the last term from -log q_γ(z|x) = ½ (z - μ)² e^{-v} + ...: ∂(-log q)/∂z = (z - μ) e^{-v}
    = ε e^{-v/2}. dz: (K, B, d) = Σ_k g_k ∂ log p_θ(x|z_k)/∂z_k already weighted (the
    decoder's backward pass); g: (K, B); z, eps: (K, B, d); logvar: (B, d) -> (K, B, d).
    """
    return dz + g[..., None] * (eps * xp.exp(-0.5 * logvar) - z)


def stl_backward(g, dz, z, eps, logvar):
    """∂L/∂μ, ∂L/∂v by "sticking the landing" (Roeder, Wu & Duvenaud 2017).

    The total derivative of log w_k = log p_θ(x, z_k) - log q_γ(z_k|x) with respect to the
    encoder's γ = (μ, v) has a path term and a score term,

        d log w_k/dγ = ∂ log w_k/∂z_k · ∂z_k/∂γ  -  ∂ log q_γ(z|x)/∂γ |_{z = z_k},

    and STL keeps the path term only: Σ_k g_k ∂ log w_k/∂z_k ∂z_k/∂γ (:func:`path_grads`,
    then :func:`reparametrize_backward`). The score term has mean zero for K = 1
    (E_q[∂ log q/∂γ] = 0), so STL is unbiased there and slightly biased for K > 1. When q is
    the exact posterior, log w_k = log p(x) for every z: ∂ log w_k/∂z_k = 0 and STL returns
    exactly 0, the true gradient, for every ε (zero variance), where the IWAE estimator's score
    term is 0 only on average. Same arguments as :func:`log_weights_backward`.
    """
    return reparametrize_backward(path_grads(g, dz, z, eps, logvar), eps, logvar)


def dreg_backward(w, g, dz, z, eps, logvar):
    """∂L/∂μ, ∂L/∂v by the doubly reparametrised gradient (Tucker, Lawson, Gu & Maddison 2019).

    DReG: Σ_k w̃_k² ∂ log w_k/∂z_k ∂z_k/∂γ, an unbiased estimator of the IWAE encoder gradient
    whose signal-to-noise ratio grows with K. Derivation: the IWAE gradient is the path term
    Σ_k w̃_k ∂ log w_k/∂z_k ∂z_k/∂γ minus the score term Σ_k w̃_k ∂ log q_γ(z_k)/∂γ. For any f
    not depending on γ, E_q[f(z) ∂ log q_γ(z)/∂γ] = E_ε[∂f/∂z ∂z/∂γ] (both are ∂/∂γ E_q[f]:
    the first by the score identity, the second by reparametrising); applied to f = w̃_k as a
    function of z_k, with ∂w̃_k/∂z_k = (w̃_k - w̃_k²) ∂ log w_k/∂z_k, the score term's
    expectation is E[Σ_k (w̃_k - w̃_k²) ∂ log w_k/∂z_k ∂z_k/∂γ]. Path minus score leaves w̃_k².

    Computed without a second pass through the decoder: ∂L/∂z_k = w̃_k · [STL's ∂L/∂z_k],
    since STL's already carries one factor g_k (= w̃_k, or w̃_k/B for a batch mean).
    w: (K, B) the normalized weights w̃ (:func:`iwae_bound_grad`); the other arguments as
    :func:`log_weights_backward`. For K = 1, w̃ = 1 and DReG is STL.
    """
    return reparametrize_backward(w[..., None] * path_grads(g, dz, z, eps, logvar), eps, logvar)


def encoder_backward(estimator, w, g, dz, z, eps, logvar):
    """∂L/∂μ, ∂L/∂v by ``estimator`` ("iwae": :func:`log_weights_backward`, "stl":
    :func:`stl_backward`, "dreg": :func:`dreg_backward`); w = w̃ (K, B), g = ∂L/∂log w."""
    if estimator == "iwae":
        return log_weights_backward(g, dz, z, eps, logvar)
    if estimator == "stl":
        return stl_backward(g, dz, z, eps, logvar)
    if estimator == "dreg":
        return dreg_backward(w, g, dz, z, eps, logvar)
    raise ValueError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")


def dreg_encoder_grads(log_w, dlogpx_dz, eps, mean, logvar):
    """The DReG estimate of the gradient of Σ_b L_K(x_b) with respect to μ and v (lab 6):

        ∂/∂μ = Σ_k w̃_k² δ_k,     ∂/∂v = Σ_k w̃_k² δ_k ⊙ ε_k ⊙ ½ e^{v/2},
        δ_k = ∂ log w_k/∂z_k = g_k - z_k + ε_k e^{-v/2},

    with w̃ = :func:`iwae_bound_grad` and g_k = ∂ log p_θ(x|z_k)/∂z_k = dlogpx_dz (K, B, d);
    no ½ Σ_k w̃_k term on v (that is the score term's). Same arguments and shapes as
    :func:`iwae_encoder_grads`, whose expectation over ε it equals.
    """
    w = iwae_bound_grad(log_w)
    z = reparametrize(mean, logvar, eps)
    return dreg_backward(w, w, w[..., None] * dlogpx_dz, z, eps, logvar)


def miwae_head_grads(log_w, dlogphi, mask):
    """The gradient of Σ_b L_K(x_b^o) with respect to one decoder head η:

        ∂L_K/∂η_kbj = w̃_kb · m_bj · ∂ log Φ(x_bj | η_kbj)/∂η_kbj.

    log_w: (K, B); dlogphi: (K, B, D) for every entry; mask: (B, D) bool -> (K, B, D).
    """
    return head_grads(iwae_bound_grad(log_w), dlogphi, mask)
