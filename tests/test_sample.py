"""x ~ p(x|η): every observation model's ``sample``, checked against its own distribution.

Each check draws N = 200,000 values (or 400,000) per parameter setting and compares moments or
frequencies with the model's; the tolerances are 5 standard errors of the estimate (stated per
test), so a correct sampler fails with probability below 1e-6 per comparison while a wrong
distribution (a wrong scale, a missing sign, an off-by-one category) misses by far more.
"""
import numpy as np
import pytest
from scipy import stats

from minivae import backend
from minivae.likelihoods import Bernoulli, Categorical, Gaussian, StudentT

N = 200_000


def draws(model, heads, n=N, seed=0, dtype="float64"):
    """n draws for each head setting: heads (P,) broadcast to (n, P); host arrays back."""
    rng = backend.default_rng(seed)
    big = {h: backend.asarray(np.broadcast_to(v, (n,) + np.shape(v)), dtype=dtype)
           for h, v in heads.items()}
    x = model.sample(**big, rng=rng)
    assert x.shape == big[model.heads[0]].shape[:x.ndim] and str(x.dtype) == dtype
    return backend.to_numpy(x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bernoulli(dtype):
    logits = np.array([-3.0, 0.0, 0.7, 4.0, -40.0, 40.0])
    x = draws(Bernoulli, {"logits": logits}, dtype=dtype)
    assert set(np.unique(x)) <= {0.0, 1.0}
    p = 1 / (1 + np.exp(-logits))
    se = np.sqrt(p * (1 - p) / N)
    assert np.all(np.abs(x.mean(0) - p) <= 5 * se + 1e-12), (x.mean(0), p)


def test_gaussian():
    mean, logvar = np.array([0.0, -2.0, 5.0]), np.array([0.0, 1.5, -3.0])
    x = draws(Gaussian, {"mean": mean, "logvar": logvar})
    sd = np.exp(0.5 * logvar)
    assert np.all(np.abs(x.mean(0) - mean) < 5 * sd / np.sqrt(N))
    # var of the sample variance of a normal: 2σ⁴/(N-1).
    assert np.all(np.abs(x.var(0) - sd ** 2) < 5 * np.sqrt(2 / N) * sd ** 2)


def test_student_t_matches_the_distribution():
    loc, log_scale, df = np.array([1.0, -2.0]), np.array([0.5, -1.0]), np.array([-2.0, 3.0])
    nu = StudentT.DF_MIN + np.log1p(np.exp(df))
    x = draws(StudentT, {"loc": loc, "log_scale": log_scale, "df": df})
    assert np.all(np.isfinite(x))
    for j in range(2):
        # Kolmogorov-Smirnov against the t CDF: p-value above 1e-6 for a correct sampler.
        d = stats.kstest(x[:, j], stats.t(nu[j], loc[j], np.exp(log_scale[j])).cdf)
        assert d.pvalue > 1e-6, (j, d)
    # And the tails are on the right side: the median is the location.
    assert np.all(np.abs(np.median(x, 0) - loc) < 0.02 * np.exp(log_scale) * 5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_categorical_frequencies(dtype):
    logits = np.array([[0.0, 1.0, 2.0, -1.0], [5.0, -5.0, 0.0, 0.0], [0, 0, 0, 30.0]])
    cat = Categorical(4)
    x = draws(cat, {"logits": logits}, dtype=dtype)                 # (N, 3)
    assert x.shape == (N, 3)
    assert set(np.unique(x)) <= {0.0, 1.0, 2.0, 3.0}
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    freq = np.stack([(x == c).mean(0) for c in range(4)], -1)       # (3, 4)
    se = np.sqrt(p * (1 - p) / N)
    assert np.all(np.abs(freq - p) <= 5 * se + 1e-6), (freq, p)


def test_draws_are_reproducible_and_use_the_generator():
    logits = np.zeros((100, 5, 3))
    a = Categorical(3).sample(backend.asarray(logits), backend.default_rng(1))
    b = Categorical(3).sample(backend.asarray(logits), backend.default_rng(1))
    c = Categorical(3).sample(backend.asarray(logits), backend.default_rng(2))
    a, b, c = (backend.to_numpy(v) for v in (a, b, c))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_model_sample_observation_shapes():
    import minivae
    for lik, kw in (("bernoulli", {}), ("gaussian", {}), ("student_t", {}),
                    ("categorical", {"n_categories": 5})):
        m = minivae.IWAE(7, 2, hidden=(4,), likelihood=lik, seed=0, **kw)
        x = backend.to_numpy(m.sample_observation(np.zeros((3, 6, 2))))
        assert x.shape == (3, 6, 7) and np.all(np.isfinite(x))


def test_sample_is_draw_at_the_generators_uniforms():
    """sample(heads, rng) = draw(heads, u) with u the generator's next random(): one inverse-
    CDF mechanism, so a caller holding its uniforms (lab 7, the pictures) gets the same x."""
    rng = np.random.default_rng(3)
    shape = (4, 6)
    cases = [(Bernoulli, {"logits": rng.standard_normal(shape)}),
             (Gaussian, {"mean": rng.standard_normal(shape), "logvar": rng.standard_normal(shape)}),
             (StudentT, {"loc": rng.standard_normal(shape), "log_scale": rng.standard_normal(shape),
                         "df": rng.standard_normal(shape)}),
             (Categorical(3), {"logits": rng.standard_normal(shape + (3,))})]
    for model, heads in cases:
        heads = {h: backend.asarray(v) for h, v in heads.items()}
        a = model.sample(**heads, rng=backend.default_rng(9))
        u = backend.default_rng(9).random(shape, dtype=np.float64)
        b = model.draw(**heads, u=u)
        assert np.array_equal(backend.to_numpy(a), backend.to_numpy(b)), model
        # u = 0 (which random() can return) still gives a finite draw.
        assert np.all(np.isfinite(backend.to_numpy(model.draw(**heads, u=0 * u))))
