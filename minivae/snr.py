"""Signal-to-noise ratio of the gradient estimators, as K grows (Rainforth et al. 2018).

"Tighter variational bounds are not necessarily better" (Rainforth, Kosiorek, Le, Maddison,
Igl, Wood & Teh, ICML 2018) measure, at a fixed model and minibatch, each parameter's gradient
estimate Δ over repeated draws of the noise ε, and its signal-to-noise ratio

    SNR = |E_ε[Δ]| / sd_ε[Δ].

For the IWAE bound L_K they prove (and see on MNIST) that the decoder's SNR grows like √K while
the encoder's *falls* like 1/√K: the encoder's gradient E[Δ] → 0 as the bound tightens, faster
than its noise. STL (Roeder et al. 2017) and DReG (Tucker et al. 2019) change only the
encoder's estimator (:data:`minivae.bound.ESTIMATORS`); Tucker et al. show DReG's encoder SNR
growing with K.

:func:`gradient_snr` measures it: for each K, ``reps`` draws of ε, the same ε for every
estimator (so the decoder's columns must agree exactly, which they do: the estimators share the
decoder's gradient), and the per-parameter SNR summarised over the encoder's and the decoder's
parameters in three ways (parameters whose estimate never varies, sd = 0, are left out of the
first two: their SNR is not defined):

- ``mean``: the mean over parameters of |mean| / sd (Rainforth et al.'s per-parameter SNR,
  averaged);
- ``median``: its median;
- ``pooled``: sqrt(Σ_i mean_i² / Σ_i var_i), the SNR of the whole gradient vector, as Tucker
  et al.'s reference code summarises it (``reduce_mean(first_moment²) / reduce_mean(var)``),
  with Σ mean_i² corrected for the draws' noise (it overestimates by Σ var_i / reps): dominated
  by the parameters with the largest gradients, and not floored by those whose true gradient is
  about 0.

With few draws the per-parameter ratio cannot go below its noise floor: for a parameter whose
true gradient is 0, |mean| / sd is about E|N(0, 1)| / √reps = √(2 / (π reps)) (0.11 for 50
draws), so a mean SNR near that value means "no signal measured", not a trend.

Each row also has ``ess``, the effective sample size 1 / Σ_k w̃_k² of the K normalized weights
(mean over the draws and the minibatch): the asymptotic analysis behind "IWAE's encoder SNR
falls like 1/√K, DReG's grows like √K" assumes K large enough that no single weight dominates
(ESS growing with K). Where one sample carries nearly all the weight (ESS ≈ 1), the three
estimators nearly coincide and neither trend appears (docs/estimators.md).

For K >= 100 a row also has ``khat``, the Pareto tail index k̂ of the weights (the PSIS
diagnostic of Vehtari et al.; :func:`pareto_khat`): E_q[w^m] is finite for m < 1/k. The
asymptotics need finite moments: the second (k < ½) for IWAE's 1/√K, the fourth (k < ¼) for
DReG's √K, whose terms carry w̃². With heavier tails, as when q(z|x) is narrower than the
posterior, DReG's SNR need not rise however large the ESS.

:func:`gaussian_toy` builds Rainforth et al.'s (and Tucker et al.'s) toy model as a minivae
model, near its optimum, where that regime is reached with modest K.
"""
import math

import numpy as np
from scipy import stats

from . import backend, validate
from .bound import ESTIMATORS
from .model import IWAE
from .ops import logsumexp_weights

DEFAULT_KS = (1, 5, 50, 500)
#: k̂ of the weights is reported for K >= KHAT_MIN_K, from the first KHAT_DRAWS draws of ε.
KHAT_MIN_K, KHAT_DRAWS = 100, 5


def _moments(model, x, k, estimators, reps, rng, on_step=None):
    """Σ Δ and Σ Δ² per estimator over ``reps`` draws (float64 host arrays, keyed by name),
    the mean effective sample size 1 / Σ_k w̃_k² over the draws and the minibatch, and the
    median k̂ of the weights (:func:`pareto_khat`, K >= KHAT_MIN_K; else None)."""
    sums = {e: {} for e in estimators}
    squares = {e: {} for e in estimators}
    ess, khats = 0.0, []
    x = backend.asarray(x)                       # check=False below: backend arrays, as given
    for _ in range(reps):
        # ε drawn on the host (the same on every backend), shared by the estimators.
        eps = backend.asarray(rng.standard_normal((k, x.shape[0], model.z_dim)))
        log_w, _ = model.log_weights(x, k, eps=eps, check=False)
        _, w = logsumexp_weights(log_w.astype("float64"))
        ess += float((1.0 / (w * w).sum(axis=0)).mean()) / reps
        if k >= KHAT_MIN_K and len(khats) < KHAT_DRAWS:
            khats.append(pareto_khat(backend.to_numpy(log_w).astype(np.float64)))
        for e in estimators:
            _, grads = model.bound_and_grads(x, k, eps=eps, check=False, estimator=e)
            for name, g in grads.items():
                g = backend.to_numpy(g).astype(np.float64)
                sums[e][name] = sums[e].get(name, 0.0) + g
                squares[e][name] = squares[e].get(name, 0.0) + g * g
        if on_step is not None:
            on_step()
    return sums, squares, ess, float(np.median(khats)) if khats else None


