"""The array backend: NumPy on the CPU, CuPy on an NVIDIA GPU.

Every piece of array code in minivae takes its namespace from here, following CuPy's
CPU/GPU-agnostic convention::

    from minivae.backend import xp
    h = xp.tanh(x @ W + b)

so one implementation serves both devices. The backend is chosen once, from the environment
variable ``MINIVAE_BACKEND`` (``numpy``, the default, or ``cupy``) as this module is imported,
and loaded on first use of ``xp`` (PEP 562), so that ``import minivae`` and ``minivae --help``
work whatever the variable says. Asking for CuPy where it cannot run raises
:class:`BackendError` there, with one line saying what to do (the command line reports it and
exits with code 2); it is never a silent fall back to NumPy: a run that believes it is on a GPU
while it is on the CPU wastes a researcher's day.

Device-specific code lives in one place only: :func:`minivae.ops.logsumexp_weights` dispatches
to the fused CUDA kernel (``kernels/logsumexp_weights.cu``) when the backend is CuPy.
"""
import base64
import binascii
import hashlib
import json
import os

import numpy

BACKENDS = ("numpy", "cupy")
INSTALL_HINT = ("install CuPy for your CUDA version with `pip install -e .[cuda12]` or "
                "`pip install -e .[cuda13]`, or unset MINIVAE_BACKEND to run on the CPU")
# CuPy's wheels expect the CUDA libraries (runtime, NVRTC, cuBLAS, ...) on the machine; from
# CuPy 14 on, the [ctk] extra installs them from PyPI, which is all a driver-only machine needs.
LIBRARIES_HINT = ("the CUDA libraries CuPy loads are missing: install them with "
                  "`pip install \"cupy-cuda12x[ctk]>=14\"` (`cupy-cuda13x[ctk]` for CUDA 13) or "
                  "install the CUDA Toolkit, or unset MINIVAE_BACKEND to run on the CPU")
DEVICE_HINT = ("check the GPU and its driver with `nvidia-smi` (the driver must support the CUDA "
               "version of your CuPy), or unset MINIVAE_BACKEND to run on the CPU")


class BackendError(RuntimeError):
    """The requested backend cannot be used (its message is one line saying what to do)."""


def _one_line(error, limit=300):
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _missing_library(error):
    """Whether an error raised by CuPy says a CUDA library could not be found or loaded."""
    text = f"{type(error).__name__} {error}".lower()
    return any(s in text for s in ("dynamiclibnotfound", "failed to load", "cannot open shared",
                                   "could not be loaded", "libcudart", "libnvrtc", "libcublas",
                                   "libcurand", "cudart64", "nvrtc64", "cublas64"))


def _unusable(error, what):
    hint = LIBRARIES_HINT if _missing_library(error) else DEVICE_HINT
    return BackendError(f"MINIVAE_BACKEND=cupy but {what} ({type(error).__name__}: "
                        f"{_one_line(error)}); {hint}")


def _load(backend_name):
    """Return (array module, scipy.special-like module) for backend ``backend_name``."""
    if backend_name == "numpy":
        import scipy.special
        return numpy, scipy.special
    if backend_name == "cupy":
        try:
            import cupy
            import cupyx.scipy.special
        except Exception as e:  # ImportError, or a broken CUDA install raising on import
            raise BackendError(f"MINIVAE_BACKEND=cupy but CuPy cannot be imported "
                               f"({_one_line(e)}); " + INSTALL_HINT) from None
        try:
            n = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # no driver, or CuPy 14 not finding the CUDA runtime library
            raise _unusable(e, "no CUDA device is usable") from None
        if n < 1:
            raise BackendError("MINIVAE_BACKEND=cupy but no CUDA device is present; "
                               + DEVICE_HINT)
        try:
            # One small computation needs what every step does: NVRTC (CuPy compiles its
            # elementwise and reduction kernels at run time) and cuBLAS (the matrix products).
            # Without the CUDA libraries this is where CuPy fails, so fail here, in one line,
            # rather than in the middle of the first training step.
            a = cupy.ones((2, 2), dtype=numpy.float32)
            float((a @ a).sum())
        except Exception as e:
            raise _unusable(e, "CuPy cannot compute on the device") from None
        return cupy, cupyx.scipy.special
    raise BackendError(f"unknown MINIVAE_BACKEND={backend_name!r}; choose one of "
                       f"{', '.join(BACKENDS)}")


name = os.environ.get("MINIVAE_BACKEND", "numpy").strip().lower() or "numpy"
"""The backend's name, read once, at import."""
_loaded = None          # (xp, special) once loaded, or the BackendError of the one attempt


