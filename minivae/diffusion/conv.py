"""Convolution, average pooling and nearest-neighbour upsampling on images, with their
backward passes: the layers of the U-Net denoiser (unet.py) and of resmlp's local branch
(local.py).

Images are NHWC arrays (N, H, W, C): N images of H × W pixels with C channels each, so that a
pixel's channels are one contiguous row and a convolution is one matrix product.

**A k × k "same" convolution is an affine map of each pixel's neighbourhood.** Pad the input
with r = k // 2 zeros on each side and stack, for each of the k² offsets (di, dj), the shifted
H × W slice: P[n, i, j, m, c] = x_pad[n, i + di, j + dj, c] with m = di k + dj. Reshaped to
(N·H·W, k²·C), P holds one row per output pixel, the "im2col" matrix (CS231n), and

    out = P W + b,     W: (k²·C, F),  b: (F,)   -> out: (N, H, W, F)

is the affine layer of layers.py, so its backward is affine_backward's: ∂L/∂W = Pᵀ dout,
∂L/∂b = Σ dout, ∂L/∂P = dout Wᵀ. The gather P = im2col(x) is linear, and each entry of x is
copied to the k² places m where it is some pixel's neighbour; the adjoint of a copy is a sum,
so ∂L/∂x is ∂L/∂P's k² slices added back at their offsets into a padded buffer, whose border
(the zeros) is then dropped. Only slicing, on either backend: no index arrays, no host copies.

Row m·C + c of W multiplies channel c of the neighbour at offset m: a weight matrix in the
shape of an affine map's (fan_in = k²·C), initialised like one.
"""
from ..backend import xp
from ..layers import affine_backward, affine_forward


# ---------------------------------------------------------------- im2col and its adjoint
# Both run in two passes of k slices, the k horizontal offsets dj (giving rows of k·C values
# per pixel), then the k vertical ones di: the same P as k² slices of C values, in copies of
# longer contiguous runs (k·C values in the second pass).

def im2col_forward(x, k=3):
    """Every pixel's k × k zero-padded neighbourhood: x (N, H, W, C) -> P (N·H·W, k²·C), k odd,
    column (di k + dj) C + c = x_pad[n, i + di, j + dj, c]; cache = the input's shape and k.
    k = 1: the pixels themselves (a 1 × 1 convolution is the affine map of each pixel)."""
    n, h, w, c = x.shape
    if k == 1:
        return x.reshape(n * h * w, c), (x.shape, k)
    r = k // 2
    padded = xp.zeros((n, h + 2 * r, w + 2 * r, c), dtype=x.dtype)
    padded[:, r:r + h, r:r + w, :] = x
    rows = xp.concatenate([padded[:, :, dj:dj + w] for dj in range(k)], axis=3)  # [.., dj C + c]
    p = xp.concatenate([rows[:, di:di + h] for di in range(k)], axis=3)   # [.., di kC + dj C + c]
    return p.reshape(n * h * w, k * k * c), (x.shape, k)


def im2col_backward(dout, cache):
    """∂L/∂x from ∂L/∂P (N·H·W, k²·C): x[n, i, j, c] was copied to P at each offset (di, dj)
    whose neighbourhood contains it, so

        ∂L/∂x_pad[n, i + di, j + dj, c] = Σ_{di,dj} ∂L/∂P[n, i, j, (di k + dj) C + c],

    and ∂L/∂x is the interior of x_pad's gradient (the padding zeros are constants); summed
    as the forward copied, the di slices into rows, then the rows' dj slices."""
    (n, h, w, c), k = cache
    if k == 1:
        return dout.reshape(n, h, w, c)
    r = k // 2
    dp = dout.reshape(n, h, w, k * k * c)
    drows = xp.zeros((n, h + 2 * r, w, k * c), dtype=dout.dtype)
    for di in range(k):
        drows[:, di:di + h] += dp[..., di * k * c:(di + 1) * k * c]
    dpad = xp.zeros((n, h + 2 * r, w + 2 * r, c), dtype=dout.dtype)
    for dj in range(k):
        dpad[:, :, dj:dj + w] += drows[..., dj * c:(dj + 1) * c]
    return dpad[:, r:r + h, r:r + w, :]


# ---------------------------------------------------------------- convolution
def conv_forward(x, W, b):
    """k × k "same" convolution, out = im2col(x) W + b, k from W's shape (k²·C rows).

    x: (N, H, W, C), W: (k²·C, F), b: (F,) -> out: (N, H, W, F); cache.
    """
    n, h, w, c = x.shape
    k = round((W.shape[0] // c) ** 0.5)
    if k * k * c != W.shape[0] or k % 2 == 0:
        raise ValueError(f"conv: a weight matrix of {W.shape[0]} rows is not k² x {c} input "
                         f"channels with k odd")
    p, col_cache = im2col_forward(x, k)
    out, affine_cache = affine_forward(p, W, b)
    return out.reshape(n, h, w, -1), (col_cache, affine_cache)


def conv_backward(dout, cache, need_dx=True):
    """Backward of :func:`conv_forward`, the affine map's then im2col's:

        ∂L/∂W = Pᵀ dout,  ∂L/∂b = Σ_{n,i,j} dout[n, i, j],  ∂L/∂x = im2col_backward(dout Wᵀ).

    dout: (N, H, W, F) -> dx: (N, H, W, C) (None with ``need_dx=False``), dW, db.
    """
    col_cache, affine_cache = cache
    f = dout.shape[-1]
    dp, dW, db = affine_backward(dout.reshape(-1, f), affine_cache, need_dx=need_dx)
    return (im2col_backward(dp, col_cache) if need_dx else None), dW, db


# ---------------------------------------------------------------- down- and up-sampling
def avgpool_forward(x):
    """2 × 2 average pooling: out[n, i, j] = ¼ Σ_{a,b ∈ {0,1}} x[n, 2i + a, 2j + b].

    x: (N, H, W, C), H and W even -> out: (N, H/2, W/2, C); cache = x's shape.
    """
    n, h, w, c = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"avgpool: the image is {h} x {w}; 2 x 2 pooling needs even sides")
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4)), x.shape


def avgpool_backward(dout, shape):
    """Each input pixel enters one output with weight ¼: ∂L/∂x[n, 2i + a, 2j + b] =
    ¼ ∂L/∂out[n, i, j] (the nearest-neighbour upsampling of dout, times ¼)."""
    return upsample_forward(dout * 0.25)[0]


def upsample_forward(x):
    """Nearest-neighbour 2× upsampling: out[n, 2i + a, 2j + b] = x[n, i, j] (a, b ∈ {0, 1}).

    x: (N, H, W, C) -> out: (N, 2H, 2W, C); cache = None.
    """
    n, h, w, c = x.shape
    out = xp.broadcast_to(x[:, :, None, :, None, :], (n, h, 2, w, 2, c))
    return out.reshape(n, 2 * h, 2 * w, c), None


def upsample_backward(dout, cache=None):
    """Each input pixel is copied to a 2 × 2 block, so its gradient is the block's sum:
    ∂L/∂x[n, i, j] = Σ_{a,b} ∂L/∂out[n, 2i + a, 2j + b] (dout: (N, 2H, 2W, C))."""
    n, h2, w2, c = dout.shape
    return dout.reshape(n, h2 // 2, 2, w2 // 2, 2, c).sum(axis=(2, 4))
