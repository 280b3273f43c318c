"""8-bit MNIST for the diffusion model: downsampled, kept 8-bit, scaled to [−1, 1].

A diffusion model's bound in bits per dimension is a statement about the *discrete* 8-bit
image (the discretized decoder of vlb.py gives each pixel value a probability). So the images
stay 8-bit through every step:

- downsampling by an integer ``factor`` (28 → 14 for factor 2) averages each factor × factor
  block of uint8 pixels and rounds to the nearest integer (halves to even), giving again a
  uint8 image: a 14 × 14 MNIST whose bits/dim are those of an 8-bit 14 × 14 image;
- the model sees x = u / 127.5 − 1 ∈ {−1, −1 + 2/255, …, 1} (255 steps of 2/255).

Host NumPy; the caller moves batches to the backend.
"""
import numpy as np

from .. import data


def downsample(u8, factor):
    """(N, 28·28) uint8 -> (N, (28/factor)²) uint8 by block means, rounded."""
    side = data.IMAGE_SHAPE[0]
    if factor < 1 or side % factor:
        raise ValueError(f"the downsampling factor must divide {side}, got {factor}")
    n, s = u8.shape[0], side // factor
    blocks = u8.reshape(n, s, factor, s, factor).astype(np.float64).mean(axis=(2, 4))
    return np.rint(blocks).astype(np.uint8).reshape(n, s * s)


def to_model(u8, dtype="float32"):
    """uint8 pixels -> the model's scale [−1, 1]: u / 127.5 − 1."""
    return (u8.astype(np.float64) / 127.5 - 1.0).astype(dtype)


def to_unit(x):
    """The model's scale -> grey levels in [0, 1] for display (clipped)."""
    return np.clip((np.asarray(x, dtype=np.float64) + 1.0) / 2.0, 0.0, 1.0)


def load_mnist(name="mnist-subset", data_dir=None, factor=2, dtype="float32"):
    """(x_train, x_test) on the model's scale, downsampled by ``factor``, as host arrays.

    Reads the uint8 images themselves (the embedded subset, or the IDX files for "mnist"),
    never re-quantises float images.
    """
    if name == "mnist-subset":
        a = data.load_subset_uint8()
    elif name == "mnist":
        a = data.read_mnist(data.resolve_data_dir(data_dir))
    else:
        raise ValueError(f"unknown data {name!r}; choose one of {', '.join(data.DATASETS)}")
    flat = lambda x: x.reshape(x.shape[0], -1)  # noqa: E731
    return tuple(to_model(downsample(flat(a[k]), factor), dtype) for k in ("x_train", "x_test"))