def pareto_khat(log_w):
    """The Pareto tail index k̂ of importance weights, one per column of log_w (S, B).

    As in Pareto smoothed importance sampling (Vehtari, Simpson, Gelman, Yao & Gabry 2015):
    a generalised Pareto distribution is fitted by maximum likelihood (SciPy's ``genpareto``,
    location 0) to the excesses of the M = min(S/5, 3√S) largest weights over the next one;
    its shape k says how heavy the weights' tail is: E_q[w^m] < ∞ for m < 1/k (k <= 0: a
    light or bounded tail). Needs S >= 25 (M >= 5). Host NumPy in, (B,) NumPy array out.
    """
    log_w = np.asarray(log_w, dtype=np.float64)
    S = log_w.shape[0]
    if S < 25:
        raise ValueError(f"k̂ needs at least 25 weights per column, got {S}")
    M = int(min(0.2 * S, 3 * math.sqrt(S)))
    top = np.sort(log_w, axis=0)[-M - 1:]                       # (M + 1, B), the threshold first
    khat = np.empty(log_w.shape[1])
    for b in range(log_w.shape[1]):
        excess = np.expm1(top[1:, b] - top[0, b])               # w / w_threshold - 1 >= 0
        khat[b] = stats.genpareto.fit(excess, floc=0)[0] if excess.max() > 0 else -np.inf
    return khat


def _summary(sums, squares, reps, prefix):
    """(mean, median, pooled) over the parameters named ``prefix``.* of the SNR (module
    docstring); inf when no parameter's estimate varies with ε."""
    snr, signal, noise = [], 0.0, 0.0
    for name in sums:
        if not name.startswith(prefix + "."):
            continue
        mean = sums[name].ravel() / reps
        var = np.maximum(squares[name].ravel() / reps - mean * mean, 0.0) * reps / (reps - 1)
        keep = var > (1e-12 * np.maximum(np.abs(mean), 1e-30)) ** 2
        snr.append(np.abs(mean[keep]) / np.sqrt(var[keep]))
        signal += float((mean * mean - var / reps).sum())     # unbiased for Σ E[Δ_i]²
        noise += float(var.sum())
    snr = np.concatenate(snr)
    if snr.size == 0:            # no parameter varies with ε (e.g. STL at the exact posterior)
        return math.inf, math.inf, math.inf
    return float(snr.mean()), float(np.median(snr)), math.sqrt(max(signal, 0.0) / noise)


def noise_floor(reps):
    """√(2 / (π reps)): about the mean |mean| / sd of a parameter whose true gradient is 0."""
    return math.sqrt(2.0 / (math.pi * reps))


def check_estimators(estimators):
    """Raise a one-line ValueError unless ``estimators`` names one or more known estimators."""
    if not estimators:
        raise ValueError(f"no estimator given; choose from {', '.join(ESTIMATORS)}")
    for e in estimators:
        if e not in ESTIMATORS:
            raise ValueError(f"unknown estimator {e!r}; choose from {', '.join(ESTIMATORS)}")


def gradient_snr(model, x, ks=DEFAULT_KS, estimators=ESTIMATORS, reps=100, seed=0,
                 on_step=None):
    """The gradient's SNR for every K and estimator, at the model's current parameters.

    model : an IWAE (its own ``estimator`` is not used: each estimator is asked for by name).
    x : (B, D) a fixed minibatch the model accepts (binary for a Bernoulli model).
    ks, estimators : what to measure; reps (>= 2) draws of ε per K, from a NumPy generator
        seeded with ``seed`` (the same ε on both backends).
    on_step : optional callable, called after every draw (e.g. to move a progress bar).

    Returns a list of dicts, one per (K, estimator): ``k``, ``estimator``, ``ess``, ``khat``
    (None for K < KHAT_MIN_K) and, for
    side = encoder and decoder, ``{side}_snr`` (the mean over parameters), ``{side}_snr_median``
    and ``{side}_snr_pooled`` (see the module's docstring).
    """
    check_estimators(estimators)
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
        sums, squares, ess, khat = _moments(model, x, int(k), estimators, reps, rng, on_step)
        for e in estimators:
            row = {"k": int(k), "estimator": e, "ess": ess, "khat": khat}
            for side in ("encoder", "decoder"):
                (row[f"{side}_snr"], row[f"{side}_snr_median"],
                 row[f"{side}_snr_pooled"]) = _summary(sums[e], squares[e], reps, side)
            rows.append(row)
    return rows


