"""Training a model on MNIST: the configuration, the learning-rate schedule, the loop, resuming.

One *run* lives in one directory (RUN_DIR):

- ``config.json``     the training configuration (:class:`TrainConfig`), for people to read;
- ``checkpoint.npz``  the state after the last completed epoch (:mod:`minivae.checkpoint`):
                      parameters, Adam's moments and step count, the three random generators
                      (the model's noise ε, the minibatch shuffling, the dynamic binarization),
                      the configuration and the epoch. Written atomically after every epoch
                      (and once before the first), so it is always a complete, usable state;
- ``metrics.jsonl``   one JSON object per epoch (see :func:`epoch_metrics`);
- ``curves.png``      the training curves, drawn at the end.

Exact resumption: everything random in an epoch is drawn from those three generators, whose
states are in the checkpoint, and the learning rate is a function of the epoch. So training
N epochs, stopping, and resuming to M epochs gives bit-for-bit the parameters of an
uninterrupted M-epoch run. (The per-epoch test bound uses its own fixed noise, see
:mod:`minivae.evaluate`, and never touches the training generators.)

A NaN or inf in the bound (or in a parameter) stops training with :class:`TrainingDiverged`;
the checkpoint on disk is then the last good state, since a checkpoint is only written after
an epoch that ended finite.
"""
import dataclasses
import json
import math
import os
import sys
import time

import numpy as np

from . import backend, checkpoint, data, evaluate
from .backend import xp
from .model import IWAE, VAE
from .optim import Adam

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.jsonl"
CONFIG = "config.json"
CURVES = "curves.png"
#: Files a run owns: what ``force`` removes and what marks a directory as holding a run.
RUN_FILES = (CHECKPOINT, METRICS, CONFIG, CURVES, "evaluation.json")

SCHEDULES = ("constant", "burda")
DEFAULT_EPOCHS = 30
BURDA_STAGES = 8                                   # i = 0..7, 3^i passes each
BURDA_PASSES = sum(3 ** i for i in range(BURDA_STAGES))     # 3280
#: Seed of the one fixed binarization of the test set used to evaluate dynamically binarized
#: runs: independent of --seed, so that every such run is scored on the same binary images.
TEST_BINARIZATION_SEED = 0
#: Seed of the noise ε of the per-epoch test bound (fixed: the curve is not jittered by ε).
TEST_NOISE_SEED = 0
PROGRESS_EVERY = 25                                # steps between progress-bar updates


def parse_hidden(text):
    """'200,200' -> (200, 200); '' or 'none' -> () (affine encoder and decoder).

    The one parser of hidden widths written as text; bad widths raise ValueError.
    """
    text = text.strip().lower()
    if text in ("", "none"):
        return ()
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise ValueError(f"hidden wants comma-separated widths like 200,200, got {text!r}")
    if any(w < 1 for w in widths):
        raise ValueError(f"hidden widths must be positive, got {text!r}")
    return widths


class Diverged(ArithmeticError):
    """Training produced a NaN or inf (in the bound or a parameter); the message says where.

    The one divergence exception of minivae (the command line's exit code 1).
    """


TrainingDiverged = Diverged        # the name of earlier versions


