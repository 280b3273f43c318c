"""How many threads minivae uses: the BLAS library's for the matrix products, and its own for
the largest elementwise passes.

OpenBLAS starts one thread per core and its threads spin-wait for each other inside every
product. On an idle machine that helps a little; on a busy one (another process on one of two
cores) every product waits for a thread that is not running, and a training epoch takes 15-30
times longer (docs/speed.md has the measurements). The policy here:

- ``MINIVAE_THREADS=N`` (or an explicit ``threads`` argument, e.g. ``minivae bench --threads``)
  wins;
- otherwise POLICY_THREADS (see :func:`choose`).

:func:`limit` applies the count with threadpoolctl to every BLAS and OpenMP pool loaded in the
process, for the duration of a ``with`` block (training, evaluation), and restores it after.

Inside such a block :func:`map_rows` runs a training step's blocks of examples side by side on
the same number of threads, each block with one BLAS thread: NumPy's elementwise ufuncs run on
one thread while the BLAS uses every core, but they release the GIL (as the BLAS does), so
whole blocks can run in parallel, their matrix products and elementwise passes alike. Only on
the NumPy backend (CuPy's kernels run on the GPU). The blocks depend on the thread count only,
never on timing, so a run is reproducible with the same count (as with the BLAS's own threads).
"""
import concurrent.futures
import contextlib
import functools
import os
import threading

from . import backend, validate

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


#: The thread count of the innermost :func:`limit` block (1 outside any), for :func:`map_rows`.
_active = 1
_pools = {}
_NAME = "minivae-rows"        # the pools' threads' names
os.register_at_fork(after_in_child=_pools.clear)   # a forked child has none of their threads


@contextlib.contextmanager
def limit(threads=None):
    """A context manager running its block with :func:`choose`'s thread count in every BLAS and
    OpenMP pool (threadpoolctl) and in :func:`map_rows`; the previous limits come back at the
    end."""
    global _active
    from threadpoolctl import threadpool_limits
    n, before = choose(threads), _active
    with threadpool_limits(limits=n):
        _active = n
        try:
            yield n
        finally:
            _active = before


def map_rows(function, n_rows):
    """``[function(rows, part) for part, rows in enumerate(blocks)]`` for blocks of rows covering
    range(n_rows), one per thread of the current :func:`limit` block, computed side by side
    (the calling thread takes the first), each with one BLAS thread: every block runs its own
    matrix products and elementwise passes, so no thread waits for another inside a product.
    One call ``function(slice(0, n_rows), 0)`` with one thread, or on the CuPy backend."""
    n = min(_active if backend.name == "numpy" else 1, n_rows)
    if n <= 1 or threading.current_thread().name.startswith(_NAME):   # (no blocks in blocks)
        return [function(slice(0, n_rows), 0)]
    if n not in _pools:
        _pools[n] = concurrent.futures.ThreadPoolExecutor(n - 1, _NAME)
    edges = [n_rows * i // n for i in range(n + 1)]
    blocks = [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
    with _blas().limit(limits=1, user_api="blas"):
        others = [_pools[n].submit(function, rows, part)
                  for part, rows in enumerate(blocks[1:], 1)]
        try:
            first = function(blocks[0], 0)
        finally:
            concurrent.futures.wait(others)            # none left running outside the limit
        return [first] + [done.result() for done in others]


@functools.lru_cache(maxsize=None)
def _blas():
    """threadpoolctl's controller of the BLAS pools loaded (once: listing them is slow)."""
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController()


def limited(function):
    """Decorator: run ``function`` inside :func:`limit` (the count is read at each call)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with limit():
            return function(*args, **kwargs)
    return wrapper


def describe(n):
    """How a training step uses n threads, in words (for ``minivae bench``)."""
    if backend.name != "numpy":
        return "one block of examples, on the GPU"
    if n == 1:
        return "one block of examples"
    return f"{n} blocks of examples side by side, one BLAS thread each"


def blas_info():
    """'openblas 0.3.31 (2 threads), ...' for the pools loaded in this process."""
    from threadpoolctl import threadpool_info
    return ", ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} "
                     f"threads)" for p in threadpool_info()) or "no BLAS or OpenMP pool found"
