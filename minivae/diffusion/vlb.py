"""The variational bound of a diffusion model, term by term, in nats and in bits per dimension.

A diffusion model is a latent variable model with T latent layers x_1..x_T, the fixed encoder
q(x_{1:T}|x_0) (forward.py) and the learned decoder p_θ(x_{0:T}) = p(x_T) Π_t p_θ(x_{t−1}|x_t),
p(x_T) = N(0, I). Its evidence lower bound, rewritten with the posteriors q(x_{t−1}|x_t, x_0)
(Sohl-Dickstein et al. 2015; Ho et al. 2020, eq. 5), is

    log p_θ(x_0) ≥ −L_vlb(x_0),
    L_vlb = L_T + Σ_{t=2}^{T} L_{t−1} + L_0,
    L_T     = KL(q(x_T | x_0) ‖ p(x_T))                        (no parameter: ≈ 0 by design)
    L_{t−1} = E_q KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t))   (two Gaussians: closed form)
    L_0     = −E_q log p_θ(x_0 | x_1)                          (the decoder at t = 0)

Every KL is between Gaussians and exact; the only Monte Carlo is the draw x_t ~ q(x_t|x_0) in
each term (one per t here). The decoder p_θ(x_0|x_1) is

- ``gaussian``: N(x_0; μ_θ(x_1, 1), σ_1² I), a density, for continuous data (the 2-D toys);
- ``discretized`` (Ho et al. 2020, eq. 13): for 8-bit data scaled to [−1, 1] (255 steps of
  2/255), the probability that N(μ_θ, σ_1²) falls in x_0's bin [x_0 − 1/255, x_0 + 1/255], the
  outer bins stretched to ±∞: a probability, so −L_vlb bounds the log-probability of the image.

Bits per dimension: for the discretized decoder, log₂ of a probability per pixel, so
bits/dim = L_vlb / (D ln 2); for a density the bound depends on the data's scale (see
docs/diffusion.md). Shapes: x0 (N, D); per-example results (N,); t (N,) ints in 1..T.
"""
import math

from .. import threads
from ..backend import special, xp
from ..likelihoods import LOG_2PI
from .forward import posterior_mean_var, q_mean_var, q_sample, reverse_mean_var

DECODERS = ("gaussian", "discretized")
#: Half the width of an 8-bit bin on [−1, 1]: 255 steps of 2/255.
HALF_BIN = 1.0 / 255.0


def gaussian_kl(mean_q, var_q, mean_p, var_p):
    """KL(N(mean_q, var_q I) ‖ N(mean_p, var_p I)) summed over D: (N, D) means, (N, 1) variances
    -> (N,). ½ Σ_d [log(var_p/var_q) + (var_q + (mean_q − mean_p)²)/var_p − 1]."""
    d = mean_q.shape[1]
    sq = ((mean_q - mean_p) ** 2).sum(axis=1)
    return 0.5 * (d * (xp.log(var_p / var_q) + var_q / var_p - 1)[:, 0] + sq / var_p[:, 0])


def gaussian_log_likelihood(x, mean, var):
    """log N(x; mean, var I) summed over D: x, mean (N, D), var (N, 1) -> (N,)."""
    d = x.shape[1]
    return -0.5 * (d * (LOG_2PI + xp.log(var))[:, 0] + ((x - mean) ** 2).sum(axis=1) / var[:, 0])


def _log_diff_ndtr(a, b):
    """log(Φ(b) − Φ(a)) for a < b, accurate in both tails.

    Reflected (Φ(b) − Φ(a) = Φ(−a) − Φ(−b)) so that both ends lie left of the mass, where
    log Φ is accurate; then log Φ(b) + log(1 − e^{log Φ(a) − log Φ(b)}) with log1mexp's two
    branches (Mächler 2012).
    """
    flip = (a + b) > 0
    a, b = xp.where(flip, -b, a), xp.where(flip, -a, b)
    la, lb = special.log_ndtr(a), special.log_ndtr(b)
    d = la - lb                                          # ≤ 0 (−inf when a = −∞)
    log1mexp = xp.where(d > -math.log(2), xp.log(-xp.expm1(d)), xp.log1p(-xp.exp(d)))
    return lb + log1mexp


def discretized_gaussian_log_likelihood(x, mean, var):
    """log P(x) of 8-bit data x ∈ {−1, −1 + 2/255, …, 1} under N(mean, var I) discretised
    into the bins [x − 1/255, x + 1/255] (the edge bins open to ±∞), summed over D -> (N,)."""
    sd = xp.sqrt(var)
    lo = xp.where(x < -1 + HALF_BIN, -xp.inf, (x - HALF_BIN - mean) / sd)
    hi = xp.where(x > 1 - HALF_BIN, xp.inf, (x + HALF_BIN - mean) / sd)
    return _log_diff_ndtr(lo, hi).sum(axis=1)


def prior_kl(x0, schedule):
    """L_T = KL(q(x_T | x_0) ‖ N(0, I)), (N,)."""
    t = xp.full(x0.shape[0], schedule.T, dtype=xp.int64)
    mean, var = q_mean_var(x0, t, schedule)
    return gaussian_kl(mean, var, xp.zeros_like(mean), xp.ones_like(var))


def vlb_term(predict_eps, x0, t, eps, schedule, decoder):
    """The bound's term at step t for each example, in nats (N,): L_{t−1} for t ≥ 2 and L_0 for
    t = 1, with x_t = q_sample(x_0, t, ε) as the one Monte Carlo draw.

    predict_eps(x_t, t) -> ε̂ (N, D) is the denoiser; ``decoder`` "gaussian" or "discretized".
    """
    xt = q_sample(x0, t, eps, schedule)
    mean_p, var_p = reverse_mean_var(xt, t, predict_eps(xt, t), schedule)
    mean_q, var_q = posterior_mean_var(x0, xt, t, schedule)
    first = t == 1
    var_q = xp.where(first[:, None], 1.0, var_q)        # β̃_1 = 0: that KL is not used
    kl = gaussian_kl(mean_q, var_q, mean_p, var_p)
    if decoder == "discretized":
        nll = -discretized_gaussian_log_likelihood(x0, mean_p, var_p)
    else:
        nll = -gaussian_log_likelihood(x0, mean_p, var_p)
    return xp.where(first, nll, kl)


@threads.limited                  # BLAS threads by minivae's policy (minivae.threads)
def vlb_terms(predict_eps, x0, schedule, decoder, rng, on_step=None):
    """All the terms of L_vlb for each example, in nats: (N, T + 1) with column 0 = L_T (the
    prior term) and column t = the term at step t (L_0 for t = 1, L_{t−1} for t ≥ 2).

    Costs T evaluations of the denoiser on the N examples; rng draws the ε of each step.
    ``on_step(t)`` is called after each step (e.g. to move a progress bar).
    """
    n, dtype = x0.shape[0], x0.dtype
    cols = [prior_kl(x0, schedule)]
    for step in range(1, schedule.T + 1):
        t = xp.full(n, step, dtype=xp.int64)
        eps = rng.standard_normal(x0.shape, dtype=dtype)
        cols.append(vlb_term(predict_eps, x0, t, eps, schedule, decoder))
        if on_step is not None:
            on_step(step)
    return xp.stack(cols, axis=1)


def bits_per_dim(nats, dim):
    """Nats per example -> bits per dimension: nats / (D ln 2)."""
    return nats / (dim * math.log(2.0))
