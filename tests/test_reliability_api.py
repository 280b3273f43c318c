"""Issue 12 (reliability), the Python API: bad arguments give a one-line ValueError that names
the argument; finite input never gives an inf or NaN; nothing is silently truncated."""
import numpy as np
import pytest

from minivae import MIWAEImputer


def one_line_error(match, f, *args, **kwargs):
    with pytest.raises(ValueError, match=match) as info:
        f(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


# ---------------------------------------------------------------- items 6 and 10: MIWAEImputer
@pytest.mark.parametrize("kwargs,name", [(dict(lr=True), "lr"), (dict(lr=float("inf")), "lr"),
                                         (dict(lr="1e-3"), "lr"), (dict(hidden=5), "hidden"),
                                         (dict(hidden=None), "hidden"),
                                         (dict(verbose=None), "verbose"),
                                         (dict(seed=None), "seed"), (dict(seed=-1), "seed"),
                                         (dict(dtype=None), "dtype"),
                                         (dict(activation="sigmoid"), "activation")])
def test_imputer_constructor_rejects_bad_arguments_naming_them(kwargs, name):
    one_line_error(name, MIWAEImputer, **kwargs)


def test_imputer_accepts_numpy_scalars():
    imp = MIWAEImputer(lr=np.float32(1e-3), k=np.int64(5), seed=np.int32(3), verbose=True)
    assert imp.lr == pytest.approx(1e-3) and imp.k == 5 and imp.seed == 3 and imp.verbose == 1
    assert type(imp.lr) is float and type(imp.k) is int


# ---------------------------------------------------------------- item 2: huge finite values
SMALL = dict(z_dim=2, hidden=(8,), epochs=3, n_samples=20, k=3, seed=0)


@pytest.mark.parametrize("big", [1e200, -1e200, 1.3e154, 1e308])
def test_imputer_huge_finite_values_never_give_inf(big):
    X = np.array([[1.5, 2], [big, 3], [np.nan, 4], [2.5, np.nan], [3.5, 6]])
    imp = MIWAEImputer(**SMALL).fit(X)
    assert np.isfinite(imp.mean_).all() and np.isfinite(imp.scale_).all()
    assert imp.scale_[0] > abs(big) / 10                        # not 1 ("constant"), not inf
    out = imp.transform(X)
    assert np.isfinite(out).all()
    assert out[1, 0] == big and out[0, 0] == 1.5                 # observed cells untouched
    try:
        assert np.isfinite(imp.transform(X, n_imputations=2)).all()
    except ValueError as e:
        # Draws of x ~ p(x|z) at a scale of 4e307 (Student's t tails) can pass the largest
        # float64: refused in one line (below), never written as inf.
        assert abs(big) > 1e307 and "overflows float64" in str(e)


def test_standardisation_matches_the_plain_formula_where_it_does_not_overflow():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3)) * [1.0, 1e5, 1e-5] + [0.0, 3e5, -1.0]
    X[rng.random(X.shape) < 0.2] = np.nan
    imp = MIWAEImputer(**SMALL).fit(X)
    np.testing.assert_allclose(imp.mean_, np.nanmean(X, axis=0), rtol=1e-12)
    np.testing.assert_allclose(imp.scale_, np.nanstd(X, axis=0), rtol=1e-9)


def test_an_imputation_beyond_float64_is_refused_not_written_as_inf():
    X = np.array([[1.7e308, 1.0], [-1.7e308, 2.0], [np.nan, 3.0], [0.0, 4.0]])
    imp = MIWAEImputer(**SMALL).fit(X)
    assert np.isfinite(imp.scale_).all()
    one_line_error(r"overflows float64", imp._from_standard, np.array([[5.0, 0.0]]))


# ---------------------------------------------------------------- the linear-Gaussian models
# (items 5, 6, 7 and 10 for PPCA and factor analysis)
from minivae.lecture.linear import PPCA, FactorAnalysis  # noqa: E402


def low_rank(n=50, p=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2)) @ rng.standard_normal((2, p)) + \
        0.3 * rng.standard_normal((n, p))


