"""Run directories: what a training run writes, how it resumes, its metrics and progress bars.

One *run* lives in one directory (RUN_DIR):

- ``config.json``     the training configuration (:class:`minivae.train.TrainConfig`), to read;
- ``checkpoint.npz``  the state after the last completed epoch (:mod:`minivae.checkpoint`):
                      parameters, Adam's moments and step count, the three random generators,
                      the configuration and the epoch. Written atomically after every epoch
                      (and once before the first), so it is always a complete, usable state;
- ``metrics.jsonl``   one JSON object per epoch (see :func:`epoch_metrics`);
- ``curves.png``      the training curves, drawn at the end.

A NaN or inf in the bound (or in a parameter) stops training with
:class:`minivae.train.Diverged`; the checkpoint on disk is then the last good state, since a
checkpoint is only written after an epoch that ended finite. Every file is written through the
one atomic writer, :func:`minivae.checkpoint.atomic_write`.

Progress: :func:`progress_bar` is the one tqdm bar of the command line. It is drawn on a
terminal only (``disable=None``), so logs, pipes and CI stay clean.
"""
import contextlib
import dataclasses
import json
import math
import os
import shutil
import sys
import time

from . import Interrupted
from .options import config_overrides
from .. import checkpoint, data, memory, validate
from ..train import Diverged, Run, TrainConfig, load_data

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.jsonl"
CONFIG = "config.json"
CURVES = "curves.png"
EVALUATION = "evaluation.json"
#: Files a run owns: what ``force`` removes and what marks a directory as holding a run.
RUN_FILES = (CHECKPOINT, METRICS, CONFIG, CURVES, EVALUATION)
#: Options a resumed run may change; everything else must match the saved configuration.
#: (lr: after a divergence, the last good checkpoint resumes with a smaller learning rate.)
RESUMABLE_OVERRIDES = ("epochs", "data_dir", "eval_n", "eval_k", "lr")


def progress_bar(total, desc, unit="it", quiet=False, **kw):
    """A tqdm bar on stderr, shown only on a terminal (and never when ``quiet``)."""
    from tqdm.auto import tqdm
    # disable=None: tqdm draws only when stderr is a terminal, so logs and pipes stay clean.
    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                disable=True if quiet else None, file=sys.stderr, **kw)


@contextlib.contextmanager
def progress(total, desc, unit="it", quiet=False):
    """:func:`progress_bar` as the callback the library's long functions take
    (``on_progress(done)``: the bar moves to ``done``); closed on exit."""
    bar = progress_bar(total, desc, unit, quiet)
    try:
        yield lambda done: bar.update(done - bar.n)
    finally:
        bar.close()


# ------------------------------------------------------------------------------ resume rules

def config_for_resume(run_dir, overrides, config_class=TrainConfig):
    """The saved configuration of the run in ``run_dir`` with ``overrides`` applied (see
    :func:`resume_config`)."""
    check_run_dir(run_dir, resume=True)
    ckpt = checkpoint.load(os.path.join(run_dir, CHECKPOINT))
    saved = saved_config(ckpt, config_class)
    resumable = getattr(config_class, "RESUMABLE", RESUMABLE_OVERRIDES)
    check_checkpoint_belongs(run_dir, ckpt, saved, resumable)
    return resume_config(saved, overrides, resumable)


def check_checkpoint_belongs(run_dir, ckpt, saved, resumable=RESUMABLE_OVERRIDES):
    """Refuse a checkpoint that is not this run's: one copied from another run (its model or
    data differ from config.json) or one that has seen epochs metrics.jsonl has not."""
    config_path = os.path.join(run_dir, CONFIG)
    if os.path.isfile(config_path):
        try:
            with open(config_path, encoding="utf-8") as f:
                written = json.load(f)
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"{config_path} is not valid JSON ({e})") from None
        if not isinstance(written, dict):
            raise ValueError(f"{config_path} does not hold a configuration (a JSON object)")
        mine = saved.to_dict()
        for name, value in sorted(written.items()):
            if name in mine and name not in resumable and value != mine[name]:
                raise ValueError(f"{ckpt.path} is not this run's checkpoint: its {name} is "
                                 f"{mine[name]!r} but {config_path} says {value!r} (was it "
                                 "copied from another run?)")
    rows = read_metrics(os.path.join(run_dir, METRICS))
    last = rows[-1]["epoch"] if rows else 0
    if ckpt.epoch > last:
        raise ValueError(f"{ckpt.path} is at epoch {ckpt.epoch} but "
                         f"{os.path.join(run_dir, METRICS)} ends at epoch {last}: the "
                         "checkpoint is not this run's (was it copied from another run?)")


