"""Issue 12 (reliability), run directories: a foreign checkpoint, damaged metrics, sizes that
cannot fit, a full disk, stale temporary files, divergence advice that can be followed, and
the smaller command-line promises (items 4, 8, 9, 12, 13)."""
import errno
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from helpers import run_cli
from minivae import checkpoint, memory
from minivae.cli import runs
from minivae.model import IWAE
from train_helpers import TINY_ARGS, write_mnist_dir


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    return write_mnist_dir(tmp_path_factory.mktemp("mnist"))


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory, mnist_dir):
    run_dir = str(tmp_path_factory.mktemp("runs") / "two")
    from minivae.cli import main
    assert main(["train", "--out", run_dir, "--data-dir", mnist_dir, "--epochs", "2"]
                + TINY_ARGS) == 0
    return run_dir


def copy_run(run_dir, tmp_path, name="run"):
    dst = str(tmp_path / name)
    shutil.copytree(run_dir, dst)
    return dst


def snapshot(run_dir):
    return {n: open(os.path.join(run_dir, n), "rb").read() for n in sorted(os.listdir(run_dir))}


def one_line(code, err, want=2, *words):
    assert code == want, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


RESUME = ["--resume", "--epochs", "3", "--quiet", "--no-plots"]


# ---------------------------------------------------------------- item 4: a foreign checkpoint
def test_a_checkpoint_from_another_model_is_not_resumed(two_epochs, mnist_dir, tmp_path, capsys):
    other = str(tmp_path / "other")
    args = [a if a != "16" else "8" for a in TINY_ARGS]             # --hidden 8
    assert run_cli(["train", "--out", other, "--data-dir", mnist_dir, "--epochs", "1"] + args,
                   capsys)[0] == 0
    run_dir = copy_run(two_epochs, tmp_path)
    shutil.copy(os.path.join(other, runs.CHECKPOINT), os.path.join(run_dir, runs.CHECKPOINT))
    before = snapshot(run_dir)
    code, _, err = run_cli(["train", "--out", run_dir] + RESUME, capsys)
    one_line(code, err, 2, "not this run's checkpoint", "hidden", runs.CONFIG)
    assert snapshot(run_dir) == before


def test_a_checkpoint_ahead_of_the_metrics_is_not_resumed(two_epochs, mnist_dir, tmp_path,
                                                           capsys):
    run_dir = copy_run(two_epochs, tmp_path)
    path = os.path.join(run_dir, runs.METRICS)
    lines = open(path).read().splitlines(keepends=True)
    open(path, "w").write(lines[0])                                  # epoch 1 only
    before = snapshot(run_dir)
    code, _, err = run_cli(["train", "--out", run_dir] + RESUME, capsys)
    one_line(code, err, 2, "epoch 2", "ends at epoch 1")
    assert snapshot(run_dir) == before


# ---------------------------------------------------------------- item 8: typed metrics
@pytest.mark.parametrize("field,value", [("elapsed", "x"), ("epoch", "1"), ("train_bound", None),
                                         ("lr", True), ("test_bound", "nan"),
                                         ("elapsed", KeyError), ("k", KeyError)])
def test_wrongly_typed_metrics_are_one_line_naming_file_line_and_field(
        field, value, two_epochs, tmp_path, capsys):
    run_dir = copy_run(two_epochs, tmp_path)
    path = os.path.join(run_dir, runs.METRICS)
    rows = [json.loads(line) for line in open(path)]
    if value is KeyError:
        del rows[1][field]
    else:
        rows[1][field] = value
    open(path, "w").write("".join(json.dumps(r) + "\n" for r in rows))
    before = snapshot(run_dir)
    code, _, err = run_cli(["train", "--out", run_dir] + RESUME, capsys)
    one_line(code, err, 2, f"{runs.METRICS} line 2", repr(field))
    assert snapshot(run_dir) == before                      # config.json not rewritten
    code, _, err = run_cli(["plot", run_dir], capsys)       # no categorical axis either
    one_line(code, err, 2, f"{runs.METRICS} line 2", repr(field))


# ---------------------------------------------------------------- item 9: sizes that cannot fit
@pytest.mark.parametrize("option,value,words", [("--k", "100000", ["--k up to", "fits"]),
                                                ("--hidden", "99999999999", ["hidden"]),
                                                ("--z-dim", "99999999999", ["z_dim"]),
                                                ("--k", "99999999999999999999999", ["--k"])])
def test_sizes_that_cannot_fit_are_refused_before_anything_is_written(
        option, value, words, mnist_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 4 * 10 ** 9)
    run_dir = str(tmp_path / "run")
    code, _, err = run_cli(["train", "--out", run_dir, "--data-dir", mnist_dir]
                           + TINY_ARGS + [option, value], capsys)
    one_line(code, err, 2, *words)
    assert not os.path.exists(run_dir)


def test_sample_too_many_images_is_refused(two_epochs, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 4 * 10 ** 9)
    out = str(tmp_path / "pictures")
    code, _, err = run_cli(["sample", two_epochs, "--n", "1000000", "--out", out], capsys)
    one_line(code, err, 2, "--n up to")
    assert not os.path.exists(out)


# ---------------------------------------------------------------- item 12: full disk, stale files
def disk_full_after(monkeypatch, n_writes):
    """The one atomic writer fails with ENOSPC after ``n_writes`` successful files."""
    real = checkpoint._write_temp
    count = [0]

    def write_temp(path, content):
        count[0] += 1
        if count[0] > n_writes:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, content)
    monkeypatch.setattr(checkpoint, "_write_temp", write_temp)


