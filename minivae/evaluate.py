"""Evaluating a trained model: the test log-likelihood estimate L_K, the ELBO, active units.

Burda et al.'s protocol estimates the marginal log-likelihood log p(x) of each test image by
the importance weighted bound with many samples, L_5000, which is within a small fraction of a
nat of log p(x) for the models of their Table 1 (L_K increases towards log p(x) as K grows).
The negative log-likelihood reported is NLL = -mean_x L_K(x).

With K = 5000 the decoder sees K rows per image, so the work is done in *chunks* of at most
``chunk`` rows (examples × samples): e.g. 2 images × 5000 samples, or, when K itself exceeds
the chunk, one image in several pieces of samples whose log-sum-exps are combined with
log(e^a + e^b). Memory is then bounded by about ``chunk × x_dim`` numbers per live array.

Reproducibility: the noise ε of test image i is drawn from its own NumPy generator seeded with
(seed, i), on the host, so an estimate does not depend on the chunk size, on which subset of
the test set is evaluated (pass the images' indices), or on the backend (CPU and GPU see the
same ε).

Shapes: x (N, D) test images, K samples, d = z_dim.
"""
import math
import threading
import time

import numpy as np

from . import backend, threads, validate
from .ops import logsumexp_weights

DEFAULT_K = 5000
#: Examples × samples per pass. On the CPU, 1000 rows keep each (rows, 784) float32 array (3 MB)
#: in the cache from one elementwise pass to the next: twice as fast as 10,000 rows (31 MB
#: arrays, every pass through main memory; docs/speed.md). A GPU wants larger passes.
DEFAULT_CHUNK = 1_000 if backend.name == "numpy" else 10_000
ACTIVE_UNIT_THRESHOLD = 1e-2


def spread_subset(n_total, n):
    """Indices of ``n`` of ``n_total`` examples spread evenly: floor(i · n_total / n).

    The MNIST test set is ordered (its first half comes from cleaner writers), so a subset
    taken from the front would flatter the model; an even spread samples the whole set.
    ``n`` None or >= n_total: all of them.
    """
    if n is None or n >= n_total:
        return np.arange(n_total)
    return (np.arange(n) * n_total) // n


def _noise(generators, k, d, dtype):
    """ε of shape (k, b, d): the next k draws of each example's generator."""
    return np.stack([g.standard_normal((k, d)).astype(dtype) for g in generators], axis=1)


