"""A small U-Net denoiser ε_θ(x_t, t) for square images: the MNIST default.

The dense denoisers (denoiser.py, resmlp.py) see all pixels at once and must learn from
scratch that neighbouring pixels go together; their samples are digit-like but speckled or
broken. A U-Net (Ronneberger et al. 2015; the denoiser of Ho et al. 2020) builds the image's
geometry in: 3 × 3 convolutions (the same small function of each neighbourhood everywhere),
at the full resolution for strokes and at half resolution for parts of digits, and, at the
bottom, a dense block on the flattened coarse features that sees the whole digit at once:

    φ = time_embedding(t); e = act(φ W_time + b_time)       (N, E)   as in resmlp.py
    h = conv_in(x_t as (N, s, s, 1))                       (N, s, s, C_0)
    for each level l = 0..L−1 (going down):
        if l > 0: h = conv1_{down.l.in}(avgpool(h))        (N, s/2^l, s/2^l, C_l)
        h = block_{down.l}(h, e); skip_l = h
    h = block_mid(h as (N, s_L² C_L), e)                   dense: a global receptive field
    for each level l = L−1..0 (going up):
        if l < L−1: h = upsample(conv1_{up.l.in}(h)) + skip_l
        h = block_{up.l}(h, e)
    ε̂ = conv_out(act(h)) + g ⊙ x_t,  g = e W_skip + b_skip  (N, s²)

Each block is resmlp's FiLM residual block (resmlp.film_block_forward) with 3 × 3
convolutions for its two maps: h + conv(act(conv(act(h)) ⊙ (1 + γ) + β)), where γ, β (per
channel) come from e, so every block turns its channels up or down with the noise level.
The mid block is the same block with affine maps of the flattened features, of width
``MID_PER_CHANNEL`` × C_L. The skip g ⊙ x_t is resmlp's (the small-t part of ε is nearly a
per-pixel gain of x_t). Down-sampling is 2 × 2 average pooling, up-sampling nearest-neighbour
(conv.py); the side s must be divisible by 2^(L−1) (14 → 7 for two levels). Between levels
the channels change by 1 × 1 convolutions (conv1: an affine map of each pixel's channels),
applied at the coarser resolution, where they cost a quarter (they commute with pooling and
upsampling, both linear maps of the pixels); the skips are added, not concatenated, so the
first 3 × 3 convolution of each up block mixes the coarse guess with the fine features at
the cost of C_l, not 2 C_l, input channels.

``hidden`` = (C_0, …, C_{L−1}): the channels per level. Initialisation as resmlp's: Glorot for
W_time, conv_in, each block's first map, the 1 × 1 convolutions and conv_out; zeros for each
block's last map, the FiLM maps and the skip, so every block starts as the identity.
Parameters: ``time``, ``in``, ``down.{l}.in`` (l > 0), ``down.{l}.{0,film,1}``,
``mid.{0,film,1}``, ``up.{l}.in`` (l < L−1), ``up.{l}.{0,film,1}``, ``out``, ``skip``; each a
``.W`` (fan_in, fan_out), a 3 × 3 convolution's with fan_in = 9 × input channels, and a
``.b``.
"""
import math

from ..backend import xp
from ..layers import ACTIVATIONS, affine_backward, affine_forward
from .conv import (avgpool_backward, avgpool_forward, conv_backward, conv_forward,
                   upsample_backward, upsample_forward)
from .embedding import time_embedding_backward, time_embedding_forward
from .resmlp import film_block_backward, film_block_forward, init_params

#: The mid block's width per channel of the coarsest level (256 for C_{L−1} = 64).
MID_PER_CHANNEL = 4
K = 3                                  # the convolutions' kernel: 3 × 3


