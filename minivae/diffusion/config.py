"""What defines a diffusion training run: the data, the model, the optimisation, the monitoring.

:class:`DiffusionConfig` is the one source of defaults, choices and validation of
``minivae diffusion train`` (saved in the checkpoint and config.json, as
:class:`minivae.train.TrainConfig` is for ``minivae train``). Options left at None take the
defaults of the data's kind (:data:`PRESETS`): the 2-D toys train a small MLP on 50,000
points in a minute; MNIST trains a small U-Net (unet.py) on 14 × 14 images, sampled from a
moving average of its weights (docs/diffusion.md has the measured times; the residual FiLM MLP
resmlp.py, with its local branch, and the plain MLP remain as --denoiser choices, each with its
own defaults in :data:`DENOISER_PRESETS`).

Data (``data``):

- ``ring``, ``lecture``: 2-D data with a known log-density (toydata.py); ``n_train`` training
  points are drawn once from ``seed``, and a fixed test set of 1,000 points from another seed;
- ``mnist-subset`` (embedded, 10,000 / 2,000 images) or ``mnist`` (the IDX files in
  ``data_dir``), downsampled by ``downsample`` (28 → 14 for 2) and kept 8-bit (images.py).

The learning rate is ``lr`` and falls linearly to 0 over the last ``lr_decay`` fraction of the
epochs (a function of the epoch, so a resumed run follows the same schedule). After every
epoch the test bound −L_vlb is estimated on ``eval_n`` test points (0: none) with fixed noise,
from all T steps (``eval_t`` None) or from the decoder term at t = 1 plus ``eval_t`` steps
drawn stratified over 2..T (:meth:`DDPM.bound`).
"""
import dataclasses

import numpy as np

from .. import data as mnist_data, validate
from ..train import TrainConfig, _option, check_choices_and_paths  # one way to declare a field
from .ddpm import ACTIVATIONS, DENOISERS, LEGACY as DDPM_LEGACY
from .schedule import SCHEDULES, VARIANCES
from .resmlp import resmlp_shapes
from .unet import unet_shapes
from .toydata import TOYS

DATA = TOYS + mnist_data.DATASETS
PRESETS = {
    "toy": dict(T=200, denoiser="mlp", time_dim=32, ema_decay=0.0,
                epochs=40, batch_size=256, eval_n=1000, eval_t=None),
    "images": dict(T=1000, denoiser="unet", time_dim=64, ema_decay=0.999,
                   epochs=100, batch_size=128, eval_n=200, eval_t=10),
}
#: Defaults that depend on the denoiser as well, (kind, denoiser) -> fields: they override
#: the kind's :data:`PRESETS` (every pair has its hidden and local).
DENOISER_PRESETS = {
    ("toy", "mlp"): dict(hidden=(128, 128, 128), local=0),
    ("toy", "resmlp"): dict(hidden=(128, 128, 128), local=0),
    ("toy", "unet"): dict(hidden=(24, 48), local=0),                   # refused: not images
    ("images", "mlp"): dict(hidden=(512, 512, 512), local=0),
    ("images", "resmlp"): dict(hidden=(512, 512, 512), local=64),
    ("images", "unet"): dict(hidden=(24, 48), local=0, epochs=36),   # 12 min of CPU
}
#: Fields added after the first diffusion runs were saved, with the values those runs used: a
#: saved configuration without them (an older run directory, resumed) means these (the
#: model's arguments of the same names, ddpm.LEGACY).
LEGACY = DDPM_LEGACY
#: Seeds of the toys' fixed test sets and of the per-epoch bound's noise (never --seed's).
TOY_TEST_SEED, TOY_TEST_N, EVAL_NOISE_SEED = 12345, 1000, 0


