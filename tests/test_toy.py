"""The lecture's 1-D toy model (minivae.lecture.toy): density, quadrature, importance sampling, encoder."""
import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from minivae.lecture import toy
from minivae.lecture.toy import ToyEncoder, train_encoder


def test_log_likelihood_is_the_stated_gaussian():
    rng = np.random.default_rng(0)
    for z in rng.normal(0, 2, 5):
        x = rng.normal(0, 5, (4, 2))
        mu = [10 * np.sin(z) ** 3, 10 * np.cos(z) - 10 * np.cos(z) ** 4]
        cov = np.diag([(np.sin(z) / (3 * z)) ** 2, (np.sin(z) / z) ** 2])
        np.testing.assert_allclose(toy.log_likelihood(x, z), multivariate_normal(mu, cov).logpdf(x),
                                   rtol=1e-12)


def test_removable_singularity_at_zero_and_point_mass_at_k_pi():
    x = np.array([[0.3, -0.5], [2.0, 1.0]])
    at0 = toy.log_likelihood(x, 0.0)                     # sin z / z -> 1: N(0, Diag(1/9, 1))
    np.testing.assert_allclose(at0, multivariate_normal([0, 0], np.diag([1 / 9, 1])).logpdf(x),
                               rtol=1e-14)
    np.testing.assert_allclose(toy.log_likelihood(x, 1e-7), at0, rtol=1e-10)
    # At z = π the variances vanish (sin π is 1e-16 in floating point): the density is a
    # point mass at μ(π) = (0, -20), astronomically small anywhere else.
    assert np.all(toy.log_likelihood(x, np.pi) < -1e20)
    assert toy.log_likelihood(np.array([0.0, -20.0]), np.pi) > 50


def test_gradient_of_the_log_joint_against_finite_differences():
    _, x = toy.sample(50, seed=1)
    z = np.concatenate([np.random.default_rng(2).normal(0, 2, (5, 50)),
                        np.full((1, 50), 3e-3), np.full((1, 50), -0.02)])
    h = 1e-6
    num = (toy.log_joint(x, z + h) - toy.log_joint(x, z - h)) / (2 * h)
    ana = toy.grad_z_log_joint(x, z)
    np.testing.assert_allclose(ana, num, rtol=1e-5, atol=1e-5)


def test_sampling_follows_the_model():
    z, x = toy.sample(20000, seed=3)
    assert abs(z.mean()) < 0.05 and abs(z.var() - 1) < 0.05
    u = (x - toy.decoder_mean(z)) / toy.decoder_std(z)              # standardised noise
    np.testing.assert_allclose(u.mean(axis=0), 0, atol=0.05)
    np.testing.assert_allclose(u.std(axis=0), 1, atol=0.05)
    np.testing.assert_array_equal(toy.sample(3, seed=4)[1], toy.sample(3, seed=4)[1])


def test_quadrature_agrees_with_a_dense_riemann_sum_and_a_stricter_setting():
    _, x = toy.sample(3, seed=5)
    x = np.concatenate([x, [[30.0, 30.0]]])                        # far out: log p ~ -4000
    lp, err = toy.log_marginal(x, return_error=True)
    assert np.all(err < 1e-9)
    np.testing.assert_allclose(lp, toy.log_marginal_riemann(x, n=500_001), rtol=0, atol=1e-9)
    np.testing.assert_allclose(lp, toy.log_marginal(x, z_max=16, rtol=1e-13, n_grid=16001),
                               rtol=0, atol=1e-11)
    # The model is symmetric under (z, x1) -> (-z, -x1).
    np.testing.assert_allclose(toy.log_marginal(x * [-1, 1]), lp, rtol=0, atol=1e-11)


