"""The forward process in closed form: q(x_t | x_0) and the posterior q(x_{t−1} | x_t, x_0).

Composing the Gaussian steps q(x_t|x_{t−1}) = N(√α_t x_{t−1}, β_t I) (a sum of independent
Gaussians) gives, for every t, the marginal

    q(x_t | x_0) = N(x_t; √ᾱ_t x_0, (1 − ᾱ_t) I),   i.e.   x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε,

so x_t is drawn in one step, whatever t (Ho et al. 2020, eq. 4). By Bayes' rule the step back,
given the data, is Gaussian too:

    q(x_{t−1} | x_t, x_0) = N(x_{t−1}; μ̃_t(x_t, x_0), β̃_t I),
    μ̃_t = √ᾱ_{t−1} β_t / (1 − ᾱ_t) · x_0 + √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · x_t,
    β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t).

docs/diffusion.md derives both; tests/test_diffusion.py checks them against simulation. The
learned reverse step p_θ(x_{t−1} | x_t) = N(μ_θ, σ_t² I) reuses the posterior with x_0
replaced by its prediction x̂_0 from the predicted noise ε̂ (:func:`predict_x0`).

Shapes: x0, xt, eps (N, D); t (N,) integers in 1..T; results (N, D) or (N, 1) columns.
"""
from ..backend import xp


def q_mean_var(x0, t, schedule):
    """Mean √ᾱ_t x_0 (N, D) and variance 1 − ᾱ_t (N, 1) of q(x_t | x_0)."""
    ab = schedule.at("alpha_bar", t, x0.dtype)
    return xp.sqrt(ab) * x0, 1 - ab


def q_sample(x0, t, eps, schedule):
    """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε: a draw from q(x_t | x_0) given the noise ε ~ N(0, I)."""
    ab = schedule.at("alpha_bar", t, x0.dtype)
    return xp.sqrt(ab) * x0 + xp.sqrt(1 - ab) * eps


def posterior_mean_var(x0, xt, t, schedule):
    """Mean μ̃_t(x_t, x_0) (N, D) and variance β̃_t (N, 1) of q(x_{t−1} | x_t, x_0)."""
    c0 = schedule.at("post_coef_x0", t, x0.dtype)
    ct = schedule.at("post_coef_xt", t, x0.dtype)
    return c0 * x0 + ct * xt, schedule.at("post_var", t, x0.dtype)


def predict_x0(xt, t, eps, schedule):
    """x̂_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t: q_sample solved for x_0 (exact for the true ε)."""
    ab = schedule.at("alpha_bar", t, xt.dtype)
    return (xt - xp.sqrt(1 - ab) * eps) / xp.sqrt(ab)


def denoised_x0(xt, t, eps_hat, schedule, clip=None):
    """x̂_0 of :func:`predict_x0`, clipped to [−clip, clip] unless ``clip`` is None.

    Clipping is a sampling heuristic (Ho et al.'s ``clip_denoised``): the data cannot leave
    that box, so neither should their guess. sampling.py explains what it changes.
    """
    x0_hat = predict_x0(xt, t, eps_hat, schedule)
    return x0_hat if clip is None else xp.clip(x0_hat, -clip, clip)


def reverse_mean_var(xt, t, eps_hat, schedule, clip=None):
    """Mean and variance σ_t² of the learned step p_θ(x_{t−1} | x_t) = N(μ_θ, σ_t² I).

    μ_θ = μ̃_t(x_t, x̂_0) with x̂_0 = :func:`predict_x0` (x_t, t, ε̂). Unclipped this equals
    Ho et al.'s (x_t − β_t/√(1 − ᾱ_t) ε̂)/√α_t: substituting x̂_0 into μ̃_t, the x_t terms add
    up to 1/√α_t and the ε̂ terms to β_t/(√α_t √(1 − ᾱ_t)). ``clip`` (e.g. 1.0 for images
    scaled to [−1, 1]) clips x̂_0 first (:func:`denoised_x0`), which only the sampler uses.
    """
    x0_hat = denoised_x0(xt, t, eps_hat, schedule, clip)
    mean, _ = posterior_mean_var(x0_hat, xt, t, schedule)
    return mean, schedule.at("model_var", t, xt.dtype)
