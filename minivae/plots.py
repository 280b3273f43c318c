"""Pictures of a trained model and of its training, as PNG files.

- :func:`save_samples`          x ~ p_θ(x) = ∫ p_θ(x|z) p(z) dz: z from the prior, then the
                                decoder's mean E[x|z] (or a draw from p_θ(x|z));
- :func:`save_reconstructions`  test images next to E[x | z = μ_γ(x)] (the posterior mean);
- :func:`save_manifold`         for z_dim = 2: E[x|z] on a grid of z, the grid spaced by the
                                inverse normal CDF so each cell holds equal prior mass (Kingma &
                                Welling 2014, figure 4);
- :func:`save_latent_scatter`   for z_dim = 2: μ_γ(x) of test images coloured by digit;
- :func:`save_curves`           train and test bounds per epoch, from metrics.jsonl rows;

and the lecture's figures: :func:`plot_monte_carlo` (Monte Carlo vs importance sampling),
:func:`plot_toy_data` and :func:`plot_toy_importance_sampling` (the 1-D toy model),
:func:`plot_decoded_points`, :func:`plot_samples_beside_data` and :func:`plot_latent_codes` (the
2-D MNIST latent space).

Drawing uses matplotlib's object API with the Agg canvas (no pyplot, no display, no global
backend switch), so it works on a headless server and does not disturb a notebook's backend.
matplotlib is imported by the drawing functions only, never with this module, so that commands
which draw nothing start fast and work without it. Every figure is written by :func:`_save`,
through the atomic writer (:func:`minivae.checkpoint.atomic_write`): an interrupted or failed
save leaves the previous PNG (or none), never a truncated one.
Images are (N, 784) rows of 28 x 28 pixels, values in [0, 1].
"""
import os

import numpy as np

from . import backend
from .likelihoods import Bernoulli

IMAGE_SIDE = 28
DPI = 100


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi=DPI, tight=True):
    """Write ``fig`` as a PNG at ``path`` atomically (creating its directory); returns path."""
    from .checkpoint import atomic_write
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    extra = {"bbox_inches": "tight", "pad_inches": 0.05} if tight else {}
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi, **extra))
    return path


