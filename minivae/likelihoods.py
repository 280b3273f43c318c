"""Observation models Φ(x | η): log-densities and their gradients with respect to η (lab 4).

The decoder f_θ(z) outputs the parameters η of a fully factorised observation model,
p_θ(x|z) = Π_j Φ(x_j | η_j), one set of *heads* per feature j. For each model this module
holds two functions, elementwise on arrays of one shape (broadcasting allowed):

    <model>_log_prob(x, *heads)  -> log Φ(x_j | η_j)
    <model>_grads(x, *heads)     -> {head: ∂ log Φ(x_j | η_j) / ∂ head_j}

exactly the functions lab 4 asks for, and a small class per model that bundles them with the
head names, the mean E[x | η] and the draws (the form :class:`minivae.model.IWAE` uses):

    mean(heads)                  -> E[x_j | η_j], shape (..., D)
    draw(heads, u)               -> x = F⁻¹(u), the inverse CDF at uniforms u (..., D)
    sample(heads, rng)           -> a draw x ~ Φ(x | η): draw(heads, u ~ U[0, 1))

Every draw is an inverse-CDF draw, one uniform per feature, so that a caller who holds its
uniforms (a lab checking a student's sampler, a picture that must look the same on CPU and
GPU) gets the same x as ``sample``. ``sample`` is written once for both backends: ``rng`` is a
generator of the backend the heads live on (:func:`minivae.backend.default_rng`, or a
``numpy.random.Generator`` for NumPy arrays), of which it only calls ``rng.random``. Summing
over the (observed) features is the bound's job (:func:`minivae.bound.masked_log_weights`).

Parametrisations (every head is an unconstrained real number):

- ``bernoulli``: logits ℓ; Φ(x|ℓ) = σ(ℓ)^x (1 - σ(ℓ))^(1-x), x ∈ {0, 1}.
- ``gaussian``: mean m and log-variance v; Φ(x|m, v) = N(x; m, e^v).
- ``student_t``: location μ, log-scale s and raw degrees of freedom r, with scale e^s and
  degrees of freedom ν = 3 + softplus(r) (as in MIWAE: ν > 3 keeps the variance finite).
- ``categorical``: C logits ℓ_1..ℓ_C per feature (a product of multinomials, one draw each);
  Φ(x = c | ℓ) = softmax(ℓ)_c, x an integer code in {0, ..., C-1}. Its head has a trailing
  axis of C: shape (..., D, C), where the other models' heads have shape (..., D).

Each model says how many numbers per feature its heads hold in ``per_feature`` (1, or C for
the categorical model), so the decoder knows its output width, D · per_feature per head.
"""
import math

import numpy

from .backend import special, xp
from .workspace import buffer

#: log 2π, the Gaussian's normalising constant (the one definition in the package's model code).
LOG_2PI = math.log(2.0 * math.pi)
LOG_2 = math.log(2.0)


# ---------------------------------------------------------------- two stable scalar maps
def softplus(a):
    """softplus(a) = log(1 + e^a), computed as max(a, 0) + log1p(e^{-|a|}) (no overflow).

    Its derivative is σ(a) (:func:`sigmoid`).
    """
    return xp.maximum(a, 0) + xp.log1p(xp.exp(-xp.abs(a)))


def sigmoid(a):
    """σ(a) = 1 / (1 + e^{-a}) = d softplus(a) / da, as ½ tanh(a/2) + ½.

    The tanh form cannot overflow and is one vectorised call (ten times faster than a
    branch on the sign of a); its error is a rounding error in absolute terms, which is
    what the gradient x - σ(a) needs.
    """
    return 0.5 * xp.tanh(0.5 * a) + 0.5


def _uniform(rng, shape, dtype):
    """u ~ U[0, 1) in the heads' float dtype (float64 for anything else)."""
    dt = xp.dtype(dtype)
    return rng.random(shape, dtype=dt if dt in (xp.float32, xp.float64) else xp.float64)


def _open(u):
    """u moved off 0 (to the dtype's smallest normal number), so that F⁻¹(u) stays finite for
    the unbounded models; random() returns 0 with probability 2^-24 (float32)."""
    return xp.maximum(u, xp.finfo(u.dtype).tiny)


