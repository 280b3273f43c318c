"""Encoder gradient estimators of the IWAE bound: IWAE, STL (Roeder et al. 2017) and DReG
(Tucker et al. 2019).

- Exactness: the decoder's gradient is the bound's for every estimator (finite differences of
  the bound); the encoder's gradient of STL and DReG is the gradient of its surrogate
  Σ_k c_k [log p(x, z_k(γ)) - log q_γ0(z_k(γ)|x)] / B with c_k = w̃_k (STL) or w̃_k² (DReG) held
  at their values and q's parameters frozen at γ0 (finite differences of that surrogate).
- Statistics: DReG is unbiased for the IWAE encoder gradient (mean over many ε); STL and DReG
  have zero variance when q is the exact posterior of the linear-Gaussian model, IWAE does not.
"""
import numpy as np
import pytest

import minivae
from minivae import backend
from minivae.gradcheck import check_function, check_model, format_report, max_error
from minivae.bound import ESTIMATORS
from minivae.likelihoods import LOG_2PI
from minivae.ops import logsumexp_weights

from helpers import data_for, randomize_params
from test_linear_gaussian import exact_model


def with_estimator(model, estimator):
    """A copy of ``model`` (same parameters) using ``estimator``."""
    other = type(model)(**dict(model.get_config(), estimator=estimator))
    for n, p in model.params.items():
        other.params[n][...] = p
    return other


def host(grads):
    return {n: backend.to_numpy(g) for n, g in grads.items()}


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "categorical"])
@pytest.mark.parametrize("masked", [False, True])
def test_decoder_gradient_is_the_bounds_for_every_estimator(estimator, likelihood, masked):
    extra = {"n_categories": 3} if likelihood == "categorical" else {}
    model = minivae.IWAE(6, 3, hidden=(5,), likelihood=likelihood, dtype="float64", seed=1,
                         estimator=estimator, **extra)
    randomize_params(model, seed=2)
    rng = np.random.default_rng(3)
    x = (rng.integers(0, 3, (4, 6)).astype(float) if likelihood == "categorical"
         else data_for(likelihood, (4, 6), rng))
    mask = rng.random((4, 6)) < 0.6 if masked else None
    eps = rng.standard_normal((5, 4, 3))
    names = [n for n in model.params if n.startswith("decoder")]
    report = check_model(model, x, 5, eps=eps, mask=mask, names=names)
    assert max_error(report) < 1e-6, "\n" + format_report(report)
    if estimator == "iwae":                 # the IWAE estimator is the bound's full gradient
        report = check_model(model, x, 5, eps=eps, mask=mask)
        assert max_error(report) < 1e-6, "\n" + format_report(report)


def surrogate(model, x, k, eps, mask, power):
    """f(γ) = Σ_kb c_kb [log p(x_b, z_kb(γ)) - log q_γ0(z_kb(γ)|x_b)] / B, c = w̃0^power,
    with w̃0 and q's (μ0, v0) computed once at the current parameters; z(γ) = μ_γ + σ_γ ε."""
    lik = model.likelihood
    log_w, cache = model.log_weights(x, k, eps=eps, mask=mask)
    _, w0 = logsumexp_weights(log_w)
    c = w0 ** power / x.shape[0]
    mean0, logvar0 = cache["mean"], cache["logvar"]
    xd, m = cache["x"], cache["mask"]

    def f():
        mean, logvar = model.encode(x, mask=mask)
        z = mean + backend.xp.exp(0.5 * logvar) * cache["eps"]
        log_px_j = lik.log_prob(xd, **model.decode(z))
        log_px = (log_px_j if m is None else log_px_j * m).sum(-1)
        log_q0 = (-0.5 * (z - mean0) ** 2 * backend.xp.exp(-logvar0)
                  - 0.5 * logvar0 - 0.5 * LOG_2PI).sum(-1)
        return float((c * (log_px + model.log_prior(z) - log_q0)).sum())
    return f