def unet_sides(x_dim, levels):
    """The image side at each level, (s, s/2, …), or a ValueError."""
    side = math.isqrt(x_dim)
    if side * side != x_dim:
        raise ValueError(f"the unet denoiser needs square images; x_dim {x_dim} is not a "
                         f"square")
    if side % 2 ** (levels - 1):
        raise ValueError(f"the unet denoiser with {levels} levels halves the side "
                         f"{levels - 1} times; {side} is not divisible by {2 ** (levels - 1)} "
                         f"(give fewer channel widths in hidden)")
    return tuple(side // 2 ** l for l in range(levels))


def unet_shapes(x_dim, hidden, time_dim):
    """(name, fan_in, fan_out, init) of every map, init "glorot" or "zero" (resmlp's rows)."""
    if not hidden:
        raise ValueError("the unet denoiser needs at least one channel width in hidden, "
                         "e.g. hidden=(32, 64) (channels at full and half resolution)")
    C, E, k2 = tuple(hidden), time_dim, K * K
    sides = unet_sides(x_dim, len(C))

    def block(prefix, c):
        return [(f"{prefix}.0", k2 * c, c, "glorot"), (f"{prefix}.film", E, 2 * c, "zero"),
                (f"{prefix}.1", k2 * c, c, "zero")]
    shapes = [("time", E, E, "glorot"), ("in", k2, C[0], "glorot")]
    for l, c in enumerate(C):
        if l > 0:
            shapes.append((f"down.{l}.in", C[l - 1], c, "glorot"))          # 1 x 1
        shapes += block(f"down.{l}", c)
    flat, mid = sides[-1] ** 2 * C[-1], MID_PER_CHANNEL * C[-1]
    shapes += [("mid.0", flat, mid, "glorot"), ("mid.film", E, 2 * mid, "zero"),
               ("mid.1", mid, flat, "zero")]
    for l in reversed(range(len(C))):
        if l < len(C) - 1:
            shapes.append((f"up.{l}.in", C[l + 1], C[l], "glorot"))         # 1 x 1
        shapes += block(f"up.{l}", C[l])
    return shapes + [("out", k2 * C[0], 1, "glorot"), ("skip", E, x_dim, "zero")]


def init_unet(x_dim, hidden, time_dim, seed, dtype):
    """The initialisation above, drawn on the host with NumPy (both backends start alike)."""
    return init_params(unet_shapes(x_dim, hidden, time_dim), seed, dtype)


def unet_forward(x, t, params, activation="relu"):
    """ε̂ = ε_θ(x_t, t). x: (N, s²), t: (N,) (integers or reals) -> eps_hat: (N, s²); cache."""
    act_forward, _ = ACTIVATIONS[activation]
    levels = sum(1 for name in params if name.startswith("down.") and name.endswith(".film.W"))
    n, D = x.shape
    side = unet_sides(D, levels)[0]
    phi, emb_cache = time_embedding_forward(xp.asarray(t, dtype=x.dtype),
                                            params["time.W"].shape[0])
    a, time_cache = affine_forward(phi, params["time.W"], params["time.b"])
    e, e_act = act_forward(a)                                            # (N, E)
    h, in_cache = conv_forward(x.reshape(n, side, side, 1), params["in.W"], params["in.b"])
    down, skips = [], []
    for l in range(levels):
        pool_cache = c_in = None
        if l > 0:
            h, pool_cache = avgpool_forward(h)
            h, c_in = conv_forward(h, params[f"down.{l}.in.W"], params[f"down.{l}.in.b"])
        h, c_block = film_block_forward(h, e, params, f"down.{l}", activation, conv_forward,
                                        conv_backward)
        down.append((pool_cache, c_in, c_block))
        skips.append(h)
    coarse = h.shape
    h, c_mid = film_block_forward(h.reshape(n, -1), e, params, "mid", activation)
    h = h.reshape(coarse)
    up = []
    for l in reversed(range(levels)):
        c_in = None
        if l < levels - 1:
            h, c_in = conv_forward(h, params[f"up.{l}.in.W"], params[f"up.{l}.in.b"])
            h = upsample_forward(h)[0] + skips[l]
        h, c_block = film_block_forward(h, e, params, f"up.{l}", activation, conv_forward,
                                        conv_backward)
        up.append((c_in, c_block))
    r, r_act = act_forward(h)
    out, out_cache = conv_forward(r, params["out.W"], params["out.b"])
    g, skip_cache = affine_forward(e, params["skip.W"], params["skip.b"])
    out = out.reshape(n, D) + g * x
    return out, (activation, emb_cache, time_cache, e_act, in_cache, down, coarse, c_mid, up,
                 r_act, out_cache, skip_cache, x, g)


def unet_backward(deps, cache, grads):
    """Backward of :func:`unet_forward`, the forward read bottom to top.

    deps: (N, s²) = ∂L/∂ε̂. Besides the rules of the layers (conv.py: convolution, pooling,
    upsampling; resmlp.py: the FiLM residual block, the skip g ⊙ x_t):

    - the sum upsample(·) + skip_l passes its gradient to both terms: back through the
      upsampling, and to ∂L/∂skip_l, which the down path adds to the gradient of the block
      output it came from (that output feeds both the next level and the skip);
    - e feeds every FiLM map and the skip: ∂L/∂e is the sum of their contributions, then flows
      through the time layer and the embedding.

    Adds ∂L/∂W, ∂L/∂b of every map into ``grads``; returns (∂L/∂x_t (N, s²), ∂L/∂t (N,)).
    """
    (activation, emb_cache, time_cache, e_act, in_cache, down, coarse, c_mid, up, r_act,
     out_cache, skip_cache, x, g) = cache
    _, act_backward = ACTIVATIONS[activation]
    n, D = deps.shape
    levels = len(down)
    dx = deps * g
    de, grads["skip.W"], grads["skip.b"] = affine_backward(deps * x, skip_cache)
    dr, grads["out.W"], grads["out.b"] = conv_backward(deps.reshape(n, *r_act.shape[1:3], 1),
                                                       out_cache)
    dh = act_backward(dr, r_act)
    dskips = [None] * levels
    for l, (c_in, c_block) in zip(range(levels), reversed(up)):        # l = 0 first
        dh, de_i = film_block_backward(dh, c_block, grads)
        de = de + de_i
        if c_in is not None:
            dskips[l] = dh
            dh, grads[f"up.{l}.in.W"], grads[f"up.{l}.in.b"] = conv_backward(
                upsample_backward(dh), c_in)
    dh, de_i = film_block_backward(dh.reshape(n, -1), c_mid, grads)
    de = de + de_i
    dh = dh.reshape(coarse)
    for l in reversed(range(levels)):
        pool_cache, c_in, c_block = down[l]
        if dskips[l] is not None:
            dh = dh + dskips[l]
        dh, de_i = film_block_backward(dh, c_block, grads)
        de = de + de_i
        if c_in is not None:
            dh, grads[f"down.{l}.in.W"], grads[f"down.{l}.in.b"] = conv_backward(dh, c_in)
            dh = avgpool_backward(dh, pool_cache)
    dx_in, grads["in.W"], grads["in.b"] = conv_backward(dh, in_cache)
    da = act_backward(de, e_act)
    dphi, grads["time.W"], grads["time.b"] = affine_backward(da, time_cache)
    return dx + dx_in.reshape(n, D), time_embedding_backward(dphi, emb_cache)