@pytest.mark.parametrize("make,name", [(lambda: PPCA(None), "n_components"),
                                       (lambda: PPCA(2.5), "n_components"),
                                       (lambda: PPCA(2, ddof=True), "ddof"),
                                       (lambda: FactorAnalysis(None), "n_components"),
                                       (lambda: FactorAnalysis(2, max_iter="5"), "max_iter"),
                                       (lambda: FactorAnalysis(2, tol=None), "tol"),
                                       (lambda: FactorAnalysis(2, seed=None), "seed"),
                                       (lambda: FactorAnalysis(2, min_noise=-1), "min_noise")])
def test_linear_models_constructor_errors_are_value_errors_naming_the_argument(make, name):
    one_line_error(name, make)


@pytest.mark.parametrize("model", [PPCA(2), FactorAnalysis(2)])
def test_linear_models_empty_batch_and_complex_data(model):
    X = low_rank()
    model.fit(X)
    one_line_error(r"X is empty", model.score, X[:0])
    one_line_error(r"complex", type(model)(2).fit, X + 1j)
    one_line_error(r"complex", model.score, X + 0j)
    one_line_error(r"strings", model.score, X.astype(str))


def test_sample_needs_a_whole_number_of_rows():
    model = PPCA(2).fit(low_rank())
    one_line_error(r"^n must be a positive integer, got 2.7", model.sample, 2.7)
    one_line_error(r"^seed must be", model.sample, 3, seed=-1)
    assert model.sample(np.int64(3), seed=0).shape == (3, 6)


def test_factor_analysis_refuses_constant_data():
    one_line_error(r"constant", FactorAnalysis(2).fit, np.ones((10, 6)))
    X = low_rank()
    X[:, 4] = 7.0
    one_line_error(r"column 4 is constant", FactorAnalysis(2).fit, X)


@pytest.mark.parametrize("cls", [PPCA, FactorAnalysis])
def test_huge_data_are_fitted_in_scale_or_refused_as_overflow(cls):
    X = low_rank()
    small = cls(2).fit(X)
    # 1e100: the variances (1e200) fit in float64; the fit is the same model, rescaled.
    big = cls(2).fit(X * 1e100)
    np.testing.assert_allclose(big.mean_, small.mean_ * 1e100, rtol=1e-9)
    np.testing.assert_allclose(np.abs(big.components_), np.abs(small.components_) * 1e100,
                               rtol=1e-5)
    want = small.score(X) - X.shape[1] * np.log(1e100)            # log-density of x/1e100
    assert big.score(X * 1e100) == pytest.approx(want, rel=1e-9)
    # 1e200: the variances (1e400) do not: say so, not "contains infs or NaNs".
    msg = one_line_error(r"overflows float64", cls(2).fit, X * 1e200)
    assert "NaN" not in msg and "inf" not in msg


def test_scoring_far_outside_the_model_is_refused_not_minus_inf():
    model = PPCA(2).fit(low_rank())
    one_line_error(r"overflows float64", model.score, np.full((2, 6), 1e200))


# ---------------------------------------------------------------- the other lecture models
def test_lecture_sample_sizes_are_whole_numbers():
    from minivae.lecture import montecarlo, toy
    one_line_error(r"^n must be a positive integer", toy.sample, 2.7)
    one_line_error(r"^k must be a positive integer", toy.is_log_marginal, [[0.0, 0.0]], 2.5)
    one_line_error(r"^k must be a positive integer", montecarlo.simple_monte_carlo,
                   np.exp, lambda k, rng: rng.standard_normal(k), 1.5, np.random.default_rng(0))
    assert toy.sample(np.int64(3), seed=0)[1].shape == (3, 2)


def test_tiny_data_say_their_variances_underflow():
    X = low_rank()
    one_line_error(r"underflows float64", PPCA(2).fit, X * 1e-200)
    big = PPCA(2).fit(X * 1e-100)                           # variances 1e-200 are fine
    assert np.isfinite(big.score(X * 1e-100))


# ---------------------------------------------------------------- optimizers
@pytest.mark.parametrize("kwargs,name", [(dict(lr=True), "lr"), (dict(lr="x"), "lr"),
                                         (dict(lr=float("nan")), "lr"), (dict(lr=0), "lr"),
                                         (dict(beta1=1.0), "beta1"), (dict(beta2=-0.1), "beta2"),
                                         (dict(eps=0), "eps")])
