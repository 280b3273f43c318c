"""The lecture's side models, small and exact, that the deep models are measured against.

- :mod:`minivae.lecture.montecarlo`  simple Monte Carlo and importance sampling on their own;
- :mod:`minivae.lecture.linear`      PPCA and factor analysis in closed form, and the bridge to
                                     deep models (a linear-Gaussian IWAE trained on L_K);
- :mod:`minivae.lecture.toy`         the 1-D toy latent variable model, its exact log p(x) by
                                     quadrature, and an encoder trained as its proposal.

Plain NumPy/SciPy on the host: demonstrations and ground truths, not part of the GPU path.
"""
