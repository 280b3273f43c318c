"""The noise schedule β_1..β_T of the forward process, and every constant derived from it.

The forward ("encoder") process of a diffusion model adds Gaussian noise in T small steps,

    q(x_t | x_{t−1}) = N(x_t; √(1 − β_t) x_{t−1}, β_t I),      t = 1..T,

and everything the model computes is a function of the β_t through

    α_t = 1 − β_t,    ᾱ_t = Π_{s ≤ t} α_s   (ᾱ_0 = 1).

Two schedules:

- ``linear`` (Ho, Jain & Abbeel 2020): β_t from β_1 = 1e-4 to β_T = 0.02 in equal steps, for
  T = 1000. For another T both ends are multiplied by 1000/T (Nichol & Dhariwal 2021), so that
  the total noise Σ β_t, and hence ᾱ_T ≈ e^{−10}, stays the same whatever T.
- ``cosine`` (Nichol & Dhariwal 2021): ᾱ_t = f(t)/f(0), f(t) = cos²(π/2 · (t/T + s)/(1 + s)),
  s = 0.008, and β_t = 1 − ᾱ_t/ᾱ_{t−1} clipped at 0.999 (f(T) = 0 would make β_T = 1). ᾱ_t
  falls more slowly at both ends: fewer steps are spent on pure noise.

The arrays are indexed by t itself (index 0 is the data, t = 0), held on the host in float64
and gathered per example with :meth:`Schedule.at`, which returns a (N, 1) column of the
backend in the model's dtype, ready to broadcast against (N, D) arrays.
"""
import numpy

from .. import backend, validate

SCHEDULES = ("linear", "cosine")
VARIANCES = ("beta", "posterior")


def linear_betas(T, beta_1=1e-4, beta_T=0.02):
    """β_t = β_1 + (t − 1)/(T − 1) · (β_T − β_1), both ends scaled by 1000/T; shape (T,)."""
    scale = 1000.0 / T
    return numpy.linspace(scale * beta_1, min(scale * beta_T, 0.999), T)


def cosine_betas(T, s=0.008, max_beta=0.999):
    """β_t = min(1 − ᾱ_t/ᾱ_{t−1}, max_beta) with ᾱ_t = f(t)/f(0),
    f(t) = cos²(π/2 · (t/T + s)/(1 + s)); shape (T,)."""
    f = numpy.cos((numpy.arange(T + 1) / T + s) / (1 + s) * numpy.pi / 2) ** 2
    return numpy.minimum(1 - f[1:] / f[:-1], max_beta)


class Schedule:
    """The constants of a T-step forward process, as float64 arrays indexed by t = 0..T.

    beta, alpha, alpha_bar     β_t, α_t, ᾱ_t (with β_0 = 0, ᾱ_0 = 1);
    post_var                   β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t), the variance of the
                               posterior q(x_{t−1} | x_t, x_0) (β̃_1 = 0: x_0 is known then);
    post_coef_x0, post_coef_xt its mean's coefficients, μ̃_t = c0_t x_0 + ct_t x_t with
                               c0_t = √ᾱ_{t−1} β_t / (1 − ᾱ_t), ct_t = √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)
                               (derived in docs/diffusion.md);
    model_var                  σ_t², the variance of the learned reverse step p_θ(x_{t−1}|x_t):
                               ``variance="beta"`` σ_t² = β_t (Ho et al.'s "fixed large"),
                               the reverse process's true variance for small β_t when the data
                               is spread (exactly so for x_0 ~ N(0, I)), or ``"posterior"``
                               σ_t² = β̃_t ("fixed small"), the true one when x_0 is a point;
                               where β̃_1 = 0, "posterior" uses β̃_2, as Ho et al.'s code.
    """

    def __init__(self, T=1000, kind="linear", variance="beta"):
        self.T = validate.integer("T", T, minimum=2)
        self.kind = validate.choice("schedule", kind, SCHEDULES)
        self.variance = validate.choice("variance", variance, VARIANCES)
        betas = linear_betas(self.T) if kind == "linear" else cosine_betas(self.T)
        self.beta = numpy.concatenate([[0.0], betas])
        self.alpha = 1.0 - self.beta
        self.alpha_bar = numpy.cumprod(self.alpha)
        ab_prev = numpy.concatenate([[1.0], self.alpha_bar[:-1]])      # ᾱ_{t−1}
        one_minus = numpy.where(numpy.arange(self.T + 1) == 0, 1.0, 1.0 - self.alpha_bar)
        self.post_var = self.beta * (1.0 - ab_prev) / one_minus
        self.post_coef_x0 = numpy.sqrt(ab_prev) * self.beta / one_minus
        self.post_coef_xt = numpy.sqrt(self.alpha) * (1.0 - ab_prev) / one_minus
        if variance == "beta":
            self.model_var = self.beta.copy()
        else:
            self.model_var = self.post_var.copy()
            self.model_var[1] = self.post_var[2]
        self._device = {}

    def at(self, name, t, dtype):
        """The constant ``name`` (e.g. "alpha_bar") at the times t (N,) ints: a (N, 1) column."""
        key = (name, numpy.dtype(dtype).name)
        if key not in self._device:                 # one host-to-device copy per constant
            self._device[key] = backend.asarray(getattr(self, name), dtype=dtype)
        return self._device[key][t][:, None]

    def __repr__(self):
        return f"Schedule(T={self.T}, kind={self.kind!r}, variance={self.variance!r})"