@dataclasses.dataclass
class DiffusionConfig:
    """Everything that defines a diffusion run; see the module docstring."""
    #: What a checkpoint records as the kind of run, and the options a resumed run may change.
    KIND = "diffusion"
    RESUMABLE = ("epochs", "data_dir", "eval_n", "eval_t")
    data: str = _option("ring", "training data: a 2-D toy with a known density (ring, "
                        "lecture) or MNIST images (mnist-subset ships with minivae)", DATA)
    data_dir: str = _option(None, f"directory of the four MNIST IDX files for data mnist "
                            f"(default: ${mnist_data.ENV_VAR})")
    downsample: int = _option(2, "MNIST downsampling factor: 28 x 28 -> 14 x 14 for 2 "
                              "(block means rounded to 8 bits)", (1, 2, 4, 7))
    n_train: int = _option(50_000, "toy data: training points drawn once from the seed")
    T: int = _option(None, "diffusion steps (default: 200 for the toys, 1000 for images)")
    schedule: str = _option("linear", "noise schedule β_t (Ho et al.'s linear, or Nichol & "
                            "Dhariwal's cosine)", SCHEDULES)
    variance: str = _option("beta", "σ_t² of the reverse steps: beta (β_t) or posterior (β̃_t); "
                            "only sampling and the bound use it", VARIANCES)
    denoiser: str = _option(None, "the denoiser: mlp (time features added to every layer), "
                            "resmlp (residual blocks, FiLM time modulation, a skip from x_t) "
                            "or unet (3 x 3 convolutions at full and halved resolutions, "
                            "images only) (default: mlp for the toys, unet for images)",
                            tuple(DENOISERS))
    local: int = _option(None, "channels of the resmlp's local branch (a small convolutional net "
                         "on each pixel's 5 x 5 neighbourhood), 0 for none (default: 64 for "
                         "resmlp on images, else 0)")
    hidden: tuple = _option(None, "hidden widths of the denoiser (resmlp: one width per block; "
                            "unet: the channels at each resolution, full size first, halved "
                            "at each next one) (default: 128,128,128 for the toys; for "
                            "images 24,48 for unet, 512,512,512 for mlp and resmlp)")
    time_dim: int = _option(None, "dimension of the time embedding, even (default: 32 for the "
                            "toys, 64 for images)")
    activation: str = _option("relu", "hidden activation of the denoiser", ACTIVATIONS)
    dtype: str = _option("float32", "floating point type", validate.FLOAT_DTYPES)
    epochs: int = _option(None, "passes over the training data (default: 40 for the toys; "
                          "for images 36 with unet, 100 with mlp and resmlp)")
    batch_size: int = _option(None, "minibatch size (default: 256 for the toys, 128 for "
                              "images)")
    lr: float = _option(1e-3, "Adam learning rate")
    lr_decay: float = _option(0.25, "fraction of the epochs, at the end, over which the "
                              "learning rate falls linearly to 0")
    ema_decay: float = _option(None, "decay of the moving average of the weights that sampling "
                               "and evaluation use, 0 for none (default: 0 for the toys, 0.999 "
                               "for images)")
    ema_warmup: int = _option(10, "warm-up w of the moving average: the decay after step n is "
                              "min(ema_decay, (1 + n) / (w + n)), so that the first steps, not "
                              "the initial weights, make the early average; 0 for none")
    seed: int = _option(0, "seeds the initialisation, the steps t and noises ε, the shuffling "
                        "and the toys' training points")
    eval_n: int = _option(None, "test points scored after every epoch (default: 1000 for the "
                          "toys, 200 images; 0: none)")
    eval_t: int = _option(None, "steps t per test point of the per-epoch bound, stratified over "
                          "2..T, besides t = 1 (default: all T for the toys, 10 for images)")

    def __post_init__(self):
        self.data = validate.choice("data", self.data, DATA)
        if self.denoiser is None:
            self.denoiser = PRESETS[self.kind]["denoiser"]
        self.denoiser = validate.choice("denoiser", self.denoiser, DENOISERS)
        defaults = dict(PRESETS[self.kind], **DENOISER_PRESETS[self.kind, self.denoiser])
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        self.validate()

    @property
    def kind(self):
        """"toy" (2-D, known density) or "images" (8-bit MNIST)."""
        return "toy" if self.data in TOYS else "images"

    def validate(self):
        """Clean every field (one-line ValueErrors, through minivae.validate)."""
        v = validate
        check_choices_and_paths(self)
        self.n_train = v.positive_int("n_train", self.n_train)
        self.T = v.integer("T", self.T, minimum=2)
        self.hidden = v.hidden(self.hidden)
        self.local = v.nonnegative_int("local", self.local)
        if self.denoiser == "unet":
            if self.kind == "toy":
                raise ValueError("denoiser: the unet denoiser is for images, not 2-D points")
            side = mnist_data.IMAGE_SHAPE[0] // self.downsample
            unet_shapes(side * side, self.hidden, 2)       # a side it can halve, or an error
        if self.denoiser == "resmlp":
            resmlp_shapes(1, self.hidden, 2)               # one width repeated, or an error
        elif self.local:
            raise ValueError(f"local: the local branch is part of the resmlp denoiser, not of "
                             f"{self.denoiser}")
        if self.local and self.kind == "toy":
            raise ValueError("local: the local branch is for images, not 2-D points")
        self.time_dim = v.integer("time_dim", self.time_dim, minimum=2)
        if self.time_dim % 2:
            raise ValueError(f"time_dim must be even (as many cosines as sines), got "
                             f"{self.time_dim}")
        self.dtype = v.dtype(self.dtype)
        self.epochs = v.nonnegative_int("epochs", self.epochs)
        self.batch_size = v.positive_int("batch_size", self.batch_size)
        self.lr = v.positive_real("lr", self.lr)
        self.lr_decay = v.probability("lr_decay", self.lr_decay)
        self.ema_decay = v.real("ema_decay", self.ema_decay, at_least=0, below=1)
        self.ema_warmup = v.nonnegative_int("ema_warmup", self.ema_warmup)
        self.seed = v.seed("seed", self.seed)
        self.eval_n = v.nonnegative_int("eval_n", self.eval_n)
        if self.eval_t is not None:
            self.eval_t = v.positive_int("eval_t", self.eval_t)

    # The dict of config.json and of a checkpoint, as TrainConfig writes and reads it.
    to_dict = TrainConfig.to_dict

    @classmethod
    def from_dict(cls, d):
        """The configuration of a saved dict; fields it lacks take their :data:`LEGACY` values
        (not the presets', which changed: an older run resumes as the model it is)."""
        return TrainConfig.from_dict.__func__(cls, dict(LEGACY, **d))

    def learning_rate(self, epoch):
        """``lr``, falling linearly to 0 over the last ``lr_decay`` of the epochs."""
        start = (1 - self.lr_decay) * self.epochs
        if epoch < start or self.lr_decay == 0:
            return self.lr
        return self.lr * max(self.epochs - epoch, 0) / (self.epochs - start)

    def model_config(self, x_dim):
        """The DDPM's constructor arguments for data of dimension x_dim."""
        return dict(x_dim=x_dim, T=self.T, schedule=self.schedule, variance=self.variance,
                    hidden=self.hidden, time_dim=self.time_dim, activation=self.activation,
                    decoder="gaussian" if self.kind == "toy" else "discretized",
                    dtype=self.dtype, seed=self.seed, denoiser=self.denoiser,
                    ema_decay=self.ema_decay, local=self.local, ema_warmup=self.ema_warmup)


