"""Two-dimensional data whose density is known exactly: the ground truth for the bound.

- ``ring``: a mixture of 8 equally weighted Gaussians N(c_k, 0.25² I) with centres c_k on a
  circle of radius 2; log p(x) = logsumexp_k log N(x; c_k, 0.25² I) − log 8 in closed form.
- ``lecture``: the lecture's toy DLVM (:mod:`minivae.lecture.toy`: z ~ N(0, 1), x | z ~ N(μ(z), Σ(z))),
  whose log p(x) is computed by quadrature, standardised as y = (x − m) / s with the fixed
  m = (0, 1.6), s = (5, 3.4) (its mean and standard deviation to two digits) so that the
  diffusion sees unit-scale data. Densities change with the scale:
  log p_y(y) = log p_x(m + s ⊙ y) + log s_1 + log s_2 (the Jacobian of x = m + s ⊙ y).

Plain NumPy on the host (data is made here, then moved to the backend by the caller).
"""
import math

import numpy as np
from scipy.special import logsumexp

TOYS = ("ring", "lecture")
RING_COMPONENTS, RING_RADIUS, RING_STD = 8, 2.0, 0.25
LECTURE_SHIFT = np.array([0.0, 1.6])
LECTURE_SCALE = np.array([5.0, 3.4])


def _check_name(name):
    if name not in TOYS:
        raise ValueError(f"unknown toy data {name!r}; choose one of {', '.join(TOYS)}")


def ring_centres():
    angles = 2 * np.pi * np.arange(RING_COMPONENTS) / RING_COMPONENTS
    return RING_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)     # (8, 2)


def sample(name, n, seed=0):
    """n draws (n, 2) float64 of the toy ``name``, reproducible from ``seed``."""
    _check_name(name)
    if name == "lecture":
        from ..lecture import toy
        _, x = toy.sample(n, seed=seed)
        return (x - LECTURE_SHIFT) / LECTURE_SCALE
    rng = np.random.default_rng(seed)
    k = rng.integers(RING_COMPONENTS, size=n)
    return ring_centres()[k] + RING_STD * rng.standard_normal((n, 2))


def log_density(name, x):
    """The exact log p(x) of the toy ``name`` at the rows of x (n, 2) -> (n,) float64."""
    _check_name(name)
    x = np.asarray(x, dtype=float)
    if name == "lecture":
        from ..lecture import toy
        return toy.log_marginal(LECTURE_SHIFT + LECTURE_SCALE * x) + np.log(LECTURE_SCALE).sum()
    sq = ((x[:, None, :] - ring_centres()[None]) ** 2).sum(axis=2)             # (n, 8)
    log_comp = -sq / (2 * RING_STD ** 2) - math.log(2 * math.pi * RING_STD ** 2)
    return logsumexp(log_comp, axis=1) - math.log(RING_COMPONENTS)
