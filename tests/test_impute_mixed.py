"""Tables mixing real and categorical columns: the Mixed observation model (one set of decoder
heads per group of columns), MIWAEImputer(categorical=...) and `minivae impute --categorical`.

- Exactness: the mixed model's log p(x|z) is the sum of the groups' log-likelihoods (checked
  against SciPy); its bound's gradient against finite differences (float64, relative error
  < 1e-6) with and without a missing-data mask, for every estimator's decoder gradient.
- Imputation: a categorical column that depends on the real ones is recovered far better
  than by its mode; the imputed category is the argmax of Σ_l w̃_l softmax(η_l) (recomputed
  here from the model's own weights).
- Errors: bad codes, unknown columns, conflicting options: one-line ValueError (API) or exit 2
  with one line and nothing written (CLI).
"""
import os

import numpy as np
import pytest
from scipy import stats

import minivae
from minivae import backend
from minivae.bound import ESTIMATORS
from minivae.evaluate import _noise as example_noise
from minivae.gradcheck import check_model, format_report, max_error
from minivae.impute import IMPUTE_STREAM, MIWAEImputer
from minivae.likelihoods import Mixed, make
from minivae.ops import logsumexp_weights

from helpers import randomize_params, read_rows, run_cli

TYPES = ["student_t", 3, "gaussian", 4, "student_t", 3, "bernoulli"]


def mixed_data(rng, n):
    """(n, 7) rows matching TYPES: reals, codes 0..2 in columns 1 and 5, 0..3 in 3, 0/1 in 6."""
    x = rng.standard_normal((n, 7))
    x[:, [1, 5]] = rng.integers(0, 3, (n, 2))
    x[:, 3] = rng.integers(0, 4, n)
    x[:, 6] = rng.integers(0, 2, n)
    return x


def host(a):
    return backend.to_numpy(a)


# ---------------------------------------------------------------------- the observation model
def test_heads_per_group_and_log_prob_is_the_sum_of_the_groups():
    model = minivae.IWAE(7, 3, hidden=(5,), likelihood="mixed", column_types=TYPES,
                         dtype="float64", seed=1)
    assert model.likelihood.heads == ("student_t.loc", "student_t.log_scale", "student_t.df",
                                      "categorical3.logits", "gaussian.mean",
                                      "gaussian.logvar", "categorical4.logits",
                                      "bernoulli.logits")
    assert model.params["decoder.categorical3.logits.W"].shape == (5, 2 * 3)
    assert model.params["decoder.student_t.loc.W"].shape == (5, 2)
    assert model.params["decoder.bernoulli.logits.b"].shape == (1,)
    randomize_params(model, seed=2)
    rng = np.random.default_rng(3)
    x, z = mixed_data(rng, 4), rng.standard_normal((2, 4, 3))
    heads = {h: host(v) for h, v in model.decode(z).items()}
    assert heads["categorical3.logits"].shape == (2, 4, 2, 3)
    log_phi = host(model.likelihood.log_prob(backend.asarray(x), **model.decode(z)))
    assert log_phi.shape == (2, 4, 7)
    # independent references, column by column
    nu = 3 + np.logaddexp(0, heads["student_t.df"])
    want = np.empty((2, 4, 7))
    want[..., [0, 4]] = stats.t.logpdf(x[:, [0, 4]], nu, heads["student_t.loc"],
                                       np.exp(heads["student_t.log_scale"]))
    want[..., 2] = stats.norm.logpdf(x[:, 2], heads["gaussian.mean"][..., 0],
                                     np.exp(0.5 * heads["gaussian.logvar"][..., 0]))
    for cols, head in (([1, 5], "categorical3.logits"), ([3], "categorical4.logits")):
        logp = heads[head] - np.logaddexp.reduce(heads[head], axis=-1, keepdims=True)
        codes = x[:, cols].astype(int)
        want[..., cols] = np.take_along_axis(
            logp, np.broadcast_to(codes[..., None], logp.shape[:-1] + (1,)), -1)[..., 0]
    p = 1 / (1 + np.exp(-heads["bernoulli.logits"][..., 0]))
    want[..., 6] = np.where(x[:, 6] == 1, np.log(p), np.log1p(-p))
    assert np.allclose(log_phi, want, rtol=1e-10, atol=1e-12)
    # and the bound sums them over the observed features
    mask = rng.random((4, 7)) < 0.6
    eps = rng.standard_normal((2, 4, 3))
    log_px, cache = model.forward(x, 2, eps=eps, mask=mask)
    ref = host(model.likelihood.log_prob(cache["x"], **cache["heads"]))
    assert np.allclose(host(log_px), (ref * mask).sum(-1), rtol=1e-12)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_mixed_gradients_against_finite_differences(masked, estimator):
    """float64, relative error < 1e-6: every parameter for IWAE (the bound's gradient), the
    decoder's for STL and DReG (their encoder gradients are other estimators)."""
    model = minivae.IWAE(7, 3, hidden=(5,), likelihood="mixed", column_types=TYPES,
                         dtype="float64", seed=1, estimator=estimator)
    randomize_params(model, seed=2)
    rng = np.random.default_rng(4)
    x = mixed_data(rng, 4)
    mask = rng.random((4, 7)) < 0.6 if masked else None
    if masked:
        x = np.where(mask, x, np.nan)          # missing entries may hold anything
    names = None if estimator == "iwae" else [n for n in model.params
                                              if n.startswith("decoder")]
    report = check_model(model, x, 5, eps=rng.standard_normal((5, 4, 3)), mask=mask,
                         names=names)
    assert max_error(report) < 1e-6, "\n" + format_report(report)