# ------------------------------------------------------------------------------ configuration

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
    """
    data: str = "mnist-subset"
    data_dir: str = None
    binarize: str = None
    likelihood: str = "bernoulli"
    k: int = 5
    analytic_kl: bool = False
    z_dim: int = 50
    hidden: tuple = (200, 200)
    activation: str = "tanh"
    dtype: str = "float32"
    epochs: int = None
    batch_size: int = 20
    lr: float = 1e-3
    schedule: str = "constant"
    seed: int = 0
    eval_n: int = None
    eval_k: int = None

    def __post_init__(self):
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.binarize is None:
            self.binarize = "dynamic" if self.likelihood == "bernoulli" else "none"
        if self.epochs is None:
            self.epochs = BURDA_PASSES if self.schedule == "burda" else DEFAULT_EPOCHS
        if self.eval_k is None:
            self.eval_k = self.k
        self.validate()

    def validate(self):
        """One-line ValueError for anything a run cannot use (the model checks the rest)."""
        def need(ok, what):
            if not ok:
                raise ValueError(what)
        def is_int(v):
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)
        need(self.data in data.DATASETS, f"unknown data {self.data!r}; choose one of "
             f"{', '.join(data.DATASETS)}")
        need(self.binarize in data.BINARIZATIONS, f"unknown binarization {self.binarize!r}; "
             f"choose one of {', '.join(data.BINARIZATIONS)}")
        need(not (self.likelihood == "bernoulli" and self.binarize == "none"),
             "likelihood bernoulli needs binary data: use --binarize dynamic or fixed")
        need(self.schedule in SCHEDULES, f"unknown schedule {self.schedule!r}; choose one of "
             f"{', '.join(SCHEDULES)}")
        for name in ("k", "eval_k", "z_dim", "batch_size"):
            v = getattr(self, name)
            need(is_int(v) and v >= 1, f"{name} must be an integer >= 1, got {v!r}")
        need(is_int(self.epochs) and self.epochs >= 0,
             f"epochs must be an integer >= 0, got {self.epochs!r}")
        need(not (self.schedule == "burda" and self.epochs > BURDA_PASSES),
             f"the burda schedule has {BURDA_PASSES} passes; got epochs={self.epochs}")
        need(self.eval_n is None or (is_int(self.eval_n) and self.eval_n >= 0),
             f"eval_n must be an integer >= 0, got {self.eval_n!r}")
        need(isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0,
             f"lr must be a positive number, got {self.lr!r}")
        need(is_int(self.seed) and self.seed >= 0, f"seed must be an integer >= 0, "
             f"got {self.seed!r}")

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


#: Options a resumed run may change; everything else must match the saved configuration.
RESUMABLE_OVERRIDES = ("epochs", "data_dir", "eval_n", "eval_k")


def config_for_resume(run_dir, overrides):
    """The saved configuration of the run in ``run_dir`` with ``overrides`` applied (see
    :func:`resume_config`)."""
    check_run_dir(run_dir, resume=True)
    ckpt = checkpoint.load(os.path.join(run_dir, CHECKPOINT))
    return resume_config(TrainConfig.from_dict(ckpt.train_config), overrides)


def resume_config(saved, overrides):
    """The configuration of a resumed run: ``saved`` (a TrainConfig) with ``overrides`` (dict
    of options given on the command line) applied where allowed; a differing value of any other
    option is a ValueError (a resumed run cannot silently change its model or data)."""
    changes = {}
    for name, value in overrides.items():
        if name in RESUMABLE_OVERRIDES:
            changes[name] = value
        elif value != getattr(saved, name) and not (name == "hidden"
                                                    and tuple(value) == saved.hidden):
            allowed = ", ".join("--" + o.replace("_", "-") for o in RESUMABLE_OVERRIDES)
            raise ValueError(f"--{name.replace('_', '-')} {value!r} differs from the run's "
                             f"{getattr(saved, name)!r}; a resumed run keeps its configuration "
                             f"(only {allowed} may change)")
    return dataclasses.replace(saved, **changes)


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
    x_test = ds.x_test
    if config.binarize == "dynamic":
        x_test = data.fixed_binarize(ds.x_test, TEST_BINARIZATION_SEED)
    return RunData(ds.x_train, x_test, ds.y_test, ds.source)


# ------------------------------------------------------------------------------ the run

def _derived_seed(seed, stream):
    """An independent integer seed for generator number ``stream`` of a run."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


def build_model(config, x_dim):
    if config.analytic_kl:
        return VAE(x_dim, config.z_dim, config.hidden, config.activation, config.likelihood,
                   config.dtype, config.seed, analytic_kl=True)
    return IWAE(x_dim, config.z_dim, config.hidden, config.activation, config.likelihood,
                config.dtype, config.seed)


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


def _all_finite(params):
    return all(bool(xp.isfinite(p).all()) for p in params.values())


def train_epoch(run, x_train, on_progress=None):
    """One pass over the shuffled training set. Returns the mean minibatch bound (float).

    The running sum stays on the device; it is read (a sync) only every PROGRESS_EVERY steps,
    to show it and to stop early on NaN, and at the end. ``on_progress(n_examples, running
    mean)`` is called then (e.g. to update a progress bar).
    """
    cfg, model = run.config, run.model
    total = xp.zeros((), dtype=np.float64)
    seen = 0
    batches = data.epoch_batches(len(x_train), cfg.batch_size, run.shuffle_rng)
    for step, idx in enumerate(batches, 1):
        xb = data.make_batch(x_train, idx, cfg.binarize, run.binarize_rng)
        # The first minibatch of an epoch is validated (binary, finite, right width); the data
        # are the same kind ever after, so the other steps skip the checks and their syncs.
        value, grads = model.bound_and_grads(xb, cfg.k, check=step == 1)
        run.optimizer.step(grads)
        total += value * len(idx)
        seen += len(idx)
        if step % PROGRESS_EVERY == 0 or step == len(batches):
            mean = float(total) / seen
            if not math.isfinite(mean):
                raise Diverged(f"the training bound became {mean} in epoch "
                                       f"{run.epoch + 1} (by step {step})")
            if on_progress is not None:
                on_progress(seen, mean)
    return float(total) / max(seen, 1)


