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

Every step of the bound is a function of :mod:`minivae.bound` (the functions labs 5, 6 and 8
ask for), with its hand-derived backward; :meth:`IWAE.bound_and_grads` composes them in the
lecture's order. :mod:`minivae.gradcheck` checks the result against finite differences.
Shapes: B examples, D = x_dim features, d = z_dim latent dimensions, K samples.
"""
import math

import numpy

from . import backend, memory, threads, validate
from .backend import xp
from .bound import (ESTIMATORS, encoder_backward, head_grads, iwae_bound, kl_divergence,
                    kl_grads, log_prior, log_q, logsumexp_weights, masked_log_likelihood,
                    masked_log_weights, reparametrize, reparametrize_backward)
from .layers import ACTIVATIONS, affine_backward, affine_forward, mlp_backward, mlp_forward
from .likelihoods import NAMES, make as make_likelihood
from .workspace import Workspace


class Diverged(ArithmeticError):
    """A NaN or inf where a finite number is needed (the bound, a gradient or a parameter);
    the message says where. The one divergence exception of minivae (the command line's exit
    code 1), raised by :meth:`IWAE.bound_and_grads` when checking and by the training loop."""

DTYPES = validate.FLOAT_DTYPES


# ---------------------------------------------------------------------- the two networks
class Encoder:
    """q_γ(z|x) = N(z; μ_γ(x), diag e^{v_γ(x)}): an MLP and two affine heads, μ and v.

    Reads its weights from ``params`` (the model's dict, updated in place by the optimizer):
    ``encoder.{i}.W/b`` for the hidden layers, ``encoder.mean.W/b`` and ``encoder.logvar.W/b``.
    """

    def __init__(self, params, n_hidden, activation):
        self.params, self.n_hidden, self.activation = params, n_hidden, activation

    def forward(self, x):
        """x: (B, D) -> mean μ, logvar v: (B, d), cache."""
        p = self.params
        h, mlp_cache = mlp_forward(x, p, "encoder", self.n_hidden, self.activation)
        mean, mean_cache = affine_forward(h, p["encoder.mean.W"], p["encoder.mean.b"])
        logvar, logvar_cache = affine_forward(h, p["encoder.logvar.W"], p["encoder.logvar.b"])
        return mean, logvar, (mlp_cache, mean_cache, logvar_cache)

    def backward(self, dmean, dlogvar, cache, grads):
        """From ∂L/∂μ and ∂L/∂v (B, d), store ∂L/∂γ in grads. x is data: no ∂L/∂x is computed."""
        mlp_cache, mean_cache, logvar_cache = cache
        hidden = self.n_hidden > 0                    # with no hidden layer the heads read x
        dh_mean, grads["encoder.mean.W"], grads["encoder.mean.b"] = \
            affine_backward(dmean, mean_cache, need_dx=hidden)
        dh_logvar, grads["encoder.logvar.W"], grads["encoder.logvar.b"] = \
            affine_backward(dlogvar, logvar_cache, need_dx=hidden)
        if hidden:
            mlp_backward(dh_mean + dh_logvar, mlp_cache, "encoder", self.activation, grads,
                         need_dx=False)


class Decoder:
    """η = f_θ(z): an MLP and one affine head per parameter of the observation model.

    Weights ``decoder.{i}.W/b`` and ``decoder.{head}.W/b`` in ``params``. Works on z of any
    leading shape (..., d), e.g. (K, B, d), flattened to rows for the matrix products. Head h
    has shape (..., *head_shapes[h]): (..., D), or (..., D, C) for the categorical model, whose
    affine head outputs D · C numbers per row (feature-major: column j·C + c is ℓ_jc), or a
    mixed model's group shapes (..., D_g) and (..., D_g, C).
    """

    def __init__(self, params, n_hidden, activation, heads, head_shapes):
        self.params, self.n_hidden, self.activation, self.heads = \
            params, n_hidden, activation, heads
        self.head_shapes = {h: tuple(head_shapes[h]) for h in heads}

    def forward(self, z):
        """z: (..., d) -> heads: dict head -> (..., *head_shapes[head]), cache."""
        p = self.params
        lead = z.shape[:-1]
        h, mlp_cache = mlp_forward(z.reshape(-1, z.shape[-1]), p, "decoder", self.n_hidden,
                                   self.activation)
        heads, head_caches = {}, {}
        for name in self.heads:
            eta, head_caches[name] = affine_forward(h, p[f"decoder.{name}.W"],
                                                    p[f"decoder.{name}.b"])
            heads[name] = eta.reshape(lead + self.head_shapes[name])
        return heads, (lead, mlp_cache, head_caches)

    def backward(self, dheads, cache, grads):
        """From ∂L/∂η (dict head -> (..., D)), store ∂L/∂θ in grads; return ∂L/∂z (..., d)."""
        lead, mlp_cache, head_caches = cache
        dh = None
        for name in self.heads:
            d = dheads[name]
            rows = d.reshape(-1, self.params[f"decoder.{name}.b"].shape[0])   # (N, D·per)
            dh_head, grads[f"decoder.{name}.W"], grads[f"decoder.{name}.b"] = \
                affine_backward(rows, head_caches[name])
            dh = dh_head if dh is None else dh + dh_head     # (one head: no copy)
        dz = mlp_backward(dh, mlp_cache, "decoder", self.activation, grads)
        return dz.reshape(lead + dz.shape[-1:])


# ---------------------------------------------------------------------- the model
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
    likelihood : "bernoulli", "gaussian", "student_t", "categorical" or "mixed" (see
        :mod:`minivae.likelihoods`).
    dtype : "float32" (default) or "float64" (what gradient checks use).
    seed : int >= 0
        Seeds the Glorot-uniform initialisation and the generator of the noise ε.
    n_categories : int
        C, the number of codes per feature, for ``likelihood="categorical"`` (None otherwise).
    estimator : "iwae" (default), "stl" or "dreg"
        The estimator of the encoder's gradient in :meth:`bound_and_grads`: the reparametrised
        IWAE gradient, sticking the landing (Roeder et al. 2017) or the doubly reparametrised
        gradient (Tucker et al. 2019), see :func:`minivae.bound.encoder_backward` and
        docs/estimators.md. The bound and the decoder's gradient are the same for all three.
    column_types : list
        For ``likelihood="mixed"`` (None otherwise): one entry per feature, "gaussian",
        "student_t", "bernoulli" or an integer C >= 2 for a categorical column with C codes
        (:class:`minivae.likelihoods.Mixed`: one set of decoder heads per group of columns).

    Attributes
    ----------
    params : dict name -> array
        The live arrays the model computes with (an optimizer updates them in place).
        Names: ``encoder.{i}.W/b`` and ``decoder.{i}.W/b`` for hidden layers, ``encoder.mean``,
        ``encoder.logvar`` and one ``decoder.{head}`` per likelihood head, each with ``.W`` of
        shape (in, out) and ``.b`` of shape (out,); every affine map computes ``h @ W + b``.
        A categorical head ``decoder.logits`` has out = D · C (column j·C + c is ℓ_jc); a mixed
        model's heads are named by group, e.g. ``decoder.student_t.loc`` (out = D_g) and
        ``decoder.categorical4.logits`` (out = 4 D_g).
    encoder, decoder : :class:`Encoder`, :class:`Decoder` computing with ``params``.
    workspace : :class:`minivae.workspace.Workspace`, the arrays :meth:`bound_and_grads` reuses
        from one step to the next (its largest, (K, B, D) each).
    """

    #: Which objective :meth:`bound` computes: L_K here; :class:`VAE` can use the analytic KL.
    analytic_kl = False

    def __init__(self, x_dim, z_dim, hidden=(200, 200), activation="tanh",
                 likelihood="bernoulli", dtype="float32", seed=0, n_categories=None,
                 estimator="iwae", column_types=None):
        self.x_dim = validate.positive_int("x_dim", x_dim)
        self.z_dim = validate.positive_int("z_dim", z_dim)
        self.hidden = validate.hidden(hidden)
        self.activation = validate.choice("activation", activation, ACTIVATIONS)
        self.likelihood = make_likelihood(validate.choice("likelihood", likelihood, NAMES),
                                          n_categories, column_types)
        self.n_categories = None if n_categories is None else self.likelihood.n_categories
        self.column_types = None if column_types is None else list(self.likelihood.column_types)
        if self.column_types is not None and len(self.column_types) != self.x_dim:
            raise ValueError(f"column_types has {len(self.column_types)} entries for "
                             f"x_dim={self.x_dim} features")
        # Every head has shape (..., D), or (..., D, C) for the categorical model (a mixed
        # model's: (..., D_g) or (..., D_g, C) for each group g of columns).
        self.head_shapes = {h: self.likelihood.head_shape(h, self.x_dim)
                            for h in self.likelihood.heads}
        self.dtype = validate.dtype(dtype)
        self.seed = validate.seed("seed", seed)
        self.estimator = validate.choice("estimator", estimator, ESTIMATORS)
        memory.check(f"{type(self).__name__}(x_dim={self.x_dim}, z_dim={self.z_dim}, "
                     f"hidden={self.hidden})", memory.model_bytes(
                         self.x_dim, self.z_dim, self.hidden, self._head_values,
                         self.dtype, training=False), "choose smaller sizes")
        self.params = self._init_params(self.seed)
        self.encoder = Encoder(self.params, len(self.hidden), self.activation)
        self.decoder = Decoder(self.params, len(self.hidden), self.activation,
                               self.likelihood.heads, self.head_shapes)
        self.rng = backend.default_rng(self.seed)
        self.workspace = Workspace()          # bound_and_grads's arrays, reused at every step
        self._workspaces = {}                 # and those of its further threads' blocks

    # ------------------------------------------------------------------ set-up
    def get_config(self):
        """The constructor's arguments: ``type(model)(**model.get_config())`` rebuilds it."""
        return {"x_dim": self.x_dim, "z_dim": self.z_dim, "hidden": list(self.hidden),
                "activation": self.activation, "likelihood": self.likelihood.name,
                "dtype": self.dtype, "seed": self.seed, "n_categories": self.n_categories,
                "estimator": self.estimator, "column_types": self.column_types}

    def _layer_shapes(self):
        """(name, fan_in, fan_out) of every affine map, in a fixed order."""
        enc = (self.x_dim,) + self.hidden
        dec = (self.z_dim,) + self.hidden[::-1]
        shapes = [(f"encoder.{i}", enc[i], enc[i + 1]) for i in range(len(self.hidden))]
        shapes += [(f"encoder.{h}", enc[-1], self.z_dim) for h in ("mean", "logvar")]
        shapes += [(f"decoder.{i}", dec[i], dec[i + 1]) for i in range(len(self.hidden))]
        shapes += [(f"decoder.{h}", dec[-1], math.prod(self.head_shapes[h]))
                   for h in self.likelihood.heads]
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
        extra = "" if self.n_categories is None else f", n_categories={self.n_categories}"
        extra += "" if self.column_types is None else f", column_types={self.column_types}"
        extra += "" if self.estimator == "iwae" else f", estimator={self.estimator!r}"
        return (f"{kind}(x_dim={self.x_dim}, z_dim={self.z_dim}, hidden={self.hidden}, "
                f"activation={self.activation!r}, likelihood={self.likelihood.name!r}, "
                f"dtype={self.dtype!r}, seed={self.seed}{extra})")

    # ------------------------------------------------------------------ input checks
    def _check_inputs(self, x, k, eps, mask):
        """Convert to the backend and dtype; reject anything that would give a wrong number."""
        k = validate.positive_int("k (the number of importance samples)", k)
        x = backend.asarray(x)
        validate.shape("x", x, (None, self.x_dim))
        validate.nonempty("x", x)                   # B = 0: the batch mean is undefined
        if mask is not None:
            mask = backend.asarray(mask)
            if mask.dtype != bool or mask.shape != x.shape:
                raise ValueError(f"mask must be a boolean array of shape {tuple(x.shape)} "
                                 f"(True = observed), got {mask.dtype} {tuple(mask.shape)}")
            if x.dtype.kind in "biuf":
                x = xp.where(mask, x, 0)               # missing: whatever, NaN too
        # Real and finite in the model's dtype: a complex x is refused, not truncated, and a
        # finite 1e39 "overflows float32" rather than being called NaN or inf.
        x = validate.finite_real_array("x", x, self.dtype, allow_bool=True)
        if self.likelihood.name == "bernoulli" and not bool(((x == 0) | (x == 1)).all()):
            raise ValueError("likelihood 'bernoulli' needs binary x (0 or 1 in every observed "
                             "entry); binarise the data first")
        if self.likelihood.name in ("categorical", "mixed"):
            self.likelihood.check(x)
        if eps is not None:
            eps = validate.shape("eps", backend.asarray(eps), (k, x.shape[0], self.z_dim))
            eps = validate.finite_real_array("eps", eps, self.dtype)
        return x, eps, mask

    @property
    def _head_values(self):
        """Decoder outputs per feature (one per head; C for a categorical head; on average for
        a mixed model)."""
        return sum(math.prod(s) for s in self.head_shapes.values()) / self.x_dim

    def _k_chunk(self, k, batch):
        """None when a step of k·batch rows fits in memory; else the largest number of samples
        per chunk that does (K = 100,000 with B = 20 would otherwise allocate until the machine
        swaps); a batch too large for even one sample at a time is refused."""
        available = memory.available_bytes()
        if available is None:
            return None
        row = memory.step_bytes(1, self.x_dim, self.z_dim, self.hidden, self._head_values,
                                self.dtype)
        if row * k * batch <= memory.USABLE * available:
            return None
        kept = (k * batch * (self.z_dim + 2)) * numpy.dtype(self.dtype).itemsize   # ε, log w, w̃
        memory.check(f"a step with k={k} and a batch of {batch}", kept + row * batch,
                      "use a smaller batch", available)
        return max(1, int((memory.USABLE * available - kept) // (row * batch)))

    def _inputs(self, x, k, eps, mask, check):
        """x, ε (drawn from the model's generator if None) and the mask, ready to compute with."""
        if check:
            x, eps, mask = self._check_inputs(x, k, eps, mask)
        elif mask is not None:
            x = xp.where(mask, x, 0).astype(self.dtype, copy=False)
        if eps is None:
            eps = self.rng.standard_normal((k, x.shape[0], self.z_dim), dtype=self.dtype)
        return x, eps, mask

    # ------------------------------------------------------------------ encoder and decoder
    def encode(self, x, mask=None):
        """The encoder's q(z|x): (μ, v) of shape (B, d). Missing entries are read as 0."""
        x, _, _ = self._check_inputs(x, 1, None, mask)
        mean, logvar, _ = self.encoder.forward(x)
        return mean, logvar

    def decode(self, z):
        """The decoder's heads η = f_θ(z): dict head -> (..., D) for z of shape (..., d)
        ((..., D, C) for the categorical model).

        z must be real and finite (a complex z is refused, not silently made real)."""
        z = validate.finite_real_array("z", backend.asarray(z), self.dtype)
        if z.ndim < 1 or z.shape[-1] != self.z_dim:
            raise ValueError(f"z must have shape (..., {self.z_dim}), got {tuple(z.shape)}")
        heads, _ = self.decoder.forward(z)
        return heads

    def observation_mean(self, z):
        """E[x | z] under the decoder (Bernoulli probabilities, Gaussian means, ...)."""
        return self.likelihood.mean(**self.decode(z))

    def sample_observation(self, z, rng=None):
        """A draw x ~ p_θ(x|z), shape (..., D), for z of shape (..., d); ``rng`` a generator
        of the backend (default: the model's own)."""
        return self.likelihood.sample(**self.decode(z), rng=self.rng if rng is None else rng)

    # ------------------------------------------------------------------ the bound's pieces
    def forward(self, x, k, eps=None, mask=None, check=True):
        """Encode, reparametrise, decode: the pieces of every bound.

        Returns ``log_px, cache`` with log_px: (K, B) = log p_θ(x|z_k) summed over the
        observed features, and cache a dict of ``x`` (B, D) as computed with, ``mask``,
        ``eps`` and ``z`` (K, B, d), ``mean``/``logvar`` (B, d) of q(z|x) and ``heads``
        (dict head -> (K, B, D)).
        """
        x, eps, mask = self._inputs(x, k, eps, mask, check)
        mean, logvar, _ = self.encoder.forward(x)
        z = reparametrize(mean, logvar, eps)
        heads, _ = self.decoder.forward(z)
        log_phi, c = self.likelihood.log_prob_terms(x, **heads)     # log Φ = log_phi + c
        log_px = masked_log_likelihood(log_phi, mask) + self._observed(c, mask, z.dtype)
        return log_px, {"x": x, "mask": mask, "eps": eps, "z": z, "mean": mean,
                        "logvar": logvar, "heads": heads}

    def _observed(self, c, mask, dtype):
        """Σ_j m_j c, the sum over the observed features of a constant c: (B,) or a number."""
        if mask is None or not c:
            return c * self.x_dim
        return c * mask.sum(axis=-1, dtype=dtype)

    log_prior = staticmethod(log_prior)
    log_posterior_approx = staticmethod(log_q)

    def log_weights(self, x, k, eps=None, mask=None, check=True):
        """log w_k = log p_θ(x|z_k) + log p(z_k) - log q_γ(z_k|x), shape (K, B), and the cache
        of :meth:`forward`."""
        log_px, c = self.forward(x, k, eps, mask, check)
        return log_px + log_prior(c["z"]) - log_q(c["eps"], c["logvar"]), c

    def bound(self, x, k, eps=None, mask=None, check=True):
        """The per-example bound L_K(x_b), shape (B,)."""
        log_w, _ = self.log_weights(x, k, eps, mask, check)
        return iwae_bound(log_w)

    # ------------------------------------------------------------------ the bound and its gradient
    def _finite(self, bound, grads, check):
        """(bound, grads in the order of params); when checking, a NaN or inf in any of them
        is a :class:`Diverged` saying so, not numbers that look like a result (one sync)."""
        grads = {name: grads[name] for name in self.params}
        if check:
            ok = xp.isfinite(bound)
            for g in grads.values():
                ok = ok & xp.isfinite(g).all()
            if not bool(ok):
                what = "a gradient" if bool(xp.isfinite(bound)) else "the bound"
                raise Diverged(f"{what} is not finite in {self.dtype} (bound "
                               f"{float(bound):.6g}): a log-density, log p(z) or log q(z|x) "
                               f"overflows {self.dtype} (e.g. a log-variance or log-scale near "
                               "±100, or data far from the model); try dtype='float64', "
                               "standardised data or a smaller learning rate")
        return bound, grads

    def bound_and_grads(self, x, k, eps=None, mask=None, check=True, estimator=None,
                        k_chunk=None):
        """The mean bound over the batch and its gradient with respect to every parameter.

        Returns ``(bound, grads)``: bound is a 0-d backend scalar (a NumPy scalar on the CPU;
        ``float()`` it to log it), grads a dict with the keys and shapes of ``params``.
        ``check=False`` skips the input checks (which cost a device sync), for a training loop
        that has validated its data once. ``estimator`` ("iwae", "stl", "dreg"; default the
        model's) chooses the encoder's gradient estimator; the decoder's is the same for all.
        ``k_chunk`` sends at most that many of the K samples through the decoder at once
        (:meth:`_bound_and_grads_chunked`: the same numbers, up to rounding, in less memory);
        when checking, a K·B step too large for memory is chunked by itself, so that a large K
        is slow rather than fatal.

        The forward pass in the lecture's order, then the backward pass in reverse:
        ∂L/∂log w_k = w̃_k / B weights every sample's log p_θ(x|z_k) (decoder) and its
        dependence on μ and v through z_k, log p(z_k) and log q_γ(z_k|x) (encoder).
        """
        estimator = self.estimator if estimator is None else \
            validate.choice("estimator", estimator, ESTIMATORS)
        x, eps, mask = self._inputs(x, k, eps, mask, check)
        if check and k_chunk is None:
            k_chunk = self._k_chunk(k, x.shape[0])
        if k_chunk is not None and validate.positive_int("k_chunk", k_chunk) < k:
            return self._bound_and_grads_chunked(x, eps, mask, k_chunk, check, estimator)
        return self._in_blocks(lambda *block: self._step(*block, estimator), x, eps, mask, check)

    def _in_blocks(self, step, x, eps, mask, check):
        """The batch mean of the bound and its gradient from ``step(x, eps, mask, B, work)`` ->
        (per-example bound, gradient of the block's Σ_b bound_b / B): with more than one thread
        (:mod:`minivae.threads`), on blocks of examples side by side, each with one BLAS
        thread, whose gradients add up to the batch's; with one, on the whole batch."""
        B = x.shape[0]
        parts = threads.map_rows(lambda rows, part: step(
            x[rows], eps[:, rows], None if mask is None else mask[rows], B,
            self._workspace(part)), B)
        bound, grads = parts[0]
        if len(parts) > 1:
            bound = xp.concatenate([b for b, _ in parts])
            for _, more in parts[1:]:                                # in block order
                for name in grads:
                    grads[name] += more[name]
        return self._finite(bound.mean(), grads, check)

    def _workspace(self, part):
        """The workspace of block ``part`` of a step (:meth:`bound_and_grads`): ``workspace``
        for the first (the only one with one thread), one more per further thread."""
        return self.workspace if part == 0 else self._workspaces.setdefault(part, Workspace())

    def _step(self, x, eps, mask, n_batch, work, estimator):
        """L_K(x_b), (B,), and the gradient of Σ_b L_K(x_b) / n_batch (n_batch = B for the
        batch mean; the batch size when x is one block of it), the body of
        :meth:`bound_and_grads`."""
        mean, logvar, enc = self.encoder.forward(x)                  # q_γ(z|x) = N(μ, diag e^v)
        z = reparametrize(mean, logvar, eps)                         # z_k = μ + e^{v/2} ε_k
        heads, dec = self.decoder.forward(z)                         # η_k = f_θ(z_k), (K, B, D)
        # log Φ(x_j | η_kj) - c and ∂ log Φ/∂η / a together, into arrays reused from step to
        # step; the constants c and a go to the (K, B) arrays below, not the (K, B, D) ones.
        log_phi, c, dlogphi, a = self.likelihood.step_terms(x, work=work, **heads)
        log_w = masked_log_weights(log_phi, mask, z, eps, logvar)    # (K, B)
        log_w += self._observed(c, mask, log_w.dtype)                # Σ_j m_j c
        # iwae_bound and iwae_bound_grad in one pass (on the GPU, one fused kernel launch):
        lse, normalized_weights = logsumexp_weights(log_w)
        bound = lse - math.log(log_w.shape[0])                       # L_K(x_b), (B,)

        grads = {}
        g = normalized_weights / n_batch                             # ∂(mean_b L_K)/∂log w = w̃/B
        head_mask = self.likelihood.head_mask       # the mask each head sees (mixed: its group's)
        dz = self.decoder.backward({h: head_grads(g * a, d, head_mask(h, mask), out=d)  # in place
                                    for h, d in dlogphi.items()}, dec, grads)
        # The encoder's gradient: IWAE's (path and score), STL's (path) or DReG's (w̃² path).
        dmean, dlogvar = encoder_backward(estimator, normalized_weights, g, dz, z, eps, logvar)
        self.encoder.backward(dmean, dlogvar, enc, grads)
        return bound, grads

    def _bound_and_grads_chunked(self, x, eps, mask, k_chunk, check, estimator):
        """:meth:`bound_and_grads` with the K samples in chunks of ``k_chunk``, in two passes.

        L_K needs all K log-weights before any weight w̃_k is known, so pass 1 computes log w
        chunk by chunk, keeping only that (K, B) array; pass 2 recomputes each chunk's forward
        pass and adds its share of the gradient, with w̃ and g = w̃/B restricted to the chunk.
        Every gradient is a sum over k, so the sum over chunks is the same gradient (twice the
        decoder's forward work; the memory of one chunk).
        """
        B, K = x.shape[0], eps.shape[0]
        mean, logvar, enc = self.encoder.forward(x)
        chunks = [slice(s, min(s + k_chunk, K)) for s in range(0, K, k_chunk)]

        def forward(c):
            z = reparametrize(mean, logvar, eps[c])
            heads, dec = self.decoder.forward(z)
            return z, heads, dec

        pieces = []
        for c in chunks:                                             # pass 1: log w, (K, B)
            z, heads, _ = forward(c)
            log_phi, const = self.likelihood.log_prob_terms(x, **heads)
            pieces.append(masked_log_weights(log_phi, mask, z, eps[c], logvar)
                          + self._observed(const, mask, z.dtype))
        lse, normalized_weights = logsumexp_weights(xp.concatenate(pieces))
        bound = lse - math.log(K)
        g = normalized_weights / B
        grads = {n: xp.zeros_like(p) for n, p in self.params.items()
                 if n.startswith("decoder.")}
        dmean = dlogvar = 0
        for c in chunks:                                             # pass 2: the gradient
            z, heads, dec = forward(c)
            _, _, dlogphi, a = self.likelihood.step_terms(x, work=self.workspace, **heads)
            part = {}
            dz = self.decoder.backward({h: head_grads(g[c] * a, d,
                                                      self.likelihood.head_mask(h, mask), out=d)
                                        for h, d in dlogphi.items()}, dec, part)
            for name, value in part.items():
                grads[name] += value
            dm, dv = encoder_backward(estimator, normalized_weights[c], g[c], dz, z, eps[c],
                                      logvar)
            dmean, dlogvar = dmean + dm, dlogvar + dv
        self.encoder.backward(dmean, dlogvar, enc, grads)
        return self._finite(bound.mean(), grads, check)


class VAE(IWAE):
    """The variational autoencoder: the same model, bound with K = 1 by default.

    ``analytic_kl=True`` uses L_1 = E_q[log p(x|z)] - KL(q(z|x) ‖ p(z)) with the Gaussian KL in
    closed form (:func:`minivae.bound.kl_divergence`), and the expectation estimated with
    k samples; ``analytic_kl=False`` is exactly IWAE with k = 1. Same parameters, same code.
    """

    def __init__(self, x_dim, z_dim, hidden=(200, 200), activation="tanh",
                 likelihood="bernoulli", dtype="float32", seed=0, analytic_kl=True,
                 n_categories=None, estimator="iwae", column_types=None):
        super().__init__(x_dim, z_dim, hidden, activation, likelihood, dtype, seed,
                         n_categories, estimator, column_types)
        self.analytic_kl = validate.boolean("analytic_kl", analytic_kl)
        if self.analytic_kl and self.estimator != "iwae":
            raise ValueError(f"estimator {self.estimator!r} is for the importance weighted "
                             "bound; the analytic-KL VAE bound has no score term to drop (use "
                             "analytic_kl=False)")

    def get_config(self):
        return dict(super().get_config(), analytic_kl=self.analytic_kl)

    def bound(self, x, k=1, eps=None, mask=None, check=True):
        """The per-example bound, shape (B,): L_1 with the analytic KL, or L_K (= L_1 for k = 1)."""
        if not self.analytic_kl:
            return super().bound(x, k, eps, mask, check)
        log_px, c = self.forward(x, k, eps, mask, check)
        return log_px.mean(axis=0) - kl_divergence(c["mean"], c["logvar"])

    def bound_and_grads(self, x, k=1, eps=None, mask=None, check=True, estimator=None):
        """The mean over the batch of L_1 = (1/K) Σ_k log p_θ(x|z_k) - KL(q_γ(z|x) ‖ p(z)) and
        its gradient (or, with ``analytic_kl=False``, of L_K by :meth:`IWAE.bound_and_grads`,
        with the ``estimator`` asked for).

        The same steps as the IWAE's, with every log p_θ(x|z_k) weighted 1/(K B) and the KL's
        gradient in closed form instead of log p(z) - log q(z|x) through the samples.
        """
        if not self.analytic_kl:
            return super().bound_and_grads(x, k, eps, mask, check, estimator)
        if estimator not in (None, "iwae"):
            raise ValueError(f"estimator {estimator!r} is for the importance weighted bound, "
                             "not the analytic-KL VAE bound")
        x, eps, mask = self._inputs(x, k, eps, mask, check)
        K, B = eps.shape[0], x.shape[0]
        if check and self._k_chunk(K, B) is not None:                # not chunked: refused
            raise memory.TooLarge(f"a step with k={K} and a batch of {B} does not fit in memory "
                                  f"with analytic_kl=True; use a smaller k or batch")
        return self._in_blocks(self._analytic_step, x, eps, mask, check)

    def _analytic_step(self, x, eps, mask, n_batch, work):
        """L_1(x_b), (B,), and the gradient of Σ_b L_1(x_b) / n_batch (see IWAE._step)."""
        K, B = eps.shape[0], x.shape[0]
        mean, logvar, enc = self.encoder.forward(x)                  # q_γ(z|x) = N(μ, diag e^v)
        z = reparametrize(mean, logvar, eps)                         # z_k = μ + e^{v/2} ε_k
        heads, dec = self.decoder.forward(z)                         # η_k = f_θ(z_k), (K, B, D)
        # log Φ - c and ∂ log Φ/∂η / a, as in IWAE.bound_and_grads
        log_phi, c, dlogphi, a = self.likelihood.step_terms(x, work=work, **heads)
        log_px = masked_log_likelihood(log_phi, mask) + self._observed(c, mask, z.dtype)  # (K, B)
        bound = log_px.mean(axis=0) - kl_divergence(mean, logvar)    # L_1(x_b), (B,)

        grads = {}
        g = xp.full((K, B), 1.0 / (K * n_batch), dtype=self.dtype)   # ∂(mean_b L_1)/∂log p(x|z_k)
        dz = self.decoder.backward({h: head_grads(g * a, d, self.likelihood.head_mask(h, mask),
                                                  out=d)
                                    for h, d in dlogphi.items()}, dec, grads)
        dmean, dlogvar = reparametrize_backward(dz, eps, logvar)     # E_q[log p(x|z)] through z
        kl_dmean, kl_dlogvar = kl_grads(mean, logvar)                # - KL, in closed form
        self.encoder.backward(dmean - kl_dmean / n_batch, dlogvar - kl_dlogvar / n_batch, enc,
                              grads)
        return bound, grads
