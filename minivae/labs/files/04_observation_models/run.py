"""Lab 4, now on real data: `minivae lab run 4 [--quick]`.

Every pixel j of MNIST gets its own observation model Φ(x_j | η_j) and no latent variable:
Bernoulli on binarized digits, Gaussian and Student's t on grey levels, fitted by Adam on the
log-densities' gradients and compared with the closed-form maximum likelihood where there is
one, then on test digits.

Your log-densities and their gradients are the library's (minivae.likelihoods) while this runs,
once they pass the checks (or with --mine): the fit climbs your gradients through
``model.log_prob_and_grads``, the very call of the IWAE's training step — for the Bernoulli
your fused bernoulli_log_prob_and_grads, for the Gaussian and Student's t your *_log_prob and
*_grads — and is scored by your *_log_prob. (This run does not call your bernoulli_grads:
the library calls it where a step needs the gradient alone, the IWAE's step with its K samples
in chunks and the analytic-KL VAE's step.)
"""
import numpy as np

from minivae import optim
from minivae.labs.common import mnist
from minivae.likelihoods import Bernoulli, Gaussian, StudentT
from minivae.train import train_epoch

DESCRIPTION = ("fit each observation model to MNIST pixels by gradient ascent with the "
               "gradients of the log-densities, compare with the closed-form maximum "
               "likelihood, and compare the models' test log-likelihoods")

def fit(model, x, init, steps, rng, batch=100, lr=0.05):
    """Per-pixel heads maximising the mean log-likelihood of the rows of x: minivae's training
    loop (Adam) on minibatches drawn with replacement, climbing the log-density's gradients
    (the ones a decoder's backward pass starts from), taken with the log-density from one
    call of ``model.log_prob_and_grads`` as in IWAE.bound_and_grads."""
    params = {h: np.array(v, dtype=float) for h, v in init.items()}
    opt = optim.Adam(params, lr=lr, eps=1e-8)

    def objective(idx):
        log_phi, g = model.log_prob_and_grads(x[idx], **params)        # (batch, 784) each
        return float(log_phi.sum(axis=1).mean()), {h: g[h].mean(axis=0) for h in params}

    def settle(step):
        if step == steps // 2:
            opt.lr = lr / 5                   # a smaller step to settle near the optimum
    batches = (rng.integers(0, len(x), batch) for _ in range(steps))
    train_epoch(objective, opt, batches, on_step=settle)
    return params


def loglik(model, x, params):
    """The mean over images of Σ_j log Φ(x_j | η_j), in nats per image."""
    return float(model.log_prob(x, **params).sum(axis=1).mean())


def main(args):
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
          f"the log-densities' gradients; log-likelihoods in nats per image.\n")
    print(f"{'model':<24}{'train, ascent':>15}{'train, closed form':>20}{'test':>10}")

    figures = {}

    def row(name, model, x_tr, x_te, heads, closed=None):
        c = f"{loglik(model, x_tr, closed):20.1f}" if closed else f"{'(none)':>20}"
        test = loglik(model, x_te, heads)
        print(f"{name:<24}{loglik(model, x_tr, heads):15.1f}{c}{test:10.1f}")
        figures[f"{name}: test log-lik."] = test

    # Bernoulli on binarized images: the maximum likelihood logit is logit(mean).
    mean = xb_train.mean(axis=0).clip(0.5 / n, 1 - 0.5 / n)
    closed = {"logits": np.log(mean) - np.log1p(-mean)}
    heads = fit(Bernoulli, xb_train, {"logits": np.zeros(p)}, steps, rng)
    row("Bernoulli (binarized)", Bernoulli, xb_train, xb_test, heads, closed)

    # Gaussian on grey levels: m = mean and v = log variance.
    closed = {"mean": xg_train.mean(axis=0), "logvar": np.log(xg_train.var(axis=0))}
    heads = fit(Gaussian, xg_train, {"mean": np.full(p, 0.5), "logvar": np.zeros(p)}, steps, rng)
    row("Gaussian (grey levels)", Gaussian, xg_train, xg_test, heads, closed)

    # Student's t: no closed form.
    init = {"loc": np.full(p, 0.5), "log_scale": np.zeros(p), "df": np.zeros(p)}
    heads = fit(StudentT, xg_train, init, steps, rng)
    row("Student's t (grey)", StudentT, xg_train, xg_test, heads)
    nu = StudentT.degrees_of_freedom(heads["df"])
    print(f"\nThe t's degrees of freedom ν range over [{nu.min():.2f}, {nu.max():.1f}] "
          f"(median {np.median(nu):.2f}): heavy tails.")
    if args.quick:
        print("(--quick: far too few steps to converge; run without --quick for the real "
              "comparison.)")
    print("Gradient ascent comes close to the closed form where there is one. On test\nimages "
          "the Gaussian collapses: a pixel that was (nearly) constant in training gets a tiny "
          "variance,\nand one unusual test pixel costs thousands of nats. The t's heavy tails "
          "keep that cost small, which is\nwhy MIWAE models real data with it (lab 8).")
    return figures
