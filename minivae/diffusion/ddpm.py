"""A denoising diffusion probabilistic model (Ho, Jain & Abbeel 2020): one object for training,
bounding the likelihood and sampling, built from the pieces of this package.

    model = DDPM(x_dim=2, T=100, hidden=(128, 128))
    loss, grads = model.loss_and_grads(x0)       # L_simple and ∂L_simple/∂θ (loss.py)
    value, grads = model.objective_and_grads(x0) # −L_simple and its gradient, to maximise
    opt.step(grads)                              # (minivae's optimizers ascend)
    bound = model.bound(x_test)                  # −L_vlb ≤ log p_θ(x_0), nats per example
    x = model.sample(100, sampler="ddim")

The parameters are the denoiser's (denoiser.py or resmlp.py) in ``params``, live arrays that an
optimizer updates in place, as :class:`minivae.IWAE`'s; with ``ema_decay`` > 0 the model also
keeps their moving average ``ema`` (``update_ema()`` after each step), which sampling and the
bound then use. ``rng`` (the backend's generator) draws the steps
t and noises ε of training; evaluation and sampling take their own generators, so that scoring
a model never changes its training stream.
"""
from .. import backend, threads, validate
from ..backend import xp
from .denoiser import denoiser_backward, denoiser_forward, denoiser_shapes, init_denoiser
from .resmlp import init_resmlp, resmlp_backward, resmlp_forward, resmlp_shapes
from .unet import init_unet, unet_backward, unet_forward, unet_shapes
from .loss import simple_loss
from .sampling import SAMPLERS, ancestral_sample, ddim_sample
from .schedule import Schedule
from .forward import q_sample
from .vlb import DECODERS, bits_per_dim, vlb_term, vlb_terms, prior_kl

ACTIVATIONS = ("relu", "tanh", "softplus")
#: The denoiser architectures: name -> (init, forward, backward, shapes) (denoiser.py,
#: resmlp.py, unet.py); each shapes row starts (name, fan_in, fan_out).
DENOISERS = {"mlp": (init_denoiser, denoiser_forward, denoiser_backward, denoiser_shapes),
             "resmlp": (init_resmlp, resmlp_forward, resmlp_backward, resmlp_shapes),
             "unet": (init_unet, unet_forward, unet_backward, unet_shapes)}
#: Arguments added after the first models were saved, with the values those models used: a
#: saved configuration without them (an older checkpoint or run directory) means these.
LEGACY = dict(denoiser="mlp", ema_decay=0.0, local=0, ema_warmup=0)


def n_denoiser_params(denoiser, x_dim, hidden, time_dim, local=0):
    """The number of parameters of a denoiser (weights and biases), without building it."""
    extra = {"local": local} if local else {}
    return sum((row[1] + 1) * row[2]
               for row in DENOISERS[denoiser][3](x_dim, hidden, time_dim, **extra))


