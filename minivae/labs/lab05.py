"""Lab 5: the reparametrisation trick and the VAE bound (the encoder's gradient, the KL).

Checks: values (reparametrize, log_q, kl_divergence) against minivae's implementation on random
inputs; gradients (reparametrize_backward, kl_grads, vae_encoder_grads) against five-point
finite differences of the reference functions, the last one through a small linear-Gaussian
decoder whose ∂ log p(x|z)/∂z is known in closed form.
"""
import numpy as np

from .. import gradcheck
from ..lecture.linear import kl_gaussians
from ..model import IWAE, VAE
from .common import LinearGaussianDecoder
from .core import as_array, call, check_gradient, compare, unpack

NUMBER = 5
FOLDER = "05_vae_bound"
TITLE = "The reparametrisation trick and the VAE bound: the encoder's gradient, the analytic KL"
MINUTES = "60-90 min"
TEACHES = ("why z = μ + σ ⊙ ε lets gradients reach the encoder, log q at a reparametrised "
           "sample, the Gaussian KL in closed form and its gradient, the VAE bound's encoder "
           "gradient")

K, B, D = 3, 4, 2


# ------------------------------------------------------------------ the reference (minivae)
def ref_reparametrize(mean, logvar, eps):
    """As in IWAE.forward: z = mean + exp(½ logvar) * eps."""
    return mean + np.exp(0.5 * logvar) * eps


def ref_reparametrize_backward(dz, eps, logvar):
    """As in IWAE._backward: ∂L/∂μ = Σ_k ∂L/∂z_k, ∂L/∂v = Σ_k ∂L/∂z_k ⊙ ε_k ⊙ ½ e^{v/2}."""
    return dz.sum(axis=0), (dz * eps).sum(axis=0) * 0.5 * np.exp(0.5 * logvar)


def ref_kl_divergence(mean, logvar):
    """As in IWAE._bound_and_backward_inputs: ½ Σ_i (μ_i² + e^{v_i} - 1 - v_i)."""
    return 0.5 * (mean * mean + np.exp(logvar) - 1 - logvar).sum(axis=-1)


def ref_kl_grads(mean, logvar):
    """∂KL/∂μ = μ, ∂KL/∂v = ½ (e^v - 1) (IWAE._bound_and_backward_inputs, with the sign of -KL)."""
    return mean, 0.5 * np.expm1(logvar)


def ref_vae_encoder_grads(dlogpx_dz, eps, mean, logvar):
    """(1/K) Σ_k through the reparametrisation, minus the KL's gradient (IWAE._backward with
    g = 1/K)."""
    K = eps.shape[0]
    dmean, dlogvar = ref_reparametrize_backward(dlogpx_dz / K, eps, logvar)
    kmean, klogvar = ref_kl_grads(mean, logvar)
    return dmean - kmean, dlogvar - klogvar


def solution():
    """minivae's formulas: log_q is IWAE.log_posterior_approx; the others are the lines of
    minivae/model.py quoted in the functions above."""
    return _namespace(reparametrize=ref_reparametrize,
                     reparametrize_backward=ref_reparametrize_backward,
                     log_q=IWAE.log_posterior_approx,
                     kl_divergence=ref_kl_divergence, kl_grads=ref_kl_grads,
                     vae_encoder_grads=ref_vae_encoder_grads)


# ------------------------------------------------------------------ checks
def _inputs(seed):
    rng = np.random.default_rng(seed)
    return (rng, rng.standard_normal((B, D)), 0.7 * rng.standard_normal((B, D)),
            rng.standard_normal((K, B, D)))


def _reparametrize(mod):
    _, mean, logvar, eps = _inputs(50)
    z = as_array(call(mod, "reparametrize", mean, logvar, eps), (K, B, D), "z")
    return [compare("z", z, ref_reparametrize(mean, logvar, eps), "z = μ + exp(½ v) ε")]


def _pair(value, what):
    a, b = unpack(value, 2, what)
    return a, b


def _reparametrize_backward(mod):
    rng, mean, logvar, eps = _inputs(51)
    dz = rng.standard_normal((K, B, D))
    dmean, dlogvar = _pair(call(mod, "reparametrize_backward", dz, eps, logvar),
                           "reparametrize_backward")

    def f():
        return float((dz * ref_reparametrize(mean, logvar, eps)).sum())
    return check_gradient(f, {"mean": mean, "logvar": logvar}, {"mean": dmean, "logvar": dlogvar})


def _log_q(mod):
    rng, mean, logvar, eps = _inputs(52)
    got = as_array(call(mod, "log_q", eps, logvar), (K, B), "log_q(...)")
    # The density of N(μ, diag e^v) at z, computed from z: what log_q must equal.
    z = ref_reparametrize(mean, logvar, eps)
    direct = (-0.5 * ((z - mean) ** 2 * np.exp(-logvar) + logvar + np.log(2 * np.pi))).sum(-1)
    return [compare("log q", got, IWAE.log_posterior_approx(eps, logvar),
                    "minivae.model.IWAE.log_posterior_approx"),
            compare("log q", got, direct, "log N(z; μ, diag e^v)")]


def _kl_divergence(mod):
    _, mean, logvar, _ = _inputs(53)
    got = as_array(call(mod, "kl_divergence", mean, logvar), (B,), "kl_divergence(...)")
    cov = np.stack([np.diag(np.exp(v)) for v in logvar])
    return [compare("KL", got, kl_gaussians(mean, cov, np.zeros((B, D)), np.eye(D)),
                    "minivae.lecture.linear.kl_gaussians")]


def _kl_grads(mod):
    _, mean, logvar, _ = _inputs(54)
    dmean, dlogvar = _pair(call(mod, "kl_grads", mean, logvar), "kl_grads")

    def f():
        return float(ref_kl_divergence(mean, logvar).sum())
    return check_gradient(f, {"mean": mean, "logvar": logvar}, {"mean": dmean, "logvar": dlogvar})


def _vae_encoder_grads(mod):
    rng, mean, logvar, eps = _inputs(55)
    decoder = LinearGaussianDecoder(rng, D, 5)
    x = rng.standard_normal((B, 5))
    z = ref_reparametrize(mean, logvar, eps)
    dmean, dlogvar = _pair(call(mod, "vae_encoder_grads", decoder.grad_z(x, z), eps, mean,
                                logvar), "vae_encoder_grads")

    def f():
        z = ref_reparametrize(mean, logvar, eps)
        return float((decoder.log_px(x, z).mean(axis=0) - ref_kl_divergence(mean, logvar)).sum())
    return check_gradient(f, {"mean": mean, "logvar": logvar}, {"mean": dmean, "logvar": dlogvar})


CHECKS = [
    ("reparametrize", _reparametrize),
    ("reparametrize_backward", _reparametrize_backward),
    ("log_q", _log_q),
    ("kl_divergence", _kl_divergence),
    ("kl_grads", _kl_grads),
    ("vae_encoder_grads", _vae_encoder_grads),
]


def _namespace(**functions):
    import types
    ns = types.SimpleNamespace(**functions)
    ns.__file__ = None
    return ns
