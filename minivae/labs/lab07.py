"""Lab 7: training a DLVM on MNIST: the 2-D latent example, generation, the latent manifold,
VAE against IWAE.

No gradients here: every check compares the student's function with minivae's own (the
optimizer minivae.optim.Adam, minivae.plots.manifold_grid and sample_images,
minivae.evaluate.active_units) on the same inputs, by the relative error of the worst entry.
"""
import os
import sys
import time
import types

import numpy as np

from .. import data, evaluate, optim, plots
from .. import train as training
from ..likelihoods import Bernoulli
from ..model import IWAE
from .core import as_array, call, compare, namespace, out_dir, unpack

NUMBER = 7
FOLDER = "07_training_mnist"
TITLE = "Training a DLVM on MNIST: the 2-D latent space, generation, VAE against IWAE"
MINUTES = "60 min + training"
TEACHES = ("what training a DLVM looks like: Adam climbing the bound, the lecture's 2-D latent "
           "example and its learned manifold, ancestral sampling, and how the IWAE bound "
           "changes the model it trains (log-likelihood, active units)")
RUN_DESCRIPTION = ("train the lecture's 2-D latent model and draw its manifold, samples and "
                   "latent codes; then train a VAE and an IWAE and compare their test "
                   "log-likelihood and active units. About 5 minutes on a laptop CPU with the "
                   "defaults (the time of each epoch is printed; --epochs shortens it)")


# ------------------------------------------------------------------ the reference (minivae)
def ref_adam_step(param, grad, m, s, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-4):
    """minivae.optim.Adam's step, from the given state."""
    p = {"p": np.array(param, dtype=float)}
    opt = optim.Adam(p, lr=lr, beta1=beta1, beta2=beta2, eps=eps)
    opt.m["p"][...], opt.s["p"][...], opt.t = m, s, t - 1
    opt.step({"p": grad})
    return p["p"], opt.m["p"], opt.s["p"]


def ref_ancestral_sample(decode_logits, z, u):
    """As minivae.plots.sample_images: E[x|z] = σ(logits), x = [u < E[x|z]]."""
    means = Bernoulli.mean(decode_logits(z))
    return means, (u < means).astype(means.dtype)


def ref_active_units(posterior_means, threshold=1e-2):
    """minivae.evaluate.active_units, fed the posterior means directly."""
    fake = types.SimpleNamespace(encode=lambda x: (x, None), z_dim=posterior_means.shape[1])
    return evaluate.active_units(fake, posterior_means, threshold)


def solution():
    """minivae's optimizer, figure grid, sampler and activity statistic."""
    return namespace(adam_step=ref_adam_step, manifold_grid=plots.manifold_grid,
                     ancestral_sample=ref_ancestral_sample, active_units=ref_active_units)


# ------------------------------------------------------------------ checks
def _adam(mod):
    rng = np.random.default_rng(70)
    out = []
    for t, lr, b1, b2, eps in ((1, 1e-3, 0.9, 0.999, 1e-4), (7, 0.05, 0.8, 0.99, 1e-8)):
        param, grad = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
        m = 0.1 * rng.standard_normal((3, 4)) if t > 1 else np.zeros((3, 4))
        s = 0.1 * rng.random((3, 4)) if t > 1 else np.zeros((3, 4))
        got = unpack(call(mod, "adam_step", param.copy(), grad.copy(), m.copy(), s.copy(), t,
                          lr, b1, b2, eps), 3, "adam_step")
        ref = ref_adam_step(param, grad, m, s, t, lr, b1, b2, eps)
        for name, g, r in zip(("param_new", "m_new", "s_new"), got, ref):
            out.append(compare(f"{name} (t = {t})", as_array(g, r.shape, name), r,
                               "minivae.optim.Adam"))
    return out


def _grid(mod):
    out = []
    for n, low, high in ((5, 0.05, 0.95), (4, 0.1, 0.8)):
        got = as_array(call(mod, "manifold_grid", n, low, high), (n * n, 2), "manifold_grid(...)")
        out.append(compare(f"z (n = {n})", got, plots.manifold_grid(n, low, high),
                           "minivae.plots.manifold_grid"))
    return out


def _sample(mod):
    model = IWAE(12, 2, hidden=(5,), dtype="float64", seed=3)
    for p in model.params.values():
        p[...] = np.random.default_rng(71).standard_normal(p.shape)
    n, seed = 6, 72
    rng = np.random.default_rng(seed)           # the draws of minivae.plots.sample_images
    z = rng.standard_normal((n, 2))
    u = rng.random((n, 12))
    means, x = unpack(call(mod, "ancestral_sample", lambda z: model.decode(z)["logits"],
                           z.copy(), u.copy()), 2, "ancestral_sample")
    return [compare("means", as_array(means, (n, 12), "means"),
                    plots.sample_images(model, n, seed=seed), "minivae.plots.sample_images"),
            compare("x", as_array(x, (n, 12), "x"),
                    plots.sample_images(model, n, draws=True, seed=seed),
                    "minivae.plots.sample_images")]


def _active(mod):
    rng = np.random.default_rng(73)
    means = rng.standard_normal((50, 6)) * np.array([1.0, 0.5, 0.2, 0.09, 0.05, 0.001])
    n, a = unpack(call(mod, "active_units", means.copy()), 2, "active_units")
    ref_n, ref_a = ref_active_units(means)
    return [compare("n_active", as_array(n, (), "n_active"), ref_n,
                    "minivae.evaluate.active_units"),
            compare("A", as_array(a, (6,), "A"), ref_a, "minivae.evaluate.active_units")]


