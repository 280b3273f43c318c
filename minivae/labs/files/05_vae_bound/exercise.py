"""Lab 5: the reparametrisation trick and the VAE bound. Fill in the NotImplementedError stubs.

The encoder gives q_γ(z|x) = N(z; μ, diag(e^v)) for each example: mean μ and log-variance v,
both (B, d). With ε_1..ε_K ~ N(0, I) (eps, shape (K, B, d)) the samples are reparametrised,

    z_k = μ + e^{v/2} ⊙ ε_k,

and the VAE bound with the analytic KL is, for each example b,

    L(x_b) = (1/K) Σ_k log p_θ(x_b | z_kb) - KL(q_γ(z|x_b) ‖ N(0, I)).

Shapes: K samples, B examples, d latent dimensions. "Gradient of Σ_b ..." means the gradient
of the sum over the batch, so every returned gradient has the shape of its variable.

Check your work with:   python -m minivae.labs check 5
"""
import numpy as np

LOG_2PI = np.log(2 * np.pi)


def reparametrize(mean, logvar, eps):
    """z = μ + e^{v/2} ⊙ ε: mean, logvar (B, d), eps (K, B, d) -> z (K, B, d)."""
    raise NotImplementedError("reparametrize: return z, shape (K, B, d)")


def reparametrize_backward(dz, eps, logvar):
    """The backward of reparametrize: given dz = ∂L/∂z (K, B, d), return (dmean, dlogvar),
    both (B, d): ∂L/∂μ and ∂L/∂v with ε held fixed."""
    raise NotImplementedError("reparametrize_backward: return dmean, dlogvar")


def log_q(eps, logvar):
    """log q_γ(z_k | x_b) evaluated at z_k = μ + e^{v/2} ⊙ ε_k, written with ε: shape (K, B).
    (It does not depend on μ: why?)"""
    raise NotImplementedError("log_q: return log q(z_k|x_b), shape (K, B)")


def kl_divergence(mean, logvar):
    """KL(N(μ, diag(e^v)) ‖ N(0, I)) for each example: mean, logvar (B, d) -> (B,)."""
    raise NotImplementedError("kl_divergence: return KL, shape (B,)")


def kl_grads(mean, logvar):
    """The gradient of Σ_b KL_b: return (dmean, dlogvar), both (B, d)."""
    raise NotImplementedError("kl_grads: return dmean, dlogvar")


def vae_encoder_grads(dlogpx_dz, eps, mean, logvar):
    """The gradient of Σ_b L(x_b) (the VAE bound, analytic KL) with respect to μ and v.

    dlogpx_dz: (K, B, d), the decoder's ∂ log p_θ(x_b | z_kb) / ∂z_kb at the samples z_kb
    (the decoder's backward pass gives it to you). eps: (K, B, d); mean, logvar: (B, d).
    Return (dmean, dlogvar), both (B, d). Reuse the functions above.
    """
    raise NotImplementedError("vae_encoder_grads: return dmean, dlogvar")
