"""Lab 3, now on real data: `minivae lab run 3 [--quick]`.

1. The whole model's gradient, by hand, against finite differences on MNIST digits.
2. Train an IWAE on MNIST with these layers: with your functions in the library (once they pass
   the checks), it is your affine_backward, tanh_backward, ... and mlp_backward that compute
   every gradient of the encoder and the decoder.
3. What the backward pass costs, against the forward and against finite differences.
"""
import time

import numpy as np

from minivae import backend, gradcheck
from minivae.labs.common import fit, mnist, random_params, test_bound
from minivae.model import IWAE

DESCRIPTION = ("check the full model's hand-written gradients on MNIST digits for each "
               "activation, train an IWAE with these layers, and measure what a backward pass "
               "costs against the forward (and against finite differences)")


def gradient_check(args, figures):
    rng = np.random.default_rng(args.seed)
    n, hidden, entries = (2, (16,), 4) if args.quick else (8, (64, 32), 20)
    x, _, _, _ = mnist(n_train=n, seed=args.seed)
    print(f"1. The whole model's gradient, by hand, on {n} binarized MNIST digits: an IWAE "
          f"784-{'-'.join(map(str, hidden))}-20 (K = 5), float64, random parameters,\n"
          f"   every parameter array checked on {entries} entries against finite differences.")
    for activation in ("tanh", "relu", "softplus"):
        model = IWAE(784, 20, hidden=hidden, activation=activation, dtype="float64",
                     seed=args.seed)
        random_params(model.params, rng, scale=0.1)
        report = gradcheck.check_model(model, x, k=5, max_entries=entries)
        errors = [r["max_rel_error"] for r in report.values()]
        name = max(report, key=lambda a: report[a]["max_rel_error"])
        r = report[name]
        print(f"   {activation:<9} {len(report)} arrays, {model.n_params:,} parameters: median "
              f"of the arrays' worst errors {np.median(errors):.1e}; worst {r['max_rel_error']:.1e} "
              f"at {name}{list(r['index'])}: analytic {r['analytic']:.3e}, numerical "
              f"{r['numerical']:.3e}")
        figures[f"gradient check, {activation}: median error"] = float(np.median(errors))
    size = abs(float(model.bound(x, 5).mean()))
    print(f"   Errors above 1e-6 here are round-off, not wrong gradients: the bound is about "
          f"{-size:.0f} nats, so each\n   finite difference carries an absolute error near "
          f"1e-16 x {size:.0f} / h = {1e-16 * size / 1e-4:.0e}, large next to gradient entries "
          f"of 1e-5\n   or less (an analytic 0 is a weight of a pixel that is 0 in every "
          f"digit). With ReLU, a much larger\n   error means that a step of h = 1e-4 crossed a "
          f"unit's kink at 0, where the derivative jumps.")


def train(args, figures):
    n_train, epochs, hidden = (1000, 1, (50,)) if args.quick else (10000, 2, (100,))
    x_train, _, x_test, _ = mnist(n_train=n_train, binarize=False)
    x_test = (np.random.default_rng(1).random(x_test.shape) < x_test)[:500].astype(np.float32)
    print(f"\n2. Train an IWAE 784-{hidden[0]}-20 (tanh, K = 5) for {epochs} epoch(s) on "
          f"{n_train} MNIST digits with these layers' gradients:")
    model = fit(x_train.astype(np.float32), z_dim=20, hidden=hidden, k=5, epochs=epochs,
                batch_size=100, seed=args.seed)
    model.rng = backend.default_rng(args.seed)
    bound = test_bound(model, x_test, 5)
    print(f"   test bound L_5 on 500 digits: {bound:.2f} nats")
    figures["trained IWAE: test L_5"] = bound


def timing(args):
    hidden, batch, reps = ((50,), 20, 2) if args.quick else ((200, 200), 100, 10)
    xb, _, _, _ = mnist(n_train=batch, seed=args.seed)
    model = IWAE(784, 50, hidden=hidden, seed=args.seed)       # float32, as trained
    eps = model.rng.standard_normal((5, batch, 50), dtype="float32")
    model.bound(xb, 5, eps=eps)                                   # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        model.bound(xb, 5, eps=eps, check=False)
    t_fwd = (time.perf_counter() - t0) / reps
    t0 = time.perf_counter()
    for _ in range(reps):
        model.bound_and_grads(xb, 5, eps=eps, check=False)
    t_both = (time.perf_counter() - t0) / reps
    print(f"\n3. What the backward pass costs: IWAE 784-{'-'.join(map(str, hidden))}-50, "
          f"{model.n_params:,} parameters, a batch of {batch} digits, K = 5 (float32, CPU):\n"
          f"   forward (the bound)           {1e3 * t_fwd:8.1f} ms\n"
          f"   forward + backward (gradient) {1e3 * t_both:8.1f} ms   "
          f"({t_both / t_fwd:.1f} x the forward)\n"
          f"   finite differences would need 4 forwards per parameter: "
          f"{4 * model.n_params * t_fwd / 3600:,.1f} hours for one gradient.")


def main(args):
    figures = {}
    gradient_check(args, figures)
    train(args, figures)
    timing(args)
    return figures
