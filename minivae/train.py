"""Training a model: the configuration, the learning-rate schedule, the one training loop.

- :class:`TrainConfig`  everything that defines a training run on MNIST: the single source of
                        its defaults, choices (read from the registries ``ACTIVATIONS``,
                        ``LIKELIHOODS``, ``DTYPES``) and validation (:mod:`minivae.validate`),
                        with named presets (:data:`PRESETS`: Burda et al.'s schedule, the
                        lecture's 2-D latent example);
- :func:`learning_rate` the schedule (constant, or Burda et al.'s);
- :func:`train_epoch`   the one loop of gradient ascent on a bound, generic over the objective:
                        ``objective(batch) -> (value, grads)``, then ``optimizer.step(grads)``.
                        The MNIST runs, the labs, :class:`minivae.MIWAEImputer`, the linear
                        bridge and the toy encoder all train through it;
- :class:`Run`          the live state of an MNIST run (model, Adam, the three generators,
                        epoch) and its checkpoint; :meth:`Run.train_epoch` is one pass;
- :class:`Diverged`     the one divergence exception: a NaN or inf stops training.

Exact resumption: everything random in an epoch of a :class:`Run` is drawn from its three
generators, whose states are in the checkpoint, and the learning rate is a function of the
epoch. So training N epochs, stopping, and resuming to M epochs gives bit-for-bit the parameters
of an uninterrupted M-epoch run. (The per-epoch test bound uses its own fixed noise, see
:mod:`minivae.evaluate`, and never touches the training generators.)

The run directory (checkpoint.npz, metrics.jsonl, config.json, curves.png), its resume rules,
and progress bars belong to the command line: :mod:`minivae.cli.runs`.
"""
import dataclasses

import numpy as np

from . import backend, checkpoint, data, evaluate, threads, validate
from .backend import xp
from .data import BINARIZATIONS, DATASETS, ENV_VAR
from .bound import ESTIMATORS
from .layers import ACTIVATIONS
from .likelihoods import LIKELIHOODS
from .model import DTYPES, IWAE, VAE, Diverged
from .optim import Adam

SCHEDULES = ("constant", "burda")
DEFAULT_EPOCHS = 30
BURDA_STAGES = 8                                   # i = 0..7, 3^i passes each
BURDA_PASSES = sum(3 ** i for i in range(BURDA_STAGES))     # 3280
#: Seed of the one fixed binarization of the test set used to evaluate dynamically binarized
#: runs: independent of the run's seed, so that every such run is scored on the same images.
TEST_BINARIZATION_SEED = 0
#: Seed of the noise ε of the per-epoch test bound (fixed: the curve is not jittered by ε).
TEST_NOISE_SEED = 0
#: Steps between two reads of an MNIST epoch's running bound (one device sync each): to show
#: progress and to stop early on a NaN.
CHECK_EVERY = 25


TrainingDiverged = Diverged        # the name of earlier versions


# ------------------------------------------------------------------------------ configuration

def check_choices_and_paths(config):
    """The checks every run configuration (TrainConfig, the diffusion model's DiffusionConfig)
    shares: each field with choices holds one of them, and data_dir is a path or None."""
    for f in dataclasses.fields(config):
        if f.metadata["choices"] is not None:
            setattr(config, f.name, validate.choice(f.name, getattr(config, f.name),
                                                    f.metadata["choices"]))
    if config.data_dir is not None and not isinstance(config.data_dir, str):
        raise ValueError(f"data_dir must be a path, got {config.data_dir!r}")


