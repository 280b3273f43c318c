"""A residual, time-modulated MLP denoiser ε_θ(x_t, t) (session 2's MNIST default).

The plain MLP (denoiser.py) hears t only as extra inputs added into each layer; on images it
learns to "guess the digit" at large t but barely removes small noise (L_simple ≈ 1 at t = 1:
it predicts ε̂ ≈ 0 there), and the noise of the last steps stays in the samples as speckle.
Removing small noise needs two things the plain MLP lacks: a path along which x_t reaches the
output nearly unchanged (ε ≈ (x_t − x_0)/√(1 − ᾱ_t) is almost a per-pixel affine function of
x_t when t is small), and gains that change with t by a factor of a hundred (1/√(1 − ᾱ_t) is
100 at t = 1 and 1 at t = T). Hence:

    φ = time_embedding(t)                           (N, E)   sinusoidal features (embedding.py)
    e = act(φ W_time + b_time)                      (N, E)   learned time features
    h_0 = x_t W_in + b_in                           (N, H)   the residual stream
    for each block i = 0..B−1:
        a_i = act(h_i) W_{i.0} + b_{i.0}            (N, H)
        [γ_i, β_i] = e W_{i.film} + b_{i.film}      (N, 2H)  FiLM: a scale and a shift per unit
        u_i = a_i ⊙ (1 + γ_i) + β_i                 (N, H)   (Perez et al. 2018)
        h_{i+1} = h_i + act(u_i) W_{i.1} + b_{i.1}  (N, H)   residual: h_i passes on unchanged
    g = e W_skip + b_skip                           (N, D)   a gain per pixel and per t
    ε̂ = act(h_B) W_out + b_out + g ⊙ x_t           (N, D)   the skip from the input

- the residual blocks (pre-activation, He et al. 2016) give x_t an identity path through the
  depth; the FiLM scale (1 + γ_i) lets each block turn its gain up or down with t;
- the skip g ⊙ x_t makes the small-t part easy: for a background pixel (x_0 = −1) the answer
  is ε = (x_t + √ᾱ_t)/√(1 − ᾱ_t), a gain and a shift that depend on t only.

Initialisation: Glorot-uniform for W_time, W_in, W_{i.0}, W_out; zeros for each block's last
layer W_{i.1}, the FiLM maps and the skip (and all biases), so a fresh network is the plain
MLP act(x_t W_in + b_in) W_out and every block starts as the identity (Goyal et al. 2017's
"zero the last layer of each residual branch", which lets the stream's scale grow only as
training asks for it).

Parameters (a dict, as the VAE's): ``time.W`` (E, E), ``in.W`` (D, H), ``block.{i}.0.W``
(H, H), ``block.{i}.film.W`` (E, 2H), ``block.{i}.1.W`` (H, H), ``out.W`` (H, D),
``skip.W`` (E, D), each with its ``.b``. ``hidden`` = (H,) · B: the stream's width, once per
block.
"""
import math

import numpy

from .. import backend
from ..backend import xp
from ..layers import ACTIVATIONS, affine_backward, affine_forward
from .embedding import time_embedding_backward, time_embedding_forward
from .local import image_side, local_backward, local_forward, local_shapes


def resmlp_shapes(x_dim, hidden, time_dim, local=0):
    """(name, fan_in, fan_out, init) of every affine map, init "glorot" or "zero"; ``local``
    > 0 adds the local branch of that many channels (local.py; square images only)."""
    if not hidden or len(set(hidden)) != 1:
        raise ValueError(f"the residual denoiser needs one width repeated once per block, "
                         f"e.g. hidden=(512, 512, 512); got {tuple(hidden)}")
    H, E, D = hidden[0], time_dim, x_dim
    shapes = [("time", E, E, "glorot"), ("in", D, H, "glorot")]
    for i in range(len(hidden)):
        shapes += [(f"block.{i}.0", H, H, "glorot"), (f"block.{i}.film", E, 2 * H, "zero"),
                   (f"block.{i}.1", H, H, "zero")]
    shapes += [("out", H, D, "glorot"), ("skip", E, D, "zero")]
    if local:
        image_side(x_dim)
        shapes += local_shapes(E, local)
    return shapes


