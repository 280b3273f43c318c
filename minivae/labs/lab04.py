"""Lab 4: observation models' log-densities and their gradients w.r.t. the decoder's outputs.

Checks: each log-density against minivae.likelihoods on random inputs (including extreme
logits, where a naive log σ(ℓ) gives -inf); each gradient against five-point finite
differences of minivae's log-density (so the gradient check does not depend on your
log-density being right), with the scalar L = Σ c ⊙ log Φ(x | η) for fixed random weights c.
"""
import numpy as np

from .. import optim
from ..likelihoods import Bernoulli, Gaussian, StudentT
from .common import mnist
from .core import VALUE_TOL, as_array, as_dict, call, check_gradient, compare, namespace

NUMBER = 4
FOLDER = "04_observation_models"
TITLE = "Observation models: Bernoulli, Gaussian and Student's t log-densities and gradients"
MINUTES = "45-75 min"
TEACHES = ("the gradient of log p(x|z) with respect to the decoder's outputs, where every "
           "gradient of a DLVM starts; parametrising with unconstrained heads; stable "
           "log-densities")
RUN_DESCRIPTION = ("fit each observation model to MNIST pixels by gradient ascent with "
                   "minivae's gradients, compare with the closed-form maximum likelihood, and "
                   "compare the models' test log-likelihoods")

SHAPE = (4, 6)
MODELS = {"bernoulli": Bernoulli, "gaussian": Gaussian, "student_t": StudentT}


def _inputs(kind, rng):
    """x and the heads, random, as float64 arrays of SHAPE."""
    if kind == "bernoulli":
        x = (rng.random(SHAPE) < 0.5).astype(float)
        logits = 3 * rng.standard_normal(SHAPE)
        return x, {"logits": logits}
    x = 2 * rng.standard_normal(SHAPE)
    if kind == "gaussian":
        return x, {"mean": rng.standard_normal(SHAPE), "logvar": rng.standard_normal(SHAPE)}
    return x, {"loc": rng.standard_normal(SHAPE), "log_scale": 0.5 * rng.standard_normal(SHAPE),
               "df": 2 * rng.standard_normal(SHAPE)}


def _log_prob_check(kind):
    model = MODELS[kind]

    def check(mod):
        rng = np.random.default_rng(40)
        x, heads = _inputs(kind, rng)
        if kind == "bernoulli":               # extreme logits: log σ(ℓ) must not give -inf
            x[0, :4] = (1.0, 0.0, 1.0, 0.0)
            heads["logits"][0, :4] = (-800.0, 800.0, 40.0, -40.0)
        yours = as_array(call(mod, f"{kind}_log_prob", x, **heads), SHAPE,
                         f"{kind}_log_prob(...)")
        return [compare("log Φ", yours, model.log_prob(x, **heads),
                        f"minivae.likelihoods.{model.__name__}.log_prob", VALUE_TOL)]
    return check


def _grads_check(kind):
    model = MODELS[kind]

    def check(mod):
        rng = np.random.default_rng(41)
        x, heads = _inputs(kind, rng)
        c = rng.standard_normal(SHAPE)
        got = as_dict(call(mod, f"{kind}_grads", x, **heads), model.heads, f"{kind}_grads")
        analytic = {h: c * as_array(got[h], SHAPE, f'{kind}_grads(...)["{h}"]')
                    for h in model.heads}

        def f():
            return float((c * model.log_prob(x, **heads)).sum())
        return check_gradient(f, heads, analytic, prefix="∂/∂")
    return check


CHECKS = [(f"{kind}_{what}", (_log_prob_check if what == "log_prob" else _grads_check)(kind))
          for kind in MODELS for what in ("log_prob", "grads")]


def solution():
    """minivae's own observation models (minivae/likelihoods.py)."""
    fns = {}
    for kind, model in MODELS.items():
        fns[f"{kind}_log_prob"] = model.log_prob
        fns[f"{kind}_grads"] = model.log_prob_grads
    return namespace(**fns)


