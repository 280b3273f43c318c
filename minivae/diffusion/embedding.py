"""The sinusoidal time embedding: how the denoiser is told which step t it is undoing.

One network ε_θ(x_t, t) serves every t = 1..T. It reads t through the Transformer's position
features (Vaswani et al. 2017, as Ho et al. 2020 use them): with m = dim/2 frequencies
ω_k = P^{−k/m}, k = 0..m−1 (P = ``max_period``, 10,000), from one radian per step down to
1/P radian per step,

    φ(t) = [sin(ω_0 t), …, sin(ω_{m−1} t), cos(ω_0 t), …, cos(ω_{m−1} t)]      (dim,)

a smooth code in which nearby steps have nearby features, at every scale from one step to the
whole chain. t is treated as a real number: the backward gives ∂L/∂t, which a continuous-time
model needs; for DDPM's integer t it is the chain rule through sin and cos, checked like any
other layer (tests/test_diffusion_grads.py).
"""
import math

from ..backend import xp

MAX_PERIOD = 10000.0


def time_embedding_forward(t, dim, max_period=MAX_PERIOD):
    """φ(t) as above. t: (N,) float -> out: (N, dim) in t's dtype; cache = (ω, sin, cos).

    ``dim`` must be even (as many cosines as sines).
    """
    if dim < 2 or dim % 2:
        raise ValueError(f"the time embedding needs an even dimension >= 2, got {dim}")
    m = dim // 2
    omega = xp.exp(-math.log(max_period) / m * xp.arange(m, dtype=t.dtype))   # (m,)
    arg = t[:, None] * omega                                                   # (N, m)
    s, c = xp.sin(arg), xp.cos(arg)
    return xp.concatenate([s, c], axis=1), (omega, s, c)


def time_embedding_backward(dout, cache):
    """∂L/∂t from ∂L/∂φ: since d sin(ω t)/dt = ω cos(ω t) and d cos(ω t)/dt = −ω sin(ω t),

        ∂L/∂t_n = Σ_k ω_k (dout[n, k] cos(ω_k t_n) − dout[n, m + k] sin(ω_k t_n)).

    dout: (N, dim) -> dt: (N,).
    """
    omega, s, c = cache
    m = omega.shape[0]
    return (dout[:, :m] * c - dout[:, m:] * s) @ omega
