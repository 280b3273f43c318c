"""How many threads the BLAS library may use for the model's matrix products.

OpenBLAS starts one thread per core and its threads spin-wait for each other inside every
product. On an idle machine that helps a little; on a busy one (another process on one of two
cores) every product waits for a thread that is not running, and a training epoch takes 15-30
times longer (docs/speed.md has the measurements). The policy here:

- ``MINIVAE_THREADS=N`` (or an explicit ``threads`` argument, e.g. ``minivae bench --threads``)
  wins;
- otherwise POLICY_THREADS (see :func:`choose`).

:func:`limit` applies the count with threadpoolctl to every BLAS and OpenMP pool loaded in the
process, for the duration of a ``with`` block (training, evaluation), and restores it after.
"""
import functools
import os

from . import validate

ENV_VAR = "MINIVAE_THREADS"
#: The default thread count of the training and evaluation loops (see docs/speed.md).
POLICY_THREADS = 1


def parse(value, what=ENV_VAR):
    """3 or '3' -> 3; anything but a positive integer is a one-line ValueError."""
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueError(f"{what} must be a positive integer (a thread count), "
                             f"got {value!r}") from None
    return validate.positive_int(what, value)


def choose(threads=None):
    """The thread count to use: ``threads`` if given, else $MINIVAE_THREADS, else the policy."""
    if threads is not None:
        return parse(threads, "threads")
    if os.environ.get(ENV_VAR, "").strip():
        return parse(os.environ[ENV_VAR])
    return POLICY_THREADS


def source(threads=None):
    """Where :func:`choose`'s answer comes from, in words (for ``minivae bench``)."""
    if threads is not None:
        return "given"
    if os.environ.get(ENV_VAR, "").strip():
        return f"${ENV_VAR}"
    return "minivae's default policy"


def limit(threads=None):
    """A context manager running its block with :func:`choose`'s thread count in every BLAS and
    OpenMP pool (threadpoolctl); the previous limits come back at the end."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=choose(threads))


def limited(function):
    """Decorator: run ``function`` inside :func:`limit` (the count is read at each call)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with limit():
            return function(*args, **kwargs)
    return wrapper


def blas_info():
    """'openblas 0.3.31 (2 threads), ...' for the pools loaded in this process."""
    from threadpoolctl import threadpool_info
    return ", ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} "
                     f"threads)" for p in threadpool_info()) or "no BLAS or OpenMP pool found"