# ---------------------------------------------------------------- Bernoulli, from logits
def bernoulli_log_prob(x, logits):
    """log Φ(x|ℓ) = x ℓ - softplus(ℓ)   (= x log σ(ℓ) + (1 - x) log(1 - σ(ℓ))).

    Written with softplus instead of log σ(ℓ): log σ(ℓ) underflows to -inf for ℓ ≲ -100
    in float32, while softplus stays exact. x, logits: same shape (or broadcastable).
    Computed by :func:`bernoulli_step_terms` (the formula at bernoulli_log_prob_and_grads).
    """
    return bernoulli_step_terms(x, logits, grads=False) - LOG_2


def bernoulli_grads(x, logits):
    """{"logits": ∂ log Φ(x|ℓ)/∂ℓ = x - σ(ℓ)}, elementwise."""
    return {"logits": x - sigmoid(logits)}


# ---------------------------------------------------------------- Gaussian, mean and log-variance
def gaussian_log_prob(x, mean, logvar):
    """log N(x; m, e^v) = -½ (log 2π + v + u²), u = (x - m) e^{-v/2}, elementwise.

    The standardised residual u is squared, not (x - m): (x - m)² overflows float32 for
    |x - m| > 1.8e19 even where (x - m)² e^{-v} is a modest number.
    """
    u = (x - mean) * xp.exp(-0.5 * logvar)
    return -0.5 * (LOG_2PI + logvar + u * u)


def gaussian_grads(x, mean, logvar):
    """{"mean": ∂/∂m = u e^{-v/2},  "logvar": ∂/∂v = ½ (u² - 1)} of log N, u = (x - m) e^{-v/2}."""
    scale_inv = xp.exp(-0.5 * logvar)
    u = (x - mean) * scale_inv
    return {"mean": u * scale_inv, "logvar": 0.5 * (u * u - 1)}


# ---------------------------------------------------------------- Student's t
STUDENT_T_DF_MIN = 3.0


def student_t_df(df):
    """ν = 3 + softplus(r) for the raw head r."""
    return STUDENT_T_DF_MIN + softplus(df)


def _student_t_residual(x, loc, log_scale, df):
    """(ν, a, h): ν = 3 + softplus(df), a = log(r²/ν) with r = (x - μ) e^{-s}, and h = (x - μ)/2.

    Through its logarithm, a = 2 (log|h| + log 2 - s) - log ν, r²/ν never overflows: with a
    log-scale of -80 in float32, e^{-s} = 5.5e34 and r² = 3e69 are inf while a ≈ 160 is exact,
    and log(1 + r²/ν) = softplus(a). Halving x - μ keeps it finite for any finite x and μ.
    a = -inf where x = μ (then r = 0, and softplus and σ of it are exactly 0).
    """
    nu = student_t_df(df)
    h = 0.5 * x - 0.5 * loc
    with numpy.errstate(divide="ignore"):             # log 0 = -inf where x = μ, as wanted
        a = 2 * (xp.log(xp.abs(h)) + LOG_2 - log_scale) - xp.log(nu)
    return nu, a, h


def student_t_log_prob(x, loc, log_scale, df):
    """log t_ν(x; μ, e^s) = lnΓ((ν+1)/2) - lnΓ(ν/2) - ½ log(νπ) - s - (ν+1)/2 · log(1 + r²/ν),

    with r = (x - μ) e^{-s} the standardised residual and ν = 3 + softplus(df), elementwise;
    log(1 + r²/ν) is computed as softplus(log(r²/ν)) (:func:`_student_t_residual`), finite for
    every finite input.
    """
    nu, a, _ = _student_t_residual(x, loc, log_scale, df)
    return (special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2)
            - 0.5 * xp.log(nu * math.pi) - log_scale
            - (nu + 1) / 2 * softplus(a))


