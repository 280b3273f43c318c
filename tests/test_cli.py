"""The train / evaluate / sample / plot / reproduce commands, run as a user runs them."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minivae import data
from minivae.cli import main
from minivae.model import IWAE
from train_helpers import mnist_dir  # noqa: F401 (a fixture)
from train_helpers import TINY_ARGS, read_params, train_tiny, write_mnist_dir

COMMANDS = ("train", "evaluate", "sample", "plot", "reproduce")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_dir):
    """A run of 2 epochs with z_dim = 2 (so that sample draws the manifold)."""
    return train_tiny(tmp_path_factory, mnist_dir, "z2", 2)


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of ``minivae ARGV``."""
    try:
        code = main(list(argv))
    except SystemExit as e:           # argparse exits by itself
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *words):
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "error" in err
    for w in words:
        assert w in err, err


@pytest.mark.parametrize("command", COMMANDS)
def test_help(capsys, command):
    code, out, _ = run_cli(capsys, command, "--help")
    assert code == 0 and "usage: minivae " + command in out


def test_python_dash_m_and_no_traceback(tmp_path):
    """The real process: exit code 2 and one line on stderr for a bad option value."""
    p = subprocess.run([sys.executable, "-m", "minivae", "train", "--k", "0", "--out",
                        str(tmp_path / "r")], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "--k" in p.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, words", [
    (["--k", "0"], ["--k", "positive integer"]),
    (["--k", "two"], ["--k"]),
    (["--likelihood", "poisson"], ["poisson"]),
    (["--schedule", "cosine"], ["cosine"]),
    (["--hidden", "200,abc"], ["--hidden"]),
    (["--lr", "-1"], ["--lr"]),
    (["--binarize", "none"], ["binary data"]),
    (["--schedule", "burda", "--epochs", "4000"], ["3280"]),
    (["--data", "mnist", "--data-dir", "/nonexistent/mnist"], ["/nonexistent/mnist"]),
])
def test_train_bad_input(capsys, tmp_path, argv, words):
    out_dir = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--out", str(out_dir), *argv)
    assert_one_line_error(code, err, *words)
    assert not out_dir.exists()


