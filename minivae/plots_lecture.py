"""The lecture's figures: Monte Carlo vs importance sampling, the 1-D toy model, the 2-D MNIST
latent space. Each function draws one PNG file from arrays it is given (or computes cheaply).

Figures are built with ``matplotlib.figure.Figure`` directly, never pyplot: no global state,
no GUI backend (PNG output goes through Agg), safe in tests and on headless machines.
"""
import os

import numpy as np
from matplotlib.figure import Figure

from . import montecarlo

DPI = 100


def _save(fig, path):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def plot_monte_carlo(path, a=2.0, ks=(10, 30, 100, 300, 1000, 3000, 10000), n_rep=200, seed=0):
    """Simple Monte Carlo vs importance sampling on I = E_{N(0,1)}[exp(a x)] (see
    :class:`minivae.montecarlo.ExpUnderGaussian`): left, the densities p, a proposal q and the
    optimal q* ∝ f p; right, the variance of each estimator across ``n_rep`` replicates against
    K, with the theory σ²/K. q* has zero variance (only rounding remains)."""
    prob = montecarlo.ExpUnderGaussian(a)
    m_mid = a / 2
    runs = [("simple MC (q = p)", prob.simple_mc, prob.term_variance(0.0), "C0"),
            (f"IS, q = N({m_mid:g}, 1)", prob.importance(m_mid), prob.term_variance(m_mid), "C1"),
            (f"IS, q* = N({a:g}, 1) ∝ f·p", prob.optimal, 0.0, "C2")]
    fig = Figure(figsize=(10, 3.8))
    ax1, ax2 = fig.subplots(1, 2)
    x = np.linspace(-4, 4 + a, 400)
    ax1.plot(x, np.exp(prob.log_p(x)), "C0", label="p = N(0, 1)")
    ax1.plot(x, np.exp(prob.log_normal(x, m_mid)), "C1", label=f"q = N({m_mid:g}, 1)")
    ax1.plot(x, np.exp(prob.log_normal(x, a)), "C2", label="q* = f·p / I")
    ax1.plot(x, prob.f(x) / prob.f(x).max() * 0.4, "k--", lw=1, label=f"f(x) = exp({a:g}x), scaled")
    ax1.set_xlabel("x")
    ax1.set_title(f"I = ∫ f p = exp({a:g}²/2) = {prob.exact:.4g}")
    ax1.legend(fontsize=8)
    ks = np.asarray(ks)
    tiny = np.finfo(float).eps * prob.exact
    for label, est, sigma2, color in runs:
        r = montecarlo.replicate(est, ks, n_rep, seed)
        ax2.loglog(ks, np.maximum(r["variance"], tiny ** 2), "o", color=color, label=label)
        if sigma2 > 0:
            ax2.loglog(ks, sigma2 / ks, "-", color=color, lw=1)
    ax2.axhline(tiny ** 2, color="C2", lw=0.5, ls=":")
    ax2.annotate("q*: zero variance (rounding level)", (ks[0], tiny ** 2), xytext=(0, 6),
                 textcoords="offset points", fontsize=8, color="C2")
    ax2.set_xlabel("K (number of samples)")
    ax2.set_ylabel("Var(Î) across replicates")
    ax2.set_title("variance decays as σ²/K (lines: theory)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_toy_data(path, z, x):
    """The toy model's data cloud: x (n, 2) coloured by the latent z (n,) that generated it."""
    fig = Figure(figsize=(5.2, 4.4))
    ax = fig.subplots()
    order = np.argsort(np.abs(z))[::-1]          # draw the (rarer) large |z| first, underneath
    sc = ax.scatter(x[order, 0], x[order, 1], c=z[order], s=3, cmap="twilight_shifted",
                    vmin=-3, vmax=3, linewidths=0)
    fig.colorbar(sc, ax=ax, label="z")
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.set_title(f"{len(z)} draws of x ~ p(x) = ∫ N(x; μ(z), Σ(z)) N(z; 0, 1) dz", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_toy_importance_sampling(path, ks, curves, exact, single=None):
    """IS estimates of log p(x) for the toy model against K.

    ks : (m,) sample sizes; curves : dict label -> (m, n) estimates of L_K(x_i) (means of
    log p̂_K over independent draws); exact : (n,) log p(x_i) by quadrature; single : for the
    left panel, (dict label -> (m,) estimates, exact value) for one point, better estimated
    (more draws) than the curves; default: the first point of ``curves``.
    Left: one data point, L_K rising towards log p(x). Right: the gap
    log p(x) - L_K over the n points (mean, and median: a few points with a bimodal posterior
    dominate the mean), on log-log axes.
    """
    ks = np.asarray(ks)
    fig = Figure(figsize=(10, 3.8))
    ax1, ax2 = fig.subplots(1, 2)
    if single is None:
        single = ({label: np.asarray(L)[:, 0] for label, L in curves.items()}, exact[0])
    one, one_exact = single
    for (label, L), color in zip(one.items(), ("C0", "C1", "C2", "C3")):
        ax1.semilogx(ks, L, "o-", color=color, label=label)
    for (label, L), color in zip(curves.items(), ("C0", "C1", "C2", "C3")):
        L = np.asarray(L)
        gap = exact[None, :] - L
        ax2.loglog(ks, np.maximum(gap.mean(axis=1), 1e-6), "o-", color=color,
                   label=label + ", mean")
        ax2.loglog(ks, np.maximum(np.median(gap, axis=1), 1e-6), "s--", color=color, ms=4,
                   lw=1, label=label + ", median")
    ax1.axhline(one_exact, color="k", ls="--", lw=1, label="log p(x), quadrature")
    floor = max(np.min(np.concatenate(list(one.values()))), one_exact - 15)
    ax1.set_ylim(floor - 0.5, one_exact + 0.5)
    ax1.set_xlabel("K")
    ax1.set_ylabel("L_K = E log (1/K) Σ_k w_k")
    ax1.set_title("one data point: L_K rises to log p(x)", fontsize=10)
    ax1.legend(fontsize=8)
    ax2.set_xlabel("K")
    ax2.set_ylabel("log p(x) − L_K (nats)")
    ax2.set_title(f"gap over {len(exact)} points x ~ p(x)", fontsize=10)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_decoded_points(path, zs, images):
    """The images f(z) generated from given latent points: zs (m, 2), images (m, 784) in [0, 1]
    (the Bernoulli means of the decoder), side by side, each titled with its z."""
    images = np.asarray(images).reshape(len(zs), 28, 28)
    fig = Figure(figsize=(2.2 * len(zs), 2.5))
    for ax, z, img in zip(fig.subplots(1, len(zs), squeeze=False)[0], zs, images):
        ax.imshow(img, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"z = ({z[0]:.4f}, {z[1]:.4f})", fontsize=8)
        ax.set_axis_off()
    fig.tight_layout()
    return _save(fig, path)


def plot_samples_beside_data(path, samples, data, ncols=8):
    """Model samples (left) beside training images (right): two (n, 784) arrays in [0, 1]."""
    from .plots import image_grid
    fig = Figure(figsize=(9, 4.8))
    for ax, images, title in zip(fig.subplots(1, 2), (samples, data),
                                 ("samples: z ~ N(0, I), then E[x|z]", "training images")):
        ax.imshow(image_grid(images, ncols), cmap="gray_r", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    return _save(fig, path)


def plot_latent_codes(path, codes, labels=None, points=()):
    """Posterior means of training images in the 2-D latent space (coloured by digit), with the
    marked points ``points`` (list of (label, (z1, z2)))."""
    codes = np.asarray(codes)
    fig = Figure(figsize=(5.2, 4.4))
    ax = fig.subplots()
    sc = ax.scatter(codes[:, 0], codes[:, 1], c=labels, s=2, cmap="tab10", linewidths=0)
    if labels is not None:
        fig.colorbar(sc, ax=ax, label="digit")
    for label, (a, b) in points:
        ax.plot(a, b, "k*", ms=12)
        ax.annotate(label, (a, b), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xlabel("z₁")
    ax.set_ylabel("z₂")
    ax.set_title("encoder means E_q[z|x] of training images", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
