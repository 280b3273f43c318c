"""Issue 12 (reliability), faults: damaged or foreign checkpoints and run files are refused with
one line naming the file and the field (exit code 2), never scored, drawn from or resumed."""
import json
import os
import shutil

import numpy as np
import pytest

from minivae import checkpoint
from minivae.cli import runs
from helpers import run_cli
from train_helpers import mnist_dir  # noqa: F401 (a fixture)
from train_helpers import TINY_ARGS, train_tiny


@pytest.fixture(scope="module")
def good_run(tmp_path_factory, mnist_dir):
    return train_tiny(tmp_path_factory, mnist_dir, "good", 1)


def copy_run(good_run, tmp_path, name="run"):
    dst = str(tmp_path / name)
    shutil.copytree(good_run, dst)
    return dst


def rewrite_checkpoint(run_dir, edit_meta=None, edit_arrays=None):
    """Rewrite RUN_DIR/checkpoint.npz with its metadata and arrays edited in place."""
    path = os.path.join(run_dir, runs.CHECKPOINT)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(bytes(arrays.pop("meta")).decode())
    if edit_meta:
        edit_meta(meta)
    if edit_arrays:
        edit_arrays(arrays)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def snapshot(run_dir):
    """Every file of a run directory with its bytes (to check that nothing changed)."""
    out = {}
    for name in sorted(os.listdir(run_dir)):
        with open(os.path.join(run_dir, name), "rb") as f:
            out[name] = f.read()
    return out


def assert_refused(capsys, run_dir, mnist_dir, *words, commands=("evaluate", "sample",
                                                                 "resume")):
    before = snapshot(run_dir)
    for command in commands:
        if command == "resume":
            argv = ["train", "--out", run_dir, "--resume", "--epochs", "3", "--quiet",
                    "--no-plots"]
        elif command == "evaluate":
            argv = ["evaluate", run_dir, "--k", "2", "--data-dir", mnist_dir]
        else:
            argv = ["sample", run_dir, "--n", "4", "--data-dir", mnist_dir]
        code, out, err = run_cli(argv, capsys)
        assert code == 2, (command, err)
        assert err.count("\n") == 1 and "Traceback" not in err, (command, err)
        for w in words:
            assert w in err, (command, err)
        assert snapshot(run_dir) == before, command        # nothing written, nothing lost


# ---------------------------------------------------------------- item 3: NaN/inf checkpoints
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_checkpoint_with_non_finite_parameters_is_refused(bad, good_run, mnist_dir, tmp_path,
                                                          capsys):
    run_dir = copy_run(good_run, tmp_path)

    def poison(arrays):
        arrays["params/decoder.mean.b" if "params/decoder.mean.b" in arrays
               else "params/decoder.logits.b"][3] = bad
    rewrite_checkpoint(run_dir, edit_arrays=poison)
    assert_refused(capsys, run_dir, mnist_dir, "NaN or inf", runs.CHECKPOINT)
    assert not os.path.exists(os.path.join(run_dir, "evaluation.json"))


def test_checkpoint_with_non_finite_adam_moments_is_not_resumed(good_run, mnist_dir, tmp_path,
                                                                capsys):
    run_dir = copy_run(good_run, tmp_path)

    def poison(arrays):
        key = next(k for k in arrays if k.startswith("optimizer/s/"))
        arrays[key].flat[0] = np.nan
    rewrite_checkpoint(run_dir, edit_arrays=poison)
    assert_refused(capsys, run_dir, mnist_dir, "optimizer/s/", commands=("resume",))


# ---------------------------------------------------------------- item 8: damaged checkpoints
def test_a_npy_file_named_checkpoint_npz_is_one_line(good_run, mnist_dir, tmp_path, capsys):
    run_dir = copy_run(good_run, tmp_path)
    path = os.path.join(run_dir, runs.CHECKPOINT)
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    assert_refused(capsys, run_dir, mnist_dir, ".npy")


def set_field(path, value):
    def edit(meta):
        *parents, last = path.split(".")
        d = meta
        for p in parents:
            d = d[p]
        d[last] = value
    return edit


@pytest.mark.parametrize("field,value,words", [
    ("optimizer.state.lr", "x", ["optimizer.state.lr"]),
    ("optimizer.state.t", 1.5, ["optimizer.state.t"]),
    ("train", [1, 2], ["train"]),
    ("epoch", "1", ["epoch"]),
    ("rng.shuffle", 5, ["rng.shuffle"]),
    ("rng.shuffle.state", {"state": "x", "inc": 1}, ["rng.shuffle"]),
    ("rng.model", {"bit_generator": "PCG64", "state": None}, ["rng.model"]),
    ("model.config.x_dim", 10 ** 12, ["memory"]),
    ("model.config.hidden", [10 ** 11], ["memory"]),
    ("model.config.x_dim", "784", ["model.config.x_dim"]),
    ("model.config", None, ["model.config"]),
    ("model", "IWAE", ["model"]),
])
def test_hand_edited_metadata_is_one_line_naming_the_field(field, value, words, good_run,
                                                           mnist_dir, tmp_path, capsys):
    run_dir = copy_run(good_run, tmp_path)
    rewrite_checkpoint(run_dir, edit_meta=set_field(field, value))
    commands = ("resume",) if field.startswith(("optimizer", "rng.shuffle", "train")) else \
        ("evaluate", "sample", "resume")
    assert_refused(capsys, run_dir, mnist_dir, runs.CHECKPOINT, *words, commands=commands)


def test_checkpoint_api_errors_are_checkpoint_errors(good_run, tmp_path):
    run_dir = copy_run(good_run, tmp_path)
    rewrite_checkpoint(run_dir, edit_meta=set_field("model.config.x_dim", 10 ** 12))
    with pytest.raises(checkpoint.CheckpointError, match="memory"):
        checkpoint.load(os.path.join(run_dir, runs.CHECKPOINT)).model()
