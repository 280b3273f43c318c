"""The SNR experiment (Rainforth et al. 2018): minivae.snr.gradient_snr and `minivae snr`,
and the CLI's --estimator / --likelihood categorical --levels options."""
import json
import os

import numpy as np
import pytest

import minivae
from minivae import snr
from minivae.bound import ESTIMATORS

from helpers import randomize_params, run_cli
from train_helpers import TINY_ARGS, write_mnist_dir


def test_rows_and_the_shared_decoder_gradient():
    model = minivae.IWAE(8, 2, hidden=(6,), dtype="float64", seed=0)
    randomize_params(model, seed=1, scale=0.3)
    x = (np.random.default_rng(2).random((5, 8)) < 0.5).astype(float)
    rows = snr.gradient_snr(model, x, ks=(1, 4), reps=6, seed=3)
    assert [(r["k"], r["estimator"]) for r in rows] == [(k, e) for k in (1, 4)
                                                        for e in ESTIMATORS]
    by = {(r["k"], r["estimator"]): r for r in rows}
    for k in (1, 4):
        # The same ε for every estimator and the same decoder gradient: identical SNRs.
        assert by[k, "iwae"]["decoder_snr"] == by[k, "stl"]["decoder_snr"] == \
            by[k, "dreg"]["decoder_snr"]
        assert by[k, "iwae"]["encoder_snr"] != by[k, "stl"]["encoder_snr"]
    assert by[1, "stl"]["encoder_snr"] == by[1, "dreg"]["encoder_snr"]    # K = 1: DReG = STL
    assert all(r["encoder_snr"] > 0 and np.isfinite(r["encoder_snr"]) for r in rows)
    assert "enc dreg" in snr.format_table(rows)
    with pytest.raises(ValueError, match="reps"):
        snr.gradient_snr(model, x, reps=1)
    with pytest.raises(ValueError, match="estimator"):
        snr.gradient_snr(model, x, estimators=("rws",), reps=2)


def test_snr_from_a_known_gradient():
    """|mean|/sd matches a direct computation from the draws (one K, one estimator)."""
    model = minivae.IWAE(4, 2, hidden=(), dtype="float64", seed=0)
    randomize_params(model, seed=4, scale=0.3)
    x = (np.random.default_rng(5).random((3, 4)) < 0.5).astype(float)
    rows = snr.gradient_snr(model, x, ks=(3,), estimators=("iwae",), reps=5, seed=6)
    rng = np.random.default_rng([6, 3])
    draws = []
    for _ in range(5):
        eps = rng.standard_normal((3, 3, 2))
        _, g = model.bound_and_grads(x, 3, eps=eps)
        draws.append(np.concatenate([minivae.backend.to_numpy(g[n]).ravel()
                                     for n in model.params if n.startswith("decoder")]))
    draws = np.array(draws)
    sd = draws.std(0, ddof=1)
    want = (np.abs(draws.mean(0))[sd > 0] / sd[sd > 0]).mean()
    assert np.isclose(rows[0]["decoder_snr"], want, rtol=1e-9)
    assert np.isclose(rows[0]["decoder_snr_median"],
                      np.median(np.abs(draws.mean(0))[sd > 0] / sd[sd > 0]), rtol=1e-9)
    # pooled: sqrt((Σ mean² - Σ var / reps) / Σ var), Tucker et al.'s summary, bias-corrected
    var = draws.var(0, ddof=1)
    pooled = np.sqrt(max((draws.mean(0) ** 2 - var / 5).sum(), 0) / var.sum())
    assert np.isclose(rows[0]["decoder_snr_pooled"], pooled, rtol=1e-9)
    assert 1 <= rows[0]["ess"] <= 3


def test_noise_floor_is_the_snr_of_a_zero_gradient():
    """A parameter whose gradient has mean 0: its |mean| / sd over reps draws averages about
    √(2 / (π reps)) (checked on 4000 simulated parameters, within 5%)."""
    draws = np.random.default_rng(0).standard_normal((50, 4000))
    ratio = np.abs(draws.mean(0)) / draws.std(0, ddof=1)
    assert abs(ratio.mean() / snr.noise_floor(50) - 1) < 0.05