def epoch_test_bound(run, x_test):
    """L_{eval_k} averaged over eval_n test images spread over the test set (None when
    eval_n = 0; see :func:`minivae.evaluate.spread_subset`)."""
    index = evaluate.spread_subset(len(x_test), run.config.eval_n)
    if len(index) == 0:
        return None
    bound, _ = evaluate.bound_per_example(run.model, x_test[index], run.config.eval_k,
                                          seed=TEST_NOISE_SEED, index=index)
    return float(bound.mean())


# ------------------------------------------------------------------------------ run directory

def read_metrics(path):
    """The list of per-epoch metric dicts in a metrics.jsonl ([] if there is no file).

    A last line cut short (a crash while appending) is skipped; any other bad line is a
    ValueError naming the file and line.
    """
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    rows = []
    for i, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines):
                break
            row = None
        if not isinstance(row, dict) or not {"epoch", "train_bound", "lr"} <= set(row):
            raise ValueError(f"{path} line {i}: not a metrics record; corrupt file?")
        rows.append(row)
    return rows


def check_run_dir(run_dir, resume=False, force=False):
    """Check what RUN_DIR holds against what was asked, changing nothing.

    New run: RUN_DIR must not hold a run already, unless ``force``. Resume: RUN_DIR must hold
    a checkpoint. Returns the run files present (which ``force`` will delete).
    """
    ckpt = os.path.join(run_dir, CHECKPOINT)
    if resume and force:
        raise ValueError("--resume and --force contradict each other: resume keeps the run, "
                         "force starts it over")
    if resume:
        if not os.path.isfile(ckpt):
            raise ValueError(f"cannot resume: {ckpt} does not exist (start a new run without "
                             "--resume)")
        return []
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise ValueError(f"{run_dir} exists and is not a directory")
    present = [f for f in RUN_FILES if os.path.exists(os.path.join(run_dir, f))]
    if present and not force:
        raise ValueError(f"{run_dir} already holds a run ({', '.join(present)}); pass --resume "
                         "to continue it, --force to start over, or choose another --out")
    return present


class _Reporter:
    """Progress bar (tqdm, on a terminal only) and one line per epoch (unless quiet)."""

    def __init__(self, quiet, n_train, stream=None):
        self.quiet, self.n_train = quiet, n_train
        self.stream = stream or sys.stdout
        self.bar = None

    def start_epoch(self, epoch, epochs, k):
        if self.quiet:
            return
        from tqdm.auto import tqdm
        # disable=None: tqdm shows the bar only on a terminal, so logs and pipes stay clean.
        self.bar = tqdm(total=self.n_train, desc=f"epoch {epoch + 1}/{epochs}", unit="ex",
                        unit_scale=True, leave=False, disable=None, dynamic_ncols=True)
        self.k, self.done = k, 0

    def progress(self, seen, mean):
        if self.bar is not None:
            self.bar.update(seen - self.done)
            self.done = seen
            self.bar.set_postfix_str(f"L_{self.k}={mean:.2f}", refresh=False)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def end_epoch(self, m, epochs):
        self.close()
        if not self.quiet:
            test = "" if m["test_bound"] is None else \
                f"  test L_{m['test_k']} {m['test_bound']:.3f}"
            print(f"epoch {m['epoch']}/{epochs}  train L_{m['k']} {m['train_bound']:.3f}{test}"
                  f"  lr {m['lr']:.3g}  {m['time']:.1f} s ({m['examples_per_s']:.0f} ex/s)",
                  file=self.stream, flush=True)

    def line(self, text):
        if not self.quiet:
            print(text, file=self.stream, flush=True)


def epoch_metrics(run, train_bound, test, lr, seconds, eval_seconds, elapsed, n_train, n_test):
    """One line of metrics.jsonl.

    epoch (1-based, completed passes), k, train_bound (mean over the epoch's minibatches of
    the training objective, with the parameters as they were at each step, on the dynamically
    binarized data), test_bound (L_test_k averaged over test_n test images spread evenly over
    the test set, at the end of the epoch; null if eval_n = 0), lr, time (s for the epoch's
    training steps), eval_time (s for the test bound), elapsed (s of training since the run began, over all
    sessions), examples_per_s.
    """
    return {"epoch": run.epoch, "k": run.config.k, "train_bound": train_bound,
            "test_bound": test, "test_k": run.config.eval_k, "test_n": n_test, "lr": lr,
            "time": round(seconds, 3), "eval_time": round(eval_seconds, 3),
            "elapsed": round(elapsed, 3),
            "examples_per_s": round(n_train / seconds, 1) if seconds > 0 else None}


