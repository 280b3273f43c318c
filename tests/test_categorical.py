"""The categorical observation model (products of multinomials): values, gradients, masks,
bad codes, and the model built on it."""
import numpy as np
import pytest
from scipy.special import log_softmax

import minivae
from minivae import backend
from minivae.gradcheck import check_function, check_model, format_report, max_error
from minivae.likelihoods import Categorical, make
from minivae.optim import Adam

from helpers import randomize_params

C = 4


def codes(shape, rng, c=C):
    return rng.integers(0, c, shape).astype(np.float64)


def test_log_prob_is_the_log_softmax_of_the_observed_code():
    rng = np.random.default_rng(0)
    logits = 3 * rng.standard_normal((2, 3, 5, C))
    x = codes((3, 5), rng)                                 # broadcast over the K axis
    got = backend.to_numpy(Categorical(C).log_prob(backend.asarray(x), backend.asarray(logits)))
    want = np.take_along_axis(log_softmax(logits, axis=-1),
                              np.broadcast_to(x, (2, 3, 5))[..., None].astype(int), -1)[..., 0]
    assert got.shape == (2, 3, 5)
    assert np.allclose(got, want, rtol=0, atol=1e-12)


def test_log_softmax_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [-1e30, -1e30, -1e30]])
    for dtype in (np.float32, np.float64):
        lp = backend.to_numpy(Categorical(3).log_prob(backend.asarray(np.array([1.0, 2.0]),
                                                                      dtype=dtype),
                                                      backend.asarray(logits, dtype=dtype)))
        assert np.all(np.isfinite(lp)), lp
        assert np.allclose(lp, [-1e4, -np.log(3)], rtol=1e-6)


def test_head_gradient_against_finite_differences():
    rng = np.random.default_rng(1)
    lik = Categorical(C)
    x = backend.asarray(codes((3, 6), rng))
    logits = backend.asarray(rng.standard_normal((3, 6, C)))
    weights = backend.asarray(rng.standard_normal((3, 6)))

    def f():
        return float((weights * lik.log_prob(x, logits)).sum())
    analytic = {"logits": weights[..., None] * lik.log_prob_grads(x, logits)["logits"]}
    report = check_function(f, {"logits": logits}, analytic)
    assert max_error(report) < 1e-6, "\n" + format_report(report)
    # Each feature's gradient sums to 0 over the categories (softmax is shift-invariant).
    assert np.allclose(backend.to_numpy(analytic["logits"]).sum(-1), 0, atol=1e-12)


@pytest.mark.parametrize("hidden", [(), (5, 4)])
@pytest.mark.parametrize("k", [1, 6])
@pytest.mark.parametrize("masked", [False, True])
def test_model_gradient_with_and_without_mask(hidden, k, masked):
    model = minivae.IWAE(6, 3, hidden=hidden, likelihood="categorical", n_categories=C,
                         dtype="float64", seed=1)
    randomize_params(model, seed=k + 7)
    rng = np.random.default_rng(k)
    x = codes((4, 6), rng)
    mask = rng.random((4, 6)) < 0.6 if masked else None
    report = check_model(model, x, k, eps=rng.standard_normal((k, 4, 3)), mask=mask)
    assert max_error(report) < 1e-6, "\n" + format_report(report)


def test_missing_entries_are_ignored_whatever_they_hold():
    model = minivae.IWAE(6, 2, hidden=(5,), likelihood="categorical", n_categories=C,
                         dtype="float64", seed=2)
    rng = np.random.default_rng(3)
    x = codes((5, 6), rng)
    mask = rng.random((5, 6)) < 0.5
    eps = rng.standard_normal((3, 5, 2))
    b1, g1 = model.bound_and_grads(x, 3, eps=eps, mask=mask)
    junk = np.where(mask, x, np.nan)                    # missing: NaN, not a valid code
    b2, g2 = model.bound_and_grads(junk, 3, eps=eps, mask=mask)
    assert float(b1) == float(b2)
    assert all(np.array_equal(backend.to_numpy(g1[n]), backend.to_numpy(g2[n])) for n in g1)


def test_parameter_names_and_shapes():
    model = minivae.IWAE(784, 10, hidden=(32,), likelihood="categorical", n_categories=C)
    assert model.params["decoder.logits.W"].shape == (32, 784 * C)
    assert model.params["decoder.logits.b"].shape == (784 * C,)
    heads = model.decode(np.zeros((2, 3, 10)))
    assert list(heads) == ["logits"] and heads["logits"].shape == (2, 3, 784, C)
    assert model.observation_mean(np.zeros((5, 10))).shape == (5, 784)
    again = minivae.IWAE(**model.get_config())
    assert again.likelihood.n_categories == C and again.n_categories == C


@pytest.mark.parametrize("bad,words", [(-1.0, "codes in 0..3"), (4.0, "codes in 0..3"),
                                       (1.5, "codes in 0..3")])