def student_t_grads(x, loc, log_scale, df):
    """The gradient of log t_ν(x; μ, e^s) with r = (x - μ) e^{-s}, ψ the digamma function:

    ∂/∂μ = (ν+1) r e^{-s} / (ν + r²);
    ∂/∂s = (ν+1) r² / (ν + r²) - 1;
    ∂/∂ν = ½ ψ((ν+1)/2) - ½ ψ(ν/2) - 1/(2ν) - ½ log(1 + r²/ν) + (ν+1) r² / (2ν (ν + r²)),
    and ∂/∂df = ∂/∂ν · σ(df) (ν = 3 + softplus(df)).

    Computed with a = log(r²/ν) (:func:`_student_t_residual`) and ρ = σ(a) = r²/(ν + r²) in
    [0, 1], so that nothing overflows however small the scale: ∂/∂s = (ν+1) ρ - 1,
    ∂/∂μ = (ν+1) ρ / (x - μ) (0 where x = μ), and log(1 + r²/ν) = softplus(a).

    Returns {"loc": ..., "log_scale": ..., "df": ...}, elementwise.
    """
    nu, a, h = _student_t_residual(x, loc, log_scale, df)
    rho = xp.exp(-softplus(-a))                         # r²/(ν + r²) = σ(a), to full relative
                                                        # precision (it is divided by x - μ)
    d_nu = (0.5 * (special.digamma((nu + 1) / 2) - special.digamma(nu / 2)) - 0.5 / nu
            - 0.5 * softplus(a) + (nu + 1) * rho / (2 * nu))
    safe_h = xp.where(h == 0, 1, h)                     # ρ = 0 there: the gradient is 0
    return {"loc": (nu + 1) * rho / (2 * safe_h),
            "log_scale": (nu + 1) * rho - 1,
            "df": d_nu * sigmoid(df)}


# ---------------------------------------------------------------- categorical, from C logits
def log_softmax(logits):
    """log softmax(ℓ)_c = ℓ_c - m - log Σ_c' e^{ℓ_c' - m}, m = max_c ℓ_c, over the last axis.

    The shift by the max (the same trick as the bound's log-sum-exp) keeps every exponent
    <= 0: nothing overflows, and the largest term is exactly 1, so the log is never -inf.
    """
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def onehot(x, C, dtype):
    """[x_j = c]: (..., D) codes -> (..., D, C) of ``dtype``."""
    return (x[..., None] == xp.arange(C, dtype=x.dtype)).astype(dtype)


def categorical_log_prob(x, logits):
    """log Φ(x_j | ℓ_j) = Σ_c [x_j = c] log softmax(ℓ_j)_c = ℓ_{j x_j} - log Σ_c e^{ℓ_jc}.

    x: (..., D) integer codes 0..C-1 (as floats; broadcasting against logits' leading axes),
    logits: (..., D, C) -> (..., D).
    """
    return (onehot(x, logits.shape[-1], logits.dtype) * log_softmax(logits)).sum(axis=-1)


def categorical_grads(x, logits):
    """{"logits": ∂ log Φ(x_j | ℓ_j) / ∂ℓ_jc = [x_j = c] - softmax(ℓ_j)_c}, (..., D, C).

    Derivation: log Φ = ℓ_{j x_j} - log Σ_c' e^{ℓ_jc'}. The first term's derivative with
    respect to ℓ_jc is [x_j = c]; the second's is e^{ℓ_jc} / Σ_c' e^{ℓ_jc'} = softmax_c.
    (The Bernoulli gradient x - σ(ℓ) is the case C = 2 with logits (0, ℓ).) Each row sums to
    0, so adding a constant to a feature's logits changes nothing, as it should.
    """
    return {"logits": onehot(x, logits.shape[-1], logits.dtype) - xp.exp(log_softmax(logits))}


# ---------------------------------------------------------------- the models, as the IWAE uses them
def bernoulli_log_prob_and_grads(x, logits, work=None):
    """Both Bernoulli functions at once: (log Φ(x|ℓ), {"logits": x - σ(ℓ)}), elementwise.

    A training step needs both for each of its K·B·D logits, so they share one
    T = tanh(ℓ/2) = 2σ(ℓ) - 1 (:func:`bernoulli_step_terms`, which the model calls directly
    and whose constants it applies to its small (K, B) arrays):

        log Φ(x|ℓ) = x ℓ - softplus(ℓ) = (x - ½) ℓ - |ℓ|/2 + log1p(|T|) - log 2,
        x - σ(ℓ) = (x - ½) - ½ T,

    since softplus(ℓ) = max(ℓ, 0) + log1p(e^{-|ℓ|}), max(ℓ, 0) = (ℓ + |ℓ|)/2 and
    1 + e^{-|ℓ|} = 2 / (1 + |T|). Unlike e^{-|ℓ|}, |T| never becomes a subnormal number (which
    makes exp and log1p twenty times slower once |ℓ| > 87 in float32, where training drives the
    logits of pixels that are always black), and log1p(|T|) ∈ [0, log 2] is well conditioned.
    x: (B, D) or the logits' shape, broadcast against logits (K, B, D); into
    ``work``'s arrays if given (a :class:`minivae.workspace.Workspace`).
    """
    u, e = bernoulli_step_terms(x, logits, work)
    u -= LOG_2
    e *= 0.5
    return u, {"logits": e}