def test_train_corrupt_data_file(capsys, tmp_path, mnist_dir):
    bad = write_mnist_dir(tmp_path / "bad")
    path = os.path.join(bad, "train-images-idx3-ubyte.gz")
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[: len(raw) // 2])
    code, _, err = run_cli(capsys, "train", "--out", str(tmp_path / "run"), "--data-dir", bad,
                           *TINY_ARGS)
    assert_one_line_error(code, err, "train-images-idx3-ubyte.gz")
    assert not (tmp_path / "run").exists()


def test_train_data_outside_unit_interval(capsys, tmp_path, mnist_dir, monkeypatch):
    real = data.load_dataset

    def too_bright(*args, **kwargs):
        ds = real(*args, **kwargs)
        return data.Dataset(ds.name, ds.x_train * 2, ds.y_train, ds.x_test, ds.y_test)

    monkeypatch.setattr(data, "load_dataset", too_bright)
    code, _, err = run_cli(capsys, "train", "--out", str(tmp_path / "run"), "--data-dir",
                           mnist_dir, *TINY_ARGS)
    assert_one_line_error(code, err, "outside [0, 1]")
    assert not (tmp_path / "run").exists()


def test_train_refuses_existing_run_then_resume_and_force(capsys, tmp_path, mnist_dir):
    run_dir = str(tmp_path / "run")
    base = ["train", "--out", run_dir, "--data-dir", mnist_dir] + TINY_ARGS
    assert run_cli(capsys, *base, "--epochs", "1")[0] == 0
    before = open(os.path.join(run_dir, "checkpoint.npz"), "rb").read()
    code, _, err = run_cli(capsys, *base, "--epochs", "1")
    assert_one_line_error(code, err, "already holds a run", "--resume", "--force")
    assert open(os.path.join(run_dir, "checkpoint.npz"), "rb").read() == before
    code, _, err = run_cli(capsys, "train", "--out", run_dir, "--resume", "--k", "7")
    assert_one_line_error(code, err, "--k 7 differs")
    assert run_cli(capsys, "train", "--out", run_dir, "--resume", "--epochs", "2",
                   "--quiet")[0] == 0
    assert read_params(run_dir)[1] == 2
    code, out, _ = run_cli(capsys, "train", "--out", run_dir, "--resume")
    assert code == 0 and "already trained for 2 epochs" in out
    assert run_cli(capsys, *base, "--epochs", "1", "--force")[0] == 0
    assert read_params(run_dir)[1] == 1
    code, _, err = run_cli(capsys, "train", "--out", str(tmp_path / "none"), "--resume")
    assert_one_line_error(code, err, "cannot resume")


def test_train_prints_epochs_without_a_terminal(capsys, tmp_path, mnist_dir):
    args = [a for a in TINY_ARGS if a != "--quiet"]
    code, out, err = run_cli(capsys, "train", "--out", str(tmp_path / "run"), "--data-dir",
                             mnist_dir, "--epochs", "2", *args)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("training IWAE(") and lines[-1].startswith("done:")
    assert [ln.split()[1] for ln in lines if ln.startswith("epoch")] == ["1/2", "2/2"]
    assert err == ""                  # no progress bar when stderr is not a terminal


def test_train_diverges_with_exit_code_1(capsys, tmp_path, mnist_dir, monkeypatch):
    real = IWAE.bound_and_grads

    def nan_bound(self, *args, **kwargs):
        value, grads = real(self, *args, **kwargs)
        return value * np.inf, grads

    monkeypatch.setattr(IWAE, "bound_and_grads", nan_bound)
    run_dir = str(tmp_path / "run")
    code, _, err = run_cli(capsys, "train", "--out", run_dir, "--data-dir", mnist_dir,
                           *TINY_ARGS)
    assert code == 1 and err.count("\n") == 1
    assert "training stopped" in err and "-inf" in err and "--resume --lr" in err
    assert read_params(run_dir)[1] == 0       # the initial checkpoint, still loadable


def test_evaluate(capsys, trained):
    code, out, _ = run_cli(capsys, "evaluate", trained, "--k", "50", "--n-test", "10",
                           "--chunk", "120")
    assert code == 0
    assert "log-likelihood L_50" in out and "active units" in out
    r = json.load(open(os.path.join(trained, "evaluation.json")))
    assert r["k"] == 50 and r["n_test"] == 10 and r["epoch"] == 2 and r["chunk"] == 120
    assert r["elbo"] <= r["log_likelihood"] < 0 and r["nll"] == -r["log_likelihood"]
    assert 0 <= r["active_units"] <= 2
    # The chunk size changes the memory, not the number.
    run_cli(capsys, "evaluate", trained, "--k", "50", "--n-test", "10", "--json",
            os.path.join(trained, "other.json"))
    r2 = json.load(open(os.path.join(trained, "other.json")))
    assert r2["log_likelihood"] == pytest.approx(r["log_likelihood"], rel=1e-5)
    os.remove(os.path.join(trained, "other.json"))


def test_evaluate_bad_input(capsys, tmp_path, trained):
    code, _, err = run_cli(capsys, "evaluate", str(tmp_path / "nothing"))
    assert_one_line_error(code, err, "no such run directory")
    code, _, err = run_cli(capsys, "evaluate", trained, "--k", "0")
    assert_one_line_error(code, err, "--k")
    broken = tmp_path / "broken"
    broken.mkdir()
    raw = open(os.path.join(trained, "checkpoint.npz"), "rb").read()
    (broken / "checkpoint.npz").write_bytes(raw[:1000])
    code, _, err = run_cli(capsys, "evaluate", str(broken))
    assert_one_line_error(code, err, "checkpoint.npz", "not a readable minivae checkpoint")
    assert not (broken / "evaluation.json").exists()


def test_sample_and_plot(capsys, tmp_path, trained):
    out_dir = tmp_path / "pictures"
    code, out, _ = run_cli(capsys, "sample", trained, "--out", str(out_dir), "--n", "16",
                           "--n-recon", "5", "--grid", "5", "--draws")
    assert code == 0
    names = {"samples.png", "reconstructions.png", "manifold.png", "latent_scatter.png",
             "curves.png"}
    assert set(os.listdir(out_dir)) == names
    for name in names:
        assert (out_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, _ = run_cli(capsys, "plot", trained, "--out", str(tmp_path / "c.png"))
    assert code == 0 and (tmp_path / "c.png").stat().st_size > 1000
    code, _, err = run_cli(capsys, "plot", str(tmp_path))
    assert_one_line_error(code, err, "metrics.jsonl")


def test_reproduce(capsys, tmp_path, mnist_dir):
    out_dir = str(tmp_path / "repro")
    argv = ["reproduce", "--data-dir", mnist_dir, "--epochs", "1", "--n-test", "8",
            "--k-eval", "20", "--hidden", "8", "--z-dim", "2", "--models", "vae-1,iwae-5",
            "--out", out_dir, "--quiet"]
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0
    assert "Table 1" in out and "(86.76)" in out and "(85.54)" in out
    assert "1 of 3280 passes" in out and "8 (evenly spread) of 20 test images" in out
    summary = json.load(open(os.path.join(out_dir, "reproduce.json")))
    assert {r["model"] for r in summary["results"]} == {"vae-k1", "iwae-k5"}
    for r in summary["results"]:
        assert r["n_test"] == 8 and r["k"] == 20 and np.isfinite(r["nll"])
    cfg = json.load(open(os.path.join(out_dir, "vae-k1", "config.json")))
    assert cfg["analytic_kl"] and cfg["schedule"] == "burda" and cfg["batch_size"] == 20
    # Asking again for more epochs continues the runs rather than starting over.
    argv[argv.index("--epochs") + 1] = "2"
    assert run_cli(capsys, *argv)[0] == 0
    assert read_params(os.path.join(out_dir, "iwae-k5"))[1] == 2
    code, _, err = run_cli(capsys, "reproduce", "--epochs", "1", "--models", "vae-x")
    assert_one_line_error(code, err, "--models")


def test_train_interrupted_exit_code_130(capsys, tmp_path, mnist_dir, monkeypatch):
    from minivae.optim import Adam
    run_dir = str(tmp_path / "run")
    monkeypatch.setattr(Adam, "step", lambda self, grads: (_ for _ in ()).throw(
        KeyboardInterrupt))
    code, _, err = run_cli(capsys, "train", "--out", run_dir, "--data-dir", mnist_dir,
                           *TINY_ARGS)
    assert code == 130 and err.count("\n") == 1 and "--resume" in err
    assert read_params(run_dir)[1] == 0


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"]], ids=["help", "train-help"])
def test_help_imports_neither_matplotlib_nor_scipy_integrate(argv):
    # In a fresh interpreter: what `minivae --help` loads is what a user waits for.
    code = ("import sys\nfrom minivae.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib' "
            "or m.startswith('scipy.integrate')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout
    assert "usage: minivae" in proc.stdout
