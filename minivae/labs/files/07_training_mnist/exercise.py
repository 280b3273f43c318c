"""Lab 7: training a DLVM on MNIST. Fill in the NotImplementedError stubs.

The pieces around the gradient: the optimizer that climbs the bound, the pictures that show
what a 2-D latent space learned, ancestral sampling, and the statistic that counts the latent
dimensions a trained model uses.

Check your work with:   python -m minivae.labs check 7
Then train for real:    python -m minivae.labs run 7
"""
import numpy as np
from scipy.stats import norm  # noqa: F401  (norm.ppf is Φ⁻¹)


def adam_step(param, grad, m, s, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-4):
    """One step of Adam *ascending* the bound (we maximise it), as in Kingma & Ba's Algorithm 1.

    param, grad, m, s: arrays of one shape (m and s are the moment estimates before this step);
    t: the number of this step, 1 for the first. Return (param_new, m_new, s_new).
    """
    raise NotImplementedError("adam_step: return param_new, m_new, s_new")


def manifold_grid(n=20, low=0.05, high=0.95):
    """The latent points of the "learned manifold" figure for a 2-D latent space: an n x n grid
    whose cells carry equal prior mass, z_i = Φ⁻¹(p_i) for n evenly spaced p_i in [low, high].

    Return an (n*n, 2) array, row-major as the picture is read: row r of the picture has
    z_2 = the r-th largest value, and along a row z_1 increases.
    """
    raise NotImplementedError("manifold_grid: return z, shape (n*n, 2)")


def ancestral_sample(decode_logits, z, u):
    """Samples of a Bernoulli DLVM: given z ~ p(z) (n, d) and uniform draws u (n, D) in [0, 1),
    return (means, x): means = E[x|z] (n, D) and x (n, D) a draw from p(x|z) that uses u
    (pixel j is 1 when u_j < its probability). decode_logits(z) returns the decoder's logits."""
    raise NotImplementedError("ancestral_sample: return means, x")


def active_units(posterior_means, threshold=1e-2):
    """Burda et al.'s activity statistic. posterior_means: (N, d), E_q[z|x_n] for N images.
    A_u = Cov_x(E_q[z_u|x]) is the variance over the images (divide by N) of unit u's posterior
    mean. Return (number of units with A_u > threshold, A of shape (d,))."""
    raise NotImplementedError("active_units: return n_active, A")
