"""A local branch for the image denoiser: a small convolutional net, written as an MLP applied
to every pixel's k × k neighbourhood, that refines the global network's estimate (resmlp.py
adds its output to the global network's).

A dense network sees all 196 pixels at once and has to learn from scratch that neighbouring
pixels go together; what it learns is noisy, and its samples are speckled. A convolution
builds that in: the same small function of a pixel's neighbourhood at every position. Alone,
a 5 × 5 window cannot see the digit, so it reads the global network's answer ε̂_g too (two
input channels, x_t and ε̂_g, as a U-Net's fine layers read the coarse ones):

    P = [patches(x_t), patches(ε̂_g)]       (N·S, 2k²) each pixel's k × k neighbourhoods
    a = act(P W_patch + b_patch             (N·S, C)   e (N, E): the image's time features,
            + e W_time + b_time)                       the same for each of its S pixels
    z = act(a W_hidden + b_hidden)          (N·S, C)
    o = z W_out + b_out                     (N·S, 1) -> (N, S)  added to ε̂

with S = side² pixels. That is a k × k convolution with C channels followed by two 1 × 1
convolutions, zero-padded at the border ("same" size), and no new kind of layer: the first is
an affine map of the patches, the others affine maps of each pixel's features.

**patches** are conv.py's im2col of the (N, side, side, 1) image: each pixel's zero-padded
k × k neighbourhood as a row, gathered by slicing; its backward adds the rows' entries back at
their offsets (conv.py derives both). The k × k convolution is then the affine map of those
rows.
"""
import math

from ..backend import xp
from ..layers import ACTIVATIONS, affine_backward, affine_forward
from .conv import im2col_backward, im2col_forward

KERNEL = 5


def image_side(x_dim):
    """The side of a square image of x_dim pixels, or a ValueError."""
    side = math.isqrt(x_dim)
    if side * side != x_dim:
        raise ValueError(f"the local branch needs square images; x_dim {x_dim} is not a square")
    return side


def patches_forward(x, k=KERNEL):
    """x: (N, S) square images -> P: (N·S, k²) every pixel's k × k zero-padded neighbourhood
    (rows in the pixels' row-major order, column m = di k + dj); cache."""
    n, S = x.shape
    side = image_side(S)
    return im2col_forward(x.reshape(n, side, side, 1), k)


def patches_backward(dout, cache):
    """∂L/∂x (N, S) from ∂L/∂P (N·S, k²): :func:`conv.im2col_backward`, flattened back."""
    dx = im2col_backward(dout, cache)
    return dx.reshape(dx.shape[0], -1)


def local_shapes(time_dim, width, k=KERNEL):
    """(name, fan_in, fan_out, init) of the branch's affine maps (the resmlp convention)."""
    return [("local.patch", 2 * k * k, width, "glorot"), ("local.time", time_dim, width, "glorot"),
            ("local.hidden", width, width, "glorot"), ("local.out", width, 1, "zero")]


def local_forward(x, y, e, params, activation="relu"):
    """o (N, S) as above. x: (N, S) = x_t, y: (N, S) = the global network's ε̂, e: (N, E);
    cache."""
    act_forward, _ = ACTIVATIONS[activation]
    n, S = x.shape
    px, patch_cache = patches_forward(x)
    py, _ = patches_forward(y)
    p = xp.concatenate([px, py], axis=1)                                 # (N·S, 2k²)
    a, c_patch = affine_forward(p, params["local.patch.W"], params["local.patch.b"])
    te, c_time = affine_forward(e, params["local.time.W"], params["local.time.b"])  # (N, C)
    C = te.shape[1]
    a = (a.reshape(n, S, C) + te[:, None, :]).reshape(n * S, C)          # per image, all pixels
    z1, act1 = act_forward(a)
    a2, c_hidden = affine_forward(z1, params["local.hidden.W"], params["local.hidden.b"])
    z2, act2 = act_forward(a2)
    o, c_out = affine_forward(z2, params["local.out.W"], params["local.out.b"])
    return o.reshape(n, S), (activation, patch_cache, c_patch, c_time, act1, c_hidden, act2,
                             c_out)


def local_backward(dout, cache, grads):
    """Backward of :func:`local_forward`: dout (N, S) -> (∂L/∂x, ∂L/∂y (N, S), ∂L/∂e (N, E)).

    The time features were added to every pixel of their image, so ∂L/∂(e W_time + b_time) is
    the sum over the image's pixels of ∂L/∂a, which then goes through that affine map as
    through any other. Adds the parameter gradients into ``grads``.
    """
    activation, patch_cache, c_patch, c_time, act1, c_hidden, act2, c_out = cache
    _, act_backward = ACTIVATIONS[activation]
    n, S = dout.shape
    dz2, grads["local.out.W"], grads["local.out.b"] = affine_backward(dout.reshape(n * S, 1),
                                                                      c_out)
    dz1, grads["local.hidden.W"], grads["local.hidden.b"] = affine_backward(
        act_backward(dz2, act2), c_hidden)
    da = act_backward(dz1, act1)                                         # (N·S, C)
    dte = da.reshape(n, S, -1).sum(axis=1)                               # (N, C)
    de, grads["local.time.W"], grads["local.time.b"] = affine_backward(dte, c_time)
    dp, grads["local.patch.W"], grads["local.patch.b"] = affine_backward(da, c_patch)
    half = dp.shape[1] // 2                                 # [x_t's patch, ε̂_global's patch]
    return (patches_backward(dp[:, :half], patch_cache),
            patches_backward(dp[:, half:], patch_cache), de)