@pytest.mark.parametrize("estimator,power", [("stl", 1), ("dreg", 2)])
@pytest.mark.parametrize("hidden", [(), (5, 4)])
@pytest.mark.parametrize("masked", [False, True])
def test_encoder_gradient_is_the_surrogates(estimator, power, hidden, masked):
    model = minivae.IWAE(6, 3, hidden=hidden, likelihood="gaussian", dtype="float64", seed=4,
                         estimator=estimator)
    randomize_params(model, seed=5, scale=0.4)
    rng = np.random.default_rng(6)
    x, k = rng.standard_normal((4, 6)), 5
    mask = rng.random((4, 6)) < 0.6 if masked else None
    eps = rng.standard_normal((k, 4, 3))
    _, grads = model.bound_and_grads(x, k, eps=eps, mask=mask)
    names = [n for n in model.params if n.startswith("encoder")]
    report = check_function(surrogate(model, x, k, eps, mask, power),
                            {n: model.params[n] for n in names}, grads)
    assert max_error(report) < 1e-6, "\n" + format_report(report)
    # And it is not the IWAE gradient (the check can tell them apart).
    _, iwae = with_estimator(model, "iwae").bound_and_grads(x, k, eps=eps, mask=mask)
    assert not np.allclose(backend.to_numpy(iwae["encoder.logvar.b"]),
                           backend.to_numpy(grads["encoder.logvar.b"]), rtol=1e-3)


def test_k1_dreg_is_stl():
    model = minivae.IWAE(6, 2, hidden=(4,), likelihood="gaussian", dtype="float64",
                         estimator="stl")
    randomize_params(model, seed=7)
    rng = np.random.default_rng(8)
    x, eps = rng.standard_normal((3, 6)), rng.standard_normal((1, 3, 2))
    _, a = model.bound_and_grads(x, 1, eps=eps)
    _, b = with_estimator(model, "dreg").bound_and_grads(x, 1, eps=eps)
    for n in a:
        assert np.allclose(backend.to_numpy(a[n]), backend.to_numpy(b[n]), rtol=0, atol=1e-13)


def mean_and_stderr(model, x, k, rng, groups, reps):
    """Mean encoder gradient over groups × reps draws of ε, and its standard error.

    The bound's gradient is a batch mean, so one call on ``reps`` copies of x averages reps
    independent draws; the group means give the standard error."""
    xs = np.tile(x, (reps, 1))
    per_group = []
    for _ in range(groups):
        eps = rng.standard_normal((k, len(xs), model.z_dim))
        _, g = model.bound_and_grads(xs, k, eps=eps)
        per_group.append(np.concatenate([backend.to_numpy(g[n]).ravel()
                                         for n in model.params if n.startswith("encoder")]))
    per_group = np.array(per_group)
    return per_group.mean(0), per_group.std(0, ddof=1) / np.sqrt(groups), per_group


def test_dreg_is_unbiased_for_the_iwae_encoder_gradient():
    """Same ε for both (common random numbers); tolerance 5 standard errors of the mean
    difference per encoder parameter, over 40 groups × 2000 draws (80,000 draws of ε)."""
    model = minivae.IWAE(5, 2, hidden=(4,), likelihood="gaussian", dtype="float64", seed=9)
    randomize_params(model, seed=10, scale=0.4)
    dreg = with_estimator(model, "dreg")
    x = np.random.default_rng(11).standard_normal((1, 5))
    _, _, a = mean_and_stderr(model, x, 5, np.random.default_rng(12), 40, 2000)
    _, _, b = mean_and_stderr(dreg, x, 5, np.random.default_rng(12), 40, 2000)
    def z_scores(other):
        diff = other - a
        return np.abs(diff.mean(0)) / (diff.std(0, ddof=1) / np.sqrt(len(diff)))
    assert np.all(z_scores(b) < 5), z_scores(b)
    # The same test has the power to see a bias: STL's, at K = 5, is hundreds of errors off.
    _, _, c = mean_and_stderr(with_estimator(model, "stl"), x, 5, np.random.default_rng(12),
                              40, 2000)
    assert z_scores(c).max() > 50
    diff = b - a
    # The estimators are different random variables (the test compares means, not draws),
    # and DReG's spread is smaller for this K.
    assert np.abs(diff).max() > 1e-3
    assert np.median(b.std(0) / a.std(0)) < 1


