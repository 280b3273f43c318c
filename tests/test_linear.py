"""PPCA and factor analysis (minivae.lecture.linear) against scikit-learn and dense Gaussian algebra."""
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from minivae.lecture.linear import PPCA, FactorAnalysis, log_marginal, posterior

sklearn_decomposition = pytest.importorskip("sklearn.decomposition")


def linear_gaussian_data(n, p=8, d=3, psi=None, seed=0):
    """x = W z + mu + e with a random W (p, d), mu and noise variances psi (default 0.25)."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((p, d))
    mu = rng.normal(3.0, 1.0, p)
    psi = np.full(p, 0.25) if psi is None else np.asarray(psi)
    X = rng.standard_normal((n, d)) @ W.T + mu + rng.standard_normal((n, p)) * np.sqrt(psi)
    return X, W, mu, psi


def test_ppca_ddof1_is_sklearn_pca():
    X, *_ = linear_gaussian_data(400)
    ours, ref = PPCA(3, ddof=1).fit(X), sklearn_decomposition.PCA(3).fit(X)
    assert ours.score(X) == pytest.approx(ref.score(X), rel=1e-12)
    np.testing.assert_allclose(ours.score_samples(X), ref.score_samples(X), rtol=1e-11)
    assert ours.noise_variance_ == pytest.approx(ref.noise_variance_, rel=1e-12)
    np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=1e-12)
    # Our components_ are the loadings W^T; their directions are scikit-learn's, up to sign.
    directions = ours.components_ / np.linalg.norm(ours.components_, axis=1, keepdims=True)
    np.testing.assert_allclose(np.abs(np.sum(directions * ref.components_, axis=1)), 1.0,
                               rtol=1e-10)


def test_ppca_loglikelihood_is_dense_gaussian():
    X, *_ = linear_gaussian_data(300, seed=1)
    m = PPCA(2).fit(X)
    C = m.components_.T @ m.components_ + m.noise_variance_ * np.eye(X.shape[1])
    dense = multivariate_normal(m.mean_, C).logpdf(X)
    np.testing.assert_allclose(m.score_samples(X), dense, rtol=1e-12)
    assert m.score(X) == pytest.approx(dense.mean(), rel=1e-12)


def test_ppca_closed_form_is_the_maximum():
    """Perturbing the ML solution in any direction lowers the likelihood; rotating it does not."""
    X, *_ = linear_gaussian_data(300, seed=2)
    m = PPCA(3).fit(X)
    W, mu, s2 = m.components_.T, m.mean_, m.noise_variance_
    best = log_marginal(X, W, mu, np.full(8, s2)).mean()
    rng = np.random.default_rng(0)
    for _ in range(20):
        dW = 1e-3 * rng.standard_normal(W.shape)
        assert log_marginal(X, W + dW, mu, np.full(8, s2)).mean() < best
    for f in (0.99, 1.01):
        assert log_marginal(X, W, mu, np.full(8, f * s2)).mean() < best
    R = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    assert log_marginal(X, W @ R, mu, np.full(8, s2)).mean() == pytest.approx(best, rel=1e-12)


def test_fa_em_never_decreases_and_matches_sklearn():
    X, *_ = linear_gaussian_data(400, psi=np.linspace(0.1, 1.0, 8), seed=0)
    m = FactorAnalysis(3, max_iter=5000, tol=1e-12, seed=0).fit(X)
    ll = np.array(m.loglike_)
    assert len(ll) > 5
    assert np.all(np.diff(ll) >= -1e-12 * np.abs(ll[1:]))
    assert ll[-1] == pytest.approx(m.score(X), rel=1e-12)
    ref = sklearn_decomposition.FactorAnalysis(3, tol=1e-12, max_iter=5000).fit(X)
    # Two algorithms (EM here, scikit-learn's SVD iteration) reaching the same maximum.
    assert m.score(X) == pytest.approx(ref.score(X), abs=1e-9)
    # And the score itself is scikit-learn's formula, exactly, at the same parameters.
    ref.components_, ref.noise_variance_ = m.components_, m.noise_variance_
    assert m.score(X) == pytest.approx(ref.score(X), rel=1e-12)
    np.testing.assert_allclose(m.score_samples(X), ref.score_samples(X), rtol=1e-11)


@pytest.mark.parametrize("model", [PPCA(3), FactorAnalysis(3, tol=1e-9, max_iter=5000)])
def test_parameters_recovered_up_to_rotation(model):
    """W is identifiable only up to W R (R orthogonal): compare W W^T, which is invariant."""
    psi = np.full(8, 0.25) if isinstance(model, PPCA) else np.linspace(0.1, 0.6, 8)
    X, W, mu, psi = linear_gaussian_data(40000, psi=psi, seed=4)
    model.fit(X)
    Wh = model.components_.T
    np.testing.assert_allclose(Wh @ Wh.T, W @ W.T, atol=0.1 * np.abs(W @ W.T).max())
    np.testing.assert_allclose(model._psi, psi, rtol=0.1)
    np.testing.assert_allclose(model.mean_, mu, atol=0.05)


def test_posterior_and_transform_are_gaussian_conditioning():
    """E[z|x] = W^T C^-1 (x - mu), Cov[z|x] = I - W^T C^-1 W: conditioning the joint Gaussian."""
    X, *_ = linear_gaussian_data(50, psi=np.linspace(0.2, 0.9, 8), seed=5)
    m = FactorAnalysis(2, tol=1e-6).fit(X)
    W, C = m.components_.T, m.get_covariance()
    mean, cov = m.posterior(X)
    np.testing.assert_allclose(mean, (X - m.mean_) @ np.linalg.solve(C, W), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cov, np.eye(2) - W.T @ np.linalg.solve(C, W), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(m.transform(X), mean)
    mean2, cov2 = posterior(X, W, m.mean_, m.noise_variance_)
    np.testing.assert_allclose(mean2, mean)


def test_sample_has_the_model_covariance():
    X, *_ = linear_gaussian_data(200, seed=6)
    m = PPCA(3).fit(X)
    Y = m.sample(100000, seed=1)
    assert Y.shape == (100000, 8)
    np.testing.assert_allclose(np.cov(Y.T), m.get_covariance(), atol=0.05 * np.abs(
        m.get_covariance()).max())
    np.testing.assert_array_equal(m.sample(5, seed=3), m.sample(5, seed=3))  # seeded


@pytest.mark.parametrize("bad", [
    lambda: PPCA(0), lambda: PPCA(8).fit(np.ones((10, 8))), lambda: PPCA(2, ddof=2),
    lambda: PPCA(2).fit(np.full((10, 4), np.nan)), lambda: PPCA(2).score(np.ones((3, 4))),
    lambda: PPCA(2).fit(np.random.default_rng(0).random((20, 4))).score(np.ones((3, 5))),
    lambda: FactorAnalysis(2, max_iter=0), lambda: PPCA(2).sample(3),
])
def test_bad_input_is_a_value_error(bad):
    with pytest.raises(ValueError):
        bad()


def test_linear_iwae_trained_on_l_k_approaches_the_ppca_maximum():
    """The bridge to deep models: IWAE(hidden=(), gaussian), noise tied as in PPCA, trained by
    Adam on L_K. Nothing can beat PPCA's closed-form maximum; a modest budget gets within a few
    tenths of a nat per example of it (docs/lecture.md has the long-run numbers)."""
    from minivae.lecture.linear import bridge_gap, fit_linear_iwae, linear_gaussian_parameters
    X, *_ = linear_gaussian_data(1000, p=8, d=2, seed=7)
    r = bridge_gap(X, 2, k=5, steps=1500, batch=100, lr=1e-2, seed=0, eval_draws=5)
    assert r["optimisation_gap"] >= -1e-9                 # ℓ(θ) <= ℓ_max: PPCA is the maximum
    assert r["bound_gap"] > -5 * r["bound_se"]            # L_K <= ℓ(θ), up to Monte Carlo noise
    assert r["gap"] < 0.15, r
    # The constraints held: the noise is one σ² shared by all features, independent of z.
    model, hist = fit_linear_iwae(X, 2, k=1, steps=50, seed=1)
    _, _, psi = linear_gaussian_parameters(model)
    np.testing.assert_allclose(psi, psi[0], rtol=1e-12)
    assert np.mean(hist[-10:]) > np.mean(hist[:10])