def test_gaussian_toy_is_rainforths_model():
    """At perturbation 0 the decoder is the true model (x ~ N(μ, 2I)) and q(z|x) has the exact
    posterior's mean with variance ⅔ instead of ½, so E_q[log w] = log p(x) - KL with
    KL = (D/2)(4/3 - 1 - log 4/3) exactly: checked over 20,000 draws within 4 standard errors."""
    from scipy.stats import multivariate_normal
    model, x = snr.gaussian_toy(perturbation=0.0, n=2, seed=3)
    mu = minivae.backend.to_numpy(model.params["decoder.mean.b"])
    log_px = multivariate_normal(mu, 2 * np.eye(20)).logpdf(x)
    log_w, _ = model.log_weights(x, 20000)
    log_w = minivae.backend.to_numpy(log_w)
    kl = 10 * (4 / 3 - 1 - np.log(4 / 3))
    se = log_w.std(0) / np.sqrt(len(log_w))
    assert np.all(np.abs(log_w.mean(0) - (log_px - kl)) < 4 * se), (log_w.mean(0), log_px - kl)
    # perturbed: every parameter moved, by about the perturbation
    moved, _ = snr.gaussian_toy(perturbation=0.01, n=2, seed=3)
    diff = np.concatenate([(minivae.backend.to_numpy(moved.params[n])
                            - minivae.backend.to_numpy(model.params[n])).ravel()
                           for n in model.params])
    assert 0.008 < diff.std() < 0.012
    with pytest.raises(ValueError, match="perturbation"):
        snr.gaussian_toy(perturbation=-1)


def test_toy_reproduces_tucker_et_al():
    """Near the optimum of the toy model, where the weights are spread (ESS grows with K):
    DReG's encoder SNR rises with K, IWAE's falls, the decoder's rises (200 draws)."""
    model, x = snr.gaussian_toy()
    rows = snr.gradient_snr(model, x, ks=(1, 50, 500), reps=200, seed=0)
    by = {(r["k"], r["estimator"]): r for r in rows}
    assert np.isclose(by[1, "iwae"]["ess"], 1) and by[500, "iwae"]["ess"] > 50
    dreg = [by[k, "dreg"]["encoder_snr"] for k in (1, 50, 500)]
    iwae = [by[k, "iwae"]["encoder_snr"] for k in (1, 50, 500)]
    dec = [by[k, "iwae"]["decoder_snr"] for k in (1, 50, 500)]
    assert dreg[0] < dreg[1] < dreg[2] and dreg[2] > 4 * dreg[0], dreg
    assert iwae[2] < iwae[0] / 1.5, iwae
    assert dec[0] < dec[1] < dec[2], dec
    pooled = [by[k, "dreg"]["encoder_snr_pooled"] for k in (1, 50, 500)]
    assert pooled[0] < pooled[1] < pooled[2], pooled
    assert "pooled SNR" in snr.format_table(rows, 200)


