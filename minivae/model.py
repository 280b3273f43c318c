"""The deep latent variable model and its importance weighted bound, with hand-written gradients.

The model, in the lecture's notation:

- prior        p(z) = N(z; 0, I_d);
- decoder      η = f_θ(z), an MLP whose heads parametrise a fully factorised observation model
               p_θ(x|z) = Π_j Φ(x_j | η_j) (:mod:`minivae.likelihoods`);
- encoder      q_γ(z|x) = N(z; μ_γ(x), diag(exp(v_γ(x)))), an MLP with a mean head μ and a
               log-variance head v; reparametrised as z = μ + exp(½ v) ⊙ ε with ε ~ N(0, I).

With K samples z_1..z_K ~ q_γ(z|x) and log importance weights

    log w_k = log p_θ(x|z_k) + log p(z_k) - log q_γ(z_k|x),

the IWAE bound (Burda, Grosse & Salakhutdinov 2016) is

    L_K(x) = log (1/K) Σ_k w_k = logsumexp_k(log w_k) - log K   ≤ log p_θ(x),

and its gradient, for θ and γ alike (ε held fixed), is

    ∇ L_K = Σ_k w̃_k ∇ log w_k,     w̃_k = w_k / Σ_l w_l = softmax_k(log w),

the normalized importance weights. K = 1 is the VAE bound (Kingma & Welling 2014; Rezende et
al. 2014). :class:`VAE` also offers the analytic-KL form L_1 = E_q[log p(x|z)] - KL(q ‖ p(z)).

Missing data (MIWAE, Mattei & Frellsen 2019): with a boolean mask (True = observed),
log p_θ(x|z) sums over the observed features only; the encoder sees missing entries as 0.

Every gradient here is derived by hand; :mod:`minivae.gradcheck` checks them against finite
differences. Shapes: B examples, D = x_dim features, d = z_dim latent dimensions, K samples.
"""
import math

import numpy

from . import backend
from .backend import xp
from .layers import ACTIVATIONS, affine_backward, affine_forward, mlp_backward, mlp_forward
from .likelihoods import LIKELIHOODS
from .ops import LOG_2PI, logsumexp_weights

DTYPES = ("float32", "float64")


def _choice(what, value, allowed):
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")
    return value


