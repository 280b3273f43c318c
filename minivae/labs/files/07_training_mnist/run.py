"""Lab 7, now on real data: `minivae lab run 7 [--quick] [--epochs N]`.

1. The lecture's 2-D latent model, trained with minivae's training loop; its learned manifold,
   samples and latent codes drawn to PNG files.
2. A VAE (L_1) against an IWAE (L_5) of the same architecture: test log-likelihood, ELBO and
   active units.

Your adam_step (Adam.step calls it), manifold_grid and ancestral_sample (the figures) and
active_units (minivae.evaluate) are the library's while this runs, once they pass the checks.
"""
import sys
import time

from minivae import data, evaluate, validate
from minivae import train as training
from minivae.labs.common import fit
from minivae.labs.core import out_dir
from minivae.plots import save_latent2d_figures

DESCRIPTION = ("train the lecture's 2-D latent model and draw its manifold, samples and latent "
               "codes; then train a VAE and an IWAE and compare their test log-likelihood and "
               "active units. With the defaults, 10 + 5 + 5 epochs on 10,000 digits (the time "
               "of each epoch is printed; --epochs shortens it)")


def add_arguments(parser):
    parser.add_argument("--epochs", type=int, default=None,
                        help="passes over the 10,000 training digits for each model "
                        "(default: 10 for the 2-D model, 5 for VAE and IWAE; --quick: 1)")
    parser.add_argument("--eval-k", type=int, default=None,
                        help="K of the test log-likelihood estimate L_K (default 1000; "
                        "--quick: 50; papers use 5000)")


def main(args):
    quick = args.quick
    if args.epochs is not None:
        validate.positive_int("--epochs", args.epochs)
    out = out_dir(args, sys.modules["minivae.labs.lab07"])
    ds = data.load_dataset("mnist-subset")
    n_train = 1000 if quick else len(ds.x_train)
    x_train, y_train = ds.x_train[:n_train], ds.y_train[:n_train]
    x_test = data.fixed_binarize(ds.x_test, training.TEST_BINARIZATION_SEED)
    n_test = 100 if quick else 1000
    x_test = x_test[:n_test]
    eval_k = args.eval_k or (50 if quick else 1000)
    figures = {}

    # 1. The lecture's example: z ∈ R², one tanh hidden layer, Bernoulli pixels, the VAE bound:
    #    `minivae latent2d`'s configuration (the preset latent2d), on a smaller budget.
    config = training.TrainConfig.preset("latent2d", epochs=args.epochs or (1 if quick else 10),
                                         seed=args.seed, **({"hidden": (50,)} if quick else {}))
    print(f"1. The lecture's 2-D latent model: f(z) = sigmoid(V tanh(W z + b) + β), z ∈ R², "
          f"H = {config.hidden[0]}; L_{config.k} (the VAE bound),\n   Adam, minibatches of "
          f"{config.batch_size}, {n_train} training digits binarized afresh each epoch "
          f"(minivae.train's loop).")
    model = fit(x_train, config, label="2-D ")
    bound, _ = evaluate.bound_per_example(model, x_test, k=eval_k, seed=args.seed)
    print(f"   test log-likelihood estimate L_{eval_k} = {bound.mean():.2f} nats "
          f"({n_test} test digits)")
    figures[f"2-D model: test L_{eval_k}"] = float(bound.mean())
    paths = save_latent2d_figures(model, x_train, y_train, str(out), args.seed, grid=10 if quick else 20)
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
        t0 = time.perf_counter()
        name = "VAE (K = 1)" if k == 1 else "IWAE (K = 5)"
        m = fit(x_train, label=name.split()[0].ljust(5), z_dim=z_dim, hidden=(hidden,), k=k,
                epochs=epochs, batch_size=config.batch_size, seed=args.seed)
        seconds = time.perf_counter() - t0
        r = evaluate.evaluate(m, x_test, k=eval_k, seed=args.seed)
        rows.append((name, r, seconds))
        figures[f"{name}: test L_{eval_k}"] = r["log_likelihood"]
        figures[f"{name}: active units"] = r["active_units"]
    print(f"   {'model':<14}{'log p(x) ≈ L_' + str(eval_k):>18}{'ELBO (L_1)':>12}"
          f"{'active units':>14}{'training':>10}")
    for name, r, seconds in rows:
        print(f"   {name:<14}{r['log_likelihood']:18.2f}{r['elbo']:12.2f}"
              f"{r['active_units']:>10d} / {z_dim:<3d}{seconds:8.0f} s")
    print("   The IWAE trades some ELBO for log-likelihood: its bound lets q(z|x) be a "
          "looser fit, and it tends to\n   keep more latent units active. (Short runs are "
          "noisy: train longer with `minivae train` to see it\n   clearly; Burda et al. train "
          "for 3280 passes.)")
    print("\nThe real thing: `minivae latent2d --out runs/latent2d` (the 2-D example, 50 "
          "epochs), `minivae train --k 5 ...`\nand `minivae evaluate` (see the README).")
    return figures