def load():
    """``(xp, special)`` of the chosen backend, loaded on the first call: ``xp`` is the array
    namespace (numpy or cupy), ``special`` holds gammaln and digamma. Raises BackendError
    (every time) when the backend cannot be used."""
    global _loaded
    if _loaded is None:
        try:
            _loaded = _load(name)
        except BackendError as e:
            _loaded = e
    if isinstance(_loaded, BackendError):
        raise BackendError(str(_loaded))
    return _loaded


def __getattr__(attr):
    # ``from minivae.backend import xp`` (and ``backend.xp``) load the backend on first use.
    if attr in ("xp", "special"):
        globals()["xp"], globals()["special"] = load()
        return globals()[attr]
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def get_array_module(*arrays):
    """The namespace (numpy or cupy) of the given arrays, as ``cupy.get_array_module``."""
    if name == "cupy":
        return load()[0].get_array_module(*arrays)
    return numpy


def asarray(a, dtype=None):
    """``a`` as an array of the backend (copied to the device under CuPy)."""
    return load()[0].asarray(a, dtype=dtype)


def to_numpy(a):
    """A host copy of ``a`` as a NumPy array: the boundary to files, plots and printing.

    Always a copy (on both backends), so that a snapshot, e.g. for a checkpoint, never changes
    when the live array does.
    """
    if name == "cupy":
        cupy = load()[0]
        if isinstance(a, cupy.ndarray):
            return cupy.asnumpy(a)
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
        cupy = load()[0]
        return cupy.random.Generator(cupy.random.XORWOW(seed, size=CUPY_RNG_STREAMS))
    load()
    return numpy.random.default_rng(seed)


CUPY_RNG_STREAMS = 1 << 16
# CuPy's random kernels (cupy/random/cupy_distributions.cu) run blocks of 256 threads, thread i
# on stream i, with no bounds check: every thread of the last block reads and writes its
# stream's state, so the stream count must be a multiple of 256. One cuRAND XORWOW state
# (curandStateXORWOW) is 48 bytes.
CUPY_RNG_BLOCK = 256
XORWOW_STATE_BYTES = 48
CUPY_RNG_MAX_STREAMS = 1 << 24          # 768 MB of state: far beyond any GPU's default


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
            raw = load()[0].asnumpy(bg._state).tobytes()
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


def check_cupy_rng_state(state):
    """``(seed, size, raw bytes)`` of a saved CuPy generator state, or a one-line ValueError.

    Checked before anything is written into a device buffer: the generator class (minivae
    saves cupy.XORWOW, see :func:`default_rng`), the seed (CuPy's is a uint32), the stream
    count (a multiple of CUPY_RNG_BLOCK, see above: otherwise the random kernels read and write
    past the state buffer), and the state's byte length (48 bytes per stream).
    """
    def fail(what):
        raise ValueError(f"not a valid CuPy generator state: {what}")

    if not isinstance(state, dict):
        fail(f"expected a dict, got {type(state).__name__}")
    if state.get("bit_generator") != "cupy.XORWOW":
        fail(f"generator {state.get('bit_generator')!r}; minivae saves cupy.XORWOW")
    seed, size = state.get("seed"), state.get("size")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
        fail(f"seed {seed!r} is not a uint32")
    if isinstance(size, bool) or not isinstance(size, int) or not (
            0 < size <= CUPY_RNG_MAX_STREAMS and size % CUPY_RNG_BLOCK == 0):
        fail(f"stream count {size!r} is not a positive multiple of {CUPY_RNG_BLOCK} up to "
             f"{CUPY_RNG_MAX_STREAMS}")
    text = state.get("state")
    if not isinstance(text, str):
        fail("the state is not a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        fail("the state is not valid base64")
    if len(raw) != size * XORWOW_STATE_BYTES:
        fail(f"{len(raw)} bytes of state for {size} streams (expected "
             f"{size * XORWOW_STATE_BYTES})")
    return seed, size, raw


def _set_cupy_rng_state(rng, state):
    seed, size, raw = check_cupy_rng_state(state)
    cupy = load()[0]
    bg = rng.bit_generator
    if type(bg).__name__ != "XORWOW" or int(bg._size) != size:
        # Another stream count (or class): make a generator of the saved shape, then overwrite
        # its state.
        bg = cupy.random.XORWOW(seed, size=size)
        rng.bit_generator = bg
    if bg._state.nbytes != len(raw):         # a CuPy whose XORWOW state is laid out otherwise
        raise BackendError(f"this CuPy keeps {bg._state.nbytes} bytes of XORWOW state for "
                           f"{size} streams, the saved state has {len(raw)}")
    bg._state[...] = cupy.asarray(numpy.frombuffer(raw, dtype=numpy.int8)).view(
        bg._state.dtype).reshape(bg._state.shape)
    bg._seed = seed


def synchronize():
    """Wait for the device to finish queued work (a no-op on the CPU); used by benchmarks."""
    if name == "cupy":
        load()[0].cuda.Stream.null.synchronize()
