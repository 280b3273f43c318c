"""The lecture's one-dimensional latent variable example: d = 1, p = 2.

    z ~ N(0, 1),    x | z ~ N(μ(z), Σ(z)),
    μ(z) = (10 sin(z)³, 10 cos(z) - 10 cos(z)⁴),
    Σ(z) = Diag((sin(z) / (3z))², (sin(z) / z)²).

A fixed, non-linear "decoder" whose marginal p(x) = ∫ p(x|z) p(z) dz is a curved, heteroscedastic
cloud in the plane, and, with d = 1, one integral that quadrature computes to near machine
precision: the ground truth against which importance-sampling estimates (and the IWAE bound
L_K) are compared.

Two places need care:

- z = 0: sin(z)/z is a removable singularity (it tends to 1); written with ``np.sinc``, which
  is exact there.
- z = kπ, k ≠ 0: both standard deviations vanish, linearly in z - kπ, while μ'(kπ) = 0. For x
  near μ(kπ) ∈ {(0, 0), (0, -20)} the integrand becomes a tall, narrow spike against z = kπ (at
  x = μ(kπ) exactly it behaves like 1/(z - kπ)² and p(x) is infinite). The integration interval
  is therefore split at every kπ, with a mesh graded geometrically towards it, so that each
  spike sits at an end of small sub-intervals, where adaptive Gauss-Kronrod quadrature
  (QUADPACK's QAGS) refines it; the integrand is also shifted by its maximum in log space so
  that neither tall spikes nor far-away points overflow or underflow.

The accuracy reached (about 1e-11 nats, except within 1e-6 of the two singular points) is
checked against a stricter setting, a dense Riemann sum (:func:`log_marginal_riemann`) and
high-precision mpmath quadrature; see tests/test_toy.py and docs/lecture.md.
Plain NumPy/SciPy on the host: a small demonstration, not part of the GPU path.
"""
import math
import warnings

import numpy as np
import scipy.integrate
from scipy.special import logsumexp, softmax

from .. import backend, validate
from ..likelihoods import LOG_2PI
from ..model import Encoder
from ..optim import Adam
from ..train import train_epoch

_LOG3_2PI = math.log(3.0) - 1.5 * LOG_2PI       # constants of log p(x|z) + log p(z)
#: Default half-width of the integration range: the prior density there is φ(12) ≈ 2e-32.
Z_MAX = 12.0


# --- the model ----------------------------------------------------------------------------------

def sinc(z):
    """s(z) = sin(z) / z, equal to 1 at z = 0 (the removable singularity)."""
    return np.sinc(np.asarray(z, dtype=float) / np.pi)


def decoder_mean(z):
    """μ(z), shape z.shape + (2,)."""
    s, c = np.sin(z), np.cos(z)
    return np.stack([10 * s ** 3, 10 * c - 10 * c ** 4], axis=-1)


def decoder_std(z):
    """The standard deviations (|sin z / 3z|, |sin z / z|), shape z.shape + (2,)."""
    a = np.abs(sinc(z))
    return np.stack([a / 3, a], axis=-1)


def log_likelihood(x, z):
    """log p(x|z) = log N(x; μ(z), Σ(z)), broadcasting x (..., 2) against z (...).

    Written with s = sin(z)/z:  -log 2π + log 3 - 2 log|s| - [9 (x1 - μ1)² + (x2 - μ2)²] / (2 s²).
    At z = kπ (s = 0) the density is a point mass at μ(kπ): -inf unless x = μ(kπ) exactly.
    """
    x, z = np.asarray(x, dtype=float), np.asarray(z, dtype=float)
    s = sinc(z)
    r = x - decoder_mean(z)
    q = 9 * r[..., 0] ** 2 + r[..., 1] ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -LOG_2PI + np.log(3.0) - 2 * np.log(np.abs(s)) - q / (2 * s * s)
    return np.where(s == 0, np.where(q == 0, np.inf, -np.inf), out)


