"""The lecture's 1-D toy model and importance sampling: figures, exact log p(x), L_K against K.

Draws the toy data cloud (toy_data.png), computes log p(x) by quadrature for test points and
checks its accuracy against a second quadrature setting and a dense Riemann sum, trains
encoders q(z|x) with the toy decoder held fixed (one per --encoder-k), and compares importance-sampling estimates of
log p(x) with the prior and with the encoders as proposals for growing K (toy_is.png, and a
table). Also draws the Monte Carlo vs importance sampling figure (montecarlo.png).
See docs/lecture.md.
"""
import os
import time

import numpy as np

from .. import runs
from ..options import positive_int, seed


def _ints(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"expected positive integers, got {text!r}")
    return values


def add_arguments(parser):
    parser.add_argument("--out", default="docs/img", help="folder for the PNG files "
                        "(default: docs/img)")
    parser.add_argument("--points", type=positive_int, default=200,
                        help="test points x ~ p(x) for the IS comparison (default: 200)")
    parser.add_argument("--ks", default="1,10,100,1000,10000",
                        help="values of K, comma-separated (default: 1,10,100,1000,10000)")
    parser.add_argument("--reps", type=positive_int, default=10,
                        help="independent IS draws averaged per K and point (default: 10)")
    parser.add_argument("--encoder-k", default="5,50",
                        help="train one encoder per value: the K of the IWAE bound it "
                        "maximises, comma-separated (default: 5,50)")
    parser.add_argument("--encoder-steps", type=positive_int, default=3000,
                        help="Adam steps for the encoder, batches of 256 (default: 3000)")
    parser.add_argument("--check-points", type=positive_int, default=20,
                        help="test points checked against the Riemann sum (default: 20)")
    parser.add_argument("--seed", type=seed, default=0, help="(default: 0)")


def run(args):
    from ... import plots
    from ...lecture import toy
    ks, encoder_ks = _ints(args.ks), _ints(args.encoder_k)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()

    z, x = toy.sample(5000, seed=args.seed)
    print("wrote", plots.plot_toy_data(os.path.join(args.out, "toy_data.png"), z, x))
    print("wrote", plots.plot_monte_carlo(os.path.join(args.out, "montecarlo.png"),
                                                  seed=args.seed))

    _, xt = toy.sample(args.points, seed=args.seed + 1)
    nc = min(args.check_points, len(xt))
    with runs.progress(3, "exact log p(x)", "check") as report:
        exact, err = toy.log_marginal(xt, return_error=True)
        report(1)
        strict = toy.log_marginal(xt, z_max=16.0, rtol=1e-13, n_grid=16001)
        report(2)
        riemann = toy.log_marginal_riemann(xt[:nc])
        report(3)
    print(f"\nexact log p(x) by quadrature, {len(xt)} points x ~ p(x): mean {exact.mean():.6f}")
    print(f"  QUADPACK's error estimate (max over points):        {err.max():.1e}")
    print(f"  |default - strict setting| (max over points):       "
          f"{np.abs(exact - strict).max():.1e}")
    print(f"  |quadrature - Riemann sum, 2e6 points| (max, {nc}):  "
          f"{np.abs(exact[:nc] - riemann).max():.1e}")

    # The left panel follows one point with many more draws, so its L_K is sharp.
    one_reps = 50 * args.reps
    with runs.progress(1, "L_K with the prior", "curve") as report:
        curves = {"prior p(z)": toy.iwae_curve(xt, ks, args.reps, "prior", seed=args.seed)}
        report(1)
    one = {"prior p(z)": toy.iwae_curve(xt[:1], ks, one_reps, "prior", seed=args.seed)[:, 0]}
    for i, ke in enumerate(encoder_ks):
        print(f"\ntraining an encoder q(z|x) with L_{ke}, decoder fixed "
              f"({args.encoder_steps} steps)...")
        with runs.progress(args.encoder_steps, f"encoder L_{ke}", "step") as report:
            enc, hist = toy.train_encoder(k=ke, steps=args.encoder_steps, seed=args.seed,
                                          on_progress=report)
        print(f"  L_{ke} over the last 100 batches: {np.mean(hist[-100:]):.4f}")
        mean, std = enc(xt)
        label = f"encoder, trained with L_{ke}"
        curves[label] = toy.iwae_curve(xt, ks, args.reps, "gaussian", mean, std,
                                       seed=args.seed + 1 + i)
        one[label] = toy.iwae_curve(xt[:1], ks, one_reps, "gaussian", mean[:1], std[:1],
                                    seed=args.seed + 1 + i)[:, 0]
    print(f"\nlog p(x) - L_K over {len(xt)} points, mean / median (nats; L_K from "
          f"{args.reps} draws):")
    print("  " + "K".rjust(7) + "".join(f"{name:>30}" for name in curves))
    for i, k in enumerate(ks):
        print("  " + f"{k:7d}" + "".join(
            f"{np.mean(exact - L[i]):>18.4g} / {np.median(exact - L[i]):<9.4g}"
            for L in curves.values()))
    print(f"\none point, x = ({xt[0, 0]:.4f}, {xt[0, 1]:.4f}), log p(x) = {exact[0]:.6f}; "
          f"L_K from {one_reps} draws:")
    for i, k in enumerate(ks):
        print("  " + f"{k:7d}" + "".join(f"{L[i]:>30.5f}" for L in one.values()))
    path = plots.plot_toy_importance_sampling(os.path.join(args.out, "toy_is.png"), ks,
                                                      curves, exact, single=(one, exact[0]))
    print("\nwrote", path, f"({time.time() - t0:.0f} s)")
