"""Will it fit? Memory estimates made before anything is allocated or written.

A model of ``hidden=(99999999999,)`` or a step with K = 100,000 would otherwise start
allocating, and end in a ``MemoryError`` after a long wait or in the kernel's OOM killer after
swapping everything else out. These estimates are deliberately simple and a little generous;
they are measured, not derived (see ``tests/test_memory.py``, which checks them against
``tracemalloc``'s peak for several shapes):

- a model holds its parameters and, training with Adam, as many gradients and two moments:
  4 numbers per parameter;
- one step of the bound and its gradients keeps, for each of its K·B rows (sample, example),
  the decoder's heads, their log-densities and gradients (about 6 numbers per head value), the
  hidden activations forward and backward (6 per hidden unit) and z, ε and their gradients.

:func:`check` compares an estimate with :func:`available_bytes` (the host's available memory,
within a cgroup limit; the device's free memory under CuPy) and raises :class:`TooLarge`, a
one-line ``ValueError`` (and ``MemoryError``) saying what would fit.
"""
import os

import numpy

from . import backend

#: Numbers kept per K·B row of a step, per decoder head value, per hidden unit, per latent dim.
PER_HEAD_VALUE, PER_HIDDEN_UNIT, PER_LATENT = 6, 6, 8
#: Numbers per parameter while training with Adam: the parameter, its gradient, m and s.
PER_PARAMETER = 4
#: Bytes per pixel of a figure of image grids drawn and saved by matplotlib (measured: the
#: peak RSS of ``minivae sample --n N`` grows by about 0.64 MB per 28 x 28 image, 810 B/pixel).
PICTURE_BYTES_PER_PIXEL = 1000
#: Part of the available memory a run may plan to use (the rest: Python, NumPy, the data).
USABLE = 0.8


class TooLarge(ValueError, MemoryError):
    """Sizes that cannot fit in memory (a ValueError for the API, one line for the CLI)."""


def n_params(x_dim, z_dim, hidden, n_heads):
    """Parameters of IWAE(x_dim, z_dim, hidden) with a decoder of ``n_heads`` heads."""
    enc = [x_dim, *hidden]
    dec = [z_dim, *reversed(hidden)]
    layers = sum((a + 1) * b for a, b in zip(enc, enc[1:]))
    layers += sum((a + 1) * b for a, b in zip(dec, dec[1:]))
    return layers + 2 * (enc[-1] + 1) * z_dim + n_heads * (dec[-1] + 1) * x_dim


def model_bytes(x_dim, z_dim, hidden, n_heads, dtype, training=True):
    """Bytes of a model's parameters (and, training, its gradients and Adam's moments)."""
    per = PER_PARAMETER if training else 1
    return per * n_params(x_dim, z_dim, hidden, n_heads) * numpy.dtype(dtype).itemsize


def step_bytes(rows, x_dim, z_dim, hidden, n_heads, dtype):
    """Bytes one bound_and_grads over ``rows`` = K·B (sample, example) pairs keeps alive."""
    per_row = PER_HEAD_VALUE * n_heads * x_dim + PER_HIDDEN_UNIT * sum(hidden) + \
        PER_LATENT * z_dim
    return rows * per_row * numpy.dtype(dtype).itemsize


def picture_bytes(n_images, pixels):
    """Bytes to draw and save a figure of ``n_images`` images of ``pixels`` pixels each."""
    return n_images * pixels * PICTURE_BYTES_PER_PIXEL


def available_bytes():
    """Bytes this process can still allocate: the device's free memory under CuPy, else the
    host's MemAvailable within the cgroup's limit and the address-space limit (ulimit -v);
    None when none of them can be read."""
    if backend.name == "cupy":
        try:
            free, _ = backend.xp.cuda.runtime.memGetInfo()
            return int(free)
        except Exception:                       # no device to ask (a CPU stand-in): the host's
            pass
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as f:
            used = int(f.read().strip())
        if limit != "max":
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    try:                                         # an address-space limit (ulimit -v)
        import resource
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY:
            with open("/proc/self/status", encoding="ascii") as f:
                size = next(int(line.split()[1]) * 1024 for line in f
                            if line.startswith("VmSize:"))
            found.append(max(0, limit - size))
    except (ImportError, OSError, ValueError, StopIteration):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError, AttributeError):
            return None
    return min(found)


def size(nbytes):
    """1234567 -> '1.2 MB' (decimal units, as a person reads them)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if nbytes < 1000 or unit == "PB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} PB"


def check(what, need, fits="", available=None):
    """Raise :class:`TooLarge` unless ``need`` bytes fit in the usable available memory.

    what : what needs the memory, e.g. "the model hidden=(99999999999,)".
    fits : what would fit, appended to the message (e.g. "--k up to 4096 fits").
    available : bytes (default: :func:`available_bytes`); when unknown, nothing is refused.
    """
    available = available_bytes() if available is None else available
    if available is None or need <= USABLE * available:
        return
    raise TooLarge(f"{what} needs about {size(need)} of memory, more than the "
                   f"{size(available)} available" + (f"; {fits}" if fits else ""))


def check_training(x_dim, z_dim, hidden, n_heads, dtype, batch, k, available=None,
                   k_name="k", batch_name="batch_size"):
    """Check that a model and one training step of ``batch`` examples × ``k`` samples fit,
    saying the largest K that would (or that the model alone does not fit)."""
    available = available_bytes() if available is None else available
    if available is None:
        return
    params = model_bytes(x_dim, z_dim, hidden, n_heads, dtype)
    check(f"a model of x_dim={x_dim}, z_dim={z_dim}, hidden={tuple(hidden)} ({dtype})", params,
          "choose smaller sizes", available)
    step = step_bytes(batch * k, x_dim, z_dim, hidden, n_heads, dtype)
    room = USABLE * available - params
    per_k = step_bytes(batch, x_dim, z_dim, hidden, n_heads, dtype)
    max_k = int(room // per_k) if per_k > 0 else 0
    fits = (f"{k_name} up to {max_k} fits with {batch_name} {batch}" if max_k >= 1 else
            f"not even {k_name} 1 fits with {batch_name} {batch}; choose a smaller "
            f"{batch_name} or model")
    check(f"a training step with {k_name}={k} and {batch_name}={batch}", params + step, fits,
          available)