def _option(default, help, choices=None):
    """A TrainConfig field: its default, its help text and (for a choice) the allowed values."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (saved in the checkpoint and config.json).

    The objective is L_K with K = ``k`` (K = 1: the VAE bound). ``analytic_kl`` switches to
    the VAE bound E_q[log p(x|z)] - KL(q ‖ p) with the KL in closed form and the expectation
    estimated with ``k`` samples. ``binarize`` None means "dynamic" for the Bernoulli
    likelihood and "none" (grey levels in [0, 1]) otherwise. ``epochs`` None means 30 for the
    constant schedule and all 3280 passes for Burda's. ``eval_n`` test images (None: all; 0:
    none; spread evenly over the test set) are scored with L_{eval_k} (eval_k None: ``k``)
    after every epoch.

    Every field's help text and choices are in its metadata: the command line's options are
    generated from them (:mod:`minivae.cli.options`).
    """
    data: str = _option("mnist-subset", "training data (mnist-subset ships with minivae)",
                        DATASETS)
    data_dir: str = _option(None, f"directory of the four MNIST IDX files for data mnist "
                            f"(default: ${ENV_VAR})")
    binarize: str = _option(None, "dynamic: a fresh Bernoulli draw of every pixel at every "
                            "minibatch (Burda et al.); fixed: drawn once from the seed; none: "
                            "grey levels in [0, 1] (default: dynamic for bernoulli, none "
                            "otherwise)", BINARIZATIONS)
    likelihood: str = _option("bernoulli", "observation model p(x|z)", tuple(LIKELIHOODS))
    levels: int = _option(None, "with likelihood categorical: quantise the grey levels to C "
                          "codes 0..C-1 (equal-width bins), each pixel one of C categories")
    k: int = _option(5, "importance samples K of the bound L_K; 1 is the VAE")
    estimator: str = _option("iwae", "encoder gradient estimator: iwae (the reparametrised "
                             "IWAE gradient), stl (sticking the landing, Roeder et al. 2017) "
                             "or dreg (doubly reparametrised, Tucker et al. 2019)", ESTIMATORS)
    analytic_kl: bool = _option(False, "train the VAE bound E_q[log p(x|z)] - KL(q||p) with "
                                "the KL in closed form (the expectation estimated with k "
                                "samples)")
    z_dim: int = _option(50, "latent dimension d")
    hidden: tuple = _option((200, 200), "hidden layer widths of the encoder, reversed for the "
                            "decoder; empty for affine maps (Burda et al.'s 784-200-200-50)")
    activation: str = _option("tanh", "hidden activation", tuple(ACTIVATIONS))
    dtype: str = _option("float32", "floating point type", DTYPES)
    epochs: int = _option(None, f"passes over the training data (default: {DEFAULT_EPOCHS}, "
                          f"or all {BURDA_PASSES} of the burda schedule)")
    batch_size: int = _option(20, "minibatch size (Burda et al.'s)")
    lr: float = _option(1e-3, "Adam learning rate; the burda schedule starts there")
    schedule: str = _option("constant", "constant, or burda: 3^i passes at lr * 10^(-i/7) for "
                            f"i = 0..7 ({BURDA_PASSES} passes; cut short by epochs)", SCHEDULES)
    seed: int = _option(0, "seeds the initialisation, the noise, the shuffling and the "
                        "binarization")
    eval_n: int = _option(None, "test images scored after every epoch (default: all; 0: none)")
    eval_k: int = _option(None, "K of the per-epoch test bound (default: k)")

    def __post_init__(self):
        if self.binarize is None:
            self.binarize = "dynamic" if self.likelihood == "bernoulli" else "none"
        if self.epochs is None:
            self.epochs = BURDA_PASSES if self.schedule == "burda" else DEFAULT_EPOCHS
        if self.eval_k is None:
            self.eval_k = self.k
        self.validate()

    def validate(self):
        """Check (and normalise) every field through :mod:`minivae.validate`; one-line
        ValueError naming the field for anything a run cannot use."""
        check_choices_and_paths(self)
        self.analytic_kl = validate.boolean("analytic_kl", self.analytic_kl)
        self.hidden = validate.hidden(self.hidden)
        for name in ("k", "eval_k", "z_dim", "batch_size"):
            setattr(self, name, validate.positive_int(name, getattr(self, name)))
        self.epochs = validate.nonnegative_int("epochs", self.epochs)
        if self.eval_n is not None:
            self.eval_n = validate.nonnegative_int("eval_n", self.eval_n)
        self.lr = validate.positive_real("lr", self.lr)
        self.seed = validate.seed("seed", self.seed)
        if self.likelihood == "bernoulli" and self.binarize == "none":
            raise ValueError("likelihood bernoulli needs binary data: binarize dynamic or fixed")
        if self.analytic_kl and self.estimator != "iwae":
            raise ValueError(f"estimator {self.estimator} is for the importance weighted "
                             "bound, not analytic_kl")
        if (self.likelihood == "categorical") != (self.levels is not None):
            raise ValueError("levels (C, the grey levels: codes 0..C-1) goes with likelihood "
                             "categorical, and only with it")
        if self.levels is not None:
            self.levels = validate.positive_int("levels", self.levels)
            if self.levels < 2:
                raise ValueError(f"levels must be at least 2, got {self.levels}")
            if self.binarize != "none":
                raise ValueError("likelihood categorical quantises the grey levels itself: "
                                 "binarize none")
        if self.schedule == "burda" and self.epochs > BURDA_PASSES:
            raise ValueError(f"the burda schedule has {BURDA_PASSES} passes; got "
                             f"epochs={self.epochs}")

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def preset(cls, name, **overrides):
        """The configuration of a named preset (:data:`PRESETS`) with ``overrides``."""
        validate.choice("preset", name, PRESETS)
        return cls(**dict(PRESETS[name], **overrides))


