"""`minivae diffusion train/sample/evaluate`: the run-directory conventions of `minivae train`
(checkpoint after every epoch, exact resume, NaN stop with the last good checkpoint, one-line
errors with nothing written) for the diffusion model, on tiny runs."""
import json
import os

import numpy as np
import pytest

from minivae import checkpoint
from minivae.cli import runs
from minivae.diffusion import DDPM
from minivae.diffusion.config import DiffusionConfig
from minivae.diffusion.training import DiffusionRun
from minivae.train import Diverged

from helpers import run_cli

TINY = ["--data", "ring", "--n-train", "300", "--T", "12", "--hidden", "16", "--time-dim", "4",
        "--batch-size", "64", "--eval-n", "50", "--dtype", "float64"]


def tiny(epochs, **kw):
    return DiffusionConfig(**dict(dict(data="ring", n_train=300, T=12, hidden=(16,), time_dim=4,
                                       batch_size=64, eval_n=50, dtype="float64", epochs=epochs),
                                  **kw))


def params(run_dir):
    ckpt = checkpoint.load(os.path.join(run_dir, "checkpoint.npz"))
    return ckpt, {k: v for k, v in ckpt.arrays.items() if not k.startswith("meta")}


@pytest.mark.parametrize("model", [[], ["--denoiser", "resmlp", "--ema-decay", "0.9"]])
def test_train_writes_a_run_and_resumes_bit_for_bit(tmp_path, capsys, model):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    code, out, err = run_cli(["diffusion", "train", *TINY, *model, "--epochs", "3", "--out", a,
                              "--no-plots"], capsys)
    assert code == 0, err
    assert "epoch 3/3" in out and "train L_simple" in out and "test bound" in out
    assert set(os.listdir(a)) >= {"checkpoint.npz", "metrics.jsonl", "config.json"}
    rows = runs.read_metrics(os.path.join(a, "metrics.jsonl"))
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(np.isfinite(r["train_bound"]) and np.isfinite(r["test_bound"]) for r in rows)
    assert json.load(open(os.path.join(a, "config.json")))["T"] == 12
    # 1 epoch, then resume to 3: the same state as 3 epochs at once
    assert run_cli(["diffusion", "train", *TINY, *model, "--epochs", "1", "--out", b,
                    "--quiet"], capsys)[0] == 0
    code, out, err = run_cli(["diffusion", "train", "--out", b, "--resume", "--epochs", "3",
                              "--quiet"], capsys)
    assert code == 0, err
    ca, pa = params(a)
    cb, pb = params(b)
    assert ca.epoch == cb.epoch == 3 and set(pa) == set(pb)
    # the moving average is saved beside the weights (and resumes with them), and differs
    ema = {k[len("ema/"):]: v for k, v in pa.items() if k.startswith("ema/")}
    assert set(ema) == ({k[len("params/"):] for k in pa if k.startswith("params/")}
                        if model else set())
    assert all(not np.array_equal(ema[n], pa[f"params/{n}"]) for n in ema)
    for k in pa:
        assert np.array_equal(pa[k], pb[k]), k
    assert ca.meta["rng"] == cb.meta["rng"]


def test_resume_refuses_to_change_the_model(tmp_path, capsys):
    a = str(tmp_path / "a")
    run_cli(["diffusion", "train", *TINY, "--epochs", "1", "--out", a, "--quiet"], capsys)
    before = open(os.path.join(a, "checkpoint.npz"), "rb").read()
    code, _, err = run_cli(["diffusion", "train", "--out", a, "--resume", "--T", "50"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--T" in err
    assert open(os.path.join(a, "checkpoint.npz"), "rb").read() == before


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "x"
    for argv in (["--T", "1"], ["--time-dim", "5"], ["--lr-decay", "2"], ["--data", "cifar"],
                 ["--hidden", "0"], ["--downsample", "3"], ["--ema-decay", "1"],
                 ["--denoiser", "resmlp", "--hidden", "8,4"]):
        code, _, err = run_cli(["diffusion", "train", *argv, "--out", str(out)], capsys)
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
        assert not out.exists()


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    ref, run_dir = str(tmp_path / "ref"), str(tmp_path / "run")
    runs.train(tiny(1), ref, quiet=True, plots=False, run_class=DiffusionRun)
    real = DDPM.objective_and_grads
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        value, grads = real(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] > 6:                     # the 5 batches of epoch 1 are fine
            value = value * np.nan
            grads = {n: g * np.nan for n, g in grads.items()}
        return value, grads

    monkeypatch.setattr(DDPM, "objective_and_grads", poisoned)
    with pytest.raises(Diverged) as e:
        runs.train(tiny(3), run_dir, quiet=True, plots=False, run_class=DiffusionRun)
    msg = str(e.value)
    assert "nan" in msg and "epoch 2" in msg and "last good state (epoch 1)" in msg
    _, p_ref = params(ref)
    ckpt, p_run = params(run_dir)
    assert ckpt.epoch == 1
    for k in p_ref:
        assert np.array_equal(p_ref[k], p_run[k]), k


def test_sample_and_evaluate(tmp_path, capsys):
    a = str(tmp_path / "a")
    run_cli(["diffusion", "train", *TINY, "--epochs", "1", "--out", a, "--quiet"], capsys)
    code, out, err = run_cli(["diffusion", "sample", a, "--n", "40", "--sampler", "ddim",
                              "--steps", "5"], capsys)
    assert code == 0, err
    x = np.load(os.path.join(a, "samples_ddim.npy"))
    assert x.shape == (40, 2) and np.all(np.isfinite(x))
    assert os.path.getsize(os.path.join(a, "samples_ddim.png")) > 0
    code, out, err = run_cli(["diffusion", "evaluate", a, "--n", "30", "--quiet"], capsys)
    assert code == 0, err
    result = json.load(open(os.path.join(a, "evaluation.json")))
    assert result["n"] == 30 and "exact log p(x)" in out
    # the bound of a model trained one epoch is far below the exact log-density (Gibbs)
    assert result["gap"] < 0
    code, _, err = run_cli(["diffusion", "sample", a, "--sampler", "ddim", "--steps", "99"],
                           capsys)
    assert code == 2 and "exceeds" in err
    # the toys are unbounded: --no-clip is their default, --clip a one-line error
    code, _, err = run_cli(["diffusion", "sample", a, "--n", "40", "--sampler", "ddim",
                            "--steps", "5", "--no-clip"], capsys)
    assert code == 0, err
    assert np.array_equal(np.load(os.path.join(a, "samples_ddim.npy")), x)
    code, _, err = run_cli(["diffusion", "sample", a, "--clip"], capsys)
    assert code == 2 and "unbounded" in err and "Traceback" not in err


def test_a_vae_run_is_not_a_diffusion_run(tmp_path, capsys):
    """Each command refuses the other kind of run directory with one line, exit code 2."""
    a = str(tmp_path / "a")
    run_cli(["diffusion", "train", *TINY, "--epochs", "1", "--out", a, "--quiet"], capsys)
    code, _, err = run_cli(["evaluate", a], capsys)
    assert code == 2 and "diffusion" in err and err.count("\n") == 1
    code, _, err = run_cli(["train", "--out", a, "--resume"], capsys)
    assert code == 2 and "diffusion" in err and err.count("\n") == 1
