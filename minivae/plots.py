"""Pictures of a trained model and of its training, as PNG files.

- :func:`save_samples`          x ~ p_θ(x) = ∫ p_θ(x|z) p(z) dz: z from the prior, then the
                                decoder's mean E[x|z] (or a draw from p_θ(x|z));
- :func:`save_reconstructions`  test images next to E[x | z = μ_γ(x)] (the posterior mean);
- :func:`save_manifold`         for z_dim = 2: E[x|z] on a grid of z, the grid spaced by the
                                inverse normal CDF so each cell holds equal prior mass (Kingma &
                                Welling 2014, figure 4);
- :func:`save_latent_scatter`   for z_dim = 2: μ_γ(x) of test images coloured by digit;
- :func:`save_curves`           train and test bounds per epoch, from metrics.jsonl rows.

Drawing uses matplotlib's object API with the Agg canvas (no pyplot, no display, no global
backend switch), so it works on a headless server and does not disturb a notebook's backend.
Images are (N, 784) rows of 28 x 28 pixels, values in [0, 1].
"""
import numpy as np

from . import backend

IMAGE_SIDE = 28


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi=100):
    fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.05)


def image_grid(images, ncols, pad=2, fill=0.0):
    """Tile (N, 784) images in a grid of ``ncols`` columns with ``pad`` pixels between them.

    Returns a 2-D array of shape (rows * (28 + pad) - pad, ncols * (28 + pad) - pad); empty
    cells and the gaps are ``fill`` (0: white, as the digits are drawn dark on light).
    """
    images = np.clip(np.asarray(images, dtype=np.float64), 0.0, 1.0)
    n, s = len(images), IMAGE_SIDE
    nrows = max(1, -(-n // ncols))
    cell = s + pad
    grid = np.full((nrows * cell - pad, ncols * cell - pad), fill)
    for i, img in enumerate(images.reshape(n, s, s)):
        r, c = divmod(i, ncols)
        grid[r * cell:r * cell + s, c * cell:c * cell + s] = img
    return grid


def _save_grid(grid, path, title, zoom=2, dpi=100):
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
    fig.savefig(path, dpi=dpi)


def sample_images(model, n, draws=False, seed=0):
    """n images from the model: E[x|z] with z ~ N(0, I) (or a Bernoulli draw when ``draws``).

    Returns an (n, D) NumPy array. z and the draws come from a NumPy generator seeded with
    ``seed`` (the same pictures on CPU and GPU).
    """
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, model.z_dim))
    mean = backend.to_numpy(model.observation_mean(backend.asarray(z, dtype=model.dtype)))
    if draws:
        if model.likelihood.name != "bernoulli":
            raise ValueError("drawing samples (--draws) needs the bernoulli likelihood; "
                             "without it the pictures show E[x|z]")
        return (rng.random(mean.shape) < mean).astype(mean.dtype)
    return mean


def save_samples(model, path, n=100, draws=False, seed=0, ncols=10):
    images = sample_images(model, n, draws, seed)
    what = "draws from p(x|z)" if draws else "E[x|z]"
    _save_grid(image_grid(images, ncols), path, f"samples: z ~ N(0, I), {what}")


def reconstruct(model, x):
    """E[x | z = μ_γ(x)]: the decoder's mean at the posterior mean, (N, D) NumPy."""
    mean, _ = model.encode(x)
    return backend.to_numpy(model.observation_mean(mean))


def save_reconstructions(model, x, path, ncols=10):
    """Rows of ``ncols`` test images, each followed by a row of their reconstructions."""
    x = np.asarray(x)
    recon = reconstruct(model, x)
    rows = []
    for i in range(0, len(x), ncols):
        for block in (x[i:i + ncols], recon[i:i + ncols]):
            rows.append(np.concatenate([block, np.ones((ncols - len(block), x.shape[1]))]))
    _save_grid(image_grid(np.concatenate(rows), ncols), path,
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
    mean = backend.to_numpy(model.observation_mean(backend.asarray(z, dtype=model.dtype)))
    _save_grid(image_grid(mean, n, pad=0), path,
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
    _save(fig, path)


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
    _save(fig, path)