def log_prior(z):
    """log N(z; 0, 1)."""
    return -0.5 * np.asarray(z) ** 2 - 0.5 * LOG_2PI


def log_joint(x, z):
    """log p(x, z) = log p(x|z) + log p(z), the integrand of p(x) in log space."""
    return log_likelihood(x, z) + log_prior(z)


def grad_z_log_joint(x, z):
    """∂/∂z log p(x, z), broadcasting x (..., 2) against z (...): what an encoder's
    reparametrised gradient needs from this fixed decoder.

    With s = sin z / z, r = x - μ(z) and Q = 9 r1² + r2²:
        ∂/∂z log p(x|z) = -2 s'/s + Q s'/s³ + (9 r1 μ1' + r2 μ2') / s²,
        μ1' = 30 sin² z cos z,  μ2' = -10 sin z + 40 cos³ z sin z,  s' = (cos z - s) / z,
    and ∂/∂z log p(z) = -z. Near z = 0, s' = -z/3 + z³/30 - z⁵/840 (the series avoids the
    cancellation in cos z - s).
    """
    x, z = np.asarray(x, dtype=float), np.asarray(z, dtype=float)
    sn, cs = np.sin(z), np.cos(z)
    s = sinc(z)
    small = np.abs(z) < 1e-2
    zsafe = np.where(small, 1.0, z)
    ds = np.where(small, -z / 3 + z ** 3 / 30 - z ** 5 / 840, (cs - s) / zsafe)
    r = x - decoder_mean(z)
    dm1, dm2 = 30 * sn ** 2 * cs, -10 * sn + 40 * cs ** 3 * sn
    Q = 9 * r[..., 0] ** 2 + r[..., 1] ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        g = -2 * ds / s + Q * ds / s ** 3 + (9 * r[..., 0] * dm1 + r[..., 1] * dm2) / s ** 2
    return g - z


def sample(n, seed=None):
    """n draws (z, x) from the model: z (n,), x (n, 2)."""
    n = validate.positive_int("n", n)
    rng = validate.generator("seed", seed)
    z = rng.standard_normal(n)
    x = decoder_mean(z) + decoder_std(z) * rng.standard_normal((n, 2))
    return z, x


# --- exact log p(x) by quadrature ---------------------------------------------------------------

def _breakpoints(x, z_max, n_grid):
    """The shift m = max_z log p(x, z) (over a grid) and the points where to split [-z_max, z_max].

    Split at every kπ, at the local maxima of the integrand within 40 nats of the top and, around
    each kπ (k ≠ 0) where the integrand is not negligible, at kπ ± 10^-j (j = 1..13): a mesh
    graded towards the spike, so that every piece sees a smooth integrand on its own scale
    (without it QUADPACK's extrapolation can even return a negative integral there).
    """
    kpi = np.pi * np.arange(-np.floor(z_max / np.pi), np.floor(z_max / np.pi) + 1)
    kpi_nz = kpi[kpi != 0]
    # A uniform grid, plus points geometrically close to each kπ (k ≠ 0), where spikes live.
    offsets = np.logspace(-15, -1, 57)                          # 4 per decade
    near = kpi_nz[:, None] + np.concatenate([-offsets, offsets])
    grid = np.unique(np.concatenate([np.linspace(-z_max, z_max, n_grid), near.ravel()]))
    grid = grid[(grid >= -z_max) & (grid <= z_max)]
    h = log_joint(x, grid)
    m = float(np.max(h))
    inner = (h[1:-1] > h[:-2]) & (h[1:-1] >= h[2:]) & (h[1:-1] > m - 40)
    graded = [c + np.concatenate([-np.logspace(-13, -1, 13), np.logspace(-13, -1, 13)])
              for c, hn in zip(kpi_nz, log_joint(x, near).max(axis=1)) if hn > m - 40]
    pts = np.concatenate([[-z_max, z_max], kpi, grid[1:-1][inner]] + graded)
    return m, np.unique(pts[(pts >= -z_max) & (pts <= z_max)])


