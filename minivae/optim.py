"""Optimizers that *maximise* an objective, updating a params dict in place.

The bounds are maximised, so the update climbs the gradient: θ ← θ + lr · step. Both
optimizers keep their state in plain arrays, returned by ``state_dict()`` and restored by
``load_state_dict()`` so that a checkpointed run resumes exactly.
"""
from . import backend, validate
from .backend import xp


class SGD:
    """Gradient ascent, optionally with momentum: v ← μ v + g;  θ ← θ + lr v."""

    def __init__(self, params, lr=1e-3, momentum=0.0):
        self.params = params
        self.lr = validate.positive_real("lr", lr)
        self.momentum = validate.real("momentum", momentum, at_least=0, below=1)
        self.t = 0
        self.velocity = {n: xp.zeros_like(p) for n, p in params.items()} if momentum else {}

    def step(self, grads):
        self.t += 1
        for name, p in self.params.items():
            g = grads[name]
            if self.momentum:
                v = self.velocity[name]
                v *= self.momentum
                v += g
                g = v
            p += self.lr * g

    def state_dict(self):
        return {"t": self.t, "lr": self.lr, "momentum": self.momentum,
                "velocity": {n: backend.to_numpy(v) for n, v in self.velocity.items()}}

    def load_state_dict(self, state):
        self.t = validate.nonnegative_int("t", state["t"])
        self.lr = validate.positive_real("lr", state["lr"])
        self.momentum = validate.real("momentum", state["momentum"], at_least=0, below=1)
        self.velocity = {n: backend.asarray(v, dtype=self.params[n].dtype)
                         for n, v in state["velocity"].items()}


def adam_step(param, grad, m, s, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-4, out=None):
    """One step of Adam *ascending* the objective (Kingma & Ba 2015, Algorithm 1), t = 1 first:

        m' = β1 m + (1 - β1) g,   s' = β2 s + (1 - β2) g²,
        θ' = θ + lr · m̂ / (√ŝ + ε),   m̂ = m' / (1 - β1^t),   ŝ = s' / (1 - β2^t).

    Returns new arrays (param_new, m_new, s_new); the arguments are left unchanged. Both bias
    corrections are folded into the step size and ε (the note under the paper's Algorithm 1):
    θ' = θ + lr_t m' / (√s' + ε_t), lr_t = lr √(1 - β2^t) / (1 - β1^t), ε_t = ε √(1 - β2^t).
    ``out=(param, m, s)`` (what :meth:`Adam.step` passes) writes the three results into those
    arrays instead, the same numbers bit for bit. (Lab 7; Adam.step.)
    """
    c2 = (1 - beta2 ** t) ** 0.5
    if out is None:
        out = (param.copy(), m.copy(), s.copy())
    param_new, m_new, s_new = out
    # Each update in place, in the order of the formulas (so the rounding is theirs): the
    # optimizer's cost is passes over memory, and a new array per operation doubled it.
    xp.multiply(m, beta1, out=m_new)
    tmp = (1 - beta1) * grad
    m_new += tmp
    xp.multiply(s, beta2, out=s_new)
    xp.multiply(grad, grad, out=tmp)
    tmp *= 1 - beta2
    s_new += tmp
    xp.multiply(m_new, lr * c2 / (1 - beta1 ** t), out=tmp)
    denom = xp.sqrt(s_new)
    denom += eps * c2
    tmp /= denom
    xp.add(param, tmp, out=param_new)
    return param_new, m_new, s_new


class Adam:
    """Adam (Kingma & Ba 2015), ascending: with g the gradient of the objective,

        m ← β1 m + (1 - β1) g,   s ← β2 s + (1 - β2) g²,
        θ ← θ + lr · m̂ / (√ŝ + ε),  m̂ = m / (1 - β1^t),  ŝ = s / (1 - β2^t).

    Burda et al. used β1 = 0.9, β2 = 0.999, ε = 1e-4 (the default here); ε = 1e-8 is
    Kingma & Ba's.
    """

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-4):
        self.params = params
        self._set_hyperparameters(lr, beta1, beta2, eps)
        self.t = 0
        self.m = {n: xp.zeros_like(p) for n, p in params.items()}
        self.s = {n: xp.zeros_like(p) for n, p in params.items()}

    def _set_hyperparameters(self, lr, beta1, beta2, eps):
        self.lr = validate.positive_real("lr", lr)
        self.beta1 = validate.real("beta1", beta1, at_least=0, below=1)
        self.beta2 = validate.real("beta2", beta2, at_least=0, below=1)
        self.eps = validate.positive_real("eps", eps)

    def step(self, grads):
        self.t += 1
        for name, p in self.params.items():
            m, s = self.m[name], self.s[name]
            new, self.m[name], self.s[name] = adam_step(
                p, grads[name], m, s, self.t, self.lr, self.beta1, self.beta2, self.eps,
                out=(p, m, s))
            if new is not p:                  # an adam_step without out= (a lab's, run --mine)
                p[...] = new

    def state_dict(self):
        return {"t": self.t, "lr": self.lr, "beta1": self.beta1, "beta2": self.beta2,
                "eps": self.eps,
                "m": {n: backend.to_numpy(v) for n, v in self.m.items()},
                "s": {n: backend.to_numpy(v) for n, v in self.s.items()}}

    def load_state_dict(self, state):
        self.t = validate.nonnegative_int("t", state["t"])
        self._set_hyperparameters(*(state[k] for k in ("lr", "beta1", "beta2", "eps")))
        for key in ("m", "s"):
            setattr(self, key, {n: backend.asarray(v, dtype=self.params[n].dtype)
                                for n, v in state[key].items()})
