"""Lab 6, now on real data: `minivae lab run 6 [--quick]`.

1. L_K against the exact log p(x) on the lecture's 1-D toy model, for K = 1 .. 10,000.
2. The IWAE's gradient against finite differences.
3. An IWAE trained on MNIST for a fixed number of epochs (not a time limit: the same run on
   every machine); L_K on test digits rising with K.
4. The fused CUDA kernel (kernels/logsumexp_weights.cu), compiled for the CPU through its
   emulation header, against the NumPy reference; and on a GPU when CuPy sees one.

Your logsumexp_weights, iwae_bound, iwae_bound_grad, iwae_encoder_grads, lse_push and lse_merge
are the library's while this runs, once they pass the checks: the IWAE trains with your
logsumexp_weights (IWAE.bound_and_grads takes L_K and w̃ from one call of it, as the GPU kernel
does) and is evaluated with your iwae_bound; iwae_bound_grad and iwae_encoder_grads are what
the model writes out step by step, and lse_push and lse_merge what the CUDA kernel does, in
Python: the checks are where those are tested.
"""
import time

import numpy as np

from minivae import backend, bound, cuda, gradcheck
from minivae.labs.common import fit, mnist, random_params, test_bound
from minivae.lecture import toy
from minivae.model import IWAE
from minivae.ops import logsumexp_weights_reference

DESCRIPTION = ("L_K against the exact log p(x) on the lecture's toy model, L_K rising with K on "
               "an IWAE trained on MNIST, and the CUDA kernel run on the CPU (through the "
               "emulation header) against the NumPy reference")


def toy_model(args, figures):
    n, reps, ks = (3, 5, (1, 10, 100)) if args.quick else (5, 50, (1, 10, 100, 1000, 10000))
    _, x = toy.sample(n, seed=args.seed)
    exact = toy.log_marginal(x)
    rng = np.random.default_rng(args.seed)
    print(f"1. The lecture's toy model (d = 1, p = 2), where quadrature gives log p(x) exactly. "
          f"L_K with the prior as\n   proposal, {reps} draws averaged, {n} points x ~ p(x); "
          f"mean log p(x) = {exact.mean():.4f}:")
    for k in ks:
        vals = []
        for _ in range(reps):
            z = rng.standard_normal((k, n))
            log_w = toy.log_joint(x[None], z) - toy.log_prior(z)     # w = p(x|z): q = p(z)
            vals.append(bound.iwae_bound(log_w).mean())
        se = np.std(vals, ddof=1) / np.sqrt(reps)
        print(f"   K = {k:6d}   L_K = {np.mean(vals):9.4f} ± {se:.4f}   gap log p(x) - L_K = "
              f"{exact.mean() - np.mean(vals):8.4f}")
    figures[f"toy model: gap at K = {ks[-1]}"] = float(exact.mean() - np.mean(vals))
    print("   (± one standard error of the average: a gap within it of 0 is L_K = log p(x) to "
          "the precision of the draws.)")


def mnist_iwae(args, figures):
    n_train, epochs, n_test, ks = (500, 1, 20, (1, 5, 50)) if args.quick else \
        (10000, 3, 100, (1, 5, 50, 500))
    x_train, _, x_test, _ = mnist(n_train=n_train, binarize=False)
    x_eval = (np.random.default_rng(1).random(x_test.shape) < x_test).astype(np.float32)[:n_test]
    small = IWAE(784, 10, hidden=(16,), dtype="float64", seed=args.seed)
    random_params(small.params, np.random.default_rng(args.seed), scale=0.1)
    report = gradcheck.check_model(small, mnist(n_train=2, seed=args.seed)[0], k=5,
                                   max_entries=4 if args.quick else 15)
    figures["gradient check: worst error"] = gradcheck.max_error(report)
    print(f"\n2. The IWAE's gradient (784-16-10, K = 5, float64, random parameters) against "
          f"finite differences on 2 digits:\n   worst relative error "
          f"{figures['gradient check: worst error']:.1e} over {len(report)} arrays (round-off "
          f"above 1e-6, as lab 3 explains).")
    print(f"\n3. An IWAE 784-100-20 trained with K = 5 for {epochs} epoch(s) on {n_train} "
          f"MNIST digits; L_K on {n_test} test digits:")
    model = fit(x_train.astype(np.float32), z_dim=20, hidden=(100,), k=5, epochs=epochs,
                batch_size=100, seed=args.seed)
    for k in ks:
        model.rng = backend.default_rng(args.seed)
        value = test_bound(model, x_eval, k, batch_size=20)
        figures[f"trained IWAE: test L_{k}"] = value
        print(f"   K = {k:4d}   L_K = {value:8.2f} nats")
    print("   L_K rises with K (Burda et al.'s theorem) towards log p(x); the estimate of log p(x) "
          "in papers is L_5000.")
    return model, x_eval


def kernel(args, model, x_eval):
    print("\n4. The fused CUDA kernel (kernels/logsumexp_weights.cu) against the NumPy "
          "reference (minivae.ops), on\n   the model's own log-weights and on columns with "
          "special values.")
    k = 50 if args.quick else 500
    log_w, _ = model.log_weights(x_eval, k)
    log_w = backend.to_numpy(log_w).astype(np.float64)
    special = np.full((k, 4), -5.0)
    special[:, 0] = -np.inf                        # all -inf: lse -inf, weights 0
    special[::2, 1] = -np.inf                      # some -inf: weight 0
    special[:, 2] = np.linspace(-1000, 1000, k)    # a spread of 2000 nats
    special[3, 3] = np.nan                         # NaN: the whole column NaN
    inputs = np.concatenate([log_w, special], axis=1)

    def report(where, fn):
        for dtype in (np.float64, np.float32):
            x = inputs.astype(dtype)
            t0 = time.perf_counter()
            lse, w = fn(x)
            dt = time.perf_counter() - t0
            ref_lse, ref_w = logsumexp_weights_reference(x)
            same = np.array_equal(np.isnan(lse), np.isnan(ref_lse)) and \
                np.array_equal(np.isnan(w), np.isnan(ref_w))
            with np.errstate(invalid="ignore"):
                e_lse = np.nanmax(np.where(lse == ref_lse, 0, np.abs(lse - ref_lse) /
                                           np.abs(ref_lse)))
                e_w = np.nanmax(np.abs(w - ref_w))
            print(f"   {where:<22} {np.dtype(dtype).name}: ({k}, {x.shape[1]})  max rel. diff. "
                  f"of lse {e_lse:.1e}, max abs. diff. of weights {e_w:.1e}, NaN in the same "
                  f"places: {'yes' if same else 'NO'}  ({1e3 * dt:.0f} ms)")

    try:
        kernel = cuda.EmulatedKernel()
    except RuntimeError as e:
        print(f"   (skipped on the CPU: {e})")
    else:
        grid, block = cuda.launch_shape(k, inputs.shape[1], 8)
        print(f"   compiled with the host compiler through kernels/cuda_emulation.h; launch "
              f"shape for float64: grid {grid[0]}, block {block[0]} x {block[1]}")
        report("CPU (emulated threads)", kernel)
    ok, why = cuda.gpu_available()
    if ok:
        import cupy
        report(f"GPU ({why})", lambda x: tuple(cupy.asnumpy(a) for a in
                                               cuda.logsumexp_weights(cupy.asarray(x))))
    else:
        print(f"   (no GPU run: {why})")


def main(args):
    figures = {}
    toy_model(args, figures)
    model, x_eval = mnist_iwae(args, figures)
    kernel(args, model, x_eval)
    return figures