def test_bad_codes_are_a_one_line_error(bad, words):
    model = minivae.IWAE(3, 2, hidden=(4,), likelihood="categorical", n_categories=C)
    x = np.array([[0.0, 1.0, 3.0], [2.0, bad, 0.0]])
    for method in (model.bound, model.bound_and_grads):
        with pytest.raises(ValueError, match=words) as e:
            method(x, 2)
        assert "\n" not in str(e.value) and repr(bad) in str(e.value)
    # The same entry marked missing is fine.
    model.bound(x, 2, mask=np.array([[True] * 3, [True, False, True]]))


@pytest.mark.parametrize("kwargs,words", [(dict(likelihood="categorical"), "n_categories"),
                                          (dict(likelihood="categorical", n_categories=1),
                                           "n_categories"),
                                          (dict(likelihood="categorical", n_categories=2.0),
                                           "n_categories"),
                                          (dict(likelihood="gaussian", n_categories=3),
                                           "categorical likelihood only")])
def test_bad_configuration(kwargs, words):
    with pytest.raises(ValueError, match=words):
        minivae.IWAE(5, 2, **kwargs)


def test_two_categories_is_the_bernoulli_model():
    """C = 2 with logits (0, ℓ) is Bernoulli(σ(ℓ)): same log-probability and gradient."""
    rng = np.random.default_rng(4)
    ell = rng.standard_normal((3, 7))
    x = (rng.random((3, 7)) < 0.5).astype(float)
    logits = np.stack([np.zeros_like(ell), ell], -1)
    cat, ber = make("categorical", 2), make("bernoulli")
    f = backend.to_numpy
    assert np.allclose(f(cat.log_prob(backend.asarray(x), backend.asarray(logits))),
                       f(ber.log_prob(backend.asarray(x), backend.asarray(ell))), atol=1e-12)
    assert np.allclose(f(cat.log_prob_grads(backend.asarray(x),
                                            backend.asarray(logits))["logits"])[..., 1],
                       f(ber.log_prob_grads(backend.asarray(x), backend.asarray(ell))["logits"]),
                       atol=1e-12)


def test_training_raises_the_bound():
    rng = np.random.default_rng(5)
    proto = rng.integers(0, C, (3, 12))                 # three prototypes, noisy copies
    x = proto[rng.integers(0, 3, 60)]
    flip = rng.random(x.shape) < 0.1
    x = np.where(flip, rng.integers(0, C, x.shape), x).astype(np.float32)
    model = minivae.IWAE(12, 2, hidden=(16,), likelihood="categorical", n_categories=C, seed=0)
    opt = Adam(model.params, lr=1e-2)
    eps = np.random.default_rng(6).standard_normal((20, 60, 2)).astype(np.float32)
    before = float(model.bound(x, 20, eps=eps).mean())
    for _ in range(150):
        _, grads = model.bound_and_grads(x, 5)
        opt.step(grads)
    after = float(model.bound(x, 20, eps=eps).mean())
    assert after > before + 3, (before, after)


def test_imputer_fills_categorical_columns_with_the_most_probable_category():
    """Rows are noisy copies of 3 prototypes over 8 columns of codes 0..3; a missing cell is
    recoverable from the observed cells of its row (which prototype it is). The imputer must
    return valid codes and beat the per-column mode clearly."""
    from minivae import MIWAEImputer
    rng = np.random.default_rng(7)
    proto = rng.integers(0, C, (3, 8))
    X = proto[rng.integers(0, 3, 300)].astype(float)
    X = np.where(rng.random(X.shape) < 0.05, rng.integers(0, C, X.shape), X)
    miss = rng.random(X.shape) < 0.25
    Xm = np.where(miss, np.nan, X)
    imp = MIWAEImputer(z_dim=2, hidden=(16,), likelihood="categorical", k=5, epochs=60,
                       batch_size=32, lr=3e-3, n_samples=200, seed=0)
    out = imp.fit_transform(Xm)
    assert imp.n_categories_ == C and imp.model_.likelihood.n_categories == C
    assert np.array_equal(out[~miss], X[~miss])
    assert set(np.unique(out[miss])) <= set(range(C))
    acc = (out[miss] == X[miss]).mean()
    mode = np.array([np.bincount(col[~np.isnan(col)].astype(int), minlength=C).argmax()
                     for col in Xm.T])
    acc_mode = (np.broadcast_to(mode, X.shape)[miss] == X[miss]).mean()
    assert acc > acc_mode + 0.2 and acc > 0.8, (acc, acc_mode)
    draws = imp.transform(Xm, n_imputations=3)
    assert draws.shape == (3,) + X.shape and set(np.unique(draws[:, miss])) <= set(range(C))
    with pytest.raises(ValueError, match="integer codes"):
        imp.transform(np.where(miss, np.nan, X + 0.5))
    with pytest.raises(ValueError, match="integer codes"):
        MIWAEImputer(likelihood="categorical", epochs=1).fit(np.where(miss, np.nan, -X - 1))