@pytest.mark.parametrize("k", [1, 5])
def test_exact_posterior_stl_and_dreg_have_zero_variance_iwae_does_not(k):
    """q = p(z|x) in the linear-Gaussian model: log w_k = log p(x) for every z, so the
    gradient of L_K with respect to the encoder is 0 (L_K is at its maximum, log p(x)).
    STL and DReG return exactly that for every ε (to 1e-10); IWAE's estimate is 0 only on
    average (its score term is not 0 draw by draw)."""
    model, marginal, rng = exact_model()
    x = marginal.rvs(3, random_state=1)
    enc = [n for n in model.params if n.startswith("encoder")]
    iwae_draws = []
    for est in ESTIMATORS:
        m = with_estimator(model, est)
        for trial in range(5):
            eps = rng.standard_normal((k, 3, model.z_dim))
            _, g = m.bound_and_grads(x, k, eps=eps)
            g = host(g)
            flat = np.concatenate([g[n].ravel() for n in enc])
            if est == "iwae":
                iwae_draws.append(flat)
            else:
                assert np.abs(flat).max() < 1e-10, (est, np.abs(flat).max())
    assert np.abs(np.array(iwae_draws)).max() > 1e-2
    # ... and IWAE's mean is 0 within 5 standard errors (20 groups × 500 draws).
    mean, se, _ = mean_and_stderr(model, x, k, rng, 20, 500)
    assert np.all(np.abs(mean) < 5 * se), np.abs(mean) / se


def test_estimator_is_saved_and_validated(tmp_path):
    model = minivae.IWAE(6, 2, hidden=(4,), estimator="dreg")
    assert model.get_config()["estimator"] == "dreg"
    assert "estimator='dreg'" in repr(model)
    with pytest.raises(ValueError, match="estimator"):
        minivae.IWAE(6, 2, estimator="rws")
    with pytest.raises(ValueError, match="analytic"):
        minivae.VAE(6, 2, estimator="stl")
    assert minivae.VAE(6, 2, analytic_kl=False, estimator="stl").estimator == "stl"
    from minivae import checkpoint
    checkpoint.save(tmp_path / "m.npz", model)
    assert checkpoint.load(tmp_path / "m.npz").model().estimator == "dreg"


def test_dreg_encoder_grads_the_lab_function():
    """bound.dreg_encoder_grads (lab 6's exercise) against finite differences of its surrogate
    Σ_kb w̃0_kb² [log p(x|z_kb) + log p(z_kb) - log q0(z_kb)] with a toy log p(x|z) =
    -½ ‖z - a‖² (so ∂ log p(x|z)/∂z = a - z), and the per-call estimator of the model."""
    from minivae import bound
    rng = np.random.default_rng(20)
    K, B, d = 6, 3, 2
    a = rng.standard_normal((B, d))
    mean, logvar = rng.standard_normal((B, d)), 0.3 * rng.standard_normal((B, d))
    eps = rng.standard_normal((K, B, d))
    xp = backend.xp
    a, mean, logvar, eps = (backend.asarray(v) for v in (a, mean, logvar, eps))

    def log_w_of(mean, logvar, mean0, logvar0):
        z = bound.reparametrize(mean, logvar, eps)
        log_q0 = (-0.5 * (z - mean0) ** 2 * xp.exp(-logvar0) - 0.5 * logvar0
                  - 0.5 * LOG_2PI).sum(-1)
        return -0.5 * ((z - a) ** 2).sum(-1) + bound.log_prior(z) - log_q0, z

    log_w, z = log_w_of(mean, logvar, mean, logvar)
    dmean, dlogvar = bound.dreg_encoder_grads(log_w, a - z, eps, mean, logvar)
    c = bound.iwae_bound_grad(log_w) ** 2
    m0, v0 = mean.copy(), logvar.copy()

    def f():
        return float((c * log_w_of(mean, logvar, m0, v0)[0]).sum())
    report = check_function(f, {"mean": mean, "logvar": logvar},
                            {"mean": dmean, "logvar": dlogvar})
    assert max_error(report) < 1e-6, "\n" + format_report(report)


def test_estimator_per_call_equals_the_models():
    model = minivae.IWAE(6, 2, hidden=(4,), likelihood="gaussian", dtype="float64")
    randomize_params(model, seed=21)
    rng = np.random.default_rng(22)
    x, eps = rng.standard_normal((3, 6)), rng.standard_normal((4, 3, 2))
    for est in ESTIMATORS:
        _, a = model.bound_and_grads(x, 4, eps=eps, estimator=est)
        _, b = with_estimator(model, est).bound_and_grads(x, 4, eps=eps)
        assert all(np.array_equal(backend.to_numpy(a[n]), backend.to_numpy(b[n])) for n in a)
    with pytest.raises(ValueError, match="estimator"):
        model.bound_and_grads(x, 4, estimator="rws")
