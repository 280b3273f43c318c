"""Missing data: MIWAEImputer (SNIS and SIR imputation), the CSV format and `minivae impute`.

The masked bound's gradients are checked in test_model.py; here, what the imputer adds. Models
are tiny and trained briefly so that the whole file runs in seconds.
"""
import os

import numpy as np
import pytest

from helpers import read_rows, run_cli
from minivae import evaluate
from minivae import backend
from minivae.cli import csvio
from minivae.impute import MIWAEImputer, NotFittedError
from minivae.ops import logsumexp_weights


def low_rank_data(n=400, D=8, rank=2, noise=0.1, missing=0.3, seed=0):
    """X = Z W + noise with Z (n, rank), W (rank, D), and a copy with cells removed at random."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, D))
    X += noise * rng.standard_normal((n, D))
    X = 3.0 * X + 10.0                  # not standardised: the imputer must do it
    Xmiss = np.where(rng.random((n, D)) < missing, np.nan, X)
    return X, Xmiss


def small_imputer(**kw):
    args = dict(z_dim=2, hidden=(16,), epochs=40, batch_size=32, lr=3e-3, n_samples=200,
                seed=0)
    args.update(kw)
    return MIWAEImputer(**args)


@pytest.fixture(scope="module")
def fitted():
    X, Xmiss = low_rank_data()
    return X, Xmiss, small_imputer(likelihood="gaussian").fit(Xmiss)


# ---------------------------------------------------------------- imputation quality
@pytest.mark.parametrize("likelihood", ["gaussian", "student_t"])
def test_beats_mean_imputation_on_low_rank_data(likelihood, fitted):
    X, Xmiss = fitted[:2]
    imp = fitted[2] if likelihood == "gaussian" else small_imputer(likelihood=likelihood).fit(Xmiss)
    missing = np.isnan(Xmiss)
    mean_imputed = np.where(missing, np.nanmean(Xmiss, axis=0), Xmiss)
    mse_mean = np.mean((mean_imputed - X)[missing] ** 2)
    mse_miwae = np.mean((imp.transform(Xmiss) - X)[missing] ** 2)
    # Rank-2 structure in 8 features: the conditional mean is far better than the column mean.
    assert mse_miwae < 0.15 * mse_mean, (mse_miwae, mse_mean)
    assert imp.history_[-1] > imp.history_[0]          # training climbed the bound


def test_observed_entries_unchanged_bit_for_bit(fitted):
    imp = fitted[2]
    rng = np.random.default_rng(5)
    # Values whose every bit matters: thirds, subnormals, -0.0, huge and tiny magnitudes.
    X = 10.0 + rng.standard_normal((20, 8)) / 3
    X[0, :4] = [5e-324, -0.0, 1e300 / 1e290, np.nextafter(10.0, 11.0)]
    X[rng.random(X.shape) < 0.4] = np.nan
    X[1] = np.nan                                        # a row with nothing observed
    X[2] = 1.0 / 7                                       # a complete row
    observed = ~np.isnan(X)
    for out in (imp.transform(X), *imp.transform(X, n_imputations=3)):
        assert out.dtype == np.float64 and np.isfinite(out).all()
        assert out[observed].tobytes() == X[observed].tobytes()
    # Integers come back as the same numbers (as float64).
    Xi = np.arange(160).reshape(20, 8)
    assert np.array_equal(imp.transform(Xi), Xi)


def test_snis_in_passes_equals_one_pass(fitted):
    """The pass-by-pass SNIS estimate is exactly the all-L softmax-weighted mean."""
    X, Xmiss, imp = fitted
    x, m = imp._to_device(Xmiss[:5], ~np.isnan(Xmiss[:5]))
    L, model = 60, imp.model_
    d, dtype = model.z_dim, np.dtype(model.dtype)

    def draw():                    # ε of the 5 rows from their own host generators, as transform
        generators = [np.random.default_rng([0, i]) for i in range(5)]
        return lambda kk: backend.asarray(evaluate._noise(generators, kk, d, dtype))
    # Reference: all L samples at once, the normalized weights of logsumexp_weights.
    log_w, cache = model.log_weights(x, L, eps=draw()(L), mask=m)
    _, w = logsumexp_weights(log_w)
    want = (w[..., None] * model.likelihood.mean(**cache["heads"])).sum(axis=0)
    for per_pass in (L, 7, 1):
        # ε drawn as (k, d) blocks from each row's NumPy generator: the same as one (L, d) draw.
        pieces = evaluate._pieces(model, x, m, L, per_pass, draw(), check=False)
        got = imp._conditional_mean(pieces)                       # observed entries: x's own
        missing = ~backend.to_numpy(m)
        np.testing.assert_allclose(backend.to_numpy(got)[missing],
                                   backend.to_numpy(want)[missing], atol=1e-5)


@pytest.mark.parametrize("n_imputations", [None, 3])
def test_chunk_size_does_not_change_the_imputation(fitted, n_imputations):
    """However the rows and the L samples are split into passes, the same draws are made: a row
    gets the same imputation (to rounding), on either backend (a CuPy generator alone would
    hand out its noise by position in each pass's draw). And the same X, the same result."""
    X, Xmiss, imp = fitted
    rows = Xmiss[:30]
    results = []
    for chunk in (2 ** 16, 150, 7):      # all rows at once; 1 row x 150; 1 row x 7 samples
        imp.chunk_size = chunk
        try:
            results.append(imp.transform(rows, n_imputations=n_imputations))
        finally:
            imp.chunk_size = 2 ** 16
    missing = np.broadcast_to(np.isnan(rows), results[0].shape)
    assert np.array_equal(results[0], imp.transform(rows, n_imputations=n_imputations))
    for other in results[1:]:
        # float32 arithmetic, pieces combined in a different order: rounding only.
        np.testing.assert_allclose(other[missing], results[0][missing], rtol=1e-4,
                                   atol=1e-4 * np.nanstd(Xmiss))


# ---------------------------------------------------------------- multiple imputation
def test_multiple_imputation(fitted):
    X, Xmiss, imp = fitted
    missing = np.isnan(Xmiss)
    draws = imp.transform(Xmiss, n_imputations=4)
    assert draws.shape == (4,) + Xmiss.shape
    assert np.isfinite(draws).all()
    assert all(np.array_equal(d[~missing], Xmiss[~missing]) for d in draws)
    # Different data sets in their missing cells (they are draws, not one value repeated) ...
    assert all(np.all(draws[0][missing] != draws[i][missing]) for i in (1, 2, 3))
    # ... spread like the posterior predictive: about the single imputation's error, plus noise.
    single = imp.transform(Xmiss)
    spread = np.mean((draws - single)[:, missing] ** 2)
    err = np.mean((single - X)[missing] ** 2)
    assert 0.2 * err < spread < 5 * err, (spread, err)


def test_multiple_imputation_averages_to_the_conditional_mean(fitted):
    X, Xmiss, imp = fitted
    rows = Xmiss[:3]
    missing = np.isnan(rows)
    imp.n_samples = 2000
    try:
        draws = imp.transform(rows, n_imputations=3000)
        single = imp.transform(rows)
    finally:
        imp.n_samples = 200
    se = draws.std(axis=0) / np.sqrt(draws.shape[0])
    assert np.all(np.abs(draws.mean(axis=0) - single)[missing] < 5 * se[missing] + 0.05)


def test_seeded_runs_are_reproducible():
    _, Xmiss = low_rank_data(n=60)
    a = small_imputer(epochs=2).fit_transform(Xmiss, n_imputations=2)
    b = small_imputer(epochs=2).fit_transform(Xmiss, n_imputations=2)
    assert np.array_equal(a, b)


# ---------------------------------------------------------------- bad input
def test_bad_input(fitted):
    imp = fitted[2]
    X = np.ones((5, 8))
    with pytest.raises(ValueError, match="no observed value"):
        small_imputer().fit(np.where(np.arange(8) == 3, np.nan, X))
    with pytest.raises(ValueError, match="real numbers"):
        small_imputer().fit(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match="2-D"):
        small_imputer().fit(np.ones(5))
    with pytest.raises(ValueError, match="infinite"):
        small_imputer().fit(np.where(X > 0, np.inf, X))
    with pytest.raises(ValueError, match="8"):
        imp.transform(np.ones((5, 7)))
    with pytest.raises(NotFittedError):
        small_imputer().transform(X)
    with pytest.raises(ValueError, match="n_imputations"):
        imp.transform(X, n_imputations=0)
    for bad in (dict(k=0), dict(epochs=-1), dict(lr=0), dict(likelihood="bernoulli"),
                dict(n_samples=1.5), dict(activation="sigmoid")):
        with pytest.raises(ValueError):
            small_imputer(**bad).fit(X)


def test_constant_and_nearly_empty_columns_are_fine():
    _, Xmiss = low_rank_data(n=50)
    Xmiss[:, 0] = 4.0                        # constant: scale 1, not a division by zero
    Xmiss[1:, 1] = np.nan                    # one observed value
    out = small_imputer(epochs=2).fit_transform(Xmiss)
    assert np.isfinite(out).all() and np.all(out[:, 0] == 4.0)


# ---------------------------------------------------------------- the CSV format and the CLI
FAST = ["--z-dim", "2", "--hidden", "8", "--epochs", "3", "--n-samples", "20"]

CSV_TEXT = ('"radius, mean","he said ""hi""",count,plain\n'
            '1.5,2.25,3,4\n'
            ',0.5,,NaN\n'
            '2.5,nan,7,-1e-3\n'
            '3.5, 1.75 ,-2,\n'
            '\n'
            '0.125,NAN,10,8\n')


def test_csv_round_trip(tmp_path, capsys):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(CSV_TEXT, encoding="utf-8")
    code, out, err = run_cli(["impute", str(src), "--out", str(dst)] + FAST, capsys)
    assert code == 0, err
    assert "imputed 6 of 20 cells" in out
    table = csvio.read_csv(str(src))
    rows = read_rows(dst)
    assert rows[0] == ["radius, mean", 'he said "hi"', "count", "plain"]   # header, order
    assert len(rows) == 6 and all(len(r) == 4 for r in rows)
    for i, row in enumerate(rows[1:]):
        for j, cell in enumerate(row):
            if table.missing[i, j]:
                assert np.isfinite(float(cell))
                if j == 2:                                  # the integer column stays integer
                    assert cell.lstrip("-").isdigit(), cell
            else:
                assert cell == table.cells[i][j]            # observed cells verbatim
    assert table.integer == [False, False, True, False]
    # Read back, nothing is missing any more and the observed values are untouched.
    again = csvio.read_csv(str(dst))
    assert not again.missing.any()
    assert np.array_equal(again.values[~table.missing], table.values[~table.missing])


def test_keep_float_and_multiple_imputations(tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text(CSV_TEXT, encoding="utf-8")
    code, out, err = run_cli(["impute", str(src), "--out", str(tmp_path / "mi.csv"),
                              "--n-imputations", "3", "--keep-float"] + FAST, capsys)
    assert code == 0, err
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["in.csv", "mi_1.csv", "mi_2.csv", "mi_3.csv"]
    tables = [read_rows(tmp_path / f"mi_{m}.csv") for m in (1, 2, 3)]
    # Row 1 column 2 ("count") is missing: with --keep-float it is written as a float.
    assert "." in tables[0][2][2] or "e" in tables[0][2][2]
    assert tables[0][2][0] != tables[1][2][0]                 # the imputations differ
    assert all(t[1] == ["1.5", "2.25", "3", "4"] for t in tables)


BAD_INPUTS = {
    "non-numeric": ("a,b\n1,x\n2,3\n", "not numeric"),
    "empty column": ("a,b\n1,\n2,nan\n", "no observed value"),
    "ragged row": ("a,b\n1,2\n3\n", "2 columns"),
    "empty file": ("", "empty"),
    "header only": ("a,b\n", "no data rows"),
    "infinite": ("a,b\n1,inf\n2,3\n", "infinite"),
    "NUL byte": ("a,b\n1,2\x00\n", "line"),
    "not UTF-8": (b"a,b\n1,\xff\n", "UTF-8"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_csv_one_line_exit_2_nothing_written(case, tmp_path, capsys):
    text, message = BAD_INPUTS[case]
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    if isinstance(text, bytes):
        src.write_bytes(text)
    else:
        src.write_text(text, encoding="utf-8")
    code, out, err = run_cli(["impute", str(src), "--out", str(dst)] + FAST, capsys)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message in err, err
    assert sorted(os.listdir(tmp_path)) == ["in.csv"]          # no output, no temporary file


def test_cli_missing_input_and_bad_options(tmp_path, capsys):
    dst = tmp_path / "out.csv"
    for argv in (["impute", str(tmp_path / "nope.csv"), "--out", str(dst)],
                 ["impute", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "no" / "o.csv")],
                 ["impute", "x.csv", "--out", str(dst), "--hidden", "a,b"],
                 ["impute", "x.csv", "--out", str(dst), "--n-imputations", "0"]):
        code, out, err = run_cli(argv + FAST, capsys)
        assert code == 2 and err.count("\n") == 1, (argv, err)
    assert os.listdir(tmp_path) == []


def test_bench_impute_protocol_and_smoke(tmp_path, capsys):
    from minivae.data import breast_cancer_problem as make_problem
    xfull, xmiss, mask = make_problem()
    assert xfull.shape == (569, 30) and (~mask).sum() == 569 * 30 // 2
    np.testing.assert_allclose(xfull.mean(axis=0), 0, atol=1e-12)
    # The authors' pattern: np.random.seed(1234); np.random.choice(n*p, n*p//2, replace=False).
    legacy = np.random.RandomState(1234).choice(569 * 30, 569 * 15, replace=False)
    assert np.array_equal(np.flatnonzero(~mask.reshape(-1)), np.sort(legacy))
    code, out, err = run_cli(["bench-impute", "--epochs", "1", "--n-samples", "10",
                              "--skip-baselines", "--json", str(tmp_path / "r.json")], capsys)
    assert code == 0, err
    assert "| MIWAE (minivae" in out and "0.287" in out
