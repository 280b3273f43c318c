"""Issue 12 (reliability), item 11: the Gaussian and Student's t log-densities and gradients in
forms that do not overflow where the true values are representable (a tiny scale, data far from
the mean), exact in float64; and a clear error where a bound cannot be represented at all."""
import numpy as np
import pytest
from scipy import stats

from minivae import backend, likelihoods
from minivae.gradcheck import check_function, max_error

host = backend.to_numpy


def dev(a, dtype="float64"):
    return backend.asarray(np.asarray(a, dtype=dtype))


def student_t_reference(x, loc, log_scale, df):
    nu = likelihoods.STUDENT_T_DF_MIN + np.logaddexp(0, df)
    return stats.t.logpdf(x, nu, loc=loc, scale=np.exp(log_scale))


@pytest.mark.parametrize("log_scale", [-100.0, -80.0, -5.0, 0.0, 3.0])
def test_student_t_float32_tiny_scales_are_finite_and_match_float64(log_scale):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(50)
    x[0] = 0.25                                            # exactly at the location too
    loc = np.full(50, 0.25)
    s = np.full(50, log_scale)
    df = rng.standard_normal(50)
    want = likelihoods.student_t_log_prob(*(dev(a) for a in (x, loc, s, df)))
    got = likelihoods.student_t_log_prob(*(dev(a, "float32") for a in (x, loc, s, df)))
    assert np.isfinite(host(got)).all()
    np.testing.assert_allclose(host(got), host(want), rtol=2e-5, atol=1e-4)
    grads = likelihoods.student_t_grads(*(dev(a, "float32") for a in (x, loc, s, df)))
    for name, g in grads.items():
        assert np.isfinite(host(g)).all(), name
    assert host(grads["loc"])[0] == 0                     # x = μ: no pull either way


def test_student_t_matches_scipy_where_the_old_form_worked():
    rng = np.random.default_rng(1)
    x, loc, s, df = (rng.standard_normal(200) for _ in range(4))
    got = host(likelihoods.student_t_log_prob(*(dev(a) for a in (x, loc, s, df))))
    np.testing.assert_allclose(got, student_t_reference(x, loc, s, df), rtol=1e-12, atol=1e-12)
    # and where it overflowed: scipy in float64 is the reference for log-scale -80
    s80 = np.full(200, -80.0)
    got = host(likelihoods.student_t_log_prob(*(dev(a, "float32") for a in (x, loc, s80, df))))
    np.testing.assert_allclose(got, student_t_reference(x, loc, s80, df), rtol=1e-5)


@pytest.mark.parametrize("log_scale,spread", [(-80.0, 1.0), (-5.0, 1.0), (0.0, 1.0),
                                              (0.0, 1e4), (2.0, 1.0)])
def test_student_t_gradients_are_exact_in_float64(log_scale, spread):
    rng = np.random.default_rng(2)
    shape = (3, 4)
    x = dev(rng.standard_normal(shape) * spread)
    loc = dev(rng.standard_normal(shape) * spread * 0.5)
    s = dev(np.full(shape, log_scale) + 0.1 * rng.standard_normal(shape))
    df = dev(rng.standard_normal(shape))
    f = lambda: float(likelihoods.student_t_log_prob(x, loc, s, df).sum())  # noqa: E731
    grads = likelihoods.student_t_grads(x, loc, s, df)
    # Steps relative to each input's scale (x - μ is of the order of ``spread``).
    report = check_function(f, {"loc": loc}, grads, h=1e-6 * spread)
    report.update(check_function(f, {"log_scale": s, "df": df}, grads, h=1e-6))
    assert max_error(report) < 1e-6, report


@pytest.mark.parametrize("log_scale,spread", [(0.0, 1e-9), (0.0, 1e8), (30.0, 1e12),
                                              (-20.0, 1e-9)])
def test_student_t_gradients_equal_the_direct_formulas_where_those_do_not_overflow(
        log_scale, spread):
    """Finite differences cannot resolve these scales; the textbook formulas (in float64,
    where they are finite) can."""
    rng = np.random.default_rng(5)
    x, loc = rng.standard_normal(30) * spread, rng.standard_normal(30) * spread * 0.5
    s, df = log_scale + 0.1 * rng.standard_normal(30), rng.standard_normal(30)
    from scipy.special import digamma
    nu = 3 + np.logaddexp(0, df)
    r = (x - loc) * np.exp(-s)
    ratio = (nu + 1) / (nu + r * r)
    want = {"loc": ratio * r * np.exp(-s), "log_scale": ratio * r * r - 1,
            "df": (0.5 * (digamma((nu + 1) / 2) - digamma(nu / 2)) - 0.5 / nu
                   - 0.5 * np.log1p(r * r / nu) + ratio * r * r / (2 * nu))
            / (1 + np.exp(-df))}
    got = likelihoods.student_t_grads(*(dev(a) for a in (x, loc, s, df)))
    for name in want:
        np.testing.assert_allclose(host(got[name]), want[name], rtol=1e-9, atol=1e-300,
                                   err_msg=name)