@dataclasses.dataclass
class DiffusionData:
    """A run's data on the host: x_train (N, D), x_test (M, D) in the model's dtype; for the
    toys ``exact`` = the exact log p(x) of the test points (M,) (None for images); ``side`` of
    the images (None for the toys); ``source`` in words."""
    x_train: np.ndarray
    x_test: np.ndarray
    exact: np.ndarray
    side: int
    source: str


def load_data(config, exact=True):
    """The :class:`DiffusionData` of a configuration (``exact=False`` skips the toys' exact
    log-densities, whose quadrature takes about 10 s for the lecture's toy)."""
    from . import images, toydata
    if config.kind == "toy":
        x_train = toydata.sample(config.data, config.n_train, seed=config.seed)
        x_test = toydata.sample(config.data, TOY_TEST_N, seed=TOY_TEST_SEED)
        logp = toydata.log_density(config.data, x_test) if exact else None
        return DiffusionData(x_train.astype(config.dtype), x_test.astype(config.dtype), logp,
                             None, f"{config.data} toy ({config.n_train} training points, "
                             f"{TOY_TEST_N} test points)")
    x_train, x_test = images.load_mnist(config.data, config.data_dir, config.downsample,
                                        config.dtype)
    side = mnist_data.IMAGE_SHAPE[0] // config.downsample
    return DiffusionData(x_train, x_test, None, side,
                         f"{config.data} ({len(x_train)} train / {len(x_test)} test), "
                         f"{side} x {side}, 8-bit")