def _log_joint_scalar(x1, x2, z):
    """:func:`log_joint` for one z, with the math module: QUADPACK calls it point by point, and
    NumPy's per-call overhead would dominate."""
    sn = math.sin(z)
    s = sn / z if z != 0.0 else 1.0
    if s == 0.0:
        return -math.inf
    c = math.cos(z)
    r1, r2 = x1 - 10 * sn ** 3, x2 - (10 * c - 10 * c ** 4)
    return (_LOG3_2PI - 2 * math.log(abs(s)) - (9 * r1 * r1 + r2 * r2) / (2 * s * s)
            - 0.5 * z * z)


def _integrate(x, z_max, rtol, n_grid):
    """∫ exp(log p(x, z) - m) dz over [-z_max, z_max], split at the breakpoints; returns
    (m, integral, error estimate)."""
    m, pts = _breakpoints(x, z_max, n_grid)
    x1, x2 = float(x[0]), float(x[1])

    def integrand(z):
        return math.exp(min(_log_joint_scalar(x1, x2, z) - m, 700.0))

    total, err = 0.0, 0.0
    with warnings.catch_warnings():
        # QUADPACK warns when rtol is out of reach (roundoff near a spike); its error estimate,
        # summed here and returned, says what was reached instead.
        warnings.simplefilter("ignore", scipy.integrate.IntegrationWarning)
        for a, b in zip(pts[:-1], pts[1:]):
            v, e = scipy.integrate.quad(integrand, a, b, epsabs=0.0, epsrel=rtol, limit=500)
            total, err = total + v, err + e
    return m, total, err


def log_marginal(x, z_max=Z_MAX, rtol=1e-11, n_grid=4001, return_error=False):
    """The exact log p(x) = log ∫ p(x|z) p(z) dz for each row of x (n, 2), shape (n,).

    One-dimensional adaptive quadrature (``scipy.integrate.quad``) over [-z_max, z_max], split
    at every kπ and at the integrand's peaks, in log space (shifted by the integrand's max).
    The mass outside |z| > z_max is below the prior's, φ(12) ≈ 2e-32, relative to the peak.
    With ``return_error``, also returns QUADPACK's error estimate of log p(x) (relative error
    of the integral), shape (n,). At the two points x = μ(kπ), (0, 0) and (0, -20), the
    integrand behaves like 1/(z - kπ)² and p(x) = +inf (returned as such); near them p(x) is
    large but finite, and the quadrature still converges (checked in the tests).
    """
    x = np.atleast_2d(np.asarray(x, dtype=float))
    if x.ndim != 2 or x.shape[1] != 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"x must be finite with shape (n, 2), got {x.shape}")
    out, errs = np.full(len(x), np.inf), np.zeros(len(x))
    for i, xi in enumerate(x):
        if xi[0] == 0 and xi[1] in (0.0, -20.0) and z_max > np.pi * (2 if xi[1] == 0 else 1):
            continue                # x = μ(kπ), k ≠ 0: ∫ dz / (z - kπ)² diverges, p(x) = +inf
        m, v, e = _integrate(xi, z_max, rtol, n_grid)
        out[i], errs[i] = m + np.log(v), e / v
    return (out, errs) if return_error else out