def bernoulli_step_terms(x, logits, work=None, grads=True):
    """u = log Φ(x|ℓ) + log 2 and e = 2 (x - σ(ℓ)) from one T = tanh(ℓ/2), elementwise,

        log Φ(x|ℓ) = (x - ½) ℓ - |ℓ|/2 + log1p(|T|) - log 2,     x - σ(ℓ) = ½ (s - T),  s = 2x - 1,

    derived at :func:`bernoulli_log_prob_and_grads` (lab 4's function: this one plus the
    constants). The one home of the Bernoulli formula. The constants - log 2 and ½ are left to
    the caller: the model applies them to its (K, B) arrays instead of two passes over the
    (K, B, D) ones (:meth:`ObservationModel.step_terms`). x: (B, D) or the logits' shape,
    broadcast against logits (K, B, D). Returns (u, e), or u alone with ``grads=False``; in
    ``work``'s arrays if given (a :class:`minivae.workspace.Workspace`).
    """
    logits = xp.asarray(logits)                        # (a number, in the labs' checks)
    x_half = x - 0.5                                   # on the (B, D) data, not the K-fold grid
    shape = numpy.broadcast_shapes(getattr(x_half, "shape", ()), logits.shape)   # host logic
    dt = numpy.promote_types(getattr(x_half, "dtype", logits.dtype), logits.dtype)
    u = buffer(work, "bernoulli.log_phi", shape, dt)
    t = buffer(work, "bernoulli.tanh", shape, dt)
    v = buffer(work, "bernoulli.scratch", shape, dt)
    xp.multiply(logits, 0.5, out=t)                    # ℓ/2
    xp.abs(t, out=v)
    xp.multiply(logits, x_half, out=u)
    xp.subtract(u, v, out=u)                           # (x - ½) ℓ - |ℓ|/2, exact for binary x
    xp.tanh(t, out=t)                                  # T
    xp.abs(t, out=v)
    xp.log1p(v, out=v)                                 # log1p(|T|) = log 2 - log1p(e^{-|ℓ|})
    u += v                                             # log Φ + log 2
    if not grads:
        return u
    xp.subtract(2 * x_half, t, out=t)                  # s - T = 2 (x - σ(ℓ)), s on the (B, D) data
    return u, t


def _ours(function):
    """False for a function put in the place of this module's (a student's, by ``minivae lab run
    N --mine``): the model's faster Bernoulli forms then step aside, so that theirs is run."""
    return getattr(function, "__module__", None) == __name__


class ObservationModel:
    """What :class:`minivae.model.IWAE` uses of an observation model beyond the subclasses'
    ``name``, ``heads``, ``log_prob``, ``log_prob_grads`` and ``mean``."""

    @classmethod
    def head_shape(cls, head, x_dim):
        """The trailing shape of ``head`` for D = x_dim features: (D,) (one number each)."""
        return (x_dim,)

    @staticmethod
    def head_mask(head, mask):
        """The mask (B, D) as ``head`` needs it: every head serves every feature."""
        return mask

    @classmethod
    def log_prob_and_grads(cls, x, work=None, **heads):
        """(log Φ(x|η), {head: ∂ log Φ/∂head}) for a training step, which needs both: the two
        functions one after the other, unless the model has a fused form (Bernoulli)."""
        return cls.log_prob(x, **heads), cls.log_prob_grads(x, **heads)

    # The model's forms, up to constants that the model applies to its small (K, B) arrays
    # instead of a pass over the (K, B, D) ones: here none (c = 0, a = 1); the Bernoulli
    # model's leave out its - log 2 and ½ (:func:`bernoulli_step_terms`).
    @classmethod
    def log_prob_terms(cls, x, work=None, **heads):
        """(u, c) with log Φ(x|η) = u + c elementwise, c a number (the forward pass)."""
        return _exact_terms(cls, x, heads)

    @classmethod
    def step_terms(cls, x, work=None, **heads):
        """(u, c, grads, a) with log Φ(x|η) = u + c and ∂ log Φ/∂head = a · grads[head]
        elementwise, c and a numbers (a training step, which needs both)."""
        return _exact_step_terms(cls, x, work, heads)


def _exact_terms(model, x, heads):
    """:meth:`ObservationModel.log_prob_terms` with c = 0, for a model class or instance."""
    return model.log_prob(x, **heads), 0.0