@pytest.mark.parametrize("x_scale,logvar", [(1e20, 0.0), (1e20, 60.0), (1.0, -100.0),
                                            (1e-3, -100.0)])
def test_gaussian_float32_far_data_and_tiny_variances(x_scale, logvar):
    """Finite wherever log N itself fits in float32 (u² = (x - m)² e^{-v} < 3.4e38)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(20) * x_scale
    mean = np.zeros(20)
    v = np.full(20, logvar)
    u2 = x ** 2 * np.exp(-v)
    want = -0.5 * (likelihoods.LOG_2PI + v + u2)                 # float64 reference
    got = host(likelihoods.gaussian_log_prob(*(dev(a, "float32") for a in (x, mean, v))))
    fits = u2 < 1e37
    assert np.isfinite(got[fits]).all()
    np.testing.assert_allclose(got[fits], want[fits], rtol=1e-5)
    grads = likelihoods.gaussian_grads(*(dev(a, "float32") for a in (x, mean, v)))
    assert np.isfinite(host(grads["logvar"])[fits]).all()


def test_gaussian_gradients_are_exact_in_float64():
    rng = np.random.default_rng(4)
    x, mean = dev(rng.standard_normal((3, 4)) * 1e3), dev(rng.standard_normal((3, 4)))
    v = dev(rng.standard_normal((3, 4)) + 10)
    f = lambda: float(likelihoods.gaussian_log_prob(x, mean, v).sum())  # noqa: E731
    report = check_function(f, {"mean": mean, "logvar": v},
                            likelihoods.gaussian_grads(x, mean, v))
    assert max_error(report) < 1e-6, report


# ---------------------------------------------------------------- the model: a clear stop
from minivae.model import IWAE  # noqa: E402
from minivae.train import Diverged  # noqa: E402


def model_with(likelihood, dtype, name, value):
    model = IWAE(6, 2, hidden=(5,), likelihood=likelihood, dtype=dtype)
    model.params[name][...] = value
    return model


@pytest.mark.parametrize("log_scale", [-80.0, -100.0])
def test_student_t_model_with_a_tiny_scale_has_a_finite_bound_and_gradients(log_scale):
    x = np.random.default_rng(0).standard_normal((4, 6))
    model = model_with("student_t", "float32", "decoder.log_scale.b", log_scale)
    bound, grads = model.bound_and_grads(x, 3)
    assert np.isfinite(float(bound))
    assert all(np.isfinite(host(g)).all() for g in grads.values())


@pytest.mark.parametrize("likelihood,name,value", [("gaussian", "decoder.logvar.b", -100.0),
                                                   ("gaussian", "encoder.logvar.b", 100.0),
                                                   ("bernoulli", "encoder.logvar.b", 100.0)])
def test_an_unrepresentable_bound_stops_with_a_clear_message(likelihood, name, value):
    """Here log p(x|z) or log p(z) is below -3.4e38: no float32 holds it. Not -inf and NaN
    gradients returned as a result, but one clear error."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6)) if likelihood != "bernoulli" else \
        (rng.random((4, 6)) < 0.5).astype(float)
    model = model_with(likelihood, "float32", name, value)
    with pytest.raises(Diverged, match=r"not finite in float32.*float64") as info:
        model.bound_and_grads(x, 3)
    assert "\n" not in str(info.value)


def test_gaussian_model_far_data_in_float32():
    model = IWAE(6, 2, hidden=(5,), likelihood="gaussian", dtype="float32")
    x = np.full((2, 6), 1e20)
    with pytest.raises(Diverged, match="float32"):
        model.bound_and_grads(x, 2)
    model.params["decoder.logvar.b"][...] = 60.0            # a model of data that large
    bound, grads = model.bound_and_grads(x, 2)
    assert np.isfinite(float(bound)) and all(np.isfinite(host(g)).all() for g in grads.values())