def test_a_mask_drops_a_column_from_its_group_head():
    """A column missing in every row gets no gradient in its slice of its group's head, while
    the same group's other column does."""
    model = minivae.IWAE(7, 2, hidden=(4,), likelihood="mixed", column_types=TYPES,
                         dtype="float64", seed=3)
    randomize_params(model, seed=4)
    rng = np.random.default_rng(5)
    x = mixed_data(rng, 3)
    mask = np.ones((3, 7), bool)
    mask[:, 5] = False                         # the second column of the categorical3 group
    _, g = model.bound_and_grads(x, 4, mask=mask)
    b = host(g["decoder.categorical3.logits.b"]).reshape(2, 3)     # (column in group, C)
    assert np.all(b[1] == 0) and np.abs(b[0]).max() > 1e-3


def test_draws_means_and_codes():
    lik = make("mixed", column_types=TYPES)
    model = minivae.IWAE(7, 2, hidden=(4,), likelihood="mixed", column_types=TYPES, seed=0)
    z = np.random.default_rng(6).standard_normal((50, 2))
    x = host(model.sample_observation(z))
    assert x.shape == (50, 7)
    assert set(np.unique(x[:, [1, 5]])) <= {0, 1, 2} and set(np.unique(x[:, 3])) <= set(range(4))
    assert set(np.unique(x[:, 6])) <= {0, 1}
    assert len(np.unique(x[:, 0])) == 50                       # real draws
    mean = host(model.observation_mean(z))
    assert mean.shape == (50, 7) and np.all((mean[:, 3] >= 0) & (mean[:, 3] <= 3))
    # draw is each column's own inverse-CDF draw: u near 1 gives the last code (and 0 for a
    # Bernoulli, x = [u < σ(ℓ)]), u near 0 the first (and 1)
    heads = model.decode(z)
    for u, code, bit in ((1 - 1e-12, 3, 0), (1e-12, 0, 1)):
        x = host(lik.draw(u=backend.asarray(np.full((50, 7), u)), **heads))
        assert np.all(x[:, 3] == code) and np.all(x[:, 6] == bit), (u, x[:, [3, 6]])
    # the configuration rebuilds the same model
    again = minivae.IWAE(**model.get_config())
    assert again.column_types == TYPES and set(again.params) == set(model.params)


@pytest.mark.parametrize("column_types,words", [
    ([], "non-empty"), ("student_t", "non-empty"), (["student_t", 1], "column_types\\[1\\]"),
    (["student_t", "categorical"], "column_types\\[1\\]"), ([2.0, 3], "column_types\\[0\\]"),
    ([True, 3], "column_types\\[0\\]")])
def test_bad_column_types(column_types, words):
    with pytest.raises(ValueError, match=words):
        Mixed(column_types)