def _exact_step_terms(model, x, work, heads):
    """:meth:`ObservationModel.step_terms` with c = 0 and a = 1, for a model class or instance."""
    log_phi, grads = model.log_prob_and_grads(x, work=work, **heads)
    return log_phi, 0.0, grads, 1.0


class Bernoulli(ObservationModel):
    """Bernoulli observations parametrised by logits (binary data, e.g. binarised MNIST)."""
    name = "bernoulli"
    heads = ("logits",)
    per_feature = 1
    log_prob = staticmethod(bernoulli_log_prob)
    log_prob_grads = staticmethod(bernoulli_grads)
    log_prob_and_grads = staticmethod(bernoulli_log_prob_and_grads)

    @classmethod
    def log_prob_terms(cls, x, work=None, **heads):
        """:func:`bernoulli_step_terms` without the gradient: c = -log 2."""
        if not _ours(cls.log_prob):
            return super().log_prob_terms(x, work=work, **heads)
        return bernoulli_step_terms(x, heads["logits"], work, grads=False), -LOG_2

    @classmethod
    def step_terms(cls, x, work=None, **heads):
        """:func:`bernoulli_step_terms`: c = -log 2, a = ½."""
        if not _ours(cls.log_prob_and_grads):
            return super().step_terms(x, work=work, **heads)
        u, e = bernoulli_step_terms(x, heads["logits"], work)
        return u, -LOG_2, {"logits": e}, 0.5

    @staticmethod
    def mean(logits):
        """E[x | ℓ] = σ(ℓ)."""
        return sigmoid(logits)

    @staticmethod
    def draw(logits, u):
        """x = [u < σ(ℓ)]: for u ~ U[0, 1), 1 with probability exactly σ(ℓ)."""
        return (u < sigmoid(logits)).astype(logits.dtype)

    @classmethod
    def sample(cls, logits, rng):
        """x ~ Bernoulli(σ(ℓ)), shape of ℓ."""
        return cls.draw(logits, _uniform(rng, logits.shape, logits.dtype))


class Gaussian(ObservationModel):
    """Diagonal, heteroscedastic Gaussian observations: a mean and a log-variance per feature."""
    name = "gaussian"
    heads = ("mean", "logvar")
    per_feature = 1
    log_prob = staticmethod(gaussian_log_prob)
    log_prob_grads = staticmethod(gaussian_grads)

    @staticmethod
    def mean(mean, logvar):
        """E[x | m, v] = m."""
        return mean

    @staticmethod
    def draw(mean, logvar, u):
        """x = m + e^{v/2} Φ⁻¹(u), Φ⁻¹ the standard normal quantile (``ndtri``)."""
        return (mean + xp.exp(0.5 * logvar) * special.ndtri(_open(u))).astype(mean.dtype)

    @classmethod
    def sample(cls, mean, logvar, rng):
        """x ~ N(m, e^v), shape of m."""
        return cls.draw(mean, logvar, _uniform(rng, mean.shape, mean.dtype))


class StudentT(ObservationModel):
    """Student's t observations: location, log-scale and degrees of freedom ν = 3 + softplus(r).

    Heavier tails than the Gaussian, which makes it the default for imputing real tabular data
    (MIWAE, Mattei & Frellsen 2019).
    """
    name = "student_t"
    heads = ("loc", "log_scale", "df")
    per_feature = 1
    DF_MIN = STUDENT_T_DF_MIN
    log_prob = staticmethod(student_t_log_prob)
    log_prob_grads = staticmethod(student_t_grads)
    degrees_of_freedom = staticmethod(student_t_df)

    @staticmethod
    def mean(loc, log_scale, df):
        """E[x | μ, s, ν] = μ (finite since ν > 3)."""
        return loc

    @classmethod
    def draw(cls, loc, log_scale, df, u):
        """x = μ + e^s T with T = F_ν⁻¹(u), the t distribution's inverse CDF.

        With p = 2 min(u, 1 - u), the t CDF gives |T| through the regularised incomplete beta
        function: P(|T| > t) = I_{ν/(ν+t²)}(ν/2, ½), so |T| = sqrt(ν (1/β - 1)) with
        β = I⁻¹_p(ν/2, ½), and T takes the sign of u - ½. No rejection loop (which would cost a
        device sync per round).
        """
        nu = cls.degrees_of_freedom(df)
        p = _open(2 * xp.minimum(u, 1 - u))
        beta = special.betaincinv(0.5 * nu, 0.5, p)
        t = xp.sqrt(nu * (1 / beta - 1)) * xp.where(u < 0.5, -1, 1)
        return (loc + xp.exp(log_scale) * t).astype(loc.dtype)

    @classmethod
    def sample(cls, loc, log_scale, df, rng):
        """x ~ t_ν(μ, e^s), shape of μ."""
        return cls.draw(loc, log_scale, df, _uniform(rng, loc.shape, loc.dtype))