def test_adam_hyperparameters_are_validated(kwargs, name):
    from minivae.optim import Adam
    one_line_error(rf"^{name} must be", Adam, {"w": np.zeros(2)}, **kwargs)


def test_sgd_hyperparameters_are_validated_and_numpy_scalars_accepted():
    from minivae import backend
    from minivae.optim import SGD, Adam
    params = {"w": backend.xp.zeros(2)}
    one_line_error(r"^lr must be", SGD, params, lr=True)
    one_line_error(r"^momentum must be", SGD, params, momentum=1.5)
    assert Adam(params, lr=np.float32(1e-3)).lr == pytest.approx(1e-3)


# ---------------------------------------------------------------- the model (items 6, 9, 11)
def test_model_sizes_that_cannot_fit_are_refused(monkeypatch):
    from minivae import memory
    from minivae.model import IWAE
    monkeypatch.setattr(memory, "available_bytes", lambda: 4 * 10 ** 9)
    one_line_error(r"IWAE\(x_dim=784, z_dim=50, hidden=\(99999999999,\)\) needs about",
                   IWAE, 784, 50, hidden=(99999999999,))
    one_line_error(r"needs about", IWAE, 10 ** 12, 2)
    model = IWAE(784, 50)
    monkeypatch.setattr(memory, "available_bytes", lambda: 200_000)   # not one sample of 20
    one_line_error(r"a step with k=5 and a batch of 20 needs about .* smaller batch",
                   model.bound_and_grads, np.zeros((20, 784), np.float32), 5)


@pytest.mark.parametrize("likelihood", ["bernoulli", "student_t"])
def test_chunked_k_gives_the_same_bound_and_gradients(likelihood):
    from minivae.model import IWAE
    from minivae import backend
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 7))
    if likelihood == "bernoulli":
        x = (x > 0).astype(float)
    mask = rng.random((5, 7)) < 0.8
    model = IWAE(7, 3, hidden=(6,), likelihood=likelihood, dtype="float64")
    eps = rng.standard_normal((11, 5, 3))
    whole, g_whole = model.bound_and_grads(x, 11, eps=eps, mask=mask)
    for k_chunk in (1, 4, 10):
        part, g_part = model.bound_and_grads(x, 11, eps=eps, mask=mask, k_chunk=k_chunk)
        assert float(part) == pytest.approx(float(whole), rel=1e-12)
        for name in g_whole:
            np.testing.assert_allclose(backend.to_numpy(g_part[name]),
                                       backend.to_numpy(g_whole[name]), rtol=1e-10,
                                       atol=1e-13, err_msg=name)


def test_a_large_k_is_chunked_by_itself_when_memory_is_short(monkeypatch):
    """K = 100,000 with B = 20 needs about 60 GB at once: it runs in chunks instead."""
    from minivae import memory
    from minivae.model import IWAE
    model = IWAE(20, 2, hidden=(8,), dtype="float64")
    x = (np.random.default_rng(1).random((4, 20)) < 0.5).astype(float)
    eps = np.random.default_rng(2).standard_normal((300, 4, 2))
    whole = model.bound_and_grads(x, 300, eps=eps)
    row = memory.step_bytes(1, 20, 2, (8,), 1, "float64")
    monkeypatch.setattr(memory, "available_bytes", lambda: int(60 * row * 4 / memory.USABLE))
    assert 1 <= model._k_chunk(300, 4) < 60               # chunks of fewer than 60 samples
    chunked = model.bound_and_grads(x, 300, eps=eps)
    assert float(chunked[0]) == pytest.approx(float(whole[0]), rel=1e-12)


def test_model_inputs_complex_and_overflowing_values():
    from minivae.model import IWAE
    model = IWAE(6, 2, hidden=(5,), likelihood="gaussian", dtype="float32")
    one_line_error(r"x must hold real numbers, got complex", model.bound_and_grads,
                   np.zeros((2, 6)) + 1j, 2)
    one_line_error(r"x overflows float32", model.bound_and_grads, np.full((2, 6), 1e39), 2)
    one_line_error(r"z must hold real numbers, got complex", model.observation_mean,
                   np.zeros((3, 2)) + 1j)
    one_line_error(r"eps", model.bound_and_grads, np.zeros((2, 6)), 2,
                   eps=np.full((2, 2, 2), np.nan))