def init_resmlp(x_dim, hidden, time_dim, seed, dtype, local=0):
    """The initialisation above, drawn on the host with NumPy (both backends start alike)."""
    return init_params(resmlp_shapes(x_dim, hidden, time_dim, local), seed, dtype)


def init_params(shapes, seed, dtype):
    """Parameters from (name, fan_in, fan_out, init) rows: ``{name}.W`` (fan_in, fan_out)
    Glorot-uniform U(−a, a), a = √(6 / (fan_in + fan_out)), or zeros ("zero"), and a zero
    ``{name}.b``; drawn on the host with NumPy, in the rows' order (both backends alike)."""
    rng = numpy.random.default_rng([seed, 0xD1FF])
    params = {}
    for name, fan_in, fan_out, init in shapes:
        a = math.sqrt(6.0 / (fan_in + fan_out)) if init == "glorot" else 0.0
        params[f"{name}.W"] = backend.asarray(rng.uniform(-a, a, (fan_in, fan_out)), dtype=dtype)
        params[f"{name}.b"] = xp.zeros(fan_out, dtype=dtype)
    return params


# ---------------------------------------------------------------- the FiLM residual block
def film_block_forward(h, e, params, prefix, activation, linear=affine_forward,
                       linear_backward=affine_backward):
    """One residual block with FiLM time modulation (the module docstring's loop body):

        a = L_0(act(h)),  [γ, β] = e W_film + b_film,  u = a ⊙ (1 + γ) + β,
        out = h + L_1(act(u))

    with L_0, L_1 the maps ``{prefix}.0``, ``{prefix}.1`` of ``linear``: affine maps of
    (N, H) features here, 3 × 3 convolutions of (N, H, W, C) images in the U-Net (conv.py),
    where γ, β (N, C) scale and shift every pixel's channels alike. e: (N, E). Returns out
    (h's shape) and the cache of :func:`film_block_backward`.
    """
    act_forward, _ = ACTIVATIONS[activation]
    r, r_act = act_forward(h)
    a, c0 = linear(r, params[f"{prefix}.0.W"], params[f"{prefix}.0.b"])
    s, c_film = affine_forward(e, params[f"{prefix}.film.W"], params[f"{prefix}.film.b"])
    width = a.shape[-1]
    per_pixel = (s.shape[0],) + (1,) * (a.ndim - 2) + (width,)       # (N, 1, 1, C) on images
    scale = (1 + s[:, :width]).reshape(per_pixel)                     # 1 + γ
    u = a * scale + s[:, width:].reshape(per_pixel)
    v, v_act = act_forward(u)
    f, c1 = linear(v, params[f"{prefix}.1.W"], params[f"{prefix}.1.b"])
    return h + f, (prefix, activation, linear_backward, r_act, c0, c_film, a, scale, v_act, c1)


def film_block_backward(dout, cache, grads):
    """Backward of :func:`film_block_forward`. Besides the maps' and activations' rules:

    - FiLM, u = a ⊙ (1 + γ) + β:  ∂L/∂a = du ⊙ (1 + γ),  ∂L/∂γ = Σ_pixels du ⊙ a,
      ∂L/∂β = Σ_pixels du (γ, β were broadcast over the pixels: the adjoint sums them);
    - residual, out = h + f(h):  ∂L/∂h = dout + (∂f/∂h)ᵀ dout.

    dout: h's shape. Adds the block's parameter gradients into ``grads``; returns
    (∂L/∂h, ∂L/∂e (N, E)).
    """
    prefix, activation, linear_backward, r_act, c0, c_film, a, scale, v_act, c1 = cache
    _, act_backward = ACTIVATIONS[activation]
    dv, grads[f"{prefix}.1.W"], grads[f"{prefix}.1.b"] = linear_backward(dout, c1)
    du = act_backward(dv, v_act)
    dgamma, dbeta = du * a, du
    if a.ndim > 2:
        pixels = tuple(range(1, a.ndim - 1))
        dgamma, dbeta = dgamma.sum(axis=pixels), dbeta.sum(axis=pixels)
    de, grads[f"{prefix}.film.W"], grads[f"{prefix}.film.b"] = affine_backward(
        xp.concatenate([dgamma, dbeta], axis=1), c_film)                 # [∂L/∂γ, ∂L/∂β]
    dr, grads[f"{prefix}.0.W"], grads[f"{prefix}.0.b"] = linear_backward(du * scale, c0)
    return dout + act_backward(dr, r_act), de


