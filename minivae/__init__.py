"""minivae: deep latent variable models with hand-written gradients.

The model is in :mod:`minivae.model`; its building blocks in :mod:`minivae.layers` (affine maps
and activations) and :mod:`minivae.likelihoods` (observation models); the bound's log-sum-exp in
:mod:`minivae.ops`; training helpers in :mod:`minivae.optim` and :mod:`minivae.gradcheck`.
"""
from . import gradcheck, optim
from .impute import MIWAEImputer
from .model import IWAE, VAE

__version__ = "0.1.0"
__all__ = ["IWAE", "VAE", "MIWAEImputer", "optim", "gradcheck"]