def test_a_full_disk_at_the_start_leaves_no_run_directory(mnist_dir, tmp_path, capsys,
                                                          monkeypatch):
    disk_full_after(monkeypatch, 0)
    run_dir = str(tmp_path / "run")
    code, _, err = run_cli(["train", "--out", run_dir, "--data-dir", mnist_dir] + TINY_ARGS,
                           capsys)
    one_line(code, err, 2, "No space left")
    assert not os.path.exists(run_dir)


def test_a_disk_that_fills_after_epoch_2_keeps_the_run_and_says_how_to_continue(
        mnist_dir, tmp_path, capsys, monkeypatch):
    run_dir = str(tmp_path / "run")
    # Writes: checkpoint + config at the start, then metrics + checkpoint per epoch.
    disk_full_after(monkeypatch, 2 + 2 * 2 + 1)
    code, _, err = run_cli(["train", "--out", run_dir, "--data-dir", mnist_dir, "--epochs", "4"]
                           + TINY_ARGS, capsys)
    one_line(code, err, 2, "No space left", "keeps epoch 2", "--resume")
    assert checkpoint.load(os.path.join(run_dir, runs.CHECKPOINT)).epoch == 2
    monkeypatch.undo()
    code, _, err = run_cli(["train", "--out", run_dir, "--resume", "--epochs", "4", "--quiet",
                            "--no-plots"], capsys)
    assert code == 0, err
    assert [r["epoch"] for r in runs.read_metrics(os.path.join(run_dir, runs.METRICS))] == \
        [1, 2, 3, 4]


@pytest.mark.parametrize("how", ["--resume", "--force"])
def test_stale_temporary_files_of_a_killed_writer_are_removed(how, two_epochs, mnist_dir,
                                                              tmp_path, capsys):
    run_dir = copy_run(two_epochs, tmp_path)
    dead = 2 ** 22 + 12345                          # above the default pid_max: never alive
    stale = [f".{runs.CHECKPOINT}.tmp-{dead}-abc", f".{runs.METRICS}.tmp-{dead}-def",
             f".{runs.CHECKPOINT}.k3j_x9q2.tmp"]                  # minivae 0.1's naming
    for name in stale:
        open(os.path.join(run_dir, name), "wb").write(b"half")
    argv = ["train", "--out", run_dir] + (RESUME if how == "--resume" else
                                          ["--force", "--data-dir", mnist_dir, "--epochs", "1"]
                                          + TINY_ARGS)
    assert run_cli(argv, capsys)[0] == 0
    assert not [n for n in os.listdir(run_dir) if ".tmp" in n]


# ---------------------------------------------------------------- item 13
def test_plot_out_directory_writes_into_it(two_epochs, tmp_path, capsys):
    out = tmp_path / "pictures"
    out.mkdir()
    code, stdout, err = run_cli(["plot", two_epochs, "--out", str(out)], capsys)
    assert code == 0, err
    assert (out / runs.CURVES).stat().st_size > 0
    assert not os.path.exists(str(out) + ".png") and str(out / runs.CURVES) in stdout


def test_divergence_is_the_only_stderr_line_and_its_advice_works(mnist_dir, tmp_path):
    """The real process, NumPy's warnings included: lr 1e9 overflows within an epoch."""
    run_dir = str(tmp_path / "run")
    p = subprocess.run([sys.executable, "-m", "minivae", "train", "--out", run_dir,
                        "--data-dir", mnist_dir, "--epochs", "3", "--lr", "1e9"] + TINY_ARGS,
                       capture_output=True, text=True)
    assert p.returncode == 1, p.stderr
    assert p.stderr.count("\n") == 1 and "RuntimeWarning" not in p.stderr, p.stderr
    advice = p.stderr.split("`")[1]                     # `minivae train --out R --resume --lr X`
    assert advice.startswith("minivae train") and "--resume --lr" in advice
    argv = advice.split()[1:-1] + ["1e-3", "--quiet", "--no-plots"]
    q = subprocess.run([sys.executable, "-m", "minivae"] + argv, capture_output=True, text=True)
    assert q.returncode == 0, q.stderr


def test_bench_impute_epochs_0_fails_before_its_banner(capsys):
    code, out, err = run_cli(["bench-impute", "--epochs", "0"], capsys)
    one_line(code, err, 2, "--epochs")
    assert out == ""


def test_impute_lr_inf_is_rejected_by_the_parser(tmp_path, capsys):
    code, out, err = run_cli(["impute", str(tmp_path / "nothing.csv"), "--out",
                              str(tmp_path / "o.csv"), "--lr", "inf"], capsys)
    one_line(code, err, 2, "--lr")


def test_impute_finds_an_unwritable_output_directory_before_training(tmp_path, capsys,
                                                                     monkeypatch):
    src = tmp_path / "in.csv"
    src.write_text("a,b\n1,2\n,3\n4,\n5,6\n")
    import tempfile

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    trained = []
    monkeypatch.setattr(IWAE, "bound_and_grads", lambda *a, **k: trained.append(1))
    code, _, err = run_cli(["impute", str(src), "--out", str(tmp_path / "o.csv")], capsys)
    one_line(code, err, 2, "Read-only file system")
    assert not trained


def test_evaluation_json_never_holds_bare_nan(tmp_path):
    with pytest.raises(ValueError, match="NaN or inf"):
        runs.write_json(str(tmp_path / "e.json"), {"log_likelihood": float("nan")})
    assert not os.path.exists(tmp_path / "e.json")