def resmlp_forward(x, t, params, activation="relu"):
    """ε̂ = ε_θ(x_t, t). x: (N, D), t: (N,) (integers or reals) -> eps_hat: (N, D); cache."""
    act_forward, _ = ACTIVATIONS[activation]
    n_blocks = sum(1 for name in params if name.endswith(".film.W"))
    phi, emb_cache = time_embedding_forward(xp.asarray(t, dtype=x.dtype),
                                            params["time.W"].shape[0])
    a, time_cache = affine_forward(phi, params["time.W"], params["time.b"])
    e, e_act = act_forward(a)                                            # (N, E)
    h, in_cache = affine_forward(x, params["in.W"], params["in.b"])      # (N, H)
    blocks = []
    for i in range(n_blocks):
        h, block_cache = film_block_forward(h, e, params, f"block.{i}", activation)
        blocks.append(block_cache)
    r, r_act = act_forward(h)
    out, out_cache = affine_forward(r, params["out.W"], params["out.b"])
    g, skip_cache = affine_forward(e, params["skip.W"], params["skip.b"])
    out += g * x
    local_cache = None
    if "local.patch.W" in params:                    # refines the global estimate ε̂_g = out
        o, local_cache = local_forward(x, out, e, params, activation)
        out = out + o
    return out, (activation, emb_cache, time_cache, e_act, in_cache, blocks, r_act, out_cache,
                 skip_cache, x, g, local_cache)


def resmlp_backward(deps, cache, grads):
    """Backward of :func:`resmlp_forward`, the forward read bottom to top.

    deps: (N, D) = ∂L/∂ε̂. The rules, besides the affine maps' and activations':

    - skip, ε̂ = … + g ⊙ x:      ∂L/∂g = deps ⊙ x,   ∂L/∂x gets deps ⊙ g;
    - each block (FiLM, residual): :func:`film_block_backward`; the identity passes the
      gradient down unchanged, the branch adds its own;
    - e feeds every FiLM map and the skip: ∂L/∂e is the sum of their contributions, then flows
      through the time layer and the embedding.

    Adds ∂L/∂W, ∂L/∂b of every affine map into ``grads``; returns (∂L/∂x_t (N, D),
    ∂L/∂t (N,)).
    """
    (activation, emb_cache, time_cache, e_act, in_cache, blocks, r_act, out_cache,
     skip_cache, x, g, local_cache) = cache
    _, act_backward = ACTIVATIONS[activation]
    dx_local, de_local = 0, 0
    if local_cache is not None:      # ε̂ = ε̂_g + o(x_t, ε̂_g, e): ε̂_g gets deps and o's part
        dx_local, dglobal, de_local = local_backward(deps, local_cache, grads)
        deps = deps + dglobal
    dx = deps * g + dx_local
    de, grads["skip.W"], grads["skip.b"] = affine_backward(deps * x, skip_cache)
    de = de + de_local
    dr, grads["out.W"], grads["out.b"] = affine_backward(deps, out_cache)
    dh = act_backward(dr, r_act)
    for block_cache in reversed(blocks):
        dh, de_i = film_block_backward(dh, block_cache, grads)
        de = de + de_i
    dx_in, grads["in.W"], grads["in.b"] = affine_backward(dh, in_cache)
    da = act_backward(de, e_act)
    dphi, grads["time.W"], grads["time.b"] = affine_backward(da, time_cache)
    return dx + dx_in, time_embedding_backward(dphi, emb_cache)
