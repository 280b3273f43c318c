"""The simple loss of Ho et al. (2020): how well ε_θ recovers the noise that made x_t.

Training draws, for each example x_0, a step t ~ U{1..T} and a noise ε ~ N(0, I), forms
x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε and regresses ε on (x_t, t):

    L_simple(θ) = E_{x_0, t, ε} ‖ε − ε_θ(x_t, t)‖²,

estimated on a minibatch of N examples in D dimensions by (1/(N D)) Σ_n ‖ε_n − ε̂_n‖² (the mean
over the D coordinates too, so that the learning rate does not depend on the image size).
It is the variational bound's sum over t with each term's weight β_t² / (2 σ_t² α_t (1 − ᾱ_t))
replaced by 1 (docs/diffusion.md derives the weights): the bound's terms for small t, which
weigh most and matter least to the eye, are down-weighted.
"""


def simple_loss(eps_hat, eps):
    """L = (1/(N D)) Σ ‖ε − ε̂‖² and its gradient ∂L/∂ε̂ = 2 (ε̂ − ε) / (N D).

    eps_hat, eps: (N, D) -> loss (0-d array), deps_hat (N, D).
    """
    diff = eps_hat - eps
    return (diff * diff).mean(), (2.0 / diff.size) * diff
