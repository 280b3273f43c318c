"""A diffusion training run's live state, trained by minivae's one loop (train.train_epoch).

:class:`DiffusionRun` is shaped like :class:`minivae.train.Run` (``fresh``, ``restore``,
``save``, ``train_epoch``, ``test_bound``, ``epoch``), so the run-directory machinery of the
command line (checkpoint after every epoch, metrics, exact resume, NaN stop) serves both.

Random generators, all in the checkpoint: ``model.rng`` (backend) draws the steps t and the
noises ε of training; ``shuffle_rng`` (NumPy, host) permutes the training set each epoch. The
learning rate is a function of the epoch (:meth:`DiffusionConfig.learning_rate`). So training
N epochs, stopping and resuming to M gives the parameters of an uninterrupted M-epoch run, bit
for bit. The per-epoch test bound draws from its own generator, seeded the same every time.
"""
import numpy as np

from .. import backend, checkpoint, data
from ..optim import Adam
from .config import EVAL_NOISE_SEED, DiffusionConfig, load_data
from .ddpm import DDPM

#: Adam's ε: 1e-8 (Kingma & Ba's, as DDPM implementations use) rather than the 1e-4 of
#: Burda et al.'s IWAE schedule, which damps the small gradients of ε_θ's late layers.
ADAM_EPS = 1e-8


def _derived_seed(seed, stream):
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


class DiffusionRun:
    """config (:class:`DiffusionConfig`), model (:class:`DDPM`), optimizer (Adam), shuffle_rng,
    epoch (completed passes)."""

    def __init__(self, config, model, optimizer, shuffle_rng, epoch=0):
        self.config, self.model, self.optimizer = config, model, optimizer
        self.shuffle_rng, self.epoch = shuffle_rng, epoch
        self.rng_exact = True

    @classmethod
    def fresh(cls, config, x_dim):
        model = DDPM(**config.model_config(x_dim))
        optimizer = Adam(model.params, lr=config.learning_rate(0), eps=ADAM_EPS)
        return cls(config, model, optimizer, np.random.default_rng(_derived_seed(config.seed, 1)))

    @classmethod
    def restore(cls, ckpt, config):
        model = ckpt.model()
        if not isinstance(model, DDPM):
            raise ValueError(f"{ckpt.path} holds a {type(model).__name__}, not a diffusion "
                             "model (use minivae train --resume)")
        shuffle_rng = np.random.default_rng()
        shuffle_rng.bit_generator.state = ckpt.rng_state("shuffle")
        run = cls(config, model, ckpt.optimizer(model), shuffle_rng, ckpt.epoch)
        run.rng_exact = ckpt.rng_exact
        return run

    def save(self, path):
        checkpoint.save(path, self.model, self.optimizer,
                        {"shuffle": self.shuffle_rng.bit_generator.state}, self.epoch,
                        dict(self.config.to_dict(), kind=DiffusionConfig.KIND))

    # What the run-directory driver (minivae.cli.runs.train) asks of a kind of run.
    config_class = DiffusionConfig
    load_data = staticmethod(load_data)

    def describe(self, source):
        cfg = self.config
        return (f"training {self.model!r} ({self.model.n_params:,} parameters) on {source}: "
                f"L_simple, {cfg.epochs} epochs of {cfg.batch_size}, lr {cfg.lr:g}")

    def labels(self):
        steps = "all" if self.config.eval_t is None else self.config.eval_t
        return "L_simple", f"bound ({steps} t)"

    def metric_fields(self):
        """metrics.jsonl's train_bound holds the epoch's mean L_simple (a loss: lower is
        better), test_bound the bound −L_vlb in nats (higher is better)."""
        return {"objective": "L_simple", "test_t": self.config.eval_t, "T": self.model.T}

    def n_test(self, n):
        return min(self.config.eval_n, n)

    @staticmethod
    def save_curves(rows, path):
        from .. import plots
        plots.save_diffusion_curves(rows, path)

    def train_epoch(self, x_train, on_progress=None):
        """One shuffled pass of Adam on −L_simple through :func:`minivae.train.train_epoch`,
        updating the moving average of the weights after every step (when the model keeps
        one; its warm-up counts the optimizer's steps, which the checkpoint keeps); returns the epoch's mean L_simple (as the objective's mean, negated back)."""
        from ..train import CHECK_EVERY, Diverged, train_epoch
        cfg, model = self.config, self.model
        self.optimizer.lr = cfg.learning_rate(self.epoch)
        batches = data.epoch_batches(len(x_train), cfg.batch_size, self.shuffle_rng)
        first = [True]

        def objective(idx):
            check, first[0] = first[0], False            # validate the first batch only
            return model.objective_and_grads(backend.asarray(x_train[idx]), check=check)

        def progress(seen, mean):
            on_progress(seen, -mean)
        try:
            # Read the running loss mid-epoch only when someone watches (a sync each time).
            watched = on_progress is not None
            return -train_epoch(objective, self.optimizer, batches,
                                CHECK_EVERY if watched else None, progress if watched else None,
                                on_step=lambda step: model.update_ema(self.optimizer.t))
        except Diverged as e:
            raise Diverged(f"{e} in epoch {self.epoch + 1}") from None

    def test_bound(self, x_test):
        """The mean test bound −L_vlb (nats per example) on ``eval_n`` points spread over the
        test set, estimated from t = 1 and ``eval_t`` stratified steps each (None when
        eval_n = 0)."""
        n = self.n_test(len(x_test))
        if n == 0:
            return None
        index = np.linspace(0, len(x_test) - 1, n).round().astype(int)
        bound = self.model.bound(backend.asarray(x_test[index]),
                                 backend.default_rng(EVAL_NOISE_SEED), n_t=self.config.eval_t)
        return float(bound.mean())


