"""Simple Monte Carlo and importance sampling (minivae.lecture.montecarlo) on closed-form problems."""
import numpy as np
import pytest

from minivae.lecture import montecarlo
from minivae.lecture.montecarlo import ExpUnderGaussian, importance_sampling, replicate, simple_monte_carlo


@pytest.mark.parametrize("m", [0.0, 0.25, 0.8])
def test_estimators_are_unbiased_with_variance_sigma2_over_k(m):
    """Across 2000 replicates: mean within 5 standard errors of I, variance within 20 % of σ²/K."""
    prob = ExpUnderGaussian(a=0.5)
    est = prob.simple_mc if m == 0 else prob.importance(m)
    k, n_rep = 50, 2000
    r = replicate(est, [k], n_rep, seed=1)
    values = r["values"][0]
    se = values.std(ddof=1) / np.sqrt(n_rep)
    assert abs(values.mean() - prob.exact) < 5 * se
    assert r["variance"][0] == pytest.approx(prob.term_variance(m) / k, rel=0.2)


def test_term_variance_formula_against_a_large_sample():
    prob, rng = ExpUnderGaussian(a=1.0), np.random.default_rng(0)
    for m in (0.0, 0.5):
        x = m + rng.standard_normal(2_000_000)
        terms = prob.f(x) * np.exp(prob.log_p(x) - prob.log_normal(x, m))
        assert terms.var() == pytest.approx(prob.term_variance(m), rel=0.05)


def test_variance_decays_like_one_over_k():
    prob = ExpUnderGaussian(a=0.5)
    r = replicate(prob.importance(0.3), [10, 1000], 1000, seed=2)
    ratio = r["variance"][0] / r["variance"][1]
    assert 70 < ratio < 140                              # 100, up to the noise of 1000 replicates


def test_within_sample_variance_estimates_the_estimator_variance():
    prob, rng = ExpUnderGaussian(a=0.5), np.random.default_rng(3)
    est = prob.importance(0.2)
    inner = np.mean([est(200, rng).variance for _ in range(500)])
    assert inner == pytest.approx(prob.term_variance(0.2) / 200, rel=0.1)


@pytest.mark.parametrize("a", [0.5, 2.0, 4.0])
def test_optimal_proposal_has_zero_variance(a):
    """q* = f p / I: every term f p / q* equals I, whatever the draws (f > 0)."""
    prob, rng = ExpUnderGaussian(a), np.random.default_rng(4)
    for k in (1, 10, 1000):
        e = prob.optimal(k, rng)
        assert e.value == pytest.approx(prob.exact, rel=1e-12)
        if k > 1:
            assert e.variance <= (1e-13 * prob.exact) ** 2
    assert prob.term_variance(a) == pytest.approx(0.0, abs=1e-9 * prob.exact ** 2)
    # ... whereas simple Monte Carlo's relative error for a = 4 is hopeless at K = 1000.
    if a == 4.0:
        assert np.sqrt(prob.term_variance(0.0) / 1000) > 50 * prob.exact


def test_estimators_compute_the_stated_averages():
    """With a 'sampler' that returns fixed points, the estimates are plain arithmetic."""
    pts = np.array([0.5, 1.0, 2.0])
    fixed = lambda k, rng: pts[:k]                                      # noqa: E731
    f = lambda x: x ** 2                                                # noqa: E731
    e = simple_monte_carlo(f, fixed, 3, None)
    assert e.value == pytest.approx(np.mean(pts ** 2))
    assert e.variance == pytest.approx(np.var(pts ** 2, ddof=1) / 3)
    log_p = lambda x: -x                                                # noqa: E731
    log_q = lambda x: -2 * x                                            # noqa: E731
    e = importance_sampling(f, log_p, fixed, log_q, 3, None)
    assert e.value == pytest.approx(np.mean(pts ** 2 * np.exp(pts)))
    assert np.isnan(simple_monte_carlo(f, fixed, 1, None).variance)
    with pytest.raises(ValueError):
        simple_monte_carlo(f, fixed, 0, None)


def test_plot_monte_carlo_writes_a_png(tmp_path):
    from minivae.plots import plot_monte_carlo
    path = plot_monte_carlo(str(tmp_path / "mc.png"), ks=(10, 100), n_rep=20)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "mc.png").stat().st_size > 1000
    assert montecarlo.Estimate(1.0, 0.0).value == 1.0