CHECKS = [
    ("adam_step", _adam),
    ("manifold_grid", _grid),
    ("ancestral_sample", _sample),
    ("active_units", _active),
]


# ------------------------------------------------------------------ now on real data
def add_arguments(parser):
    parser.add_argument("--epochs", type=int, default=None,
                        help="passes over the 10,000 training digits for each model "
                        "(default: 10 for the 2-D model, 5 for VAE and IWAE; --quick: 1)")
    parser.add_argument("--eval-k", type=int, default=None,
                        help="K of the test log-likelihood estimate L_K (default 1000; "
                        "--quick: 50; papers use 5000)")


def _fit(config, x_train, epochs, label):
    run = training.Run.fresh(config, x_train.shape[1])
    for epoch in range(epochs):
        t0 = time.perf_counter()
        bound = run.train_epoch(x_train)
        run.epoch += 1
        print(f"   {label} epoch {epoch + 1}/{epochs}: training bound L_{config.k} = "
              f"{bound:8.2f} nats ({time.perf_counter() - t0:.1f} s)", flush=True)
    return run.model


def run(args):
    quick = args.quick
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    out = out_dir(args, sys.modules[__name__])
    ds = data.load_dataset("mnist-subset")
    n_train = 1000 if quick else len(ds.x_train)
    x_train, y_train = ds.x_train[:n_train], ds.y_train[:n_train]
    x_test = data.fixed_binarize(ds.x_test, training.TEST_BINARIZATION_SEED)
    n_test = 100 if quick else 1000
    x_test, y_test = x_test[:n_test], ds.y_test[:n_test]
    eval_k = args.eval_k or (50 if quick else 1000)

    # 1. The lecture's example: z ∈ R², one tanh hidden layer, Bernoulli pixels, the VAE bound.
    epochs = args.epochs or (1 if quick else 10)
    hidden = 50 if quick else 500
    print(f"1. The lecture's 2-D latent model: f(z) = sigmoid(V tanh(W z + b) + β), z ∈ R², "
          f"H = {hidden}; L_1 (the VAE bound),\n   Adam, minibatches of 100, {n_train} "
          f"training digits binarized afresh each epoch (minivae.train's loop).")
    config = training.TrainConfig(z_dim=2, hidden=(hidden,), k=1, epochs=epochs,
                                  batch_size=100, seed=args.seed, eval_n=0)
    model = _fit(config, x_train, epochs, "2-D")
    bound, _ = evaluate.bound_per_example(model, x_test, k=eval_k, seed=args.seed)
    print(f"   test log-likelihood estimate L_{eval_k} = {bound.mean():.2f} nats "
          f"({n_test} test digits)")
    from ..plots import save_latent2d_figures as draw_figures
    paths = draw_figures(model, x_train, y_train, str(out), args.seed, grid=10 if quick else 20)
    print("   figures: " + ", ".join(str(p) for p in paths))
    print("   manifold.png is E[x|z] on manifold_grid(20): neighbouring z decode to similar "
          "digits; latent.png shows\n   where the encoder puts each digit class.")

    # 2. VAE against IWAE: the same architecture, trained with L_1 and with L_5.
    epochs = args.epochs or (1 if quick else 5)
    z_dim, hidden = (5, 50) if quick else (20, 200)
    print(f"\n2. VAE (L_1) against IWAE (L_5): 784-{hidden}-{z_dim} (tanh), {epochs} epoch(s) "
          f"each on the same digits; evaluated with\n   L_{eval_k} on {n_test} test digits "
          f"(each epoch of the IWAE costs about K times the decoder work).")
    rows = []
    for k in (1, 5):
        config = training.TrainConfig(z_dim=z_dim, hidden=(hidden,), k=k, epochs=epochs,
                                      batch_size=100, seed=args.seed, eval_n=0)
        t0 = time.perf_counter()
        m = _fit(config, x_train, epochs, "VAE " if k == 1 else "IWAE")
        seconds = time.perf_counter() - t0
        r = evaluate.evaluate(m, x_test, k=eval_k, seed=args.seed)
        rows.append((("VAE (K = 1)" if k == 1 else "IWAE (K = 5)"), r, seconds))
    print(f"   {'model':<14}{'log p(x) ≈ L_' + str(eval_k):>18}{'ELBO (L_1)':>12}"
          f"{'active units':>14}{'training':>10}")
    for name, r, seconds in rows:
        print(f"   {name:<14}{r['log_likelihood']:18.2f}{r['elbo']:12.2f}"
              f"{r['active_units']:>10d} / {z_dim:<3d}{seconds:8.0f} s")
    print("   The IWAE trades some ELBO for log-likelihood: its bound lets q(z|x) be a "
          "looser fit, and it tends to\n   keep more latent units active. (Short runs are "
          "noisy: train longer with `minivae train` to see it\n   clearly; Burda et al. train "
          "for 3280 passes.)")
    print(f"\nThe real thing: `minivae latent2d --out runs/latent2d` (the 2-D example, 50 "
          f"epochs), `minivae train --k 5 ...`\nand `minivae evaluate` (see the README).")
