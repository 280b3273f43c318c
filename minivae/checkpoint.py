"""Checkpoints: everything a training run needs to continue exactly, in one atomic file.

A checkpoint is one uncompressed ``.npz`` (a zip of ``.npy`` arrays, readable by
``numpy.load(path, allow_pickle=False)`` with nothing from minivae) holding

- ``params/<name>``            the model's parameters, e.g. ``params/encoder.0.W`` (in, out);
- ``ema/<name>``               a diffusion model's moving average of them, when it keeps one;
- ``optimizer/<slot>/<name>``  the optimizer's per-parameter arrays (Adam: ``m`` and ``s``);
- ``meta``                     a UTF-8 JSON document stored as a uint8 array, with
    ``format``/``version``, ``model`` (class name and ``get_config()``), ``optimizer`` (class
    name and scalar state: ``t``, ``lr``, betas, ...), ``rng`` (named generator states, e.g. the
    model's noise generator and the data generators), ``epoch`` (completed passes), and
    ``train`` (the training configuration).

Writing goes through :func:`atomic_write`, the one writer of every file minivae produces: a
temporary file in the same directory, flushed to disk, then renamed over the old checkpoint, so
a crash or Ctrl-C leaves either the old checkpoint or the new one, never half of one. Reading checks the
zip's CRCs and the metadata, and any problem is a :class:`CheckpointError` (a ``ValueError``)
with a one-line message.
"""
import json
import math
import os
import tempfile
import zipfile

import numpy as np

from . import backend, memory, model as model_module, optim, validate
from .diffusion.ddpm import DDPM, DENOISERS, LEGACY as DDPM_LEGACY, n_denoiser_params

FORMAT = "minivae-checkpoint"
VERSION = 1
MODEL_CLASSES = {"IWAE": model_module.IWAE, "VAE": model_module.VAE, "DDPM": DDPM}
OPTIMIZER_CLASSES = {"Adam": optim.Adam, "SGD": optim.SGD}


class CheckpointError(ValueError):
    """A missing, unreadable or inconsistent checkpoint (the message is one line)."""


# ------------------------------------------------------------------------------ the file

def atomic_write(path, content):
    """Write ``content`` to ``path`` so that readers see the old file or the new one, never part.

    content : bytes, str (written as UTF-8), or a callable ``content(f)`` that writes into a
        binary file object (e.g. ``np.savez`` or matplotlib's ``savefig``).

    The one writer of every file minivae produces (checkpoints, metrics, JSON, CSV, PNG). The
    data go to a temporary file in the same directory (a rename is only atomic within one file
    system), are flushed and fsync'ed to disk, and the temporary file is renamed over ``path``
    (``os.replace``: atomic on POSIX and Windows). On any error, KeyboardInterrupt included, the
    temporary file is removed and ``path`` is untouched. Temporary files left by a writer that was
    killed (``kill -9``, power loss) are removed on the next write to the same path.
    """
    atomic_write_many([(path, content)])


def atomic_write_many(outputs):
    """:func:`atomic_write` for several files, all or none: ``outputs`` is a list of
    (path, content); every file is written to its temporary file first and renamed over its
    target only once all have been written, so a failure leaves no partial output."""
    tmps = []
    try:
        for path, content in outputs:
            tmps.append(_write_temp(path, content))
        for tmp, (path, _) in zip(tmps, outputs):
            os.replace(tmp, path)
        tmps = []
    finally:
        for tmp in tmps:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _temp_prefix(path):
    return f".{os.path.basename(path)}.tmp-"


def _write_temp(path, content):
    """A finished, fsync'ed temporary file next to ``path``: .NAME.tmp-PID-XXXX."""
    directory = os.path.dirname(os.path.abspath(path))
    _remove_stale_temps(directory, _temp_prefix(path))
    fd, tmp = tempfile.mkstemp(prefix=f"{_temp_prefix(path)}{os.getpid()}-", dir=directory)
    try:
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes it private; our files are not
        with os.fdopen(fd, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode("utf-8") if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())       # the data is on disk before the rename makes it visible
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _remove_stale_temps(directory, prefix):
    """Remove temporary files of ``prefix`` whose writing process no longer exists."""
    try:
        names = [n for n in os.listdir(directory) if n.startswith(prefix)]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:                    # PermissionError: it exists, owned by someone else
        return True
    return True


