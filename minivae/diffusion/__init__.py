"""Diffusion models as deep latent variable models, with hand-written gradients.

A denoising diffusion probabilistic model (Sohl-Dickstein et al. 2015; Ho, Jain & Abbeel 2020)
is the lecture's latent variable model with T latent layers: a fixed Gaussian encoder that
adds noise step by step, a learned decoder that removes it, and a variational bound of the
kind the IWAE chapter teaches. Read the files in this order:

    schedule.py   β_1..β_T (linear, cosine) and the constants derived from them
    forward.py    q(x_t | x_0) in closed form; the posterior q(x_{t−1} | x_t, x_0)
    embedding.py  the sinusoidal time embedding φ(t), forward and backward
    denoiser.py   ε_θ(x_t, t): the project's MLP layers reading x_t and φ(t)
    resmlp.py     ε_θ(x_t, t) for images: residual blocks, FiLM time modulation, a skip
    conv.py       image layers: im2col, k × k convolution, 2 × 2 pooling, 2× upsampling
    local.py      resmlp's local branch: a small convolutional net as an MLP on 5 × 5 patches
    unet.py       ε_θ(x_t, t) for images: a small U-Net of convolutions and FiLM blocks
    loss.py       L_simple = ‖ε − ε_θ(x_t, t)‖² and its gradient
    vlb.py        the full bound L_vlb (nats, bits/dim); Gaussian and 8-bit decoders
    sampling.py   ancestral sampling; deterministic DDIM
    ddpm.py       DDPM: the model that ties them together
    toydata.py    2-D data with known density: the lecture's toy DLVM, a ring of Gaussians
    images.py     8-bit MNIST, downsampled, scaled to [−1, 1]

docs/diffusion.md derives every formula; labs/09_diffusion is the exercise.
"""
from .ddpm import DDPM
from .denoiser import denoiser_backward, denoiser_forward
from .resmlp import resmlp_backward, resmlp_forward
from .unet import unet_backward, unet_forward
from .embedding import time_embedding_backward, time_embedding_forward
from .forward import posterior_mean_var, predict_x0, q_mean_var, q_sample, reverse_mean_var
from .loss import simple_loss
from .sampling import ancestral_sample, ddim_sample
from .schedule import Schedule, cosine_betas, linear_betas
from .vlb import bits_per_dim, discretized_gaussian_log_likelihood, gaussian_kl, vlb_terms