class DDPM:
    """A diffusion model over (N, x_dim) data with an ε-predicting MLP denoiser.

    x_dim : data dimension D.
    T : number of diffusion steps (latent layers x_1..x_T).
    schedule : "linear" or "cosine" β_t (schedule.py).
    variance : σ_t² of the reverse steps, "beta" (β_t) or "posterior" (β̃_t).
    denoiser : "mlp" (denoiser.py, the time features concatenated to every layer's input),
        "resmlp" (resmlp.py: residual blocks, FiLM time modulation, a skip from x_t) or "unet"
        (unet.py: a small U-Net of 3 × 3 convolutions, for square images).
    local : the channels C of the resmlp's local branch (local.py: a small convolutional net on
        each pixel's 5 × 5 neighbourhood, for square images), 0 for none.
    hidden, time_dim, activation : the denoiser's hidden widths (resmlp: one width repeated
        once per block; unet: the channels per resolution level), the time embedding's
        dimension E (even), and the hidden activation.
    ema_decay : 0 (off) or the decay d of an exponential moving average of the parameters,
        θ̄ ← d_n θ̄ + (1 − d_n) θ after optimizer step n (:meth:`update_ema`); sampling and the
        bound then use θ̄ (see :attr:`eval_params`).
    ema_warmup : w > 0 warms the average up, d_n = min(d, (1 + n) / (w + n)); 0: d_n = d.
    decoder : "gaussian" (continuous data, a density) or "discretized" (8-bit data scaled to
        [−1, 1], a probability; samples are then clipped to [−1, 1]).
    dtype : "float32" or "float64" (gradient checks). seed : initialisation and ``rng``.
    """

    def __init__(self, x_dim, T=1000, schedule="linear", variance="beta", hidden=(256, 256),
                 time_dim=64, activation="relu", decoder="gaussian", dtype="float32", seed=0,
                 denoiser="mlp", ema_decay=0.0, local=0, ema_warmup=10):
        self.x_dim = validate.positive_int("x_dim", x_dim)
        self.hidden = validate.hidden(hidden)
        self.denoiser = validate.choice("denoiser", denoiser, DENOISERS)
        self.ema_decay = validate.real("ema_decay", ema_decay, at_least=0, below=1)
        self.ema_warmup = validate.nonnegative_int("ema_warmup", ema_warmup)
        self.local = validate.nonnegative_int("local", local)
        if self.local and self.denoiser != "resmlp":
            raise ValueError(f"local: the local branch is part of the resmlp denoiser, not "
                             f"of {self.denoiser}")
        self.time_dim = validate.integer("time_dim", time_dim, minimum=2)
        if self.time_dim % 2:
            raise ValueError(f"time_dim must be even (as many cosines as sines), got {time_dim}")
        self.activation = validate.choice("activation", activation, ACTIVATIONS)
        self.decoder = validate.choice("decoder", decoder, DECODERS)
        self.dtype = validate.dtype(dtype)
        self.schedule = Schedule(T, schedule, variance)
        self.seed = validate.seed("seed", seed)
        init, self._forward, self._backward, _ = DENOISERS[self.denoiser]
        self.params = init(self.x_dim, self.hidden, self.time_dim, seed, self.dtype,
                           **({"local": self.local} if self.local else {}))
        self.ema = {n: p.copy() for n, p in self.params.items()} if self.ema_decay else None
        self.rng = backend.default_rng(seed)

    @property
    def T(self):
        return self.schedule.T

    @property
    def clip(self):
        """The data range c (data in [−c, c]) x̂_0 is clipped to while sampling, None if
        unbounded: 8-bit images live in [−1, 1]; the gaussian decoder's data anywhere."""
        return 1.0 if self.decoder == "discretized" else None

    def get_config(self):
        """The constructor's arguments: ``DDPM(**model.get_config())`` rebuilds it."""
        return {"x_dim": self.x_dim, "T": self.T, "schedule": self.schedule.kind,
                "variance": self.schedule.variance, "hidden": list(self.hidden),
                "time_dim": self.time_dim, "activation": self.activation,
                "decoder": self.decoder, "dtype": self.dtype, "seed": self.seed,
                "denoiser": self.denoiser, "ema_decay": self.ema_decay, "local": self.local,
                "ema_warmup": self.ema_warmup}

    @property
    def n_params(self):
        return sum(int(p.size) for p in self.params.values())

    def __repr__(self):
        return "DDPM(" + ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()) + ")"

    # ------------------------------------------------------------------ the denoiser
    @property
    def eval_params(self):
        """The parameters that sampling and the bound use: the moving average θ̄ when the
        model keeps one, else the trained θ itself. Training differentiates θ (``params``)."""
        return self.params if self.ema is None else self.ema

    def predict_eps(self, xt, t):
        """ε̂ = ε_θ̄(x_t, t) with :attr:`eval_params`: xt (N, D), t (N,) ints in 1..T -> (N, D)."""
        return self._forward(xt, t, self.eval_params, self.activation)[0]

    def update_ema(self, n=None):
        """θ̄ ← d_n θ̄ + (1 − d_n) θ, in place, after optimizer step n (nothing when d = 0).

        An average of the last ~1/(1 − d) steps' parameters (1,000 for d = 0.999): the SGD
        noise of single iterates averages out, which DDPMs' samples are sensitive to (Ho et al.
        sample from an average with d = 0.9999; Polyak & Juditsky 1992 for why averaging
        iterates helps). θ̄ starts at the initial θ_0, so with a constant d its weight in θ̄ is
        still d^n after n steps (37 % after 1,000 for d = 0.999); the warm-up
        d_n = min(d, (1 + n) / (w + n)) (w = ``ema_warmup``, as TensorFlow's
        ExponentialMovingAverage with num_updates) averages the first steps nearly uniformly
        and gives θ_0 the weight Π_k d_k ≈ 0 instead. n is the optimizer's step count (1 for
        the first step; saved in the checkpoint, so a resumed run averages alike); None or
        ``ema_warmup`` = 0 means d_n = d.
        """
        if self.ema is None:
            return
        d = self.ema_decay
        if self.ema_warmup and n is not None:
            d = min(d, (1 + n) / (self.ema_warmup + n))
        for name, p in self.params.items():
            avg = self.ema[name]
            avg *= d
            avg += (1 - d) * p

    def _check_x(self, x0):
        x0 = validate.finite_real_array("x", backend.asarray(x0), self.dtype)
        validate.shape("x", x0, (None, self.x_dim))
        return validate.nonempty("x", x0)

    # ------------------------------------------------------------------ training
    def loss_and_grads(self, x0, t=None, eps=None, check=True):
        """L_simple on the minibatch x0 (N, D) and its gradient for every parameter.

        t (N,) ints in 1..T and eps (N, D) default to fresh draws from ``self.rng``
        (t ~ U{1..T}, ε ~ N(0, I)); pass them to fix the noise (gradient checks).
        Returns (loss as a 0-d array, grads: dict name -> array like params).
        """
        return self._loss_and_grads(x0, t, eps, check, sign=1.0)

    def objective_and_grads(self, x0, check=True):
        """The objective that training *maximises*, −L_simple, and its gradient: what minivae's
        optimizers (which ascend, as the lecture climbs bounds) and training loop take."""
        return self._loss_and_grads(x0, None, None, check, sign=-1.0)

    def _loss_and_grads(self, x0, t, eps, check, sign):
        x0 = self._check_x(x0) if check else x0
        n = x0.shape[0]
        if t is None:
            t = (self.rng.random(n, dtype=xp.float64) * self.T).astype(xp.int64) + 1
        if eps is None:
            eps = self.rng.standard_normal(x0.shape, dtype=self.dtype)
        xt = q_sample(x0, t, eps, self.schedule)                        # (N, D)
        eps_hat, cache = self._forward(xt, t, self.params, self.activation)
        loss, deps_hat = simple_loss(eps_hat, eps)
        grads = {}
        self._backward(sign * deps_hat, cache, grads)
        return sign * loss, grads

    # ------------------------------------------------------------------ the bound
    def vlb_terms(self, x0, rng, on_step=None):
        """The terms of L_vlb (nats), (N, T + 1): column 0 = L_T, column t = the step-t term
        (``on_step(t)`` after each step, e.g. for a progress bar)."""
        return vlb_terms(self.predict_eps, self._check_x(x0), self.schedule, self.decoder, rng,
                         on_step)

    def bound(self, x0, rng=None, n_t=None):
        """−L_vlb(x_0) ≤ log p_θ(x_0) per example, in nats (N,).

        n_t None sums all T terms (T evaluations of the denoiser). An int n_t estimates the
        sum without bias from n_t + 1 evaluations: the decoder term L_0 (t = 1) always — for
        8-bit images it is most of the bound, and a random draw would rarely hit it — plus a
        stratified draw over t = 2..T (:meth:`_sampled_terms`), for cheap monitoring. rng
        defaults to a generator seeded with 0.
        """
        x0 = self._check_x(x0)
        rng = backend.default_rng(0) if rng is None else rng
        if n_t is None:
            return -self.vlb_terms(x0, rng).sum(axis=1)
        return -self._sampled_terms(x0, rng, validate.positive_int("n_t", n_t))

    @threads.limited                  # BLAS threads by minivae's policy (minivae.threads)
    def _sampled_terms(self, x0, rng, n_t):
        """L_T + L_0 + Σ_s |S_s| · L_{t_s − 1}, (N,): the steps 2..T cut into n_t strata S_s of
        (nearly) equal size, one t_s uniform in each, per example. Each stratum's term is an
        unbiased estimate of its sum, and the strata's estimates are independent, so the
        variance is that of a draw within a stratum, not across all steps (stratified
        sampling; with n_t ≥ T − 1 every step is its own stratum: all terms, once each)."""
        n = x0.shape[0]
        first = xp.ones(n, dtype=xp.int64)
        total = prior_kl(x0, self.schedule) + vlb_term(
            self.predict_eps, x0, first, rng.standard_normal(x0.shape, dtype=self.dtype),
            self.schedule, self.decoder)
        edges = [round(2 + s * (self.T - 1) / n_t) for s in range(n_t + 1)]
        for lo, hi in zip(edges[:-1], edges[1:]):            # the stratum lo..hi − 1
            if hi == lo:
                continue                                     # n_t > T − 1: empty strata
            t = (rng.random(n, dtype=xp.float64) * (hi - lo)).astype(xp.int64) + lo
            eps = rng.standard_normal(x0.shape, dtype=self.dtype)
            total = total + (hi - lo) * vlb_term(self.predict_eps, x0, t, eps, self.schedule,
                                                 self.decoder)
        return total

    def bits_per_dim(self, x0, rng=None, n_t=None):
        """−bound / (D ln 2) per example: bits per dimension (of the 8-bit image for the
        discretized decoder)."""
        return bits_per_dim(-self.bound(x0, rng, n_t), self.x_dim)

    # ------------------------------------------------------------------ sampling
    def sample(self, n, sampler="ancestral", steps=50, rng=None, clip=None, on_step=None):
        """n samples (n, D) from the ancestral chain or DDIM with ``steps`` steps.

        clip : clip x̂_0 to the data range at every step (sampling.py): None (default) does so
            exactly when the data are bounded (8-bit images, [−1, 1]), not for the unbounded
            toys; True asks for it (a ValueError for unbounded data); False turns it off.
        on_step : called as on_step(t, x0_hat) at every step (sampling.py).
        """
        n = validate.positive_int("n", n)
        rng = backend.default_rng(0) if rng is None else rng
        shape = (n, self.x_dim)
        if clip is None or clip is False:
            bound = self.clip if clip is None else None
        elif clip is True:
            if self.clip is None:
                raise ValueError("clip: the data of a gaussian-decoder model are unbounded; "
                                 "there is no range to clip x̂_0 to")
            bound = self.clip
        else:
            raise ValueError(f"clip must be True, False or None, got {clip!r}")
        if validate.choice("sampler", sampler, SAMPLERS) == "ddim":
            return ddim_sample(self.predict_eps, self.schedule, shape, rng, self.dtype,
                               steps=validate.positive_int("steps", steps), clip=bound,
                               on_step=on_step)
        return ancestral_sample(self.predict_eps, self.schedule, shape, rng, self.dtype,
                                clip=bound, on_step=on_step)
