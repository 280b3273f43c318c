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
    assert np.isfinite(imp.transform(X, n_imputations=2)).all()


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