def test_cli_train_with_estimator_then_snr(tmp_path, capsys):
    data = write_mnist_dir(tmp_path / "mnist")
    run = str(tmp_path / "run")
    code, out, err = run_cli(["train", "--out", run, "--data-dir", data, "--epochs", "1",
                              "--estimator", "dreg"] + TINY_ARGS, capsys)
    assert code == 0, err
    with open(os.path.join(run, "config.json")) as f:
        assert json.load(f)["estimator"] == "dreg"
    code, out, err = run_cli(["snr", run, "--k", "1,3", "--reps", "3", "--batch", "4",
                              "--out", str(tmp_path / "fig")], capsys)
    assert code == 0, err
    assert "enc iwae" in out and os.path.exists(tmp_path / "fig" / "snr.png")
    with open(tmp_path / "fig" / "snr.json") as f:
        saved = json.load(f)
    assert len(saved["rows"]) == 6 and saved["widen_q"] is None
    # --widen-q: q's variances doubled first; a wider q spreads the weights (higher ESS at K = 3)
    code, out, err = run_cli(["snr", run, "--k", "1,3", "--reps", "3", "--batch", "4",
                              "--widen-q", "2", "--out", str(tmp_path / "wide")], capsys)
    assert code == 0, err
    with open(tmp_path / "wide" / "snr.json") as f:
        wide = json.load(f)
    assert wide["widen_q"] == 2 and "x2" in out
    assert wide["rows"][-1]["ess"] != saved["rows"][-1]["ess"]
    code, out, err = run_cli(["snr", "--toy", "--widen-q", "2", "--out", str(tmp_path / "b")],
                             capsys)
    assert code == 2 and "--q-variance" in err and not os.path.exists(tmp_path / "b")
    code, out, err = run_cli(["snr", run, "--k", "1,0"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--k" in err and "positive integer" in err        # as every --k says it


def test_widen_encoder_adds_log_f_to_the_log_variance():
    model = minivae.IWAE(6, 2, hidden=(4,), dtype="float64", seed=0)
    randomize_params(model, seed=1)
    x = (np.random.default_rng(2).random((3, 6)) < 0.5).astype(float)
    mean0, logvar0 = (minivae.backend.to_numpy(a) for a in model.encode(x))
    snr.widen_encoder(model, 3.0)
    mean1, logvar1 = (minivae.backend.to_numpy(a) for a in model.encode(x))
    assert np.array_equal(mean0, mean1) and np.allclose(logvar1 - logvar0, np.log(3.0))
    with pytest.raises(ValueError, match="factor"):
        snr.widen_encoder(model, 0)


def test_pareto_khat_recovers_a_known_tail():
    """Weights with a Pareto tail of index k (w = U^(-k)): with 5,000 weights a k̂ has a standard
    error of about (1 + k)/√212 ≈ 0.1, so the mean of 20 columns' k̂ is within 0.08 of k (about
    3.5 standard errors), for k = 0.2, 0.5, 1; bounded weights (uniform) give k̂ < 0."""
    rng = np.random.default_rng(0)
    for k in (0.2, 0.5, 1.0):
        khat = snr.pareto_khat(-k * np.log(rng.random((5000, 20))))
        assert abs(khat.mean() - k) < 0.08, (k, khat)
    assert np.all(snr.pareto_khat(np.log(rng.random((5000, 3)))) < 0)
    with pytest.raises(ValueError, match="25"):
        snr.pareto_khat(np.zeros((10, 2)))


def test_toy_with_heavy_tailed_weights_dreg_does_not_rise():
    """q(z|x) narrower than the posterior (variance ⅓ against ½): the weights' fourth moment is
    infinite (k = ⅓ > ¼) and DReG's encoder SNR falls from K = 1 to 500 even though the ESS
    grows; with q wider (⅔, bounded weights) it rises. k̂ tells the two apart (300 draws)."""
    heavy, x = snr.gaussian_toy(q_variance=1 / 3)
    light, _ = snr.gaussian_toy()
    rows = {name: {(r["k"], r["estimator"]): r for r in
                   snr.gradient_snr(m, x, ks=(1, 500), estimators=("dreg",), reps=300, seed=0)}
            for name, m in (("heavy", heavy), ("light", light))}
    h, l = rows["heavy"], rows["light"]
    assert h[500, "dreg"]["encoder_snr"] < 0.8 * h[1, "dreg"]["encoder_snr"], h
    assert l[500, "dreg"]["encoder_snr"] > 4 * l[1, "dreg"]["encoder_snr"], l
    assert h[500, "dreg"]["ess"] > 20
    assert h[500, "dreg"]["khat"] > 0.25 > l[500, "dreg"]["khat"]
    assert h[1, "dreg"]["khat"] is None                     # K < KHAT_MIN_K: not estimated


def test_cli_snr_toy(tmp_path, capsys):
    out = tmp_path / "toy"
    code, stdout, err = run_cli(["snr", "--toy", "--k", "1,4", "--reps", "3", "--batch", "2",
                                 "--out", str(out)], capsys)
    assert code == 0, err
    assert "Gaussian toy" in stdout and "ESS" in stdout and os.path.exists(out / "snr.png")
    with open(out / "snr.json") as f:
        saved = json.load(f)
    assert saved["toy"] and saved["perturbation"] == 0.01 and len(saved["rows"]) == 6
    assert np.isclose(saved["q_variance"], 2 / 3)
    for bad in (["--toy"], ["--toy", "somewhere", "--out", str(tmp_path / "b")],
                ["--toy", "--perturbation", "-1", "--out", str(tmp_path / "b")],
                ["--toy", "--q-variance", "0", "--out", str(tmp_path / "b")],
                ["--toy", "--estimators", "rws", "--out", str(tmp_path / "b")],
                ["--out", str(tmp_path / "b")]):
        code, stdout, err = run_cli(["snr"] + bad, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, (bad, err)
        assert not os.path.exists(tmp_path / "b")


def test_cli_categorical_levels(tmp_path, capsys):
    data = write_mnist_dir(tmp_path / "mnist")
    run = str(tmp_path / "cat")
    code, out, err = run_cli(["train", "--out", run, "--data-dir", data, "--epochs", "1",
                              "--likelihood", "categorical", "--levels", "3"] + TINY_ARGS,
                             capsys)
    assert code == 0, err
    model = minivae.checkpoint.load(os.path.join(run, "checkpoint.npz")).model()
    assert model.likelihood.n_categories == 3
    assert model.params["decoder.logits.W"].shape == (16, 784 * 3)
    code, out, err = run_cli(["sample", run, "--draws", "--n", "4", "--n-recon", "2"], capsys)
    assert code == 0, err
    for bad in (["--likelihood", "categorical"], ["--levels", "4"],
                ["--likelihood", "categorical", "--levels", "1"],
                ["--estimator", "stl", "--analytic-kl"]):
        code, out, err = run_cli(["train", "--out", str(tmp_path / "x"), "--data-dir", data]
                                 + TINY_ARGS + bad, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, (bad, err)
        assert not os.path.exists(tmp_path / "x" / "checkpoint.npz")
