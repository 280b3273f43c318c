"""Signal-to-noise ratio of the gradient estimators, as K grows (Rainforth et al. 2018).

"Tighter variational bounds are not necessarily better" (Rainforth, Kosiorek, Le, Maddison,
Igl, Wood & Teh, ICML 2018) measure, at a fixed model and minibatch, each parameter's gradient
estimate Δ over repeated draws of the noise ε, and its signal-to-noise ratio

    SNR = |E_ε[Δ]| / sd_ε[Δ].

For the IWAE bound L_K they prove (and see on MNIST) that the decoder's SNR grows like √K while
the encoder's *falls* like 1/√K: the encoder's gradient E[Δ] → 0 as the bound tightens, faster
than its noise. STL (Roeder et al. 2017) and DReG (Tucker et al. 2019) change only the
encoder's estimator (:data:`minivae.bound.ESTIMATORS`); DReG's encoder SNR grows with K.

:func:`gradient_snr` measures it: for each K, ``reps`` draws of ε, the same ε for every
estimator (so the decoder's columns must agree exactly, which they do: the estimators share the
decoder's gradient), and the per-parameter SNR summarised over the encoder's and the decoder's
parameters by its mean and median (parameters whose estimate never varies, sd = 0, are left
out: their SNR is not defined).
"""
import math

import numpy as np

from . import backend
from .bound import ESTIMATORS

DEFAULT_KS = (1, 5, 50, 500)


def _moments(model, x, k, estimators, reps, rng, on_step=None):
    """Σ Δ and Σ Δ² per estimator over ``reps`` draws (float64 host arrays, keyed by name)."""
    sums = {e: {} for e in estimators}
    squares = {e: {} for e in estimators}
    x = backend.asarray(x)                       # check=False below: backend arrays, as given
    for _ in range(reps):
        # ε drawn on the host (the same on every backend), shared by the estimators.
        eps = backend.asarray(rng.standard_normal((k, x.shape[0], model.z_dim)))
        for e in estimators:
            _, grads = model.bound_and_grads(x, k, eps=eps, check=False, estimator=e)
            for name, g in grads.items():
                g = backend.to_numpy(g).astype(np.float64)
                sums[e][name] = sums[e].get(name, 0.0) + g
                squares[e][name] = squares[e].get(name, 0.0) + g * g
        if on_step is not None:
            on_step()
    return sums, squares


def _summary(sums, squares, reps, prefix):
    """Mean and median over the parameters named ``prefix``.* of |mean| / sd."""
    snr = []
    for name in sums:
        if not name.startswith(prefix + "."):
            continue
        mean = sums[name] / reps
        var = np.maximum(squares[name] / reps - mean * mean, 0.0) * reps / (reps - 1)
        sd = np.sqrt(var).ravel()
        keep = sd > 1e-12 * np.maximum(np.abs(mean.ravel()), 1e-30)
        snr.append(np.abs(mean.ravel()[keep]) / sd[keep])
    snr = np.concatenate(snr)
    if snr.size == 0:            # no parameter varies with ε (e.g. STL at the exact posterior)
        return math.inf, math.inf
    return float(snr.mean()), float(np.median(snr))


def gradient_snr(model, x, ks=DEFAULT_KS, estimators=ESTIMATORS, reps=100, seed=0,
                 on_step=None):
    """The gradient's SNR for every K and estimator, at the model's current parameters.

    model : an IWAE (its own ``estimator`` is not used: each estimator is asked for by name).
    x : (B, D) a fixed minibatch the model accepts (binary for a Bernoulli model).
    ks, estimators : what to measure; reps (>= 2) draws of ε per K, from a NumPy generator
        seeded with ``seed`` (the same ε on both backends).
    on_step : optional callable, called after every draw (e.g. to move a progress bar).

    Returns a list of dicts, one per (K, estimator): ``k``, ``estimator``, ``encoder_snr``,
    ``encoder_snr_median``, ``decoder_snr``, ``decoder_snr_median``.
    """
    for e in estimators:
        if e not in ESTIMATORS:
            raise ValueError(f"unknown estimator {e!r}; choose from {', '.join(ESTIMATORS)}")
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 2:
        raise ValueError(f"reps must be an integer >= 2 (a standard deviation needs two "
                         f"draws), got {reps!r}")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"every K must be an integer >= 1, got {k!r}")
    model.bound(x, 1)                                          # validates x once
    x = backend.asarray(x).astype(model.dtype)
    rows = []
    for k in ks:
        rng = np.random.default_rng([seed, int(k)])
        sums, squares = _moments(model, x, int(k), estimators, reps, rng, on_step)
        for e in estimators:
            enc, enc_med = _summary(sums[e], squares[e], reps, "encoder")
            dec, dec_med = _summary(sums[e], squares[e], reps, "decoder")
            rows.append({"k": int(k), "estimator": e, "encoder_snr": enc,
                         "encoder_snr_median": enc_med, "decoder_snr": dec,
                         "decoder_snr_median": dec_med})
    return rows


def format_table(rows):
    """The rows as a text table: K down, estimators across, encoder and decoder SNR."""
    ests = list(dict.fromkeys(r["estimator"] for r in rows))
    ks = list(dict.fromkeys(r["k"] for r in rows))
    by = {(r["k"], r["estimator"]): r for r in rows}
    head = f"{'K':>5} " + " ".join(f"{'enc ' + e:>10}" for e in ests) + "  " + \
        " ".join(f"{'dec ' + e:>10}" for e in ests)
    lines = ["mean SNR = |mean| / sd over the draws of ε, averaged over each network's "
             "parameters", head]
    for k in ks:
        lines.append(f"{k:>5} " + " ".join(f"{by[k, e]['encoder_snr']:10.4f}" for e in ests)
                     + "  " + " ".join(f"{by[k, e]['decoder_snr']:10.4f}" for e in ests))
    return "\n".join(lines)