def gaussian_toy(dim=20, perturbation=0.01, n=1, seed=0, q_variance=2 / 3):
    """Rainforth et al. (2018)'s toy model near its optimum, as a minivae model: ``(model, x)``.

    Their model is z ~ N(μ, I), x|z ~ N(z, I) in R^20, with q(z|x) = N(A x + b, ⅔ I); the exact
    posterior is N((x + μ)/2, ½ I), so A = I/2, b = μ/2 is optimal for q's mean, and q's fixed
    variance ⅔ keeps q from being exact. Written with minivae's prior N(0, I) (z' = z - μ):
    an :class:`minivae.model.IWAE` with ``hidden=()`` and Gaussian observations whose decoder
    has mean W = I, b = μ and log-variance 0, and whose encoder has mean W = I/2, b = -μ/2 and
    log-variance log ⅔. As in their experiment, every parameter is then moved by
    N(0, ``perturbation``²) noise. μ ~ N(0, I); x: (n, dim) drawn from the model's marginal
    N(μ, 2I). float64. The encoder's log-variance parameters are trainable here (fixed in the
    paper); the SNR summarises them with the rest of the encoder.

    ``q_variance`` replaces q's ⅔: above the posterior's ½ the weights are bounded (k < 0); below
    it their tail is heavy, E_q[w^m] = ∞ for m >= 1 / (1 - q_variance/½) (k = 1 - 2 q_variance),
    so that DReG's variance, a fourth moment, is infinite for q_variance <= ⅜.
    """
    dim, n = validate.positive_int("dim", dim), validate.positive_int("n", n)
    perturbation = validate.nonnegative_real("perturbation", perturbation)
    q_variance = validate.positive_real("q_variance", q_variance)
    rng = np.random.default_rng([validate.seed("seed", seed), 0x5A1])
    mu = rng.standard_normal(dim)
    model = IWAE(dim, dim, hidden=(), likelihood="gaussian", dtype="float64", seed=seed)
    eye, zero = np.eye(dim), np.zeros((dim, dim))
    values = {"decoder.mean.W": eye, "decoder.mean.b": mu,
              "decoder.logvar.W": zero, "decoder.logvar.b": np.zeros(dim),
              "encoder.mean.W": 0.5 * eye, "encoder.mean.b": -0.5 * mu,
              "encoder.logvar.W": zero, "encoder.logvar.b": np.full(dim, math.log(q_variance))}
    for name in model.params:                     # the same order on every run
        value = values[name] + perturbation * rng.standard_normal(values[name].shape)
        model.params[name][...] = backend.asarray(value)
    x = mu + math.sqrt(2.0) * rng.standard_normal((n, dim))
    return model, x


def widen_encoder(model, factor):
    """Multiply the variances of the model's q(z|x) by ``factor`` > 0, in place: log F is
    added to the bias of the encoder's log-variance head, v = ... + log F.

    An experiment on a trained model: a wider q gives the importance weights a lighter tail
    (docs/estimators.md; with F large enough they are bounded, k̂ < 0)."""
    factor = validate.positive_real("factor (of q's variances)", factor)
    bias = model.params["encoder.logvar.b"]
    bias += backend.asarray(math.log(factor), dtype=bias.dtype)
    return model


def format_table(rows, reps=None):
    """The rows as text: K down, the ESS, then each estimator's encoder and decoder SNR, once
    as the mean over parameters and once pooled (``reps`` adds the mean's noise floor)."""
    ests = list(dict.fromkeys(r["estimator"] for r in rows))
    ks = list(dict.fromkeys(r["k"] for r in rows))
    by = {(r["k"], r["estimator"]): r for r in rows}
    lines = []
    for suffix, what in (("", "mean SNR = |mean| / sd over the draws of ε, averaged over each "
                              "network's parameters"),
                         ("_pooled", "pooled SNR = sqrt(Σ mean² / Σ var) over each network's "
                                     "parameters (Tucker et al.'s summary)")):
        if not suffix and reps is not None:
            what += f" (noise floor about {noise_floor(reps):.2f} for {reps} draws)"
        lines += [what, f"{'K':>5} {'ESS':>7} {'k̂':>5} "
                  + " ".join(f"{'enc ' + e:>9}" for e in ests)
                  + "  " + " ".join(f"{'dec ' + e:>9}" for e in ests)]
        for k in ks:
            khat = by[k, ests[0]]["khat"]
            lines.append(f"{k:>5} {by[k, ests[0]]['ess']:7.2f} "
                         + (f"{khat:5.2f} " if khat is not None else f"{'-':>5} ")
                         + " ".join(f"{by[k, e]['encoder_snr' + suffix]:9.4f}" for e in ests)
                         + "  " + " ".join(f"{by[k, e]['decoder_snr' + suffix]:9.4f}"
                                          for e in ests))
    return "\n".join(lines)