#: Named configurations: field -> value, the rest at TrainConfig's defaults.
PRESETS = {
    # Burda, Grosse & Salakhutdinov (2016), section 5 and Table 1: MNIST, one stochastic layer
    # 784-200-200-50, tanh, Bernoulli, dynamic binarization, batch 20, Adam (ε = 1e-4) at
    # 1e-3 · 10^(-i/7) for 3^i passes, i = 0..7.
    "burda": dict(data="mnist", binarize="dynamic", likelihood="bernoulli", k=5, z_dim=50,
                  hidden=(200, 200), activation="tanh", dtype="float32", batch_size=20,
                  lr=1e-3, schedule="burda"),
    # The lecture's binary-MNIST example with a 2-D latent space: f(z) = Sigmoid(V tanh(Wz +
    # b) + β), H = 500, trained with the VAE bound L_1.
    "latent2d": dict(likelihood="bernoulli", k=1, z_dim=2, hidden=(500,), activation="tanh",
                     epochs=50, batch_size=100, lr=1e-3, eval_n=1000),
}


# ------------------------------------------------------------------------------ schedule

def learning_rate(config, epoch):
    """The learning rate of (0-based) ``epoch``.

    constant: ``config.lr``. burda (Burda et al. 2016, section 5): stage i = 0..7 lasts 3^i
    passes at lr · 10^(-i/7), with lr = 1e-3 in the paper; stage i starts at pass
    (3^i - 1) / 2, so passes 0 | 1-3 | 4-12 | ... | 1093-3279.
    """
    if config.schedule == "constant":
        return config.lr
    i = 0
    while epoch >= (3 ** (i + 1) - 1) // 2 and i < BURDA_STAGES - 1:
        i += 1
    return config.lr * 10 ** (-i / 7)


# ------------------------------------------------------------------------------ the loop

@threads.limited                  # BLAS threads by minivae's policy: never a collapse when busy
def train_epoch(objective, optimizer, batches, check_every=None, on_progress=None,
                on_step=None, history=None):
    """One pass of gradient ascent on a bound: the one training loop of minivae.

    objective : ``objective(batch) -> (value, grads)``: the bound averaged over the batch (a
        float or a 0-d backend array) and its gradient, a dict over ``optimizer``'s parameters
        (``grads`` None skips the step, e.g. for a draw whose gradient is not finite).
    optimizer : :class:`minivae.optim.Adam` or ``SGD`` (ascent: it adds ``lr`` times its step).
    batches : an iterable of batches, each with a ``len`` (e.g. index arrays); the mean is
        weighted by it.
    check_every : read the running mean (one device-to-host sync) every that many steps, to
        stop early on a NaN and report progress; it is always read at the end, together with
        the finiteness of every parameter of ``optimizer``: one transfer for the epoch's
        bookkeeping.
    on_progress : ``on_progress(n_examples_seen, running_mean)``, at each read.
    on_step : ``on_step(step)`` after every step (1-based), e.g. to decay the learning rate.
    history : a list to append every step's value to, as a float (one sync per step).

    Returns the mean of the values over the epoch (float). Raises :class:`Diverged` when it is
    NaN or inf at a read, so at most ``check_every`` steps are taken past the first non-finite
    value, or when a parameter is NaN or inf at the end (the caller keeps the last good state:
    a checkpoint, or a copy of the parameters).
    """
    total = xp.zeros((), dtype=np.float64)       # stays on the device between reads
    seen = step = 0
    for step, batch in enumerate(batches, 1):
        value, grads = objective(batch)
        if grads is not None:
            optimizer.step(grads)
        total += value * len(batch)
        seen += len(batch)
        if history is not None:
            history.append(float(value))
        if on_step is not None:
            on_step(step)
        if check_every and step % check_every == 0:
            _read(total, seen, step, on_progress)
    return _read(total, seen, step, on_progress, optimizer.params) if seen else 0.0