def pass_plan(n, k, chunk=DEFAULT_CHUNK):
    """(examples per pass, samples per pass) so that examples × samples <= ``chunk``: whole
    examples with all their K samples when K fits (e.g. 2 images × 5000 samples), else one
    example at a time in pieces of samples."""
    per_pass = max(1, min(max(n, 1), chunk // k))
    return per_pass, min(k, max(1, chunk // per_pass))


def importance_passes(model, x, k, chunk=DEFAULT_CHUNK, mask=None, noise=None, check=True):
    """The one chunked importance-sampling pass of minivae (evaluation and imputation).

    Draws K samples z_k ~ q(z|x) for every row of x and yields their log-weights
    log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x), never more than ``chunk``
    (example × sample) pairs at once (see :func:`pass_plan`).

    x : (N, D) rows the model accepts (host or backend array); mask : (N, D) or None (True =
        observed, see :meth:`minivae.IWAE.log_weights`).
    noise : None (the model's generator draws ε), or ``noise(rows)`` returning a function
        ``draw(kk)`` of the next ε (kk, b, d) for the block ``rows``.
    Yields ``(rows, pieces)`` for consecutive blocks of rows (a slice of x); ``pieces``
    iterates over ``(log_w (kk, b), cache)`` covering the block's K samples, kk at a time.
    Consume the pieces of a block before asking for the next block.
    """
    n = len(x)
    per_pass, k_piece = pass_plan(n, k, chunk)
    dtype = np.dtype(model.dtype)
    for start in range(0, n, per_pass):
        rows = slice(start, min(start + per_pass, n))
        xb = backend.asarray(x[rows]).astype(dtype, copy=False)
        mb = None if mask is None else backend.asarray(mask[rows])
        yield rows, _pieces(model, xb, mb, k, k_piece, None if noise is None else noise(rows),
                            check)


def _pieces(model, xb, mb, k, k_piece, draw, check):
    for k0 in range(0, k, k_piece):
        kk = min(k_piece, k - k0)
        eps = None if draw is None else draw(kk)
        # Check the data once per block (its cost is b × D, not k × b × D).
        yield model.log_weights(xb, kk, eps=eps, mask=mb, check=check and k0 == 0)


@threads.limited                  # BLAS threads by minivae's policy (minivae.threads)
def bound_per_example(model, x, k=DEFAULT_K, chunk=DEFAULT_CHUNK, seed=0, index=None,
                      on_progress=None, check=True):
    """L_K(x) and the Monte Carlo ELBO for every example, in memory-bounded chunks.

    x : (N, D) data the model accepts (binary for a Bernoulli model), host or backend array.
    index : (N,) the examples' identities (e.g. their rows in the test set; default 0..N-1):
        example j's noise comes from default_rng([seed, index[j]]).
    on_progress : ``on_progress(n_examples_done)`` after every block of examples.
    check : check x once, as the model checks its inputs (False: the caller did, e.g. when the
        data were loaded), rather than in every pass.
    Returns (bound, elbo), both (N,) float64 NumPy arrays: bound = L_K(x) = logsumexp_k log w_k
    - log K and elbo = (1/K) Σ_k log w_k, an unbiased estimate of L_1(x) from the same samples.
    Each pass ends with one device-to-host transfer (its bounds and ELBOs together).
    """
    k = validate.positive_int("k (the number of importance samples)", k)
    chunk = validate.positive_int("chunk", chunk)
    n, d, dtype = len(x), model.z_dim, np.dtype(model.dtype)
    index = np.arange(n) if index is None else np.asarray(index)
    if index.shape != (n,):
        raise ValueError(f"index must have shape ({n},), got {index.shape}")

    if check and n:
        # Once for all of x (two syncs on a GPU), not once per pass: the model's own check,
        # which also puts x on the device in its dtype.
        x, _, _ = model._check_inputs(x, k, None, None)
    xp = backend.xp
    bound, elbo = np.empty(n), np.empty(n)
    done, lock = [0], threading.Lock()

    def score(part, _):                    # a block of the examples (one per thread)
        def noise(rows):
            generators = [np.random.default_rng([seed, int(i)]) for i in index[part][rows]]
            return lambda kk: backend.asarray(_noise(generators, kk, d, dtype))

        for rows, pieces in importance_passes(model, x[part], k, chunk, noise=noise,
                                              check=False):
            lse, total = None, 0.0
            for log_w, _ in pieces:                                      # (kk, b)
                piece, _ = logsumexp_weights(log_w)
                lse = piece if lse is None else xp.logaddexp(lse, piece)
                total = total + log_w.astype(np.float64).sum(axis=0)
            lse, total = backend.to_numpy(xp.stack([lse.astype(np.float64), total]))
            at = slice(part.start + rows.start, part.start + rows.stop)
            bound[at] = lse - math.log(k)
            elbo[at] = total / k
            with lock:                     # one count of examples done, in any thread
                done[0] += rows.stop - rows.start
                if on_progress is not None:
                    on_progress(done[0])

    # Every example's noise is its own, so blocks of examples scored side by side (with more
    # than one thread, minivae.threads) give the same numbers as one after the other.
    threads.map_rows(score, n)
    return bound, elbo


def posterior_means(model, x, batch=1000):
    """E_q[z|x] = μ_γ(x) for every example: (N, d) NumPy array."""
    if len(x) == 0:
        return np.empty((0, model.z_dim))
    return np.concatenate([backend.to_numpy(model.encode(x[i:i + batch])[0])
                           for i in range(0, len(x), batch)])


def active_units(posterior_means, threshold=ACTIVE_UNIT_THRESHOLD):
    """Burda et al.'s activity statistic A_u = Cov_x(E_{q(z|x)}[z_u]) for every latent unit u,
    from the posterior means (N, d) of N examples (:func:`posterior_means`): the variance over
    the examples (divided by N) of each unit's posterior mean.

    Returns (number of units with A_u > threshold, A of shape (d,)). A unit whose posterior
    mean does not move with x carries no information about x: it is *inactive*. (Lab 7.)
    """
    means = np.asarray(posterior_means, dtype=np.float64)
    a = means.var(axis=0) if len(means) > 1 else np.zeros(means.shape[1])
    return int((a > threshold).sum()), a


def evaluate(model, x, k=DEFAULT_K, chunk=DEFAULT_CHUNK, seed=0, index=None, on_progress=None):
    """The summary of :mod:`minivae evaluate`: a dict of plain Python numbers.

    Keys: n_test, k, log_likelihood (mean L_K), nll (= -log_likelihood), stderr (of the mean
    over examples), elbo (mean ELBO estimated with the same K samples), active_units,
    unit_variances (A_u per unit), seconds. ``index``, ``on_progress``: see
    :func:`bound_per_example`.
    """
    if len(x) == 0:
        raise ValueError("no test examples to evaluate")
    t0 = time.perf_counter()
    bound, elbo = bound_per_example(model, x, k, chunk, seed, index, on_progress)
    n_active, a = active_units(posterior_means(model, x))
    return {"n_test": int(len(x)), "k": int(k), "log_likelihood": float(bound.mean()),
            "nll": float(-bound.mean()),
            "stderr": float(bound.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else None,
            "elbo": float(elbo.mean()), "active_units": n_active,
            "unit_variances": [float(v) for v in a],
            "seconds": round(time.perf_counter() - t0, 3)}