def test_mixed_model_refuses():
    with pytest.raises(ValueError, match="column_types"):
        minivae.IWAE(3, 2, likelihood="mixed")
    with pytest.raises(ValueError, match="3 entries"):
        minivae.IWAE(4, 2, likelihood="mixed", column_types=["gaussian", 3, 2])
    with pytest.raises(ValueError, match="mixed likelihood only"):
        minivae.IWAE(2, 2, likelihood="gaussian", column_types=["gaussian", 3])
    with pytest.raises(ValueError, match="n_categories"):
        minivae.IWAE(2, 2, likelihood="mixed", column_types=["gaussian", 3], n_categories=3)
    model = minivae.IWAE(7, 2, hidden=(), likelihood="mixed", column_types=TYPES)
    x = mixed_data(np.random.default_rng(7), 3)
    for j, value, words in ((3, 4, "column 3 \\(categorical4\\) needs integer codes 0..3"),
                            (1, 0.5, "column 1"), (6, 2, "column 6 \\(bernoulli\\) needs 0 or 1")):
        bad = x.copy()
        bad[1, j] = value
        with pytest.raises(ValueError, match=words) as e:
            model.bound(bad, 2)
        assert "\n" not in str(e.value)
    mask = np.ones(x.shape, bool)
    mask[1, 3] = False
    bad = x.copy()
    bad[1, 3] = 17                              # a missing entry may hold anything
    assert np.isfinite(host(model.bound(bad, 2, mask=mask))).all()


# ---------------------------------------------------------------------- the imputer
def planted(n=500, seed=0):
    """Two real columns driven by one latent t, a 3-category column c = which third of t's
    range (so c is predictable from the real columns, not from its own marginal) and an
    independent 0/1 column; 20% of the cells missing completely at random."""
    rng = np.random.default_rng(seed)
    t = rng.standard_normal(n)
    X = np.stack([t + 0.1 * rng.standard_normal(n), np.digitize(t, [-0.6, 0.6]),
                  -t + 0.1 * rng.standard_normal(n), rng.random(n) < 0.5], 1).astype(float)
    miss = rng.random(X.shape) < 0.2
    return X, miss, np.where(miss, np.nan, X)


def fitted(Xm, **kw):
    args = dict(z_dim=2, hidden=(16, 16), epochs=30, batch_size=32, lr=3e-3, n_samples=200,
                categorical=[1, 3], seed=0)
    return MIWAEImputer(**dict(args, **kw)).fit(Xm)


def test_imputer_recovers_a_planted_dependency_better_than_the_mode():
    X, miss, Xm = planted()
    imp = fitted(Xm)
    assert imp.column_types_ == ["student_t", 3, "student_t", 2]
    assert imp.categorical_ == {1: 3, 3: 2}
    assert imp.model_.likelihood.name == "mixed"
    out = imp.transform(Xm)
    assert np.array_equal(out[~miss], X[~miss])                        # observed: untouched
    m = miss[:, 1]
    assert set(np.unique(out[m, 1])) <= {0, 1, 2}
    acc = (out[m, 1] == X[m, 1]).mean()
    mode = np.bincount(X[~miss[:, 1], 1].astype(int)).argmax()
    acc_mode = (X[m, 1] == mode).mean()
    assert acc > acc_mode + 0.3 and acc > 0.8, (acc, acc_mode)
    # the real columns are imputed as before: far better than their observed mean
    r = miss[:, 0]
    rmse = np.sqrt(((out[r, 0] - X[r, 0]) ** 2).mean())
    rmse_mean = np.sqrt(((np.nanmean(Xm[:, 0]) - X[r, 0]) ** 2).mean())
    assert rmse < 0.5 * rmse_mean, (rmse, rmse_mean)
    # multiple imputations: valid codes in the categorical columns, observed cells kept
    draws = imp.transform(Xm, n_imputations=3)
    assert draws.shape == (3,) + X.shape and np.all(draws[:, ~miss] == X[~miss])
    assert set(np.unique(draws[:, :, 1])) <= {0, 1, 2} and set(np.unique(draws[:, :, 3])) <= {0, 1}


def test_imputed_category_is_the_argmax_of_the_weighted_predictive():
    """Recompute, for a few rows, Σ_l w̃_l softmax(η_l) from the model with the imputer's own
    noise (row i's generator) and take its argmax: the imputer must agree on every cell."""
    X, miss, Xm = planted(n=200, seed=1)
    imp = fitted(Xm, epochs=5, n_samples=64, dtype="float64")
    out = imp.transform(Xm)
    rows = np.flatnonzero(miss[:, 1])[:8]
    model, checked = imp.model_, 0
    for i in rows:
        g = np.random.default_rng([imp.seed, IMPUTE_STREAM, int(i)])
        eps = example_noise([g], imp.n_samples, imp.z_dim, np.float64)
        x, m = imp._to_device(Xm[i:i + 1], ~miss[i:i + 1])
        log_w, cache = model.log_weights(x, imp.n_samples, eps=backend.asarray(eps), mask=m)
        _, w = logsumexp_weights(log_w)
        logits = host(cache["heads"]["categorical3.logits"])[:, 0, 0]        # (L, C)
        probs = np.exp(logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True))
        predictive = (host(w)[:, 0, None] * probs).sum(0)
        assert out[i, 1] == predictive.argmax(), (i, predictive)
        checked += 1
    assert checked == 8


