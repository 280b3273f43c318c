"""Lab 5: the reparametrisation trick and the VAE bound (the encoder's gradient, the KL).

Checks: every function against minivae.bound's on random inputs; the gradients
(reparametrize_backward, kl_grads, vae_encoder_grads) also against five-point finite
differences of minivae's forward, the last one through a small linear-Gaussian decoder whose
∂ log p(x|z)/∂z is known in closed form; log_q also against SciPy's normal density at the
sample, and the KL against the full-covariance Gaussian KL of minivae.lecture.linear.
"""
import numpy as np
from scipy import stats

from ..lecture.linear import kl_gaussians
from .common import LinearGaussianDecoder
from .core import as_array, call, check_gradient, compare, library, unpack

NUMBER = 5
FOLDER = "05_vae_bound"
TITLE = "The reparametrisation trick and the VAE bound: the encoder's gradient, the analytic KL"
MINUTES = "60-90 min"
TEACHES = ("why z = μ + σ ⊙ ε lets gradients reach the encoder, log q at a reparametrised "
           "sample, the Gaussian KL in closed form and its gradient, the VAE bound's encoder "
           "gradient")
SOLUTION = [
    "minivae.bound.reparametrize",
    "minivae.bound.reparametrize_backward",
    "minivae.bound.log_q",
    "minivae.bound.kl_divergence",
    "minivae.bound.kl_grads",
    "minivae.bound.vae_encoder_grads",
]
K, B, D = 3, 4, 2


def lib(name):
    return library(SOLUTION, name)


def _inputs(seed):
    rng = np.random.default_rng(seed)
    return (rng, rng.standard_normal((B, D)), 0.7 * rng.standard_normal((B, D)),
            rng.standard_normal((K, B, D)))


def _pair(value, what, shape=(B, D)):
    a, b = unpack(value, 2, what)
    return as_array(a, shape, f"{what}'s first value"), as_array(b, shape, f"{what}'s second value")


def _reparametrize(mod):
    _, mean, logvar, eps = _inputs(50)
    z = as_array(call(mod, "reparametrize", mean, logvar, eps), (K, B, D), "z")
    return [compare("z", z, lib("reparametrize")(mean, logvar, eps), "minivae.bound"),
            compare("(z - μ) e^{-v/2}", (z - mean) * np.exp(-0.5 * logvar), eps,
                    "ε (z is ε standardized back)")]


def _grads_in_mean_logvar(mod, name, args, f, mean, logvar):
    """The student's ``dmean, dlogvar = name(*args)``, the gradient of ``f()`` with respect to
    ``mean`` and ``logvar`` (arrays ``f`` reads): against finite differences of ``f`` and
    against the library's ``name``."""
    dmean, dlogvar = _pair(call(mod, name, *args), name)
    lib_dmean, lib_dlogvar = lib(name)(*args)
    return check_gradient(f, {"mean": mean, "logvar": logvar},
                          {"mean": dmean, "logvar": dlogvar}) + \
        [compare("dmean", dmean, lib_dmean, "minivae.bound"),
         compare("dlogvar", dlogvar, lib_dlogvar, "minivae.bound")]


def _reparametrize_backward(mod):
    rng, mean, logvar, eps = _inputs(51)
    dz = rng.standard_normal((K, B, D))

    def f():
        return float((dz * lib("reparametrize")(mean, logvar, eps)).sum())
    return _grads_in_mean_logvar(mod, "reparametrize_backward", (dz, eps, logvar), f, mean,
                                 logvar)


def _log_q(mod):
    rng, mean, logvar, eps = _inputs(52)
    got = as_array(call(mod, "log_q", eps, logvar), (K, B), "log_q(...)")
    z = lib("reparametrize")(mean, logvar, eps)
    scipy_ref = stats.norm.logpdf(z, mean, np.exp(0.5 * logvar)).sum(axis=-1)
    return [compare("log q", got, lib("log_q")(eps, logvar), "minivae.bound"),
            compare("log q", got, scipy_ref, "log N(z; μ, diag e^v) (SciPy)")]


def _kl_divergence(mod):
    _, mean, logvar, _ = _inputs(53)
    got = as_array(call(mod, "kl_divergence", mean, logvar), (B,), "kl_divergence(...)")
    cov = np.stack([np.diag(np.exp(v)) for v in logvar])
    return [compare("KL", got, lib("kl_divergence")(mean, logvar), "minivae.bound"),
            compare("KL", got, kl_gaussians(mean, cov, np.zeros((B, D)), np.eye(D)),
                    "minivae.lecture.linear.kl_gaussians")]


def _kl_grads(mod):
    _, mean, logvar, _ = _inputs(54)

    def f():
        return float(lib("kl_divergence")(mean, logvar).sum())
    return _grads_in_mean_logvar(mod, "kl_grads", (mean, logvar), f, mean, logvar)


def _vae_encoder_grads(mod):
    rng, mean, logvar, eps = _inputs(55)
    decoder = LinearGaussianDecoder(rng, D, 5)
    x = rng.standard_normal((B, 5))
    dlogpx_dz = decoder.grad_z(x, lib("reparametrize")(mean, logvar, eps))

    def f():
        z = lib("reparametrize")(mean, logvar, eps)
        return float((decoder.log_px(x, z).mean(axis=0)
                      - lib("kl_divergence")(mean, logvar)).sum())
    return _grads_in_mean_logvar(mod, "vae_encoder_grads", (dlogpx_dz, eps, mean, logvar), f,
                                 mean, logvar)


CHECKS = [
    ("reparametrize", _reparametrize),
    ("reparametrize_backward", _reparametrize_backward),
    ("log_q", _log_q),
    ("kl_divergence", _kl_divergence),
    ("kl_grads", _kl_grads),
    ("vae_encoder_grads", _vae_encoder_grads),
]