def saved_config(ckpt, config_class=TrainConfig):
    """The run configuration a checkpoint was trained with, as ``config_class``; a run of
    another kind (a diffusion run read by ``minivae train``, or the reverse) is a ValueError."""
    saved = dict(ckpt.train_config)
    kind, want = saved.pop("kind", "vae"), getattr(config_class, "KIND", "vae")
    if kind != want:
        command = "minivae diffusion" if kind == "diffusion" else "minivae"
        raise ValueError(f"{ckpt.path} holds a {kind} run, not a {want} run; use `{command} "
                         "...` for it")
    try:
        return config_class.from_dict(saved)
    except (TypeError, ValueError) as e:
        raise checkpoint.CheckpointError(f"{ckpt.path}: metadata field train is not a valid "
                                         f"training configuration ({e})") from None


def resume_config(saved, overrides, resumable=RESUMABLE_OVERRIDES):
    """The configuration of a resumed run: ``saved`` (a TrainConfig) with ``overrides`` (dict
    of options given on the command line) applied where allowed; a differing value of any other
    option is a ValueError (a resumed run cannot silently change its model or data)."""
    changes = {}
    for name, value in overrides.items():
        if name in resumable:
            changes[name] = value
        elif value != getattr(saved, name) and not (name == "hidden"
                                                    and tuple(value) == saved.hidden):
            allowed = ", ".join("--" + o.replace("_", "-") for o in resumable)
            raise ValueError(f"--{name.replace('_', '-')} {value!r} differs from the run's "
                             f"{getattr(saved, name)!r}; a resumed run keeps its configuration "
                             f"(only {allowed} may change)")
    return dataclasses.replace(saved, **changes)


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


# ------------------------------------------------------------------------------ metrics

