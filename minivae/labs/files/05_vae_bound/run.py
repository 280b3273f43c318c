"""Lab 5, now on real data: `minivae lab run 5 [--quick]`.

1. minivae's VAE (analytic KL) on MNIST digits: every gradient against finite differences.
2. Train a VAE for a fixed number of epochs (not a time limit: the same run on every machine,
   so yours and minivae's can be compared).
3. The variance of the encoder's gradient over draws of ε, with the analytic and the Monte
   Carlo KL.
4. The KL per latent dimension: inactive units.

Your reparametrize, reparametrize_backward, log_q, kl_divergence, kl_grads and
vae_encoder_grads are the library's (minivae.bound) while this runs, once they pass the checks: the VAE's
bound and gradient are computed with your reparametrize, reparametrize_backward, log_q,
kl_divergence and kl_grads (vae_encoder_grads is their composition, which the model writes out
step by step), and part 4 measures the KL per dimension with your kl_divergence.
"""
import numpy as np

from minivae import backend, bound, gradcheck
from minivae.labs.common import fit, mnist, random_params, test_bound
from minivae.model import VAE

DESCRIPTION = ("check the VAE's gradients on MNIST, train a VAE, measure how much the analytic "
               "KL lowers the variance of the encoder's gradient, and watch the KL per latent "
               "dimension (active units)")


def encoder_grad_spread(model, x, n_draws, seed):
    """The variance of the encoder's gradient over draws of ε, summed over the encoder's
    parameters, and the squared norm of its mean (the signal)."""
    rng = np.random.default_rng(seed)
    names = [n for n in model.params if n.startswith("encoder.")]
    draws = []
    for _ in range(n_draws):
        eps = rng.standard_normal((1, len(x), model.z_dim)).astype(model.dtype)
        _, g = model.bound_and_grads(x, 1, eps=eps)
        draws.append(np.concatenate([g[n].ravel() for n in names]))
    draws = np.array(draws, dtype=float)
    return draws.var(axis=0, ddof=1).sum(), (draws.mean(axis=0) ** 2).sum()


def main(args):
    rng = np.random.default_rng(args.seed)
    quick = args.quick
    x8, _, _, _ = mnist(n_train=2 if quick else 8, seed=args.seed)
    print("1. The VAE (analytic KL) on binarized MNIST digits: every parameter array's "
          "gradient against finite differences.")
    model = VAE(784, 10, hidden=(16,) if quick else (32,), dtype="float64", seed=args.seed)
    random_params(model.params, rng, scale=0.1)
    report = gradcheck.check_model(model, x8, k=1, max_entries=4 if quick else 15)
    worst = gradcheck.max_error(report)
    print(f"   {len(report)} arrays: worst relative error {worst:.1e}"
          + (" (round-off on a bound of hundreds of nats, as lab 3 explains)" if worst > 1e-6
             else ""))

    n_train, epochs, hidden, z_dim = (500, 1, (64,), 10) if quick else (10000, 5, (200,), 20)
    x_train, _, x_test, _ = mnist(n_train=n_train, binarize=False)
    print(f"\n2. Train a VAE 784-{hidden[0]}-{z_dim} (analytic KL) for {epochs} epoch(s) on "
          f"{n_train} MNIST digits (dynamic binarization):")
    vae = fit(x_train.astype(np.float32), z_dim=z_dim, hidden=hidden, k=1, analytic_kl=True,
              epochs=epochs, batch_size=100, seed=args.seed)
    x_eval = (np.random.default_rng(1).random(x_test.shape) < x_test).astype(np.float32)[:500]
    vae.rng = backend.default_rng(args.seed)
    figures = {"gradient check: worst error": worst,
               "trained VAE: test L_1": test_bound(vae, x_eval, 1)}
    print(f"   test bound L_1: {figures['trained VAE: test L_1']:.2f} nats")

    n_draws = 20 if quick else 100
    xb = x_eval[:50]
    print(f"\n3. The encoder's gradient is a random variable (it depends on ε). Over {n_draws} "
          f"draws, same parameters, 50 test digits:")
    spread = {}
    for kl in (True, False):
        vae.analytic_kl = kl
        var, signal = encoder_grad_spread(vae, xb, n_draws, args.seed)
        spread[kl] = var
        print(f"   {'analytic KL' if kl else 'Monte Carlo KL (= IWAE, K = 1)':<32} total "
              f"variance {var:10.3e}   squared norm of the mean {signal:10.3e}")
    vae.analytic_kl = True
    print(f"   The analytic KL removes the KL's sampling noise: {spread[False] / spread[True]:.1f} x "
          f"less variance here.")

    mean, logvar = vae.encode(x_eval)
    kl_dim = np.array([bound.kl_divergence(mean[:, [i]], logvar[:, [i]]).mean()
                       for i in range(z_dim)])            # the KL of each dimension alone
    active = np.sort(kl_dim)[::-1]
    print(f"\n4. KL(q(z|x) ‖ p(z)) per latent dimension, averaged over test digits (nats), "
          f"largest first:\n   " + " ".join(f"{v:.2f}" for v in active))
    n_active = int((kl_dim > 0.01).sum())
    print(f"   {n_active} of {z_dim} dimensions carry information (KL > 0.01)"
          + (f"; in the other {z_dim - n_active}, q(z_i|x) = p(z_i) for every x: the KL term "
             f"switched them off\n   (\"inactive units\", Burda et al. 2016)." if n_active < z_dim
             else ". Train longer (or with a larger z_dim) and some switch off: q(z_i|x) = "
                  "p(z_i)\n   for every x, \"inactive units\" (Burda et al. 2016)."))
    figures["active units (KL > 0.01)"] = n_active
    return figures
