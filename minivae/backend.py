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
import os

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


name = os.environ.get("MINIVAE_BACKEND", "numpy").strip().lower() or "numpy"
xp, special = _load(name)
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
    """
    return xp.random.default_rng(seed)


def rng_state(rng):
    """The generator's state as plain Python data (for a checkpoint)."""
    return rng.bit_generator.state


def set_rng_state(rng, state):
    """Restore a state returned by :func:`rng_state`."""
    rng.bit_generator.state = state


def synchronize():
    """Wait for the device to finish queued work (a no-op on the CPU); used by benchmarks."""
    if name == "cupy":
        xp.cuda.Stream.null.synchronize()
