"""minivae: deep latent variable models (IWAE, VAE, MIWAE) with hand-written gradients."""
import os

from setuptools import find_packages, setup

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "README.md"), encoding="utf-8") as f:
    long_description = f.read()

# NVRTC and its Python bindings compile the CUDA kernel on machines without a GPU, which is how
# CI checks kernels/logsumexp_weights.cu (about 390 MB of wheels: the `kernel-check` extra, not
# part of `test`, so that a CPU-only test install stays light; without it those checks are
# skipped with the reason). NVRTC 13 no longer targets compute_70 (Volta), which NVRTC 12 does.
NVRTC = ["cuda-bindings>=13,<14", "nvidia-cuda-nvrtc>=13,<14", "nvidia-cuda-nvrtc-cu12>=12.4,<13"]

setup(
    name="minivae",
    version="0.1.0",
    description="Deep latent variable models (IWAE, VAE, MIWAE) with hand-written gradients, "
    "for NumPy and CuPy",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    # The CUDA source (minivae/kernels/) and the labs (minivae/labs/files/: sheets, answers,
    # exercise stubs, run scripts) live inside the package, so that `pip install` ships them as
    # package data; the top-level kernels/ and labs/ are links to them, for the reader. No
    # package is remapped to another folder: with every package under "." (package_dir below),
    # setuptools' editable install is a plain path entry (a static .pth), found in sys.path
    # order, rather than an import hook consulted after Python's own path finder, which let a
    # folder named minivae/ in the current directory (a clone) shadow the package as an empty
    # namespace package. tests/test_packaging.py checks both.
    package_dir={"": "."},
    packages=find_packages(include=["minivae", "minivae.*"]) + ["minivae.labs.files"],
    package_data={"minivae": ["datasets/*.npz"], "minivae.kernels": ["*.cu", "*.h"],
                  "minivae.labs.files": ["*.md", "*/*.md", "*/*.py"]},
    install_requires=["numpy>=1.22", "scipy>=1.8", "matplotlib>=3.5", "tqdm>=4.60",
                      "threadpoolctl>=3.1"],
    extras_require={
        # setuptools: tests/test_packaging.py builds wheels with its PEP 517/660 hooks, which
        # build a wheel without the `wheel` package from 70.1 on.
        "test": ["pytest>=7", "scikit-learn>=1.2", "mpmath>=1.2", "setuptools>=70.1"],
        "kernel-check": NVRTC,
        "bench": ["scikit-learn>=1.2"],
        "cuda12": ["cupy-cuda12x>=13"],
        "cuda13": ["cupy-cuda13x>=14"],
    },
    entry_points={"console_scripts": ["minivae=minivae.cli:main"]},
)