class IWAE:
    """A deep latent variable model trained by maximising the IWAE bound L_K.

    Parameters
    ----------
    x_dim, z_dim : int
        Data and latent dimensions D and d.
    hidden : tuple of int
        Widths of the encoder's hidden layers; the decoder uses them in reverse order
        (784-200-200-50 and 50-200-200-784 for ``hidden=(200, 200)``, as Burda et al.).
        ``hidden=()`` makes both heads affine: with ``likelihood="gaussian"`` that is the
        linear-Gaussian model of factor analysis and PPCA.
    activation : "tanh" (default, as Burda et al.), "relu" or "softplus".
    likelihood : "bernoulli", "gaussian" or "student_t" (see :mod:`minivae.likelihoods`).
    dtype : "float32" (default) or "float64" (what gradient checks use).
    seed : int
        Seeds the Glorot-uniform initialisation and the generator of the noise ε.

    Attributes
    ----------
    params : dict name -> array
        The live arrays the model computes with (an optimizer updates them in place).
        Names: ``encoder.{i}.W/b`` and ``decoder.{i}.W/b`` for hidden layers, ``encoder.mean``,
        ``encoder.logvar`` and one ``decoder.{head}`` per likelihood head, each with ``.W`` of
        shape (in, out) and ``.b`` of shape (out,); every affine map computes ``h @ W + b``.
    """

    #: Which objective :meth:`bound` computes; :class:`VAE` can switch to the analytic KL.
    analytic_kl = False

    def __init__(self, x_dim, z_dim, hidden=(200, 200), activation="tanh",
                 likelihood="bernoulli", dtype="float32", seed=0):
        for what, v in (("x_dim", x_dim), ("z_dim", z_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, numpy.integer)) or v < 1:
                raise ValueError(f"{what} must be a positive integer, got {v!r}")
        hidden = tuple(hidden)
        if any(isinstance(h, bool) or not isinstance(h, (int, numpy.integer)) or h < 1
               for h in hidden):
            raise ValueError(f"hidden must be a sequence of positive integers, got {hidden!r}")
        self.x_dim, self.z_dim, self.hidden = int(x_dim), int(z_dim), tuple(int(h) for h in hidden)
        self.activation = _choice("activation", activation, tuple(ACTIVATIONS))
        self.likelihood = LIKELIHOODS[_choice("likelihood", likelihood, tuple(LIKELIHOODS))]
        try:
            dtype = numpy.dtype(dtype).name
        except TypeError:
            pass                              # not a dtype at all: _choice says what is allowed
        self.dtype = _choice("dtype", dtype, DTYPES)
        self.seed = seed
        self.params = self._init_params(seed)
        self.rng = backend.default_rng(seed)

    # ------------------------------------------------------------------ set-up
    def get_config(self):
        """The constructor's arguments: ``type(model)(**model.get_config())`` rebuilds it."""
        return {"x_dim": self.x_dim, "z_dim": self.z_dim, "hidden": list(self.hidden),
                "activation": self.activation, "likelihood": self.likelihood.name,
                "dtype": self.dtype, "seed": self.seed}

    def _layer_shapes(self):
        """(name, fan_in, fan_out) of every affine map, in a fixed order."""
        enc = (self.x_dim,) + self.hidden
        dec = (self.z_dim,) + self.hidden[::-1]
        shapes = [(f"encoder.{i}", enc[i], enc[i + 1]) for i in range(len(self.hidden))]
        shapes += [(f"encoder.{h}", enc[-1], self.z_dim) for h in ("mean", "logvar")]
        shapes += [(f"decoder.{i}", dec[i], dec[i + 1]) for i in range(len(self.hidden))]
        shapes += [(f"decoder.{h}", dec[-1], self.x_dim) for h in self.likelihood.heads]
        return shapes

    def _init_params(self, seed):
        # Glorot/Xavier uniform, U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), zero biases.
        # Drawn on the host with NumPy so that both backends start from identical parameters.
        init_rng = numpy.random.default_rng([seed, 0x1A7E])
        params = {}
        for name, fan_in, fan_out in self._layer_shapes():
            a = math.sqrt(6.0 / (fan_in + fan_out))
            params[f"{name}.W"] = backend.asarray(init_rng.uniform(-a, a, (fan_in, fan_out)),
                                                  dtype=self.dtype)
            params[f"{name}.b"] = xp.zeros(fan_out, dtype=self.dtype)
        return params

    @property
    def n_params(self):
        return sum(int(p.size) for p in self.params.values())

    def __repr__(self):
        kind = type(self).__name__
        return (f"{kind}(x_dim={self.x_dim}, z_dim={self.z_dim}, hidden={self.hidden}, "
                f"activation={self.activation!r}, likelihood={self.likelihood.name!r}, "
                f"dtype={self.dtype!r}, seed={self.seed})")

    # ------------------------------------------------------------------ input checks
    def _check_inputs(self, x, k, eps, mask):
        """Convert to the backend and dtype; reject anything that would give a wrong number."""
        if isinstance(k, bool) or not isinstance(k, (int, numpy.integer)) or k < 1:
            raise ValueError(f"k (the number of importance samples) must be an integer >= 1, "
                             f"got {k!r}")
        x = backend.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.x_dim:
            raise ValueError(f"x must have shape (B, {self.x_dim}), got {tuple(x.shape)}")
        if x.dtype.kind not in "biuf":
            raise ValueError(f"x must be numeric, got dtype {x.dtype}")
        x = x.astype(self.dtype, copy=False)
        if mask is not None:
            mask = backend.asarray(mask)
            if mask.dtype != bool or mask.shape != x.shape:
                raise ValueError(f"mask must be a boolean array of shape {tuple(x.shape)} "
                                 f"(True = observed), got {mask.dtype} {tuple(mask.shape)}")
            x = xp.where(mask, x, 0).astype(self.dtype, copy=False)   # missing: whatever, NaN too
        if not bool(xp.isfinite(x).all()):
            raise ValueError("x has NaN or inf in observed entries (mark missing entries with "
                             "mask=False)")
        if self.likelihood.name == "bernoulli" and not bool(((x == 0) | (x == 1)).all()):
            raise ValueError("likelihood 'bernoulli' needs binary x (0 or 1 in every observed "
                             "entry); binarise the data first")
        if eps is not None:
            eps = backend.asarray(eps)
            want = (k, x.shape[0], self.z_dim)
            if eps.shape != want:
                raise ValueError(f"eps must have shape (k, B, z_dim) = {want}, got "
                                 f"{tuple(eps.shape)}")
            eps = eps.astype(self.dtype, copy=False)
        return x, eps, mask

    def _prepare(self, x, k, eps, mask, check):
        if check:
            x, eps, mask = self._check_inputs(x, k, eps, mask)
        elif mask is not None:
            x = xp.where(mask, x, 0).astype(self.dtype, copy=False)
        if eps is None:
            eps = self.rng.standard_normal((k, x.shape[0], self.z_dim), dtype=self.dtype)
        return x, eps, mask

    # ------------------------------------------------------------------ encoder and decoder
    def _encoder_forward(self, x):
        """x: (B, D) -> μ, v: (B, d), cache."""
        p = self.params
        h, mlp_cache = mlp_forward(x, p, "encoder", len(self.hidden), self.activation)
        mean, mean_cache = affine_forward(h, p["encoder.mean.W"], p["encoder.mean.b"])
        logvar, logvar_cache = affine_forward(h, p["encoder.logvar.W"], p["encoder.logvar.b"])
        return mean, logvar, (mlp_cache, mean_cache, logvar_cache)

    def _encoder_backward(self, dmean, dlogvar, cache, grads):
        """Accumulate ∂L/∂γ into grads from ∂L/∂μ and ∂L/∂v, both (B, d)."""
        mlp_cache, mean_cache, logvar_cache = cache
        need_dh = len(self.hidden) > 0        # with hidden=(), h is x itself: data
        dh, g = affine_backward(dmean, mean_cache, need_dx=need_dh)
        grads["encoder.mean.W"], grads["encoder.mean.b"] = g["W"], g["b"]
        dh2, g = affine_backward(dlogvar, logvar_cache, need_dx=need_dh)
        grads["encoder.logvar.W"], grads["encoder.logvar.b"] = g["W"], g["b"]
        if need_dh:
            mlp_backward(dh + dh2, mlp_cache, "encoder", self.activation, grads, need_dx=False)

    def _decoder_forward(self, z):
        """z: (N, d) -> heads: dict head -> (N, D), cache."""
        p = self.params
        h, mlp_cache = mlp_forward(z, p, "decoder", len(self.hidden), self.activation)
        heads, head_caches = {}, {}
        for name in self.likelihood.heads:
            heads[name], head_caches[name] = affine_forward(h, p[f"decoder.{name}.W"],
                                                            p[f"decoder.{name}.b"])
        return heads, (mlp_cache, head_caches)

    def _decoder_backward(self, dheads, cache, grads):
        """Accumulate ∂L/∂θ into grads from ∂L/∂η (dict head -> (N, D)); return ∂L/∂z (N, d)."""
        mlp_cache, head_caches = cache
        dh = 0
        for name in self.likelihood.heads:
            dh_head, g = affine_backward(dheads[name], head_caches[name])
            grads[f"decoder.{name}.W"], grads[f"decoder.{name}.b"] = g["W"], g["b"]
            dh = dh + dh_head
        return mlp_backward(dh, mlp_cache, "decoder", self.activation, grads)

    def encode(self, x, mask=None):
        """The encoder's q(z|x): (μ, v) of shape (B, d). Missing entries are read as 0."""
        x, _, _ = self._check_inputs(x, 1, None, mask)
        mean, logvar, _ = self._encoder_forward(x)
        return mean, logvar

    def decode(self, z):
        """The decoder's heads η = f_θ(z): dict head -> (..., D) for z of shape (..., d)."""
        z = backend.asarray(z).astype(self.dtype, copy=False)
        heads, _ = self._decoder_forward(z.reshape(-1, self.z_dim))
        return {n: h.reshape(z.shape[:-1] + (self.x_dim,)) for n, h in heads.items()}

    def observation_mean(self, z):
        """E[x | z] under the decoder (Bernoulli probabilities, Gaussian means, ...)."""
        return self.likelihood.mean(**self.decode(z))

    # ------------------------------------------------------------------ the bound
    def forward(self, x, k, eps=None, mask=None, check=True):
        """Encode, reparametrise, decode: the pieces of every bound.

        Returns ``log_px, cache`` with log_px: (K, B) = log p_θ(x|z_k) summed over the
        observed features, and cache a dict holding (among others) ``z`` (K, B, d), ``eps``,
        ``mean``/``logvar`` (B, d) of q(z|x) and ``heads`` (dict head -> (K, B, D)).
        """
        x, eps, mask = self._prepare(x, k, eps, mask, check)
        K, B = eps.shape[0], x.shape[0]
        mean, logvar, enc_cache = self._encoder_forward(x)
        std = xp.exp(0.5 * logvar)
        z = mean + std * eps                                      # (K, B, d)
        heads, dec_cache = self._decoder_forward(z.reshape(K * B, self.z_dim))
        heads = {n: h.reshape(K, B, self.x_dim) for n, h in heads.items()}
        log_px_j = self.likelihood.log_prob(x, **heads)           # (K, B, D)
        if mask is not None:
            log_px_j = log_px_j * mask
        cache = {"x": x, "mask": mask, "eps": eps, "z": z, "mean": mean, "logvar": logvar,
                 "std": std, "heads": heads, "enc": enc_cache, "dec": dec_cache}
        return log_px_j.sum(axis=-1), cache

    @staticmethod
    def log_prior(z):
        """log p(z) = Σ_i log N(z_i; 0, 1), summed over the last axis."""
        return -0.5 * (z * z).sum(axis=-1) - 0.5 * z.shape[-1] * LOG_2PI

    @staticmethod
    def log_posterior_approx(eps, logvar):
        """log q_γ(z|x) at z = μ + exp(½ v) ⊙ ε, written with ε: Σ_i -½ ε_i² - ½ v_i - ½ log 2π.

        (The Jacobian of z ↦ ε is diag(exp(-½ v)), which contributes the -½ v.)
        eps: (K, B, d), logvar: (B, d) -> (K, B).
        """
        return -0.5 * (eps * eps).sum(axis=-1) - 0.5 * logvar.sum(axis=-1) \
            - 0.5 * eps.shape[-1] * LOG_2PI

    def log_weights(self, x, k, eps=None, mask=None, check=True):
        """log w_k = log p_θ(x|z_k) + log p(z_k) - log q_γ(z_k|x), shape (K, B), and the cache."""
        log_px, c = self.forward(x, k, eps, mask, check)
        return log_px + self.log_prior(c["z"]) - self.log_posterior_approx(c["eps"],
                                                                           c["logvar"]), c

    def bound(self, x, k, eps=None, mask=None, check=True):
        """The per-example bound, shape (B,): L_K, or the analytic-KL L_1 for such a VAE."""
        value, _ = self._bound_and_backward_inputs(x, k, eps, mask, check, need_grads=False)
        return value

    def bound_and_grads(self, x, k, eps=None, mask=None, check=True):
        """The mean bound over the batch and its gradient with respect to every parameter.

        Returns ``(bound, grads)``: bound is a 0-d backend scalar (a NumPy scalar on the CPU;
        ``float()`` it to log it), grads a dict with the keys and shapes of ``params``.
        ``check=False`` skips the input checks (which cost a device sync), for a training loop
        that has validated its data once.
        """
        per_example, pieces = self._bound_and_backward_inputs(x, k, eps, mask, check,
                                                              need_grads=True)
        grads = self._backward(*pieces)
        return per_example.mean(), grads

    def _bound_and_backward_inputs(self, x, k, eps, mask, check, need_grads):
        """The per-example bound and what the shared backward needs.

        Both objectives are written as a weighting ``g`` (K, B) of the log p_θ(x|z_k) terms
        plus the gradient of the remaining (prior and encoder) terms with respect to z, μ, v:

        - IWAE:  L_K = logsumexp_k(log w_k) - log K, ∂L_K/∂ log w_k = w̃_k. log w depends on
          z through log p(x|z) and log p(z) (∂/∂z = -z), and on v at fixed ε through
          -log q = ... + ½ Σ v (∂/∂v = ½).
        - VAE, analytic KL:  L_1 = (1/K) Σ_k log p(x|z_k) - KL, KL = ½ Σ (μ² + e^v - 1 - v):
          g = 1/K, ∂(-KL)/∂μ = -μ, ∂(-KL)/∂v = -½ (e^v - 1).

        Everything is divided by B since the returned value is the batch mean.
        """
        if self.analytic_kl:
            log_px, c = self.forward(x, k, eps, mask, check)
            mean, logvar = c["mean"], c["logvar"]
            kl = 0.5 * (mean * mean + xp.exp(logvar) - 1 - logvar).sum(axis=-1)
            per_example = log_px.mean(axis=0) - kl
            if not need_grads:
                return per_example, None
            K, B = log_px.shape
            g = xp.full(log_px.shape, 1.0 / (K * B), dtype=self.dtype)
            dz = 0
            dmean = -mean / B
            dlogvar = -0.5 * xp.expm1(logvar) / B
        else:
            log_w, c = self.log_weights(x, k, eps, mask, check)
            lse, normalized_weights = logsumexp_weights(log_w)
            per_example = lse - math.log(log_w.shape[0])
            if not need_grads:
                return per_example, None
            B = log_w.shape[1]
            g = normalized_weights / B                             # ∂(mean L_K)/∂ log w_k
            dz = -c["z"] * g[..., None]                            # through log p(z)
            dmean = 0
            dlogvar = 0.5 * g.sum(axis=0)[:, None]                 # through -log q at fixed ε
        return per_example, (g, dz, dmean, dlogvar, c)

    def _backward(self, g, dz, dmean, dlogvar, c):
        """Back-propagate: weights g (K, B) on log p(x|z_k), plus direct terms on z, μ, v.

        ∂L/∂η_kbj = g_kb · m_bj · ∂ log Φ(x_bj | η_kbj)/∂η   (m the mask, 1 if none)
        ∂L/∂z = decoder backward + dz
        ∂L/∂μ = Σ_k ∂L/∂z_k + dmean            (z = μ + exp(½ v) ε)
        ∂L/∂v = Σ_k ∂L/∂z_k ⊙ ε_k ⊙ ½ exp(½ v) + dlogvar
        """
        grads = {}
        K, B, _ = c["z"].shape
        scale = g[..., None] if c["mask"] is None else g[..., None] * c["mask"]
        dheads = self.likelihood.log_prob_grads(c["x"], **c["heads"])
        dheads = {n: (d * scale).reshape(K * B, self.x_dim) for n, d in dheads.items()}
        dz = self._decoder_backward(dheads, c["dec"], grads).reshape(K, B, self.z_dim) + dz
        dmean = dz.sum(axis=0) + dmean
        dlogvar = (dz * c["eps"]).sum(axis=0) * (0.5 * c["std"]) + dlogvar
        self._encoder_backward(dmean, dlogvar, c["enc"], grads)
        return {name: grads[name] for name in self.params}


class VAE(IWAE):
    """The variational autoencoder: the same model, bound with K = 1 by default.

    ``analytic_kl=True`` uses L_1 = E_q[log p(x|z)] - KL(q(z|x) ‖ p(z)) with the Gaussian KL in
    closed form, KL = ½ Σ_i (μ_i² + e^{v_i} - 1 - v_i), and the expectation estimated with
    k samples; ``analytic_kl=False`` is exactly IWAE with k = 1. Same parameters, same code.
    """

    def __init__(self, x_dim, z_dim, hidden=(200, 200), activation="tanh",
                 likelihood="bernoulli", dtype="float32", seed=0, analytic_kl=True):
        super().__init__(x_dim, z_dim, hidden, activation, likelihood, dtype, seed)
        self.analytic_kl = bool(analytic_kl)

    def get_config(self):
        return dict(super().get_config(), analytic_kl=self.analytic_kl)

    def bound(self, x, k=1, eps=None, mask=None, check=True):
        return super().bound(x, k, eps, mask, check)

    def bound_and_grads(self, x, k=1, eps=None, mask=None, check=True):
        return super().bound_and_grads(x, k, eps, mask, check)