def test_quadrature_near_the_spikes_at_k_pi():
    """Near x = μ(kπ) the integrand is a narrow spike against z = kπ; 40-digit mpmath on the same
    split (tanh-sinh, an independent rule and arithmetic) is the reference."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 30
    xs = np.array([[0.0, 1e-6], [1e-5, -20 + 1e-5]])

    def f(z, x1, x2):
        s = mp.sin(z) / z
        c = mp.cos(z)
        r1, r2 = x1 - 10 * mp.sin(z) ** 3, x2 - (10 * c - 10 * c ** 4)
        return mp.exp(mp.log(3) - 1.5 * mp.log(2 * mp.pi) - 2 * mp.log(abs(s))
                      - (9 * r1 ** 2 + r2 ** 2) / (2 * s * s) - z * z / 2)

    for x in xs:
        pts = sorted({mp.mpf(-12), mp.mpf(12)} | {k * mp.pi + s * mp.mpf(10) ** -j
                     for k in (-2, -1, 1, 2) for s in (-1, 1) for j in range(1, 12)}
                     | {k * mp.pi for k in range(-3, 4)})
        pts = [p for p in pts if abs(p) < 7] + [mp.mpf(-12), mp.mpf(12)]   # |z| > 7: < 1e-10
        pts = sorted(set(pts))
        ref = float(mp.log(mp.quad(lambda z: f(z, mp.mpf(x[0]), mp.mpf(x[1])), pts)))
        assert toy.log_marginal(x)[0] == pytest.approx(ref, abs=1e-9)


def test_log_marginal_is_infinite_at_the_singular_points_and_checks_input():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lp = toy.log_marginal(np.array([[0.0, 0.0], [0.0, -20.0]]))
    assert np.all(lp == np.inf)
    with pytest.raises(ValueError):
        toy.log_marginal(np.ones((3, 3)))


def test_importance_sampling_bound_rises_towards_log_p():
    _, x = toy.sample(8, seed=6)
    exact = toy.log_marginal(x)
    ks = [1, 10, 100, 10000]
    L = toy.iwae_curve(x, ks, n_rep=20, seed=7)                    # (4, 8)
    gap = (exact - L).mean(axis=1)
    assert np.all(np.diff(gap) < 0)                                # L_K increases with K ...
    assert gap[0] > 1.0 and 0 <= gap[-1] < 0.1                     # ... towards log p(x)
    # A Gaussian proposal centred on the latent that generated x does better than the prior.
    z, x = toy.sample(8, seed=6)
    Lg = toy.iwae_curve(x, [100], 20, "gaussian", mean=z, std=np.full(8, 0.3), seed=8)
    assert np.all(np.isfinite(Lg))
    with pytest.raises(ValueError):
        toy.is_log_marginal(x, 3, proposal="uniform")


def test_encoder_gradient_against_finite_differences():
    enc = ToyEncoder((5,), seed=0)
    _, x = toy.sample(4, seed=9)
    eps = np.random.default_rng(1).standard_normal((3, 4))
    _, grads = enc.bound_and_grads(x, 3, eps)
    for name, p in enc.params.items():
        for idx in np.ndindex(p.shape):
            old = float(p[idx])       # a copy: under CuPy p[idx] is a 0-d view of p
            p[idx] = old + 1e-6
            up, _ = enc.bound_and_grads(x, 3, eps)
            p[idx] = old - 1e-6
            down, _ = enc.bound_and_grads(x, 3, eps)
            p[idx] = old
            num = (up - down) / 2e-6
            assert abs(num - grads[name][idx]) <= 1e-5 * max(1.0, abs(num)), (name, idx)


def test_training_the_encoder_raises_the_bound():
    enc, hist = train_encoder(k=10, steps=300, batch=64, hidden=(16,), seed=0)
    assert np.mean(hist[-50:]) > np.mean(hist[:50]) + 1.0
    mean, std = enc(np.array([[1.0, 2.0]]))
    assert mean.shape == (1,) and std[0] > 0


def test_toy_plots_write_pngs(tmp_path):
    from minivae.plots import plot_toy_data, plot_toy_importance_sampling
    z, x = toy.sample(300, seed=0)
    plot_toy_data(str(tmp_path / "data.png"), z, x)
    ks = [1, 10]
    curves = {"prior": np.array([[-9.0, -8.0], [-5.0, -4.5]]),
              "encoder": np.array([[-6.0, -5.0], [-4.2, -4.1]])}
    plot_toy_importance_sampling(str(tmp_path / "is.png"), ks, curves, np.array([-4.1, -4.0]))
    for name in ("data.png", "is.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / name).stat().st_size > 1000


def test_toy_command(tmp_path, capsys):
    from minivae.cli import main
    args = ["toy", "--out", str(tmp_path), "--points", "4", "--ks", "1,10", "--reps", "2",
            "--encoder-steps", "5", "--encoder-k", "4", "--check-points", "1"]
    assert main(args) == 0
    assert "log p(x) - L_K" in capsys.readouterr().out
    for name in ("toy_data.png", "toy_is.png", "montecarlo.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert main(args[:3] + ["--ks", "0,x"]) == 2
    assert "error" in capsys.readouterr().err


def test_importance_sampling_estimate_of_p_is_unbiased():
    """E[p̂_K(x)] = p(x) for any proposal covering the posterior (here N(0, 1.5²), wider than
    the prior, so the weights are bounded): 100,000 draws of p̂_1, within 5 standard errors."""
    _, x = toy.sample(3, seed=11)
    p = np.exp(toy.log_marginal(x))
    n = 100_000
    est = np.exp(toy.is_log_marginal(np.repeat(x, n, axis=0), 1, "gaussian", mean=0.0, std=1.5,
                                     seed=12)).reshape(3, n)
    se = est.std(axis=1) / np.sqrt(n)
    assert np.all(np.abs(est.mean(axis=1) - p) < 5 * se)
    assert np.all(se < 0.05 * p)                               # the check has teeth