def image_grid(images, ncols, pad=2, fill=0.0, side=IMAGE_SIDE):
    """Tile (N, side²) images (28 x 28 by default) in a grid of ``ncols`` columns with ``pad``
    pixels between them.

    Returns a 2-D array of shape (rows * (side + pad) - pad, ncols * (side + pad) - pad); empty
    cells and the gaps are ``fill`` (0: white, as the digits are drawn dark on light).
    """
    images = np.clip(np.asarray(images, dtype=np.float64), 0.0, 1.0)
    n, s = len(images), side
    nrows = max(1, -(-n // ncols))
    cell = s + pad
    grid = np.full((nrows * cell - pad, ncols * cell - pad), fill)
    for i, img in enumerate(images.reshape(n, s, s)):
        r, c = divmod(i, ncols)
        grid[r * cell:r * cell + s, c * cell:c * cell + s] = img
    return grid


def _save_grid(grid, path, title, zoom=2, dpi=DPI):
    """Save a grid as a PNG, each image pixel drawn as zoom x zoom screen pixels (no
    resampling blur), with a one-line title above it."""
    from matplotlib import colormaps
    pixels = np.kron(grid, np.ones((zoom, zoom)))
    rgb = colormaps["gray_r"](pixels)[..., :3]
    h, w = pixels.shape
    title_h = 22 if title else 0
    fig = _figure(max(w, 200) / dpi, (h + title_h) / dpi)
    fig.figimage(rgb, xo=0, yo=0, origin="upper")
    if title:
        fig.text(0.5, 1 - 0.5 * title_h / (h + title_h), title, ha="center", va="center",
                 fontsize=8)
    return _save(fig, path, dpi, tight=False)


def ancestral_sample(decode_logits, z, u):
    """Ancestral sampling from a Bernoulli DLVM, given z ~ p(z) (n, d) and uniforms u (n, D):
    returns (means, x) with means = E[x|z] = σ(f_θ(z)) and x_j = [u_j < means_j], a draw from
    p_θ(x|z) (:meth:`minivae.likelihoods.Bernoulli.draw`). ``decode_logits(z)`` returns the
    decoder's logits f_θ(z). (Lab 7.)"""
    logits = decode_logits(z)
    return Bernoulli.mean(logits), Bernoulli.draw(logits, u)


def grey_levels(model, x):
    """Data or model outputs as grey levels in [0, 1]: categorical codes 0..C-1 are divided
    by C - 1 (quantised images); every other model's x is already on that scale."""
    C = getattr(model.likelihood, "n_categories", None)
    return x if C is None else x / (C - 1)


def sample_images(model, n, draws=False, seed=0):
    """n images from the model: E[x|z] with z ~ N(0, I), or draws x ~ p(x|z) when ``draws``.

    Returns an (n, D) NumPy array of grey levels (:func:`grey_levels`). z comes from a NumPy
    generator seeded with ``seed``, and so do the uniforms u (n, D) of the draws, made by the
    observation model's inverse CDF (:meth:`minivae.likelihoods.Bernoulli.draw` and co.; for
    the Bernoulli model through lab 7's :func:`ancestral_sample`): the same pictures on CPU
    and GPU.
    """
    rng = np.random.default_rng(seed)
    z = backend.asarray(rng.standard_normal((n, model.z_dim)), dtype=model.dtype)
    if not draws:
        return grey_levels(model, backend.to_numpy(model.observation_mean(z)))
    u = backend.asarray(rng.random((n, model.x_dim)))          # float64, as drawn
    if model.likelihood.name == "bernoulli":                   # lab 7's function
        _, x = ancestral_sample(lambda z: model.decode(z)["logits"], z, u)
    else:
        x = model.likelihood.draw(**model.decode(z), u=u)
    return grey_levels(model, backend.to_numpy(x))


def save_samples(model, path, n=100, draws=False, seed=0, ncols=10):
    images = sample_images(model, n, draws, seed)
    what = "draws from p(x|z)" if draws else "E[x|z]"
    return _save_grid(image_grid(images, ncols), path, f"samples: z ~ N(0, I), {what}")


def reconstruct(model, x):
    """E[x | z = μ_γ(x)]: the decoder's mean at the posterior mean, (N, D) NumPy grey levels."""
    mean, _ = model.encode(x)
    return grey_levels(model, backend.to_numpy(model.observation_mean(mean)))


def save_reconstructions(model, x, path, ncols=10):
    """Rows of ``ncols`` test images, each followed by a row of their reconstructions."""
    recon = reconstruct(model, x)
    x = grey_levels(model, np.asarray(x))
    rows = []
    for i in range(0, len(x), ncols):
        for block in (x[i:i + ncols], recon[i:i + ncols]):
            rows.append(np.concatenate([block, np.ones((ncols - len(block), x.shape[1]))]))
    return _save_grid(image_grid(np.concatenate(rows), ncols), path,
               "test images (odd rows) and E[x | z = mean of q(z|x)] (even rows)")


def manifold_grid(n=20, low=0.05, high=0.95):
    """The (n*n, 2) grid of z: Φ^{-1} of n evenly spaced probabilities on each axis, z_2
    decreasing down the rows (so "up" in the picture is larger z_2), z_1 increasing along them."""
    from scipy.stats import norm
    q = norm.ppf(np.linspace(low, high, n))
    z1, z2 = np.meshgrid(q, q[::-1])
    return np.stack([z1.ravel(), z2.ravel()], axis=1)


def save_manifold(model, path, n=20):
    if model.z_dim != 2:
        raise ValueError(f"the latent manifold needs z_dim = 2, this model has {model.z_dim}")
    z = manifold_grid(n)
    mean = grey_levels(model, backend.to_numpy(model.observation_mean(
        backend.asarray(z, dtype=model.dtype))))
    return _save_grid(image_grid(mean, n, pad=0), path,
               "learned manifold: E[x|z] on a grid of z = Φ⁻¹(p), p in [0.05, 0.95]")


def save_latent_scatter(model, x, labels, path):
    """Posterior means μ_γ(x) of test images in the plane, coloured by their digit."""
    if model.z_dim != 2:
        raise ValueError(f"the latent scatter needs z_dim = 2, this model has {model.z_dim}")
    from .evaluate import posterior_means
    mu = posterior_means(model, x)
    fig = _figure(6, 5)
    ax = fig.add_subplot()
    points = ax.scatter(mu[:, 0], mu[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5, s=4)
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel("z₁ (mean of q(z|x))")
    ax.set_ylabel("z₂")
    ax.set_title(f"{len(mu)} encoded test images")
    return _save(fig, path)


def save_curves(rows, path):
    """Train and test bound per epoch (and the learning rate when it changes).

    rows : dicts of metrics.jsonl (keys epoch, train_bound, test_bound, k, test_k, lr).
    """
    from matplotlib.ticker import MaxNLocator
    if not rows:
        raise ValueError("no metrics to plot (has the run finished an epoch?)")
    epoch = [r["epoch"] for r in rows]
    lrs = [r["lr"] for r in rows]
    varying_lr = len(set(lrs)) > 1
    fig = _figure(7, 5.5 if varying_lr else 4)
    ax = fig.add_subplot(211 if varying_lr else 111)
    ax.plot(epoch, [r["train_bound"] for r in rows], marker=".",
            label=f"train L_{rows[-1]['k']} (mean over the epoch)")
    test = [(e, r["test_bound"]) for e, r in zip(epoch, rows) if r.get("test_bound") is not None]
    if test:
        ax.plot(*zip(*test), marker=".",
                label=f"test L_{rows[-1]['test_k']} ({rows[-1]['test_n']} images, end of epoch)")
    ax.set_ylabel("bound (nats, higher is better)")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    if varying_lr:
        ax2 = fig.add_subplot(212, sharex=ax)
        ax2.step(epoch, lrs, where="post")
        ax2.set_yscale("log")
        ax2.set_ylabel("learning rate")
        ax2.set_xlabel("epoch")
        ax2.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------ the lecture's figures

def plot_monte_carlo(path, a=2.0, ks=(10, 30, 100, 300, 1000, 3000, 10000), n_rep=200, seed=0):
    """Simple Monte Carlo vs importance sampling on I = E_{N(0,1)}[exp(a x)] (see
    :class:`minivae.lecture.montecarlo.ExpUnderGaussian`): left, the densities p, a proposal q and the
    optimal q* ∝ f p; right, the variance of each estimator across ``n_rep`` replicates against
    K, with the theory σ²/K. q* has zero variance (only rounding remains)."""
    from .lecture import montecarlo
    prob = montecarlo.ExpUnderGaussian(a)
    m_mid = a / 2
    runs = [("simple MC (q = p)", prob.simple_mc, prob.term_variance(0.0), "C0"),
            (f"IS, q = N({m_mid:g}, 1)", prob.importance(m_mid), prob.term_variance(m_mid), "C1"),
            (f"IS, q* = N({a:g}, 1) ∝ f·p", prob.optimal, 0.0, "C2")]
    fig = _figure(10, 3.8)
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
    return _save(fig, path, tight=False)


def plot_toy_data(path, z, x):
    """The toy model's data cloud: x (n, 2) coloured by the latent z (n,) that generated it."""
    fig = _figure(5.2, 4.4)
    ax = fig.subplots()
    order = np.argsort(np.abs(z))[::-1]          # draw the (rarer) large |z| first, underneath
    sc = ax.scatter(x[order, 0], x[order, 1], c=z[order], s=3, cmap="twilight_shifted",
                    vmin=-3, vmax=3, linewidths=0)
    fig.colorbar(sc, ax=ax, label="z")
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.set_title(f"{len(z)} draws of x ~ p(x) = ∫ N(x; μ(z), Σ(z)) N(z; 0, 1) dz", fontsize=9)
    fig.tight_layout()
    return _save(fig, path, tight=False)


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
    fig = _figure(10, 3.8)
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
    return _save(fig, path, tight=False)


def plot_decoded_points(path, zs, images):
    """The images f(z) generated from given latent points: zs (m, 2), images (m, 784) in [0, 1]
    (the Bernoulli means of the decoder), side by side, each titled with its z."""
    images = np.asarray(images).reshape(len(zs), 28, 28)
    fig = _figure(2.2 * len(zs), 2.5)
    for ax, z, img in zip(fig.subplots(1, len(zs), squeeze=False)[0], zs, images):
        ax.imshow(img, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"z = ({z[0]:.4f}, {z[1]:.4f})", fontsize=8)
        ax.set_axis_off()
    fig.tight_layout()
    return _save(fig, path, tight=False)


def plot_samples_beside_data(path, samples, data, ncols=8):
    """Model samples (left) beside training images (right): two (n, 784) arrays in [0, 1]."""
    fig = _figure(9, 4.8)
    for ax, images, title in zip(fig.subplots(1, 2), (samples, data),
                                 ("samples: z ~ N(0, I), then E[x|z]", "training images")):
        ax.imshow(image_grid(images, ncols), cmap="gray_r", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    return _save(fig, path, tight=False)


def plot_latent_codes(path, codes, labels=None, points=()):
    """Posterior means of training images in the 2-D latent space (coloured by digit), with the
    marked points ``points`` (list of (label, (z1, z2)))."""
    codes = np.asarray(codes)
    fig = _figure(5.2, 4.4)
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
    return _save(fig, path, tight=False)


# ------------------------------------------------------------------------------ the 2-D example

#: The two latent points of the lecture's slides.
LECTURE_POINTS = ((-1.2033, 0.5340), (0.0791, -1.8165))


def decoded_images(model, z):
    """E[x|z] = Sigmoid(f(z)) for z (m, 2): the Bernoulli means as an (m, 784) host array."""
    return backend.to_numpy(model.observation_mean(backend.asarray(np.asarray(z, dtype=float),
                                                                   dtype=model.dtype)))


def save_latent2d_figures(model, x_train, y_train, out, seed=0, grid=20):
    """The four figures of the example for a trained 2-D model; returns their paths."""
    if model.z_dim != 2:
        raise ValueError(f"this example needs z_dim = 2, the model has {model.z_dim}")
    paths = [plot_decoded_points(os.path.join(out, "lecture_points.png"),
                                       LECTURE_POINTS, decoded_images(model, LECTURE_POINTS))]
    path = os.path.join(out, "manifold.png")
    save_manifold(model, path, n=grid)
    paths.append(path)
    rng = np.random.default_rng(seed)
    samples = sample_images(model, 64, seed=seed)
    shown = x_train[rng.choice(len(x_train), 64, replace=False)]
    paths.append(plot_samples_beside_data(os.path.join(out, "samples.png"), samples, shown))
    from .data import fixed_binarize
    from .evaluate import posterior_means
    n = min(3000, len(x_train))
    xb = fixed_binarize(x_train[:n], seed) if model.likelihood.name == "bernoulli" \
        else x_train[:n]
    codes = posterior_means(model, xb)
    paths.append(plot_latent_codes(
        os.path.join(out, "latent.png"), codes, y_train[:n],
        points=[(f"({a}, {b})", (a, b)) for a, b in LECTURE_POINTS]))
    return paths


# ------------------------------------------------------------------ gradient estimators
def save_snr(rows, path, title=None, floor=None):
    """The gradient's SNR against K, one line per estimator, encoder and decoder side by side,
    and the effective sample size of the weights against K (rows from
    :func:`minivae.snr.gradient_snr`; log-log axes, as Rainforth et al.'s figure); ``floor``
    draws the mean SNR's noise floor (:func:`minivae.snr.noise_floor`) as a dotted line."""
    fig = _figure(11, 3.4)
    ests = list(dict.fromkeys(r["estimator"] for r in rows))
    styles = {"iwae": "o-", "stl": "s--", "dreg": "^-"}
    for i, (side, name) in enumerate((("encoder", "encoder (inference network) γ"),
                                      ("decoder", "decoder (generative network) θ"))):
        ax = fig.add_subplot(1, 3, i + 1)
        for e in ests:
            pts = [(r["k"], r[f"{side}_snr"]) for r in rows if r["estimator"] == e]
            ax.plot(*zip(*pts), styles.get(e, "o-"), label=e.upper(), markersize=4)
        if floor is not None:
            ax.axhline(floor, ls=":", color="gray", lw=1, label="noise floor")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("K (importance samples)")
        ax.set_ylabel("mean SNR  |E[Δ]| / sd[Δ]")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    ax = fig.add_subplot(1, 3, 3)
    pts = sorted({(r["k"], r["ess"]) for r in rows})
    ax.plot(*zip(*pts), "o-", color="k", markersize=4, label="ESS = 1 / Σ w̃²")
    ax.plot([pts[0][0], pts[-1][0]], [pts[0][0], pts[-1][0]], ":", color="gray", label="K")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("K (importance samples)")
    ax.set_title("effective sample size of the weights", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def save_compare_curves(runs, path, title=None):
    """Test bound per epoch of several runs on one plot: ``runs`` maps a label to the rows of
    its metrics.jsonl (e.g. an equal-budget comparison of two estimators)."""
    from matplotlib.ticker import MaxNLocator
    fig = _figure(6, 4)
    ax = fig.add_subplot(111)
    for label, rows in runs.items():
        line, = ax.plot([r["epoch"] for r in rows], [r["train_bound"] for r in rows], ":",
                        label=f"{label}: train L_{rows[-1]['k']}")
        pts = [(r["epoch"], r["test_bound"]) for r in rows if r.get("test_bound") is not None]
        if pts:
            ax.plot(*zip(*pts), marker=".", color=line.get_color(),
                    label=f"{label}: test L_{rows[-1]['test_k']}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("bound (nats, higher is better)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------ diffusion

def save_image_samples(images, path, title, side=IMAGE_SIDE, ncols=10):
    """A grid of (n, side²) images in [0, 1] (e.g. a diffusion model's samples of 14 x 14
    MNIST), each pixel drawn as 56/side screen pixels so every size shows at the same scale."""
    return _save_grid(image_grid(images, ncols, side=side), path, title,
                      zoom=max(1, 2 * IMAGE_SIDE // side))


def plot_diffusion_toy(path, data, samples, exact=None, bound=None, title=""):
    """A 2-D diffusion model beside its data: training data and samples (n, 2) as scatter
    plots on the same axes and, when given, the bound −L_vlb(x) against the exact log p(x) of
    test points (one dot each; the diagonal is equality, Gibbs puts the cloud's mean below)."""
    data, samples = np.asarray(data), np.asarray(samples)
    panels = 3 if exact is not None else 2
    fig = _figure(4.2 * panels, 4.2)
    axes = fig.subplots(1, panels)
    both = np.concatenate([data, samples])
    lo, hi = np.percentile(both, 0.5, axis=0), np.percentile(both, 99.5, axis=0)
    pad = 0.1 * (hi - lo)
    for ax, pts, name in zip(axes, (data, samples), ("data", "DDPM samples")):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4, linewidths=0)
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_aspect("equal")
        ax.set_title(f"{name} ({len(pts)} points)", fontsize=9)
    if exact is not None:
        exact, bound = np.asarray(exact), np.asarray(bound)
        ax = axes[2]
        ax.scatter(exact, bound, s=3, alpha=0.5, linewidths=0)
        a, b = np.percentile(np.concatenate([exact, bound]), [0.5, 99.5])
        ax.plot([a, b], [a, b], "k--", lw=0.8, label="bound = log p(x)")
        ax.set_xlim(a, b)
        ax.set_ylim(a, b)
        ax.set_xlabel("exact log p(x) (nats)")
        ax.set_ylabel("−L_vlb(x) (nats)")
        ax.set_title(f"mean {bound.mean():.3f} vs exact {exact.mean():.3f}", fontsize=9)
        ax.legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, tight=False)


def save_diffusion_curves(rows, path):
    """A diffusion run's metrics.jsonl: the training loss L_simple (its train_bound) and the
    per-epoch test bound −L_vlb, on two panels (their scales differ: a mean squared error per
    coordinate, nats per example), and the learning rate."""
    from matplotlib.ticker import MaxNLocator
    if not rows:
        raise ValueError("no metrics to plot (has the run finished an epoch?)")
    epoch = [r["epoch"] for r in rows]
    fig = _figure(7, 7)
    axes = fig.subplots(3, 1, sharex=True)
    axes[0].plot(epoch, [r["train_bound"] for r in rows], marker=".")
    axes[0].set_ylabel("L_simple (train)")
    axes[0].set_yscale("log")
    test = [(e, r["test_bound"]) for e, r in zip(epoch, rows) if r.get("test_bound") is not None]
    if test:
        axes[1].plot(*zip(*test), marker=".", color="C1")
    steps = rows[-1].get("test_t")
    axes[1].set_ylabel("test −L_vlb (nats)")
    axes[1].set_title(f"test bound on {rows[-1].get('test_n')} points, " + (
        f"all T = {rows[-1].get('T')} steps" if steps is None else
        f"estimated from {steps} random steps t each"), fontsize=8)
    axes[2].step(epoch, [r["lr"] for r in rows], where="post", color="C2")
    axes[2].set_ylabel("learning rate")
    axes[2].set_xlabel("epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return _save(fig, path)