class Categorical(ObservationModel):
    """Categorical observations: a product of multinomials (one draw per feature) over C codes.

    Each feature x_j is an integer code in {0, ..., C-1} (grey levels, a table's categorical
    column, a symbol); the decoder gives it C logits ℓ_j1..ℓ_jC, and

        Φ(x_j = c | ℓ_j) = softmax(ℓ_j)_c = e^{ℓ_jc} / Σ_c' e^{ℓ_jc'}.

    An instance holds C (``Categorical(4)``); the logits head has shape (..., D, C), and the
    decoder's affine head ``decoder.logits`` outputs D · C numbers per row, feature-major
    (column j·C + c is ℓ_jc). Codes are carried as floats like every other x in minivae (exact
    for any C < 2^24), and :meth:`check` is the one place that says which values are codes.
    """
    name = "categorical"
    heads = ("logits",)

    def __init__(self, n_categories):
        if (isinstance(n_categories, bool) or not isinstance(n_categories, (int, numpy.integer))
                or n_categories < 2):
            raise ValueError(f"n_categories must be an integer >= 2 for the categorical "
                             f"likelihood, got {n_categories!r}")
        self.n_categories = self.per_feature = int(n_categories)

    def __repr__(self):
        return f"Categorical({self.n_categories})"

    def head_shape(self, head, x_dim):
        """(D, C): C logits per feature."""
        return (x_dim, self.n_categories)

    def check(self, x):
        """Raise a one-line ValueError unless every entry of x is a code in {0, ..., C-1}."""
        C = self.n_categories
        bad = (x < 0) | (x > C - 1) | (x != xp.floor(x))
        if bool(bad.any()):
            v = float(x[bad][0]) if x.dtype.kind == "f" else int(x[bad][0])
            raise ValueError(f"likelihood 'categorical' needs integer codes in 0..{C - 1} in "
                             f"every observed entry, got {v!r}")

    log_prob = staticmethod(categorical_log_prob)
    log_prob_grads = staticmethod(categorical_grads)

    def log_prob_and_grads(self, x, work=None, **heads):
        """(log Φ, {"logits": ∂ log Φ/∂ℓ}) for a training step, sharing one log-softmax and one
        one-hot between the two (:func:`categorical_log_prob`, :func:`categorical_grads`)."""
        logits = heads["logits"]
        log_p = log_softmax(logits)
        hot = onehot(x, self.n_categories, logits.dtype)
        return (hot * log_p).sum(axis=-1), {"logits": hot - xp.exp(log_p)}

    def log_prob_terms(self, x, work=None, **heads):      # ObservationModel's, for an instance
        return _exact_terms(self, x, heads)

    def step_terms(self, x, work=None, **heads):
        return _exact_step_terms(self, x, work, heads)

    @staticmethod
    def probs(logits):
        """softmax(ℓ) over the last axis: (..., D, C), each row summing to 1."""
        return xp.exp(log_softmax(logits))

    def mean(self, logits):
        """E[x_j | ℓ_j] = Σ_c c softmax(ℓ_j)_c, the expected code: (..., D).

        For ordered codes such as grey levels this is the picture to show; for unordered
        categories use :meth:`probs` (the imputer imputes the most probable category).
        """
        return self.probs(logits) @ xp.arange(self.n_categories, dtype=logits.dtype)

    def draw(self, logits, u):
        """x_j = #{c < C-1 : F_jc <= u_j}, F_jc = Σ_{c' <= c} softmax_c': the inverse CDF at
        u (..., D), one uniform per feature. The count runs over c < C-1 only, so a u_j that
        the float rounding of F puts above F_{j,C-1} still gives a valid code, C-1."""
        cdf = xp.cumsum(self.probs(logits), axis=-1)[..., :-1]             # (..., D, C-1)
        return (cdf <= u[..., None]).sum(axis=-1).astype(logits.dtype)

    def sample(self, logits, rng):
        """x ~ Π_j Categorical(softmax(ℓ_j)): codes of shape (..., D)."""
        return self.draw(logits, _uniform(rng, logits.shape[:-1], logits.dtype))