def read_metrics(path):
    """The list of per-epoch metric dicts in a metrics.jsonl ([] if there is no file).

    A last line cut short (written by an older minivae that appended) is skipped; any other
    bad line is a ValueError naming the file and line.
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
        rows.append(_check_record(row, f"{path} line {i}: field"))
        if len(rows) > 1 and rows[-1]["epoch"] <= rows[-2]["epoch"]:
            raise ValueError(f"{path} line {i}: epoch {rows[-1]['epoch']} does not follow "
                             f"epoch {rows[-2]['epoch']}; corrupt file?")
    return rows


#: The type of each field of a metrics record (None: may be null, e.g. no test bound).
_RECORD_FIELDS = {"epoch": (validate.positive_int, False), "k": (validate.positive_int, False),
                  "train_bound": (validate.real, False), "lr": (validate.positive_real, False),
                  "test_bound": (validate.real, True), "test_k": (validate.positive_int, True),
                  "test_n": (validate.nonnegative_int, True),
                  "time": (validate.nonnegative_real, False),
                  "eval_time": (validate.nonnegative_real, False),
                  "elapsed": (validate.nonnegative_real, False),
                  "examples_per_s": (validate.nonnegative_real, True)}


def _check_record(row, where):
    """A metrics record with every field present and of the right type (a string-typed bound
    would be drawn as a categorical axis, a missing or string elapsed time would restart or
    crash a resume's clock)."""
    fields = _RECORD_FIELDS
    if row.get("objective") == "L_simple":          # a diffusion run's record: T, not K
        fields = {n: f for n, f in _RECORD_FIELDS.items() if n not in ("k", "test_k")}
        fields.update(T=(validate.positive_int, False), test_t=(validate.positive_int, True))
    missing = [name for name in fields if name not in row]
    if missing:
        raise ValueError(f"{where} {missing[0]!r} is missing ({len(missing)} field(s) missing); "
                         "corrupt file?")
    for name, (check, nullable) in fields.items():
        if not (nullable and row[name] is None):
            check(f"{where} {name!r}", row[name])
    return row


def write_metrics(path, rows):
    checkpoint.atomic_write(path, "".join(_json(r) + "\n" for r in rows))


def write_json(path, obj):
    """``obj`` as indented JSON, atomically."""
    checkpoint.atomic_write(path, _json(obj, indent=2) + "\n")


def _json(obj, **kw):
    """Strict JSON: a NaN or inf (bare ``NaN`` tokens are not JSON) is an error, not a file
    other programs cannot read."""
    try:
        return json.dumps(obj, allow_nan=False, **kw)
    except ValueError:
        bad = [k for k, v in (obj.items() if isinstance(obj, dict) else ())
               if isinstance(v, float) and not math.isfinite(v)]
        raise ValueError(f"refusing to write NaN or inf as JSON ({', '.join(bad) or 'a value'}"
                         ")") from None


def epoch_metrics(run, train_bound, test, lr, seconds, eval_seconds, elapsed, n_train, n_test):
    """One line of metrics.jsonl.

    epoch (1-based, completed passes), k, train_bound (mean over the epoch's minibatches of
    the training objective, with the parameters as they were at each step, on the dynamically
    binarized data), test_bound (L_test_k averaged over test_n test images spread evenly over
    the test set, at the end of the epoch; null if eval_n = 0), lr, time (s for the epoch's
    training steps), eval_time (s for the test bound), elapsed (s of training since the run
    began, over all sessions), examples_per_s.
    """
    return {"epoch": run.epoch, **run.metric_fields(), "train_bound": train_bound,
            "test_bound": test, "test_n": n_test, "lr": lr,
            "time": round(seconds, 3), "eval_time": round(eval_seconds, 3),
            "elapsed": round(elapsed, 3),
            "examples_per_s": round(n_train / seconds, 1) if seconds > 0 else None}


# ------------------------------------------------------------------------------ reporting

class _Reporter:
    """A progress bar per epoch (on a terminal only) and one line per epoch (unless quiet)."""

    def __init__(self, quiet, n_train, stream=None):
        self.quiet, self.n_train = quiet, n_train
        self.stream = stream or sys.stdout
        self.bar = None

    def start_epoch(self, epoch, epochs, labels):
        self.bar = progress_bar(self.n_train, f"epoch {epoch + 1}/{epochs}", "ex",
                                quiet=self.quiet, unit_scale=True)
        self.labels, self.done = labels, 0

    def progress_callback(self):
        """:meth:`progress` while a bar is drawn, else None (so that training does not stop
        to read its running bound from the device for nobody)."""
        return self.progress if self.bar is not None and not self.bar.disable else None

    def progress(self, seen, mean):
        if self.bar is not None:
            self.bar.update(seen - self.done)
            self.done = seen
            self.bar.set_postfix_str(f"{self.labels[0]}={mean:.2f}", refresh=False)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def end_epoch(self, m, epochs):
        self.close()
        train, test = self.labels
        test = "" if m["test_bound"] is None else f"  test {test} {m['test_bound']:.3f}"
        self.line(f"epoch {m['epoch']}/{epochs}  train {train} {m['train_bound']:.3f}{test}"
                  f"  lr {m['lr']:.3g}  {m['time']:.1f} s ({m['examples_per_s']:.0f} ex/s)")

    def line(self, text):
        if not self.quiet:
            print(text, file=self.stream, flush=True)


# ------------------------------------------------------------------------------ the run

def train(config, run_dir, resume=False, force=False, quiet=False, plots=True, stream=None,
          run_class=Run):
    """Train (or resume) a run in ``run_dir``; returns a summary dict.

    config : a :class:`TrainConfig` (for a resumed run: the saved one with the allowed
        overrides, see :func:`resume_config`). Raises ValueError/OSError for bad input (before
        anything is written), :class:`minivae.train.Diverged` on NaN/inf.
    run_class : the kind of run: :class:`minivae.train.Run` (an IWAE or VAE) or
        :class:`minivae.diffusion.training.DiffusionRun` (config a DiffusionConfig); it loads
        the data, trains an epoch, scores the test set and names what it reports.
    """
    stale = check_run_dir(run_dir, resume, force)
    ckpt_path = os.path.join(run_dir, CHECKPOINT)
    metrics_path = os.path.join(run_dir, METRICS)
    if config.data == "mnist":
        # Record where the files are (not just "$MINIVAE_DATA"), for evaluate and sample.
        config = dataclasses.replace(
            config, data_dir=os.path.abspath(data.resolve_data_dir(config.data_dir)))
    rd = run_class.load_data(config)
    if run_class is Run:
        check_memory(config, rd.x_train.shape[1])
    run = (run_class.restore(checkpoint.load(ckpt_path), config) if resume
           else run_class.fresh(config, rd.x_train.shape[1]))
    # Keep the metrics of the epochs the checkpoint has seen (a crash between writing the
    # metrics and the checkpoint leaves one more line, which this run will redo); read, and
    # checked, before anything is written.
    rows = [r for r in read_metrics(metrics_path) if r["epoch"] <= run.epoch] if resume else []
    # Only now, with the input known good, touch the run directory ("force": the old run's
    # files go, and nothing else).
    created = not os.path.isdir(run_dir)
    try:
        for f in stale + _legacy_temp_files(run_dir):
            os.remove(os.path.join(run_dir, f))
        os.makedirs(run_dir, exist_ok=True)
        if resume:
            write_metrics(metrics_path, rows)
        else:
            run.save(ckpt_path)                    # a usable checkpoint from the start
        write_json(os.path.join(run_dir, CONFIG), config.to_dict())
    except OSError:
        if created:                                # no empty or half-written run left behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    report = _Reporter(quiet, len(rd.x_train), stream)
    if resume:
        elapsed = rows[-1]["elapsed"] if rows else 0.0
        report.line(f"resuming {run_dir} at epoch {run.epoch} of {config.epochs}")
        if not run.rng_exact:
            report.line("note: the checkpoint was written by the other backend (CPU/GPU); its "
                        "random generators were reseeded from their saved states, so this "
                        "run will not match an uninterrupted one bit for bit")
    else:
        elapsed = 0.0
        report.line(f"{run.describe(rd.source)} -> {run_dir}")
    n_test = run.n_test(len(rd.x_test))
    last = None
    try:
        while run.epoch < config.epochs:
            report.start_epoch(run.epoch, config.epochs, run.labels())
            t0 = time.perf_counter()
            # Ends with one read of the epoch's bookkeeping (its bound, every parameter finite),
            # which waits for the device: the time is the epoch's.
            train_bound = run.train_epoch(rd.x_train, report.progress_callback())
            seconds = time.perf_counter() - t0
            report.close()
            t1 = time.perf_counter()
            test = run.test_bound(rd.x_test)
            if test is not None and not math.isfinite(test):
                raise Diverged(f"the test bound became {test} after epoch {run.epoch + 1}")
            lr = run.optimizer.lr
            run.epoch += 1
            elapsed += seconds
            last = epoch_metrics(run, train_bound, test, lr, seconds, time.perf_counter() - t1,
                                 elapsed, len(rd.x_train), n_test)
            # Metrics first, then the checkpoint: a crash in between leaves a metrics line the
            # checkpoint has not seen, which a resume drops (never a checkpoint without metrics).
            rows.append(last)
            try:
                write_metrics(metrics_path, rows)
                run.save(ckpt_path)
            except OSError as e:
                # E.g. the disk filled up: the run itself is fine, and the atomic writes left
                # the previous epoch's files whole, so say how to continue.
                raise OSError(e.errno, f"{e.strerror or e} while saving epoch {run.epoch}; "
                              f"{ckpt_path} keeps epoch {run.epoch - 1}: free some space and "
                              f"continue with `minivae train --out {run_dir} --resume`") \
                    from None
            report.end_epoch(last, config.epochs)
    except Diverged as e:
        raise Diverged(f"{e}; {ckpt_path} keeps the last good state (epoch {run.epoch}): "
                       f"continue from it with a smaller learning rate, `minivae train --out "
                       f"{run_dir} --resume --lr {config.lr / 10:g}`") from None
    finally:
        report.close()
    if plots and rows:
        try:
            run.save_curves(rows, os.path.join(run_dir, CURVES))
        except OSError as e:
            raise OSError(e.errno, f"training finished ({ckpt_path} is complete) but "
                          f"{CURVES} could not be written ({e.strerror or e}); draw it later "
                          f"with `minivae plot {run_dir}`") from None
    return {"run_dir": run_dir, "epoch": run.epoch, "last": last, "model": repr(run.model)}


def _legacy_temp_files(run_dir):
    """Temporary files of the run's files left by a killed writer of minivae 0.1
    (``.checkpoint.npz.XXXXXXXX.tmp``: no process id in the name, so the one atomic writer's
    own clean-up cannot tell them from a live writer's); the run's own process is their only
    writer, so they are stale whenever a run starts or resumes."""
    if not os.path.isdir(run_dir):
        return []
    return [n for n in os.listdir(run_dir) for f in RUN_FILES
            if n.startswith(f".{f}.") and n.endswith(".tmp") and ".tmp-" not in n]


def check_memory(config, x_dim):
    """Refuse, before anything is allocated or written, a run whose model or training step
    cannot fit in memory, saying which --k would."""
    from ..likelihoods import LIKELIHOODS
    memory.check_training(x_dim, config.z_dim, config.hidden,
                          len(LIKELIHOODS[config.likelihood].heads), config.dtype,
                          config.batch_size, config.k, k_name="--k", batch_name="--batch-size")


def load_run(run_dir, data_name=None, data_dir=None):
    """(Checkpoint, model, TrainConfig, RunData) of a run directory, for evaluate/sample/plot;
    ``data_name``/``data_dir`` override the data the run was trained on."""
    if not os.path.isdir(run_dir):
        raise ValueError(f"{run_dir}: no such run directory")
    ckpt = checkpoint.load(os.path.join(run_dir, CHECKPOINT))
    model = ckpt.model()
    config = saved_config(ckpt)
    rd = load_data(config, data_name, data_dir)
    return ckpt, model, config, rd


def print_summary(summary, run_dir, test, command):
    """The closing line of a training command: where the run is, its last test bound (named
    ``test``), and the commands that use it (``command`` evaluate/sample RUN_DIR)."""
    last = summary["last"]
    if last is None:
        print(f"{run_dir}: already trained for {summary['epoch']} epochs; pass --epochs "
              f"with --resume to train further")
    else:
        print(f"done: {run_dir} after {summary['epoch']} epochs"
              + ("" if last["test_bound"] is None else f", {test} = {last['test_bound']:.3f}")
              + f"; next: {command} evaluate {run_dir}, {command} sample {run_dir}")


def train_from_args(args, preset=None, run_class=Run, command="minivae train"):
    """Build the run's configuration from the options (over ``preset``) and train it
    (``run_class``: the kind of run, see :func:`train`; ``command``: for the resume hint)."""
    config_class = run_class.config_class
    given = config_overrides(args, config_class)
    if args.resume:
        config = config_for_resume(args.out, given, config_class)
    elif preset is not None:
        config = config_class.preset(preset, **given)
    else:
        config = config_class(**given)
    try:
        return train(config, args.out, resume=args.resume, force=args.force, quiet=args.quiet,
                     plots=not args.no_plots, run_class=run_class)
    except KeyboardInterrupt:
        ckpt = os.path.join(args.out, CHECKPOINT)
        raise Interrupted(f"{ckpt} holds the last completed epoch: continue with `{command} "
                          f"--out {args.out} --resume`" if os.path.isfile(ckpt)
                          else "") from None
