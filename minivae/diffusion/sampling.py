"""Drawing from a trained diffusion model: ancestral sampling, and DDIM's deterministic path.

Ancestral sampling runs the learned decoder chain from pure noise (Ho et al. 2020, Alg. 2):

    x_T ~ N(0, I);   x_{t−1} = μ_θ(x_t, t) + σ_t z,  z ~ N(0, I),  for t = T, …, 1,

with no noise added at the last step (the sample is the decoder's mean μ_θ(x_1, 1) = x̂_0).

DDIM (Song, Meng & Ermon 2021) keeps the same trained ε_θ but walks a deterministic path
(η = 0) on a subsequence τ_S > … > τ_1 of the steps: with x̂_0 = (x_τ − √(1 − ᾱ_τ) ε̂)/√ᾱ_τ,

    x_{τ'} = √ᾱ_{τ'} x̂_0 + √(1 − ᾱ_{τ'}) ε̂       (τ' the next step down; ᾱ_0 = 1),

i.e. it re-noises the current guess of x_0 to the lower level with the *same* noise direction
instead of fresh noise. The only randomness is x_T, so the map noise → sample is a function,
and S ≪ T steps (e.g. 50 of 1000) already give good samples.

Both samplers are written through the denoised guess x̂_0 (:func:`minivae.diffusion.forward.
predict_x0`), not through ε̂ directly. Without clipping this is the same map, only regrouped:
substituting x̂_0 = (x_t − √(1 − ᾱ_t) ε̂)/√ᾱ_t into the posterior mean μ̃_t(x_t, x̂_0) gives Ho
et al.'s ε form (x_t − β_t/√(1 − ᾱ_t) ε̂)/√α_t exactly (docs/diffusion.md; tests check it to
rounding in float64), and DDIM's step is already stated in x̂_0.

Clipping (``clip`` = c, e.g. 1.0 for 8-bit images scaled to [−1, 1]; ``None``: off) replaces
x̂_0 by its projection onto the box [−c, c]^D before it is used — Ho et al.'s reference code
(``clip_denoised=True``) and DDIM's do the same. The data never leave that box, so neither
should the guess of them; early on (large t) an unclipped x̂_0 can be far outside it, and the
chain has to undo that overshoot with its remaining steps. It is a sampling heuristic only:
the model p_θ, the training loss and the bound −L_vlb (vlb.py, unclipped) are unchanged, and
the sampler no longer draws exactly from p_θ(x_0) when clipping bites.

``predict_eps(x_t, t) -> ε̂`` is the denoiser; ``on_step(t, x0_hat)``, if given, is called at
every step with the (clipped) x̂_0 the step uses — to watch the guess sharpen.
"""
import numpy

from .. import threads
from ..backend import xp
from .forward import denoised_x0, posterior_mean_var

SAMPLERS = ("ancestral", "ddim")


@threads.limited                  # BLAS threads by minivae's policy (minivae.threads)
def ancestral_sample(predict_eps, schedule, shape, rng, dtype, clip=None, on_step=None):
    """Ho et al.'s Algorithm 2: an (N, D) array of samples x_0 (``shape`` = (N, D)).

    Each step is x_{t−1} = μ̃_t(x_t, x̂_0) + σ_t z with x̂_0 clipped to [−clip, clip] if
    ``clip`` is not None (:func:`minivae.diffusion.forward.denoised_x0`).
    """
    x = rng.standard_normal(shape, dtype=dtype)
    for step in range(schedule.T, 0, -1):
        t = xp.full(shape[0], step, dtype=xp.int64)
        x0_hat = denoised_x0(x, t, predict_eps(x, t), schedule, clip)
        if on_step is not None:
            on_step(step, x0_hat)
        mean, _ = posterior_mean_var(x0_hat, x, t, schedule)
        var = schedule.at("model_var", t, x.dtype)
        x = mean if step == 1 else mean + xp.sqrt(var) * rng.standard_normal(shape, dtype=dtype)
    return x


def ddim_steps(T, steps):
    """The subsequence τ of DDIM: ``steps`` times evenly spread over 1..T, descending."""
    if not 1 <= steps <= T:
        raise ValueError(f"DDIM steps must be between 1 and T = {T}, got {steps}")
    return numpy.unique(numpy.round(numpy.linspace(1, T, steps)).astype(int))[::-1]


@threads.limited
def ddim_sample(predict_eps, schedule, shape, rng, dtype, steps=50, clip=None, on_step=None):
    """DDIM with η = 0: deterministic given x_T ~ N(0, I) (drawn from rng); (N, D) samples.

    With ``clip``, x̂_0 is clipped and ε̂ replaced by the noise direction consistent with the
    clipped x̂_0, (x_τ − √ᾱ_τ x̂_0)/√(1 − ᾱ_τ), so the step still re-noises along x_τ's own
    direction from the (now in-range) guess.
    """
    x = rng.standard_normal(shape, dtype=dtype)
    taus = ddim_steps(schedule.T, steps)
    ab = schedule.alpha_bar
    for i, step in enumerate(taus):
        t = xp.full(shape[0], int(step), dtype=xp.int64)
        eps_hat = predict_eps(x, t)
        x0_hat = denoised_x0(x, t, eps_hat, schedule, clip)
        if on_step is not None:
            on_step(int(step), x0_hat)
        if clip is not None:      # the noise direction consistent with the clipped x̂_0
            eps_hat = (x - ab[step] ** 0.5 * x0_hat) / (1 - ab[step]) ** 0.5
        ab_next = ab[taus[i + 1]] if i + 1 < len(taus) else 1.0
        x = ab_next ** 0.5 * x0_hat + (1 - ab_next) ** 0.5 * eps_hat
    return x