class ColumnGroup:
    """One group of a :class:`Mixed` model: the columns (host int array, in table order) that
    share one observation model, its name ``prefix`` and its heads, named ``prefix.head``."""

    def __init__(self, prefix, model, columns):
        self.prefix, self.model = prefix, model
        self.columns = numpy.asarray(columns, dtype=numpy.intp)
        self.index = xp.asarray(self.columns)          # on the device, for gathers
        self.heads = tuple(f"{prefix}.{h}" for h in model.heads)

    def own(self, heads):
        """This group's heads under the model's own names ({"loc": ..., ...})."""
        return {h: heads[f"{self.prefix}.{h}"] for h in self.model.heads}

    def take(self, a):
        """a[..., columns]: this group's features of a (..., D) array."""
        return xp.take(a, self.index, axis=-1)


class Mixed(ObservationModel):
    """A table whose columns have different observation models: real columns (Gaussian or
    Student's t, or Bernoulli for 0/1) and categorical columns, each with its own C.

    ``column_types`` has one entry per feature j: a model name (``"gaussian"``,
    ``"student_t"``, ``"bernoulli"``) or an integer C >= 2 (categorical with C codes). Columns
    with the same entry form a *group* (in order of first appearance), and the decoder has one
    set of heads per group, named ``prefix.head``: ``student_t.loc``, ..., or
    ``categorical4.logits`` for the group of 4-code columns, of shape (..., D_g) or
    (..., D_g, C). The model is still fully factorised,

        log p_θ(x|z) = Σ_j m_j log Φ_j(x_j | η_j) = Σ_g Σ_{j ∈ g} m_j log Φ_g(x_j | η_j),

    the sum of the groups' log-likelihoods, so each head's gradient is its own group's
    (:mod:`minivae.likelihoods`'s functions, unchanged) restricted to the group's columns of the
    mask (:meth:`head_mask`). :meth:`log_prob`, :meth:`mean` and :meth:`draw` return (..., D)
    in the table's column order.
    """
    name = "mixed"

    def __init__(self, column_types):
        if isinstance(column_types, (str, bytes)) or not hasattr(column_types, "__len__") \
                or len(column_types) == 0:
            raise ValueError("column_types must be a non-empty list with one entry per "
                             f"feature, got {column_types!r}")
        keys = []
        for j, t in enumerate(column_types):
            if isinstance(t, (int, numpy.integer)) and not isinstance(t, bool) and t >= 2:
                keys.append(int(t))
            elif isinstance(t, str) and t in LIKELIHOODS and t != "categorical":
                keys.append(t)
            else:
                raise ValueError(f"column_types[{j}] must be 'gaussian', 'student_t', "
                                 f"'bernoulli' or a number of categories >= 2, got {t!r}")
        self.column_types = keys
        self.groups = []
        for key in dict.fromkeys(keys):
            columns = [j for j, k in enumerate(keys) if k == key]
            if isinstance(key, int):
                self.groups.append(ColumnGroup(f"categorical{key}", Categorical(key), columns))
            else:
                self.groups.append(ColumnGroup(key, LIKELIHOODS[key], columns))
        self.heads = tuple(h for g in self.groups for h in g.heads)
        self._group_of = {h: g for g in self.groups for h in g.heads}
        order = numpy.concatenate([g.columns for g in self.groups])
        self._inverse = xp.asarray(numpy.argsort(order))      # group order -> column order

    def __repr__(self):
        return f"Mixed({self.column_types!r})"

    # ------------------------------------------------------------------ shapes and masks
    def head_shape(self, head, x_dim):
        """A head's trailing shape: (D_g,) or (D_g, C) for the group of columns it serves."""
        g = self._group_of[head]
        return (len(g.columns),) + ((g.model.n_categories,) if isinstance(g.model, Categorical)
                                    else ())

    def head_mask(self, head, mask):
        """The mask (B, D) restricted to the head's group, (B, D_g); None stays None."""
        return None if mask is None else self._group_of[head].take(mask)

    def _in_order(self, parts):
        """Per-group (..., D_g) arrays -> one (..., D) array in the table's column order."""
        return xp.take(xp.concatenate(parts, axis=-1), self._inverse, axis=-1)

    # ------------------------------------------------------------------ the model
    def check(self, x):
        """Raise a one-line ValueError unless every categorical column holds codes 0..C-1
        and every Bernoulli column 0 or 1 (x: (B, D), missing entries already 0)."""
        for g in self.groups:
            if isinstance(g.model, Categorical):
                v = g.take(x)
                bad = (v < 0) | (v > g.model.n_categories - 1) | (v != xp.floor(v))
                what = f"integer codes 0..{g.model.n_categories - 1}"
            elif g.model is Bernoulli:
                v = g.take(x)
                bad = (v != 0) & (v != 1)
                what = "0 or 1"
            else:
                continue
            if bool(bad.any()):
                row, col = (int(i[0]) for i in xp.nonzero(bad))
                raise ValueError(f"column {int(g.columns[col])} ({g.prefix}) needs {what} in "
                                 f"every observed entry, got {float(v[row, col])!r}")

    def log_prob(self, x, **heads):
        """log Φ_j(x_j | η_j) for every feature, (..., D), each by its group's model."""
        return self._in_order([g.model.log_prob(g.take(x), **g.own(heads))
                               for g in self.groups])

    def log_prob_grads(self, x, **heads):
        """{head: ∂ log Φ/∂head}: each group's own gradients, (..., D_g[, C])."""
        grads = {}
        for g in self.groups:
            for h, d in g.model.log_prob_grads(g.take(x), **g.own(heads)).items():
                grads[f"{g.prefix}.{h}"] = d
        return grads

    def log_prob_and_grads(self, x, work=None, **heads):
        """Both, each group by its model's own (possibly fused) form."""
        parts, grads = [], {}
        for g in self.groups:
            lp, d = g.model.log_prob_and_grads(g.take(x), work=work, **g.own(heads))
            parts.append(lp)
            grads.update({f"{g.prefix}.{h}": v for h, v in d.items()})
        return self._in_order(parts), grads

    def log_prob_terms(self, x, work=None, **heads):      # ObservationModel's, for an instance
        return _exact_terms(self, x, heads)                # (the groups' constants differ)

    def step_terms(self, x, work=None, **heads):
        return _exact_step_terms(self, x, work, heads)

    def mean(self, **heads):
        """E[x_j | η_j] per column, (..., D) (the expected code for a categorical column; the
        imputer uses the most probable category there, see :mod:`minivae.impute`)."""
        return self._in_order([g.model.mean(**g.own(heads)) for g in self.groups])

    def draw(self, u, **heads):
        """x = F⁻¹(u) column by column, u: (..., D) uniforms -> (..., D)."""
        return self._in_order([g.model.draw(**g.own(heads), u=g.take(u)) for g in self.groups])

    def sample(self, rng, **heads):
        """x ~ p(x|η), (..., D): :meth:`draw` at uniforms from ``rng``."""
        first = heads[self.heads[0]]
        lead = first.shape[:first.ndim - len(self.head_shape(self.heads[0], 0))]
        return self.draw(_uniform(rng, lead + (len(self.column_types),), first.dtype), **heads)