def _read(total, seen, step, on_progress, params=None):
    """The running mean, read from the device; with ``params``, whether every parameter is
    finite is computed on the device and read in the same transfer (one sync, not one per
    parameter)."""
    if params is None:
        mean = float(total) / seen
    else:
        finite = xp.stack([xp.isfinite(p).all() for p in params.values()]).all()
        total, finite = backend.to_numpy(xp.stack([total, finite.astype(total.dtype)]))
        mean = float(total) / seen
        if not finite:
            raise Diverged(f"a parameter became NaN or inf (by step {step})")
    if not np.isfinite(mean):
        raise Diverged(f"the training bound became {mean} (by step {step})")
    if on_progress is not None:
        on_progress(seen, mean)
    return mean


# ------------------------------------------------------------------------------ data

@dataclasses.dataclass
class RunData:
    """The arrays of a run, on the host: x_train (N, D) in the model's dtype (grey levels for
    dynamic binarization, binary for fixed, [0, 1] for none); x_test (M, D) as the model is
    scored on (binary for a Bernoulli model); y_test (M,) labels; source, in words."""
    x_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def load_data(config, name=None, data_dir=None):
    """Load and prepare the data of a run (``name``/``data_dir`` override the config's).

    Dynamic binarization keeps the training images in grey levels (each minibatch is drawn
    afresh) and scores the model on one fixed binarization of the test images
    (TEST_BINARIZATION_SEED); fixed binarization draws both once from ``config.seed``.
    """
    ds = data.load_dataset(name or config.data, data_dir or config.data_dir,
                           dtype=np.dtype(config.dtype))
    ds = data.prepare(ds, config.binarize, seed=config.seed)     # checks [0, 1] as well
    if config.levels is not None:                                # categorical: codes 0..C-1
        ds = dataclasses.replace(ds, x_train=data.quantize(ds.x_train, config.levels),
                                 x_test=data.quantize(ds.x_test, config.levels))
    x_test = ds.x_test
    if config.binarize == "dynamic":
        x_test = data.fixed_binarize(ds.x_test, TEST_BINARIZATION_SEED)
    return RunData(ds.x_train, x_test, ds.y_test, ds.source)


# ------------------------------------------------------------------------------ a run