def train(config, run_dir, resume=False, force=False, quiet=False, plots=True, stream=None):
    """Train (or resume) a run in ``run_dir``; returns a summary dict.

    config : a :class:`TrainConfig` (for a resumed run: the saved one with the allowed
        overrides, see :func:`resume_config`). Raises ValueError/OSError for bad input (before
        anything is written), :class:`TrainingDiverged` on NaN/inf.
    """
    stale = check_run_dir(run_dir, resume, force)
    ckpt_path = os.path.join(run_dir, CHECKPOINT)
    metrics_path = os.path.join(run_dir, METRICS)
    if config.data == "mnist":
        # Record where the files are (not just "$MINIVAE_DATA"), for evaluate and sample.
        config = dataclasses.replace(
            config, data_dir=os.path.abspath(data.resolve_data_dir(config.data_dir)))
    rd = load_data(config)
    run = (Run.restore(checkpoint.load(ckpt_path), config) if resume
           else Run.fresh(config, rd.x_train.shape[1]))
    # Only now, with the input known good, touch the run directory ("force": the old run's
    # files go, and nothing else).
    for f in stale:
        os.remove(os.path.join(run_dir, f))
    os.makedirs(run_dir, exist_ok=True)
    report = _Reporter(quiet, len(rd.x_train), stream)
    rows = []
    if resume:
        # Keep the metrics of the epochs the checkpoint has seen (a crash between writing the
        # metrics and the checkpoint leaves one more line, which this run will redo).
        rows = [r for r in read_metrics(metrics_path) if r.get("epoch", 0) <= run.epoch]
        elapsed = rows[-1]["elapsed"] if rows else 0.0
        checkpoint.atomic_write(metrics_path, "".join(json.dumps(r) + "\n" for r in rows))
        report.line(f"resuming {run_dir} at epoch {run.epoch} of {config.epochs}")
        if not run.rng_exact:
            report.line("note: the checkpoint was written by the other backend (CPU/GPU); its "
                        "random generators were reseeded from their saved states, so this "
                        "run will not match an uninterrupted one bit for bit")
    else:
        run.save(ckpt_path)                        # a usable checkpoint from the start
        elapsed = 0.0
        report.line(f"training {run.model!r} on {rd.source}: L_{config.k}"
                    f"{' (analytic KL)' if config.analytic_kl else ''}, {config.epochs} "
                    f"epochs, {config.schedule} schedule -> {run_dir}")
    checkpoint.atomic_write(os.path.join(run_dir, CONFIG),
                       json.dumps(config.to_dict(), indent=2) + "\n")
    n_test = len(rd.x_test) if config.eval_n is None else min(config.eval_n, len(rd.x_test))
    last = None
    try:
        while run.epoch < config.epochs:
            lr = learning_rate(config, run.epoch)
            run.optimizer.lr = lr
            report.start_epoch(run.epoch, config.epochs, config.k)
            t0 = time.perf_counter()
            train_bound = train_epoch(run, rd.x_train, report.progress)
            backend.synchronize()
            seconds = time.perf_counter() - t0
            report.close()
            if not _all_finite(run.model.params):
                raise Diverged(f"a parameter became NaN or inf in epoch {run.epoch + 1}")
            t1 = time.perf_counter()
            test = epoch_test_bound(run, rd.x_test)
            if test is not None and not math.isfinite(test):
                raise Diverged(f"the test bound became {test} after epoch "
                                       f"{run.epoch + 1}")
            run.epoch += 1
            elapsed += seconds
            last = epoch_metrics(run, train_bound, test, lr, seconds, time.perf_counter() - t1,
                                 elapsed, len(rd.x_train), n_test)
            # Metrics first, then the checkpoint: a crash in between leaves a metrics line the
            # checkpoint has not seen, which a resume drops (never a checkpoint without metrics).
            rows.append(last)
            checkpoint.atomic_write(metrics_path, "".join(json.dumps(r) + "\n" for r in rows))
            run.save(ckpt_path)
            report.end_epoch(last, config.epochs)
    except Diverged as e:
        report.close()
        raise Diverged(f"{e}; {ckpt_path} keeps the last good state (epoch "
                               f"{run.epoch}); try a smaller --lr") from None
    finally:
        report.close()
    if plots:
        from . import plots as plots_module
        if rows:
            plots_module.save_curves(rows, os.path.join(run_dir, CURVES))
    return {"run_dir": run_dir, "epoch": run.epoch, "last": last, "model": repr(run.model)}
