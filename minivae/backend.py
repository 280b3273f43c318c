"""The array backend: NumPy on the CPU, CuPy on an NVIDIA GPU.

Every piece of array code in minivae takes its namespace from here, following CuPy's
CPU/GPU-agnostic convention::

    from minivae.backend import xp
    h = xp.tanh(x @ W + b)

so one implementation serves both devices. The backend is chosen once, at import, from the
environment variable ``MINIVAE_BACKEND`` (``numpy``, the default, or ``cupy``). Asking for CuPy
where it cannot run is an error, never a silent fall back to NumPy: a run that believes it is on
a GPU while it is on the CPU wastes a researcher's day.

Device-specific code lives in one place only: :func:`minivae.ops.logsumexp_weights` dispatches
to the fused CUDA kernel (``kernels/logsumexp_weights.cu``) when the backend is CuPy.
"""
import base64
import hashlib
import json
import os
import sys

import numpy

BACKENDS = ("numpy", "cupy")
INSTALL_HINT = ("install CuPy for your CUDA version with `pip install -e .[cuda12]` or "
                "`pip install -e .[cuda13]`, or unset MINIVAE_BACKEND to run on the CPU")


class BackendError(RuntimeError):
    """The requested backend cannot be used (its message is one line saying what to do)."""


def _load(name):
    """Return (array module, scipy.special-like module) for backend ``name``."""
    if name == "numpy":
        import scipy.special
        return numpy, scipy.special
    if name == "cupy":
        try:
            import cupy
            import cupyx.scipy.special
        except Exception as e:  # ImportError, or a broken CUDA install raising on import
            raise BackendError(f"MINIVAE_BACKEND=cupy but CuPy cannot be imported ({e}); "
                               + INSTALL_HINT) from None
        try:
            n = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:
            raise BackendError(f"MINIVAE_BACKEND=cupy but no CUDA device is usable ({e}); "
                               + INSTALL_HINT) from None
        if n < 1:
            raise BackendError("MINIVAE_BACKEND=cupy but no CUDA device is present; "
                               + INSTALL_HINT)
        return cupy, cupyx.scipy.special
    raise BackendError(f"unknown MINIVAE_BACKEND={name!r}; choose one of {', '.join(BACKENDS)}")


def _print_uncaught_backend_error_as_one_line():
    """Make an uncaught BackendError print as one line instead of a traceback.

    The backend loads when minivae is first imported, before the CLI's own error handling
    exists, so ``MINIVAE_BACKEND=cupy minivae train`` without CuPy would otherwise end in a
    traceback through the package's imports. Caught errors (tests, user code) are untouched.
    """
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, BackendError):
            print(f"minivae: error: {exc}", file=sys.stderr)
            sys.stderr.flush()
            # Exit code 2, the CLI's code for bad input (an interpreter that dies of an
            # uncaught exception exits 1); nothing has run yet, so there is nothing to clean.
            os._exit(2)
        else:
            previous(exc_type, exc, tb)

    sys.excepthook = hook


name = os.environ.get("MINIVAE_BACKEND", "numpy").strip().lower() or "numpy"
try:
    xp, special = _load(name)
except BackendError:
    _print_uncaught_backend_error_as_one_line()
    raise
"""``xp`` is the array namespace (numpy or cupy); ``special`` holds gammaln and digamma."""


def get_array_module(*arrays):
    """The namespace (numpy or cupy) of the given arrays, as ``cupy.get_array_module``."""
    if name == "cupy":
        return xp.get_array_module(*arrays)
    return numpy


def asarray(a, dtype=None):
    """``a`` as an array of the backend (copied to the device under CuPy)."""
    return xp.asarray(a, dtype=dtype)


def to_numpy(a):
    """A host copy of ``a`` as a NumPy array: the boundary to files, plots and printing.

    Always a copy (on both backends), so that a snapshot, e.g. for a checkpoint, never changes
    when the live array does.
    """
    if name == "cupy" and isinstance(a, xp.ndarray):
        return xp.asnumpy(a)
    return numpy.array(a, copy=True)