#: name -> observation model; categorical is a class to instantiate with C (see make).
LIKELIHOODS = {m.name: m for m in (Bernoulli, Gaussian, StudentT, Categorical)}
#: What IWAE(likelihood=...) accepts: the per-feature models and "mixed" (a table, see Mixed).
NAMES = tuple(LIKELIHOODS) + (Mixed.name,)


def make(name, n_categories=None, column_types=None):
    """The observation model called ``name`` (the class itself; an instance for categorical
    and mixed).

    n_categories is C for ``categorical`` (required there) and must be None otherwise;
    column_types is :class:`Mixed`'s, for ``mixed`` only.
    """
    if name not in NAMES:
        raise ValueError(f"unknown likelihood {name!r}; choose one of {', '.join(NAMES)}")
    if column_types is not None and name != "mixed":
        raise ValueError(f"column_types is for the mixed likelihood only, not {name!r}")
    if name == "mixed":
        if column_types is None:
            raise ValueError("likelihood 'mixed' needs column_types (one entry per feature: "
                             "'gaussian', 'student_t', 'bernoulli' or a number of categories)")
        if n_categories is not None:
            raise ValueError("n_categories is for the categorical likelihood; a mixed model "
                             "gives each categorical column its C in column_types")
        return Mixed(column_types)
    if name == "categorical":
        if n_categories is None:
            raise ValueError("likelihood 'categorical' needs n_categories (C, the number of "
                             "codes per feature)")
        return Categorical(n_categories)
    if n_categories is not None:
        raise ValueError(f"n_categories is for the categorical likelihood only, not {name!r}")
    return LIKELIHOODS[name]