def log_marginal_riemann(x, z_max=Z_MAX, n=2_000_001):
    """An independent check of :func:`log_marginal`: log of a dense Riemann sum of p(x, z) on a
    uniform grid of n points (spacing 1.2e-5 by default), in log space. Accurate when every peak
    of the integrand is much wider than the spacing; slow (O(n) per point)."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    z = np.linspace(-z_max, z_max, n)
    return np.array([logsumexp(log_joint(xi, z)) + np.log(z[1] - z[0]) for xi in x])


# --- importance sampling estimates --------------------------------------------------------------

def log_weights(x, z, log_q):
    """log w = log p(x|z) + log p(z) - log q(z): x (n, 2), z and log_q (K, n) -> (K, n)."""
    return log_joint(x[None], z) - log_q


def is_log_marginal(x, k, proposal="prior", mean=None, std=None, seed=None):
    """One draw of the IS estimate log p̂_K(x) = log (1/K) Σ_k w_k for each row of x: shape (n,).

    proposal : "prior" (q = p(z) = N(0, 1): then w = p(x|z)) or "gaussian" (q = N(mean, std²),
        per-point arrays (n,), e.g. the posterior's moments or an encoder's output).
    Its expectation over the draws is the IWAE bound L_K(x) ≤ log p(x) (Jensen), rising with K.
    """
    x = np.atleast_2d(validate.finite_real_array("x", x, "float64"))
    k = validate.positive_int("k", k)
    rng = validate.generator("seed", seed)
    eps = rng.standard_normal((k, len(x)))
    if proposal == "prior":
        z, log_q = eps, log_prior(eps)
    elif proposal == "gaussian":
        z = mean + std * eps
        log_q = log_prior(eps) - np.log(std)
    else:
        raise ValueError(f"unknown proposal {proposal!r}; choose 'prior' or 'gaussian'")
    return logsumexp(log_weights(x, z, log_q), axis=0) - np.log(k)


def iwae_curve(x, ks, n_rep, proposal="prior", mean=None, std=None, seed=0):
    """Monte Carlo estimates of L_K(x_i) = E[log p̂_K(x_i)] for each K in ks and each row of x:
    the mean of n_rep independent draws of :func:`is_log_marginal`, shape (len(ks), n)."""
    seeds = np.random.SeedSequence(seed).spawn(len(ks) * n_rep)
    return np.array([np.mean([is_log_marginal(x, k, proposal, mean, std, seed=seeds[i * n_rep + r])
                              for r in range(n_rep)], axis=0) for i, k in enumerate(ks)])


# --- an amortised proposal: a minivae encoder trained with the toy decoder fixed --------------
#
# An amortised proposal for the 1-D toy model: a minivae encoder trained with the decoder fixed.
#
# q_γ(z|x) = N(z; μ_γ(x), exp(v_γ(x))), an MLP built from :mod:`minivae.layers` (x in R², z in R),
# trained by maximising the IWAE bound L_K(x) = log (1/K) Σ_k p(x|z_k) p(z_k) / q_γ(z_k|x) of the
# *fixed* toy decoder of :mod:`minivae.lecture.toy` over fresh draws x ~ p(x). Only γ moves: this is the
# inference half of a VAE, and since log p(x) does not depend on γ, maximising L_K is the same as
# bringing q closer to the true posterior p(z|x) (for K = 1, minimising KL(q ‖ p(z|x))).
#
# The reparametrised gradient needs ∂ log p(x, z)/∂z of the decoder, written by hand in
# :func:`minivae.lecture.toy.grad_z_log_joint`; with z_k = μ + exp(v/2) ε_k and normalized weights w̃_k,
#
#     ∂L_K/∂μ = Σ_k w̃_k g_k,     ∂L_K/∂v = Σ_k w̃_k (g_k ε_k exp(v/2) / 2 + 1/2),
#
# g_k = ∂ log p(x, z_k)/∂z (the 1/2 is ∂(-log q)/∂v at fixed ε). The network and its backward
# are minivae's own encoder (:class:`minivae.model.Encoder`). The decoder is NumPy on the host, so the
# encoder's arrays cross to the host once per step: fine for a toy, and it keeps one code path.

class ToyEncoder:
    """q_γ(z|x) for the toy model: x (B, 2) -> mean, logvar (B,), an MLP with tanh layers.

    ``params`` uses minivae's names (``encoder.{i}.W/b``, ``encoder.mean.W/b``,
    ``encoder.logvar.W/b``), Glorot-uniform weights and zero biases, float64.
    """

    def __init__(self, hidden=(64, 64), seed=0):
        self.hidden = tuple(int(h) for h in hidden)
        rng = np.random.default_rng(seed)
        widths = (2,) + self.hidden
        shapes = [(f"encoder.{i}", widths[i], widths[i + 1]) for i in range(len(self.hidden))]
        shapes += [("encoder.mean", widths[-1], 1), ("encoder.logvar", widths[-1], 1)]
        self.params = {}
        for name, fan_in, fan_out in shapes:
            a = math.sqrt(6.0 / (fan_in + fan_out))
            self.params[f"{name}.W"] = backend.asarray(rng.uniform(-a, a, (fan_in, fan_out)))
            self.params[f"{name}.b"] = backend.asarray(np.zeros(fan_out))
        self.encoder = Encoder(self.params, len(self.hidden), "tanh")

    def _forward(self, x):
        return self.encoder.forward(backend.asarray(x))

    def __call__(self, x):
        """The proposal's mean and standard deviation for each row of x (n, 2): two (n,) arrays
        on the host (the ``mean``/``std`` of :func:`minivae.lecture.toy.is_log_marginal`)."""
        mean, logvar, _ = self._forward(np.atleast_2d(np.asarray(x, dtype=float)))
        mean, logvar = backend.to_numpy(mean)[:, 0], backend.to_numpy(logvar)[:, 0]
        return mean, np.exp(0.5 * logvar)

    def bound_and_grads(self, x, k, eps):
        """The mean over the batch of L_K(x) and its gradient with respect to ``params``.

        x (B, 2) and eps (K, B) on the host.
        """
        mean, logvar, cache = self._forward(x)
        m, v = backend.to_numpy(mean)[:, 0], backend.to_numpy(logvar)[:, 0]
        std = np.exp(0.5 * v)
        z = m + std * eps                                              # (K, B)
        log_q = -0.5 * eps ** 2 - 0.5 * v - 0.5 * LOG_2PI
        log_w = log_joint(x[None], z) - log_q
        bound = logsumexp(log_w, axis=0) - np.log(k)                   # (B,)
        wn = softmax(log_w, axis=0)                                    # w̃_k
        g = grad_z_log_joint(x[None], z)
        g = np.where(wn > 0, g, 0.0)                  # 0 * inf at z = kπ, weight 0 anyway
        B = x.shape[0]
        dmean = np.sum(wn * g, axis=0) / B
        dlogvar = np.sum(wn * (0.5 * g * eps * std + 0.5), axis=0) / B
        grads = {}
        self.encoder.backward(backend.asarray(dmean[:, None]), backend.asarray(dlogvar[:, None]),
                              cache, grads)
        return float(np.mean(bound)), grads


def train_encoder(k=8, steps=3000, batch=256, lr=3e-3, hidden=(64, 64), seed=0, log_every=0,
                  log=print, on_progress=None):
    """Fit a :class:`ToyEncoder` by Adam ascent on L_K over fresh batches x ~ p(x) (the toy
    model's own marginal: unlimited data). Returns (encoder, list of the batch bounds).
    ``on_progress(step)`` is called after every step (e.g. to move a progress bar)."""
    enc = ToyEncoder(hidden, seed)
    opt = Adam(enc.params, lr=lr)
    rng = np.random.default_rng(seed + 1)

    def objective(x):
        value, grads = enc.bound_and_grads(x, k, rng.standard_normal((k, len(x))))
        # A draw z_k right next to kπ can give an enormous ∂ log p/∂z; one such step should
        # not throw the encoder away, so skip non-finite gradients (they are rare).
        finite = all(bool(np.all(np.isfinite(backend.to_numpy(g)))) for g in grads.values())
        return value, grads if finite else None

    def report(step):
        if on_progress is not None:
            on_progress(step)
        if log_every and step % log_every == 0:
            log(f"step {step}: L_{k} = {np.mean(history[-log_every:]):.4f}")

    history = []
    train_epoch(objective, opt, (sample(batch, seed=rng)[1] for _ in range(steps)),
                on_step=report, history=history)
    return enc, history
