"""An amortised proposal for the 1-D toy model: a minivae encoder trained with the decoder fixed.

q_γ(z|x) = N(z; μ_γ(x), exp(v_γ(x))), an MLP built from :mod:`minivae.layers` (x in R², z in R),
trained by maximising the IWAE bound L_K(x) = log (1/K) Σ_k p(x|z_k) p(z_k) / q_γ(z_k|x) of the
*fixed* toy decoder of :mod:`minivae.toy` over fresh draws x ~ p(x). Only γ moves: this is the
inference half of a VAE, and since log p(x) does not depend on γ, maximising L_K is the same as
bringing q closer to the true posterior p(z|x) (for K = 1, minimising KL(q ‖ p(z|x))).

The reparametrised gradient needs ∂ log p(x, z)/∂z of the decoder, written by hand in
:func:`minivae.toy.grad_z_log_joint`; with z_k = μ + exp(v/2) ε_k and normalized weights w̃_k,

    ∂L_K/∂μ = Σ_k w̃_k g_k,     ∂L_K/∂v = Σ_k w̃_k (g_k ε_k exp(v/2) / 2 + 1/2),

g_k = ∂ log p(x, z_k)/∂z (the 1/2 is ∂(-log q)/∂v at fixed ε). The encoder's own backward is
minivae's (:func:`minivae.layers.mlp_backward`). The decoder is NumPy on the host, so the
encoder's arrays cross to the host once per step: fine for a toy, and it keeps one code path.
"""
import math

import numpy as np
from scipy.special import logsumexp, softmax

from . import backend, toy
from .layers import affine_backward, affine_forward, mlp_backward, mlp_forward
from .optim import Adam


class ToyEncoder:
    """q_γ(z|x) for the toy model: x (B, 2) -> mean, logvar (B,), an MLP with tanh layers.

    ``params`` uses minivae's names (``encoder.{i}.W/b``, ``encoder.mean.W/b``,
    ``encoder.logvar.W/b``), Glorot-uniform weights and zero biases, float64.
    """

    def __init__(self, hidden=(64, 64), seed=0):
        self.hidden = tuple(int(h) for h in hidden)
        rng = np.random.default_rng(seed)
        widths = (2,) + self.hidden
        shapes = [(f"encoder.{i}", widths[i], widths[i + 1]) for i in range(len(self.hidden))]
        shapes += [("encoder.mean", widths[-1], 1), ("encoder.logvar", widths[-1], 1)]
        self.params = {}
        for name, fan_in, fan_out in shapes:
            a = math.sqrt(6.0 / (fan_in + fan_out))
            self.params[f"{name}.W"] = backend.asarray(rng.uniform(-a, a, (fan_in, fan_out)))
            self.params[f"{name}.b"] = backend.asarray(np.zeros(fan_out))

    def _forward(self, x):
        p = self.params
        h, caches = mlp_forward(backend.asarray(x), p, "encoder", len(self.hidden), "tanh")
        mean, mc = affine_forward(h, p["encoder.mean.W"], p["encoder.mean.b"])
        logvar, vc = affine_forward(h, p["encoder.logvar.W"], p["encoder.logvar.b"])
        return mean, logvar, (caches, mc, vc)

    def __call__(self, x):
        """The proposal's mean and standard deviation for each row of x (n, 2): two (n,) arrays
        on the host (the ``mean``/``std`` of :func:`minivae.toy.is_log_marginal`)."""
        mean, logvar, _ = self._forward(np.atleast_2d(np.asarray(x, dtype=float)))
        mean, logvar = backend.to_numpy(mean)[:, 0], backend.to_numpy(logvar)[:, 0]
        return mean, np.exp(0.5 * logvar)

    def bound_and_grads(self, x, k, eps):
        """The mean over the batch of L_K(x) and its gradient with respect to ``params``.

        x (B, 2) and eps (K, B) on the host.
        """
        mean, logvar, (caches, mc, vc) = self._forward(x)
        m, v = backend.to_numpy(mean)[:, 0], backend.to_numpy(logvar)[:, 0]
        std = np.exp(0.5 * v)
        z = m + std * eps                                              # (K, B)
        log_q = -0.5 * eps ** 2 - 0.5 * v - 0.5 * toy.LOG_2PI
        log_w = toy.log_joint(x[None], z) - log_q
        bound = logsumexp(log_w, axis=0) - np.log(k)                   # (B,)
        wn = softmax(log_w, axis=0)                                    # w̃_k
        g = toy.grad_z_log_joint(x[None], z)
        g = np.where(wn > 0, g, 0.0)                  # 0 * inf at z = kπ, weight 0 anyway
        B = x.shape[0]
        dmean = np.sum(wn * g, axis=0) / B
        dlogvar = np.sum(wn * (0.5 * g * eps * std + 0.5), axis=0) / B
        grads = {}
        dh1, gm = affine_backward(backend.asarray(dmean[:, None]), mc)
        dh2, gv = affine_backward(backend.asarray(dlogvar[:, None]), vc)
        grads["encoder.mean.W"], grads["encoder.mean.b"] = gm["W"], gm["b"]
        grads["encoder.logvar.W"], grads["encoder.logvar.b"] = gv["W"], gv["b"]
        mlp_backward(dh1 + dh2, caches, "encoder", "tanh", grads, need_dx=False)
        return float(np.mean(bound)), grads


def train_encoder(k=8, steps=3000, batch=256, lr=3e-3, hidden=(64, 64), seed=0, log_every=0,
                  log=print):
    """Fit a :class:`ToyEncoder` by Adam ascent on L_K over fresh batches x ~ p(x) (the toy
    model's own marginal: unlimited data). Returns (encoder, list of the batch bounds)."""
    enc = ToyEncoder(hidden, seed)
    opt = Adam(enc.params, lr=lr)
    rng = np.random.default_rng(seed + 1)
    history = []
    for step in range(1, steps + 1):
        _, x = toy.sample(batch, seed=rng)
        value, grads = enc.bound_and_grads(x, k, rng.standard_normal((k, batch)))
        # A draw z_k right next to kπ can give an enormous ∂ log p/∂z; one such step should
        # not throw the encoder away, so skip non-finite gradients (they are rare).
        if all(bool(np.all(np.isfinite(backend.to_numpy(g)))) for g in grads.values()):
            opt.step(grads)
        history.append(value)
        if log_every and step % log_every == 0:
            log(f"step {step}: L_{k} = {np.mean(history[-log_every:]):.4f}")
    return enc, history