@pytest.mark.parametrize("kwargs,X,words", [
    (dict(categorical=[1]), [[0.5, 1.5], [1.0, 0.0]],
     "column 1 is categorical and needs non-negative integer codes in its observed cells, "
     "got 1.5"),
    (dict(categorical=[1]), [[0.5, -1], [1.0, 0.0]], "got -1"),
    (dict(categorical={1: 2}), [[0.5, 2], [1.0, 0.0]], "integer codes 0..1"),
    (dict(categorical=[2]), [[0.5, 1], [1.0, 0.0]], "column 2 does not exist"),
])
def test_imputer_refuses_bad_codes_and_columns(kwargs, X, words):
    with pytest.raises(ValueError, match=words) as e:
        MIWAEImputer(epochs=1, **kwargs).fit(np.array(X, float))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kwargs,words", [
    (dict(categorical=[0], likelihood="categorical"), "already makes every column"),
    (dict(categorical=[0, 0]), "twice"), (dict(categorical={0: 1}), "at least 2"),
    (dict(categorical="0"), "list of column indices"),
    (dict(categorical=[-1]), "categorical column")])
def test_imputer_refuses_bad_specs(kwargs, words):
    with pytest.raises(ValueError, match=words):
        MIWAEImputer(**kwargs)


def test_transform_checks_codes_against_the_fitted_categories():
    X, miss, Xm = planted(n=100)
    imp = fitted(Xm, epochs=1)
    bad = Xm.copy()
    bad[0, 1] = 3                              # C = 3 was learnt: codes 0..2
    with pytest.raises(ValueError, match="integer codes 0..2"):
        imp.transform(bad)


# ---------------------------------------------------------------------- the command line
FAST = ["--z-dim", "2", "--hidden", "8", "--epochs", "3", "--n-samples", "20"]


def write_table(path, X, header=("width", "colour", "height", "flag")):
    lines = [",".join(header)]
    for row in X:
        lines.append(",".join("" if np.isnan(v) else str(int(v)) if v == int(v)
                              else repr(float(v)) for v in row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_cli_mixed_table(tmp_path, capsys):
    X, miss, Xm = planted(n=60)
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    write_table(src, Xm)
    for spec in ("colour,3", "1,flag"):            # header names or 0-based indices
        code, out, err = run_cli(["impute", str(src), "--out", str(dst), "--categorical", spec,
                                  "--keep-float"] + FAST, capsys)
        assert code == 0, err
        rows = read_rows(dst)
        assert rows[0] == ["width", "colour", "height", "flag"]
        for i, row in enumerate(rows[1:]):
            assert row[1] in {"0", "1", "2"} and row[3] in {"0", "1"}    # codes, even with
            if miss[i, 0]:                                              # --keep-float
                assert np.isfinite(float(row[0])) and "." in row[0]
            else:
                assert float(row[0]) == X[i, 0]


@pytest.mark.parametrize("bad_cell,extra,words", [
    ("1.5", ["--categorical", "colour"], "column 'colour' is categorical and needs non-negative "
                                         "integer codes"),
    ("-2", ["--categorical", "colour"], "got -2"),
    ("1", ["--categorical", "size"], "no column named 'size'"),
    ("red", ["--categorical", "colour"], "a categorical column is coded as integers"),
    ("1", ["--categorical", "4"], "column index 4 is out of range"),
    ("1", ["--categorical", "colour,1"], "twice"),
    ("1", ["--categorical", "colour", "--likelihood", "categorical"], "already makes every"),
])
def test_cli_refuses_bad_codes_and_columns(tmp_path, capsys, bad_cell, extra, words):
    X, miss, Xm = planted(n=20)
    Xm[2, 1] = np.nan
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    write_table(src, Xm)
    lines = src.read_text().splitlines()
    cells = lines[1].split(",")
    cells[1] = bad_cell
    lines[1] = ",".join(cells)
    src.write_text("\n".join(lines) + "\n")
    code, out, err = run_cli(["impute", str(src), "--out", str(dst)] + extra + FAST, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert words in err, err
    assert not os.path.exists(dst) and os.listdir(tmp_path) == ["in.csv"]