def save_arrays(path, arrays, meta):
    """Atomically write ``arrays`` (dict name -> NumPy array) and ``meta`` (JSON-able) to path,
    as one uncompressed .npz (see :func:`atomic_write`)."""
    payload = dict(arrays)
    payload["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **payload))


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_arrays(path):
    """Read a file written by :func:`save_arrays`: returns (arrays dict, meta dict)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):   # a .npy array under an .npz name
            raise CheckpointError(f"{path}: a single NumPy array (.npy), not a minivae "
                                  "checkpoint (an .npz archive)")
        with loaded as z:
            arrays = {k: z[k] for k in z.files}          # reading each member checks its CRC
        meta = json.loads(bytes(arrays.pop("meta")).decode("utf-8"))
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path}: not a readable minivae checkpoint "
                              f"({type(e).__name__}: {' '.join(str(e).split())})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a minivae checkpoint (no '{FORMAT}' metadata)")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version "
                              f"{validate._show(meta.get('version'))} is not supported by this "
                              f"minivae (it reads version {VERSION})")
    return arrays, meta


# ------------------------------------------------------------------------------ what goes in

def save(path, model, optimizer=None, rng_states=None, epoch=0, train_config=None):
    """Write a checkpoint of a model (and, for training, its optimizer, RNGs and progress).

    rng_states : dict name -> state as returned by :func:`minivae.backend.rng_state` (or a
        NumPy generator's ``bit_generator.state``); the model's own noise generator is always
        included as ``"model"``.
    epoch : the number of completed passes over the training data.
    """
    arrays = {f"params/{n}": backend.to_numpy(p) for n, p in model.params.items()}
    arrays.update({f"ema/{n}": backend.to_numpy(p)
                   for n, p in (getattr(model, "ema", None) or {}).items()})
    meta = {"format": FORMAT, "version": VERSION,
            "model": {"class": type(model).__name__, "config": model.get_config()},
            "rng": dict(rng_states or {}, model=backend.rng_state(model.rng)),
            "epoch": int(epoch), "train": train_config or {}, "backend": backend.name}
    if optimizer is not None:
        scalars, slots = {}, []
        for key, value in optimizer.state_dict().items():
            if isinstance(value, dict):                   # per-parameter arrays (Adam's m, s)
                slots.append(key)
                for n, a in value.items():
                    arrays[f"optimizer/{key}/{n}"] = np.asarray(a)
            else:
                scalars[key] = value
        meta["optimizer"] = {"class": type(optimizer).__name__, "state": scalars,
                             "slots": slots}
    save_arrays(path, arrays, _jsonable(meta))


def _jsonable(obj):
    """NumPy scalars and small arrays (e.g. inside RNG states) as plain Python values."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


class Checkpoint:
    """A loaded checkpoint: ``meta`` (dict), ``epoch``, ``train_config``, ``path``, and
    :meth:`model`, :meth:`optimizer`, :meth:`rng_state` to rebuild the live objects."""

    def __init__(self, path):
        self.path = path
        self.arrays, self.meta = load_arrays(path)
        self.epoch = self._field(validate.nonnegative_int, "epoch", self.meta.get("epoch", 0))
        self.rng_exact = True
        self.train_config = self._dict("train", self.meta.get("train", {}))
        self._dict("rng", self.meta.get("rng", {}))

    def _fail(self, what):
        raise CheckpointError(f"{self.path}: {what}")

    def _field(self, check, field, value, *args):
        """``check(name, value, *args)`` from :mod:`minivae.validate`, its error naming the
        checkpoint and the metadata field (e.g. optimizer.state.lr)."""
        try:
            return check(f"metadata field {field}", value, *args)
        except ValueError as e:
            self._fail(str(e))

    def _dict(self, field, value):
        if not isinstance(value, dict):
            self._fail(f"metadata field {field} must be a JSON object, got "
                       f"{validate._show(value)}")
        return value

    def _array(self, key, want_shape):
        """The saved array ``key``: real, finite and of shape ``want_shape``, or an error."""
        a = self.arrays.get(key)
        if a is None or a.shape != tuple(want_shape):
            self._fail(f"{key} is missing or has the wrong shape "
                       f"({None if a is None else a.shape} instead of {tuple(want_shape)})")
        if a.dtype.kind != "f":
            self._fail(f"{key} holds {a.dtype} values, not floating point numbers")
        if not np.isfinite(a).all():
            self._fail(f"{key} holds NaN or inf: not a usable state (a diverged run keeps "
                       "its last good checkpoint; this one is not)")
        return a

    def model(self):
        """The model with the saved parameters and noise-generator state.

        Every parameter must be finite: a checkpoint holding NaN or inf is refused rather than
        scored ("nan ± nan"), sampled from or resumed as if it were a good state.
        """
        spec = self._dict("model", self.meta.get("model"))
        cls = MODEL_CLASSES.get(spec.get("class"))
        if cls is None:
            self._fail(f"unknown model class {validate._show(spec.get('class'))}")
        config = self._dict("model.config", spec.get("config"))
        if cls is DDPM:          # arguments an older checkpoint lacks mean what they meant then
            config = dict(DDPM_LEGACY, **config)
            self._check_diffusion_fits(config)
        else:
            self._check_model_fits(config)
        try:
            model = cls(**config)
        except (TypeError, ValueError, KeyError) as e:
            self._fail(f"bad model configuration ({' '.join(str(e).split())})")
        for name, p in model.params.items():
            p[...] = backend.asarray(self._array(f"params/{name}", p.shape), dtype=p.dtype)
        for name, p in (getattr(model, "ema", None) or {}).items():
            p[...] = backend.asarray(self._array(f"ema/{name}", p.shape), dtype=p.dtype)
        if "model" in self.meta.get("rng", {}):
            # False when the state was saved by the other backend (CPU vs GPU): the generator
            # is then reseeded from it, and the noise no longer continues bit for bit.
            self.rng_exact = backend.set_rng_state(model.rng, self.rng_state("model")) \
                is not False
        return model

    def _check_model_fits(self, config):
        """Refuse sizes that cannot be allocated (x_dim = 10**12 would try 72 TiB)."""
        from .likelihoods import NAMES, make
        sizes = {n: self._field(validate.positive_int, f"model.config.{n}", config.get(n))
                 for n in ("x_dim", "z_dim")}
        hidden = self._field(lambda name, v: validate.hidden(v, name), "model.config.hidden",
                             config.get("hidden", ()))
        name = config.get("likelihood", "bernoulli")
        if not isinstance(name, str) or name not in NAMES:
            self._fail(f"metadata field model.config.likelihood is not one of "
                       f"{', '.join(NAMES)}")
        try:
            likelihood = make(name, config.get("n_categories"), config.get("column_types"))
        except (TypeError, ValueError) as e:
            self._fail(f"bad model configuration ({' '.join(str(e).split())})")
        # decoder outputs per feature: one per head, C per categorical head (mixed: on average)
        n_heads = sum(math.prod(likelihood.head_shape(h, sizes["x_dim"]))
                      for h in likelihood.heads) / sizes["x_dim"]
        dtype = self._field(lambda name, v: validate.dtype(v, name), "model.config.dtype",
                            config.get("dtype", "float32"))
        try:
            memory.check(f"the model in {self.path}",
                         memory.model_bytes(sizes["x_dim"], sizes["z_dim"], hidden,
                                            n_heads, dtype, training=False))
        except memory.TooLarge as e:
            raise CheckpointError(str(e)) from None

    def _check_diffusion_fits(self, config):
        """:meth:`_check_model_fits` for a diffusion model (its denoiser's parameters)."""
        x_dim = self._field(validate.positive_int, "model.config.x_dim", config.get("x_dim"))
        time_dim = self._field(validate.positive_int, "model.config.time_dim",
                               config.get("time_dim", 2))
        hidden = self._field(lambda name, v: validate.hidden(v, name), "model.config.hidden",
                             config.get("hidden", ()))
        dtype = self._field(lambda name, v: validate.dtype(v, name), "model.config.dtype",
                            config.get("dtype", "float32"))
        denoiser = self._field(lambda name, v: validate.choice(name, v, DENOISERS),
                               "model.config.denoiser", config.get("denoiser", "mlp"))
        try:
            n = n_denoiser_params(denoiser, x_dim, hidden, time_dim,
                                  self._field(validate.nonnegative_int, "model.config.local",
                                              config.get("local", 0)))
        except ValueError as e:
            self._fail(f"bad model configuration ({e})")
        copies = 2 if config.get("ema_decay") else 1             # θ and its average θ̄
        try:
            memory.check(f"the model in {self.path}", copies * n * np.dtype(dtype).itemsize)
        except memory.TooLarge as e:
            raise CheckpointError(str(e)) from None

    def optimizer(self, model):
        """The optimizer over ``model.params``, with its saved state (t, moments, lr)."""
        spec = self.meta.get("optimizer")
        if not spec or not isinstance(spec, dict) or spec.get("class") not in OPTIMIZER_CLASSES:
            self._fail("holds no optimizer state (it cannot resume training)")
        state = dict(self._dict("optimizer.state", spec.get("state")))
        for key, value in state.items():
            field = f"optimizer.state.{key}"
            state[key] = (self._field(validate.nonnegative_int, field, value) if key == "t"
                          else self._field(validate.real, field, value))
        slots = spec.get("slots", [])
        if not isinstance(slots, list) or not all(isinstance(n, str) for n in slots):
            self._fail(f"metadata field optimizer.slots must be a list of names, got "
                       f"{validate._show(slots)}")
        for slot in slots:
            prefix = f"optimizer/{slot}/"
            state[slot] = {k[len(prefix):]: self._array(k, a.shape)
                           for k, a in self.arrays.items() if k.startswith(prefix)}
            # SGD without momentum has an empty slot; any other must cover every parameter.
            if state[slot] and (set(state[slot]) != set(model.params) or any(
                    a.shape != model.params[n].shape for n, a in state[slot].items())):
                self._fail(f"optimizer slot {slot!r} does not match the model's parameters")
        cls = OPTIMIZER_CLASSES[spec["class"]]
        try:
            opt = cls(model.params, lr=state.get("lr", 1e-3))
            opt.load_state_dict(state)
        except (KeyError, TypeError, ValueError) as e:
            self._fail(f"bad optimizer state ({type(e).__name__}: {e})")
        return opt

    def rng_state(self, name):
        """A saved generator state by name, checked by restoring it into a scratch generator
        (a missing or malformed one is a CheckpointError, not a TypeError later)."""
        states = self.meta.get("rng", {})
        if name not in states:
            self._fail(f"holds no state for the {name!r} random generator")
        state = states[name]
        try:
            if not isinstance(state, dict) or not isinstance(state.get("bit_generator"), str):
                raise TypeError("not a generator state")
            if not state["bit_generator"].startswith("cupy."):
                np.random.default_rng(0).bit_generator.state = state   # NumPy's, any backend
            elif backend.name == "cupy":
                backend.set_rng_state(backend.default_rng(0), state)
            else:
                json.dumps(state, sort_keys=True)     # the GPU's, on the CPU: only hashed
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as e:
            self._fail(f"metadata field rng.{name} is not a valid random generator state "
                       f"({type(e).__name__}: {' '.join(str(e).split())[:80]})")
        return state


def load(path):
    """Read a checkpoint (a :class:`Checkpoint`); ``load(path).model()`` is the trained model."""
    return Checkpoint(path)