def default_rng(seed=None):
    """A seeded random generator of the backend (``numpy.random.Generator`` on the CPU).

    Both provide ``standard_normal(size, dtype)`` and ``random(size, dtype)``, which is all the
    array code draws with.

    CuPy: cuRAND's XORWOW (CuPy's default) with CUPY_RNG_STREAMS parallel streams instead of
    CuPy's 2048 per multiprocessor. A draw larger than that loops over the streams, and a
    training step's noise (K·B·z_dim = 50,000 numbers for Burda et al.'s model) still fits in
    one pass; the point is the state, which a checkpoint stores: 48 bytes per stream, 3 MB here
    instead of 13 MB on an H100, and the same size on every GPU.
    """
    if name == "cupy":
        return xp.random.Generator(xp.random.XORWOW(seed, size=CUPY_RNG_STREAMS))
    return xp.random.default_rng(seed)


CUPY_RNG_STREAMS = 1 << 16


def rng_state(rng):
    """The generator's state as plain, JSON-able Python data (for a checkpoint).

    NumPy: ``bit_generator.state``. CuPy: its generators keep their whole state on the device,
    one cuRAND state per parallel stream (CuPy documents them as not serializable and offers no
    ``state``); the state is that buffer, copied to the host and base64-encoded, with the
    generator's class, seed and number of streams. It is large (48 bytes per stream, 3 MB for
    :func:`default_rng`'s generators) but exact.
    """
    if _is_cupy_generator(rng):
        bg = rng.bit_generator
        try:
            raw = xp.asnumpy(bg._state).tobytes()
            return {"bit_generator": "cupy." + type(bg).__name__, "seed": int(bg._seed),
                    "size": int(bg._size), "state": base64.b64encode(raw).decode("ascii")}
        except AttributeError as e:  # a CuPy whose generators are laid out differently
            raise BackendError(f"cannot save the state of this CuPy version's random "
                               f"generator ({e})") from None
    return rng.bit_generator.state


def set_rng_state(rng, state):
    """Restore a state returned by :func:`rng_state`; True when the stream continues exactly.

    A state saved by the other backend (a checkpoint written on a GPU and loaded on a CPU, or
    the reverse) cannot continue in a different generator algorithm: the generator is then
    reseeded from a hash of that state, deterministically, and False is returned.
    """
    on_cupy = _is_cupy_generator(rng)
    if str(state.get("bit_generator", "")).startswith("cupy.") != on_cupy:
        digest = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).digest()
        seed = int.from_bytes(digest[:8], "little")
        if on_cupy:
            rng.bit_generator = default_rng(seed).bit_generator
        else:
            rng.bit_generator.state = numpy.random.default_rng(seed).bit_generator.state
        return False
    if on_cupy:
        _set_cupy_rng_state(rng, state)
    else:
        rng.bit_generator.state = state
    return True


def _is_cupy_generator(rng):
    # Under CuPy, host-side NumPy generators (e.g. for shuffling) may be saved here too.
    return name == "cupy" and not isinstance(rng, numpy.random.Generator)


def _set_cupy_rng_state(rng, state):
    raw = numpy.frombuffer(base64.b64decode(state["state"]), dtype=numpy.int8)
    bg = rng.bit_generator
    kind = state["bit_generator"][len("cupy."):]
    if type(bg).__name__ != kind or int(bg._size) != int(state["size"]):
        # Another generator class or stream count (e.g. saved on a GPU with more
        # multiprocessors): make a generator of the saved shape, then overwrite its state.
        cls = getattr(xp.random, kind, None)
        if cls is None:
            raise BackendError(f"this CuPy has no random generator {kind!r} to restore")
        bg = cls(int(state["seed"]), size=int(state["size"]))
        rng.bit_generator = bg
    if bg._state.nbytes != raw.nbytes:
        raise BackendError(f"saved {kind} state has {raw.nbytes} bytes, this CuPy's has "
                           f"{bg._state.nbytes}")
    bg._state[...] = xp.asarray(raw).view(bg._state.dtype).reshape(bg._state.shape)
    bg._seed = int(state["seed"])


def synchronize():
    """Wait for the device to finish queued work (a no-op on the CPU); used by benchmarks."""
    if name == "cupy":
        xp.cuda.Stream.null.synchronize()