# ------------------------------------------------------------------ now on real data
def _fit(model, x, init, steps, rng, batch=100, lr=0.05):
    """Per-pixel heads maximising the mean log-likelihood of the rows of x, by Adam on
    minibatches with minivae's gradients (the ones a decoder's backward pass starts from)."""
    params = {h: np.array(v, dtype=float) for h, v in init.items()}
    opt = optim.Adam(params, lr=lr, eps=1e-8)
    for t in range(steps):
        if t == steps // 2:
            opt.lr = lr / 5                   # a smaller step to settle near the optimum
        xb = x[rng.integers(0, len(x), batch)]
        g = model.log_prob_grads(xb, **params)
        opt.step({h: g[h].mean(axis=0) for h in params})
    return params


def _loglik(model, x, params):
    """The mean over images of Σ_j log Φ(x_j | η_j), in nats per image."""
    return float(model.log_prob(x, **params).sum(axis=1).mean())


def run(args):
    n, steps = (300, 150) if args.quick else (2000, 1500)
    rng = np.random.default_rng(args.seed)
    xb_train, _, xb_test, _ = mnist(n_train=n, seed=args.seed)
    xg_train, _, xg_test, _ = mnist(n_train=n, binarize=False)
    # Grey levels are multiples of 1/255: dequantize (add uniform noise within a level), so that
    # a density on [0, 1] is a fair model and no pixel has exactly zero variance.
    deq = lambda x: (255 * x + rng.random(x.shape)) / 256  # noqa: E731
    xg_train, xg_test = deq(xg_train), deq(xg_test)
    p = 784
    print(f"Every pixel j gets its own observation model Φ(x_j | η_j) and no latent variable: "
          f"a DLVM's decoder\noutputs these η_j for each image, here they are constants. "
          f"Fitted to {n} MNIST training images by\n{steps} Adam steps (minibatches of 100) on "
          f"minivae's gradients; log-likelihoods in nats per image.\n")
    print(f"{'model':<24}{'train, ascent':>15}{'train, closed form':>20}{'test':>10}")

    def row(name, model, x_tr, x_te, fit, closed=None):
        c = f"{_loglik(model, x_tr, closed):20.1f}" if closed else f"{'(none)':>20}"
        print(f"{name:<24}{_loglik(model, x_tr, fit):15.1f}{c}{_loglik(model, x_te, fit):10.1f}")

    # Bernoulli on binarized images: the maximum likelihood logit is logit(mean).
    mean = xb_train.mean(axis=0).clip(0.5 / n, 1 - 0.5 / n)
    closed = {"logits": np.log(mean) - np.log1p(-mean)}
    fit = _fit(Bernoulli, xb_train, {"logits": np.zeros(p)}, steps, rng)
    row("Bernoulli (binarized)", Bernoulli, xb_train, xb_test, fit, closed)

    # Gaussian on grey levels: m = mean and v = log variance.
    closed = {"mean": xg_train.mean(axis=0), "logvar": np.log(xg_train.var(axis=0))}
    fit = _fit(Gaussian, xg_train, {"mean": np.full(p, 0.5), "logvar": np.zeros(p)}, steps, rng)
    row("Gaussian (grey levels)", Gaussian, xg_train, xg_test, fit, closed)

    # Student's t: no closed form.
    init = {"loc": np.full(p, 0.5), "log_scale": np.zeros(p), "df": np.zeros(p)}
    fit = _fit(StudentT, xg_train, init, steps, rng)
    row("Student's t (grey)", StudentT, xg_train, xg_test, fit)
    nu = StudentT.degrees_of_freedom(fit["df"])
    print(f"\nThe t's degrees of freedom ν range over [{nu.min():.2f}, {nu.max():.1f}] "
          f"(median {np.median(nu):.2f}): heavy tails.")
    if args.quick:
        print("(--quick: far too few steps to converge; run without --quick for the real "
              "comparison.)")
    print("Gradient ascent comes close to the closed form where there is one. On test\nimages the Gaussian collapses: a pixel that was (nearly) "
          "constant in training gets a tiny variance,\nand one unusual test pixel costs "
          "thousands of nats. The t's heavy tails keep that cost small, which is\nwhy "
          "MIWAE models real data with it (lab 8).")
