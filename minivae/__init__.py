"""minivae: deep latent variable models with hand-written gradients.

The lecture's core, in reading order: :mod:`minivae.layers` (affine maps and activations),
:mod:`minivae.likelihoods` (observation models), :mod:`minivae.ops` (the bound's log-sum-exp),
:mod:`minivae.model` (IWAE, VAE), :mod:`minivae.optim` and :mod:`minivae.gradcheck`. Tools built
on it: :mod:`minivae.train`, :mod:`minivae.evaluate`, :mod:`minivae.impute`, :mod:`minivae.plots`,
:mod:`minivae.checkpoint`, :mod:`minivae.data`. Side models of the lecture:
:mod:`minivae.lecture`. The command line: :mod:`minivae.cli`.

The names below are imported on first use (PEP 562), so that ``import minivae`` (and the
command line's start-up) stays fast.
"""
import importlib

__version__ = "0.1.0"
__all__ = ["IWAE", "VAE", "MIWAEImputer", "optim", "gradcheck"]

_EXPORTS = {"IWAE": ("model", "IWAE"), "VAE": ("model", "VAE"),
            "MIWAEImputer": ("impute", "MIWAEImputer"),
            "optim": ("optim", None), "gradcheck": ("gradcheck", None)}


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'minivae' has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    value = importlib.import_module(f"{__name__}.{module}")
    value = value if attr is None else getattr(value, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