def _derived_seed(seed, stream):
    """An independent integer seed for generator number ``stream`` of a run."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


def build_model(config, x_dim):
    if config.analytic_kl:
        return VAE(x_dim, config.z_dim, config.hidden, config.activation, config.likelihood,
                   config.dtype, config.seed, analytic_kl=True, n_categories=config.levels)
    return IWAE(x_dim, config.z_dim, config.hidden, config.activation, config.likelihood,
                config.dtype, config.seed, n_categories=config.levels,
                estimator=config.estimator)


class Run:
    """The live state of a training run: model, optimizer, generators, epoch.

    Generators: ``model.rng`` (backend) draws ε; ``shuffle_rng`` (NumPy, host) permutes the
    training set each epoch; ``binarize_rng`` (backend) draws the dynamic binarization.
    """

    def __init__(self, config, model, optimizer, shuffle_rng, binarize_rng, epoch=0):
        self.config, self.model, self.optimizer = config, model, optimizer
        self.shuffle_rng, self.binarize_rng, self.epoch = shuffle_rng, binarize_rng, epoch
        self.rng_exact = True       # False after restoring another backend's generator states

    @classmethod
    def fresh(cls, config, x_dim):
        model = build_model(config, x_dim)
        # Burda et al.'s Adam: β1 = 0.9, β2 = 0.999, ε = 1e-4 (the Adam defaults here).
        optimizer = Adam(model.params, lr=learning_rate(config, 0))
        return cls(config, model, optimizer, np.random.default_rng(_derived_seed(config.seed, 1)),
                   backend.default_rng(_derived_seed(config.seed, 2)))

    @classmethod
    def restore(cls, ckpt, config):
        model = ckpt.model()
        optimizer = ckpt.optimizer(model)
        shuffle_rng = np.random.default_rng()
        shuffle_rng.bit_generator.state = ckpt.rng_state("shuffle")
        binarize_rng = backend.default_rng(0)
        exact = backend.set_rng_state(binarize_rng, ckpt.rng_state("binarize")) is not False
        run = cls(config, model, optimizer, shuffle_rng, binarize_rng, ckpt.epoch)
        run.rng_exact = exact and ckpt.rng_exact
        return run

    def save(self, path):
        checkpoint.save(path, self.model, self.optimizer,
                        {"shuffle": self.shuffle_rng.bit_generator.state,
                         "binarize": backend.rng_state(self.binarize_rng)},
                        self.epoch, self.config.to_dict())

    # What the run-directory driver (minivae.cli.runs.train) asks of a kind of run; the
    # diffusion model's run (minivae.diffusion.training.DiffusionRun) answers the same.
    config_class = TrainConfig
    load_data = staticmethod(load_data)

    def describe(self, source):
        """The line that starts a run."""
        cfg = self.config
        return (f"training {self.model!r} on {source}: L_{cfg.k}"
                f"{' (analytic KL)' if cfg.analytic_kl else ''}, {cfg.epochs} epochs, "
                f"{cfg.schedule} schedule")

    def labels(self):
        """Names of the training objective and of the per-epoch test bound, for reports."""
        return f"L_{self.config.k}", f"L_{self.config.eval_k}"

    def metric_fields(self):
        """What metrics.jsonl records beside the bounds, to tell what they are."""
        return {"k": self.config.k, "test_k": self.config.eval_k}

    def test_bound(self, x_test):
        return epoch_test_bound(self, x_test)

    def n_test(self, n):
        return n if self.config.eval_n is None else min(self.config.eval_n, n)

    @staticmethod
    def save_curves(rows, path):
        from . import plots
        plots.save_curves(rows, path)


    def train_epoch(self, x_train, on_progress=None):
        """One pass over the shuffled training set (:func:`train_epoch`, reading the bound every
        :data:`CHECK_EVERY` steps when ``on_progress`` is given, i.e. when someone watches:
        otherwise only at the end, so that the device is never waited for mid-epoch). Returns
        the mean minibatch bound; the caller advances ``epoch`` once the pass is known good."""
        cfg, model = self.config, self.model
        self.optimizer.lr = learning_rate(cfg, self.epoch)
        batches = data.epoch_batches(len(x_train), cfg.batch_size, self.shuffle_rng)
        first = [True]

        def objective(idx):
            xb = data.make_batch(x_train, idx, cfg.binarize, self.binarize_rng)
            # The first minibatch of an epoch is validated (binary, finite, right width); the
            # data are the same kind ever after, so the other steps skip the checks and syncs.
            check, first[0] = first[0], False
            return model.bound_and_grads(xb, cfg.k, check=check)

        try:
            return train_epoch(objective, self.optimizer, batches,
                               CHECK_EVERY if on_progress is not None else None, on_progress)
        except Diverged as e:
            raise Diverged(f"{e} in epoch {self.epoch + 1}") from None


def epoch_test_bound(run, x_test):
    """L_{eval_k} averaged over eval_n test images spread over the test set (None when
    eval_n = 0; see :func:`minivae.evaluate.spread_subset`)."""
    index = evaluate.spread_subset(len(x_test), run.config.eval_n)
    if len(index) == 0:
        return None
    # check=False: load_data checked the test set once (the check would cost syncs per pass).
    bound, _ = evaluate.bound_per_example(run.model, x_test[index], run.config.eval_k,
                                          seed=TEST_NOISE_SEED, index=index, check=False)
    return float(bound.mean())


