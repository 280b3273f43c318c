"""The command-line layer as a whole: one error->exit map, options generated from TrainConfig,
progress bars on terminals only, start-up, and the one atomic writer."""
import dataclasses
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import run_cli
from minivae import checkpoint, train as training
from minivae.cli import build_parser, options
from minivae.model import IWAE
from train_helpers import mnist_dir  # noqa: F401 (a fixture)
from train_helpers import TINY_ARGS, read_params, train_tiny

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_dir):
    return train_tiny(tmp_path_factory, mnist_dir, "tiny", 1)


def child_env(**extra):
    """The environment of a child python: this checkout first on the path, the rest kept (e.g.
    the CuPy stand-in under MINIVAE_BACKEND=cupy), and ``extra``."""
    return dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
                **extra)


def python(args, env=None):
    env = env or child_env()
    return subprocess.run([sys.executable, *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def assert_one_line(err, code, want_code, *words):
    assert code == want_code, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


# ------------------------------------------------------------------------------ divergence

@pytest.fixture
def nan_bound(monkeypatch):
    """Every bound of an IWAE/VAE is -inf from now on (the gradients stay finite)."""
    real = IWAE.bound_and_grads

    def poisoned(self, *args, **kwargs):
        value, grads = real(self, *args, **kwargs)
        return value * np.inf, grads

    monkeypatch.setattr(IWAE, "bound_and_grads", poisoned)


def test_latent2d_diverges_with_exit_code_1(capsys, tmp_path, mnist_dir, nan_bound):
    out = tmp_path / "z2"
    code, _, err = run_cli(["latent2d", "--out", str(out), "--data", "mnist", "--data-dir",
                            mnist_dir, "--epochs", "1", "--hidden", "8", "--quiet"], capsys)
    assert_one_line(err, code, 1, "training stopped", "keeps the last good state")
    assert read_params(str(out))[1] == 0


def test_reproduce_diverges_with_exit_code_1(capsys, tmp_path, mnist_dir, nan_bound):
    code, _, err = run_cli(["reproduce", "--data-dir", mnist_dir, "--epochs", "1", "--n-test",
                            "4", "--k-eval", "5", "--hidden", "8", "--z-dim", "2", "--models",
                            "iwae-2", "--out", str(tmp_path / "r"), "--quiet"], capsys)
    assert_one_line(err, code, 1, "training stopped", "-inf")


def test_impute_diverges_with_exit_code_1(capsys, tmp_path, nan_bound):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    X[rng.random(X.shape) < 0.2] = np.nan
    src = tmp_path / "in.csv"
    cells = [["" if np.isnan(v) else repr(float(v)) for v in row] for row in X]
    src.write_text("a,b,c\n" + "".join(",".join(row) + "\n" for row in cells))
    out = tmp_path / "out.csv"
    code, _, err = run_cli(["impute", str(src), "--out", str(out), "--epochs", "2",
                            "--n-samples", "10", "--hidden", "8"], capsys)
    assert_one_line(err, code, 1, "training stopped", "diverged")
    assert not out.exists()


def test_bench_impute_diverges_with_exit_code_1(capsys, nan_bound):
    pytest.importorskip("sklearn")
    code, _, err = run_cli(["bench-impute", "--epochs", "1", "--n-samples", "10",
                            "--skip-baselines"], capsys)
    assert err.count("\n") >= 1
    last = err.strip().splitlines()[-1]
    assert code == 1 and last.startswith("minivae bench-impute: training stopped")
    assert "Traceback" not in err


def test_toy_encoder_divergence_exits_1(capsys, tmp_path, monkeypatch):
    from minivae.lecture import toy
    real = toy.ToyEncoder.bound_and_grads
    monkeypatch.setattr(toy.ToyEncoder, "bound_and_grads",
                        lambda self, *a: (float("nan"), real(self, *a)[1]))
    code, _, err = run_cli(["toy", "--out", str(tmp_path), "--points", "4", "--check-points",
                            "1", "--ks", "1,10", "--reps", "1", "--encoder-k", "2",
                            "--encoder-steps", "3"], capsys)
    assert_one_line(err, code, 1, "training stopped", "nan")


# ------------------------------------------------------------------------------ the error map

@pytest.mark.parametrize("error, code", [
    (ValueError("bad"), 2), (OSError(28, "No space left on device"), 2), (MemoryError(), 2),
    (training.Diverged("nan"), 1), (KeyboardInterrupt(), 130), (RuntimeError("bug"), None)])
def test_one_error_map(error, code):
    from minivae.cli import exit_code, one_line
    assert exit_code(error) == code
    assert "\n" not in one_line(error)


def test_backend_error_is_bad_input():
    from minivae.backend import BackendError
    from minivae.cli import exit_code
    assert exit_code(BackendError("no GPU")) == 2


def test_unusable_backend_is_one_line_from_the_map(tmp_path):
    # The error map itself (not a global excepthook) turns it into exit code 2: the line names
    # the command, which only the map knows.
    proc = python(["-m", "minivae", "evaluate", str(tmp_path)],
                  env=child_env(MINIVAE_BACKEND="no-such-backend"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("minivae evaluate: error: unknown MINIVAE_BACKEND")
    assert proc.stderr.count("\n") == 1


def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    # Deliver SIGINT while the command is importing NumPy (the start-up's heaviest part):
    # deterministic, unlike a timer racing the import.
    out = tmp_path / "run"
    code = ("import builtins, os, signal, sys\n"
            "real = builtins.__import__\n"
            "def hook(name, *a, **k):\n"
            "    if name.split('.')[0] == 'numpy':\n"
            "        builtins.__import__ = real\n"
            "        os.kill(os.getpid(), signal.SIGINT)\n"
            "    return real(name, *a, **k)\n"
            "from minivae.cli import main\n"
            "assert 'numpy' not in sys.modules, 'the CLI imported NumPy before main()'\n"
            "builtins.__import__ = hook\n"
            f"sys.exit(main(['train', '--out', {str(out)!r}]))\n")
    proc = python(["-c", code])
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "minivae train: interrupted\n"
    assert not out.exists()


def test_ctrl_c_while_training_is_one_line(tmp_path, mnist_dir):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "minivae", "train", "--out", str(out),
                             "--data-dir", mnist_dir, "--epochs", "100000"] + TINY_ARGS,
                            cwd=REPO, stderr=subprocess.PIPE, text=True,
                            env=child_env())
    try:
        ckpt = out / "checkpoint.npz"
        deadline = time.monotonic() + 120           # wait for the first checkpoint
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.count("\n") == 1 and err.startswith("minivae train: interrupted"), err
    assert read_params(str(out))[1] >= 0                 # the checkpoint is loadable


# ------------------------------------------------------------------------------ options

def test_train_options_are_generated_from_train_config():
    parser = build_parser("train")
    sub = next(a for a in parser._actions if a.dest == "command").choices["train"]
    flags = {a.dest: a for a in sub._actions}
    for f in dataclasses.fields(training.TrainConfig):
        assert f.name in flags, f"TrainConfig.{f.name} has no --{f.name.replace('_', '-')}"
        action = flags[f.name]
        assert action.default is None            # so that a resumed run sees what was given
        if f.metadata["choices"] is not None:
            assert tuple(action.choices) == tuple(f.metadata["choices"])
    # Choices come from the registries, not from literals.
    from minivae.layers import ACTIVATIONS
    from minivae.likelihoods import LIKELIHOODS
    from minivae.model import DTYPES
    assert tuple(flags["activation"].choices) == tuple(ACTIVATIONS)
    assert tuple(flags["likelihood"].choices) == tuple(LIKELIHOODS)
    assert tuple(flags["dtype"].choices) == tuple(DTYPES)
    # No options given: exactly TrainConfig's defaults.
    args = parser.parse_args(["train"])
    assert training.TrainConfig(**options.config_overrides(args)) == training.TrainConfig()
    assert "(default: 5)" in flags["k"].help


def test_presets_are_train_configs():
    for name, fields in training.PRESETS.items():
        config = training.TrainConfig.preset(name)
        for field, value in fields.items():
            assert getattr(config, field) == value, (name, field)
    with pytest.raises(ValueError, match="preset"):
        training.TrainConfig.preset("cifar")


@pytest.mark.parametrize("text, widths", [("200,200", (200, 200)), ("500", (500,)),
                                          ("none", ()), ("", ())])
def test_one_hidden_syntax(text, widths):
    assert options.parse_hidden(text) == widths


@pytest.mark.parametrize("text", ["200,0", "-5", "200,-1"])
def test_hidden_text_is_checked_by_the_apis_validator(text):
    with pytest.raises(ValueError, match="positive integer widths"):
        options.parse_hidden(text)


@pytest.mark.parametrize("command", ["train", "latent2d", "reproduce", "impute"])
def test_bad_hidden_is_one_line_naming_the_option(capsys, command):
    argv = {"impute": ["impute", "x.csv", "--out", "y.csv"],
            "reproduce": ["reproduce", "--epochs", "1"]}.get(command, [command])
    code, _, err = run_cli(argv + ["--hidden", "20,x"], capsys)
    assert_one_line(err, code, 2, "--hidden", "comma-separated")


# ------------------------------------------------------------------------------ progress

def on_a_terminal(argv):
    """(exit code, all it wrote) of ``python ARGV`` on a pseudo-terminal of 24 x 100."""
    import fcntl
    import pty
    import struct
    import termios
    master, slave = pty.openpty()
    # A terminal has a size (a fresh pseudo-terminal's is 0 x 0, where tqdm draws nothing).
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    child = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=child_env(), stdin=slave,
                             stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:                                        # EIO: the child closed it
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return child.wait(timeout=600), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize("command", ["evaluate", "bench-impute"])
def test_progress_bar_on_a_terminal_and_not_in_a_pipe(command, tmp_path, trained):
    if command == "evaluate":
        argv = ["evaluate", trained, "--k", "20", "--n-test", "10", "--chunk", "20", "--json",
                str(tmp_path / "e.json")]
        words = ("L_20", "img")
    else:
        pytest.importorskip("sklearn", reason="bench-impute's data ship with scikit-learn")
        argv = ["bench-impute", "--epochs", "2", "--n-samples", "10", "--skip-baselines"]
        words = ("training MIWAE", "imputing (L = 10)")
    proc = python(["-m", "minivae", *argv])
    assert proc.returncode == 0 and "%|" not in proc.stderr, proc.stderr   # a pipe: no bar
    code, text = on_a_terminal(["-m", "minivae", *argv])
    assert code == 0, text
    assert "%|" in text and all(w in text for w in words), text


# ------------------------------------------------------------------------------ atomic writer

def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "a.json"
    checkpoint.atomic_write(str(path), "old\n")

    def broken(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        checkpoint.atomic_write(str(path), broken)
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["a.json"]


def test_atomic_write_removes_temp_files_of_a_killed_writer(tmp_path):
    path = tmp_path / "checkpoint.npz"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".checkpoint.npz.tmp-{dead.pid}-x1y2"
    live = tmp_path / f".checkpoint.npz.tmp-{os.getppid()}-a1b2"    # its writer still runs
    other = tmp_path / f".metrics.jsonl.tmp-{dead.pid}-c3d4"        # another file's
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    checkpoint.atomic_write(str(path), b"new")
    assert path.read_bytes() == b"new"
    assert not stale.exists() and live.exists() and other.exists()


def test_png_is_written_atomically(tmp_path, monkeypatch):
    from matplotlib.figure import Figure
    from minivae import plots
    rows = [{"epoch": 1, "train_bound": -100.0, "test_bound": -101.0, "k": 5, "test_k": 5,
             "test_n": 10, "lr": 1e-3}]
    path = tmp_path / "curves.png"
    plots.save_curves(rows, str(path))
    before = path.read_bytes()
    assert before[:8] == b"\x89PNG\r\n\x1a\n"
    real = Figure.savefig

    def disk_full(self, f, **kw):
        real(self, f, **kw)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", disk_full)
    with pytest.raises(OSError):
        plots.save_curves(rows + [dict(rows[0], epoch=2)], str(path))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["curves.png"]
