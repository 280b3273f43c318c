"""The training loop: Burda's schedule, checkpoints, exact resumption, NaN handling, run dirs."""
import json
import os

import numpy as np
import pytest

from minivae import checkpoint, train as training
from minivae.cli import runs
from minivae.model import IWAE
from minivae.optim import SGD, Adam
from train_helpers import mnist_dir  # noqa: F401 (a fixture)
from train_helpers import read_params, tiny_config


# ------------------------------------------------------------------------------ schedule

def test_burda_schedule():
    cfg = training.TrainConfig(schedule="burda", epochs=None)
    assert cfg.epochs == 3280 == training.BURDA_PASSES
    lrs = [training.learning_rate(cfg, e) for e in range(cfg.epochs)]
    # Stage i: 3^i passes at 1e-3 * 10^(-i/7).
    for i in range(8):
        assert lrs.count(pytest.approx(1e-3 * 10 ** (-i / 7), rel=1e-12)) == 3 ** i
    assert lrs[0] == 1e-3 and lrs[1] == lrs[3] != lrs[4] == lrs[12] != lrs[13]
    assert lrs[-1] == pytest.approx(1e-4)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    with pytest.raises(ValueError, match="3280 passes"):
        training.TrainConfig(schedule="burda", epochs=3281)


def test_constant_schedule_and_defaults():
    cfg = training.TrainConfig()
    assert cfg.epochs == training.DEFAULT_EPOCHS and cfg.binarize == "dynamic"
    assert cfg.eval_k == cfg.k
    assert {training.learning_rate(cfg, e) for e in range(5)} == {cfg.lr}
    assert training.TrainConfig(likelihood="gaussian").binarize == "none"


@pytest.mark.parametrize("bad, words", [
    (dict(k=0), "k must be"), (dict(batch_size=0), "batch_size"), (dict(lr=-1.0), "lr"),
    (dict(epochs=-1), "epochs"), (dict(schedule="cosine"), "schedule"),
    (dict(binarize="none"), "needs binary data"), (dict(data="cifar"), "unknown data")])
def test_config_rejects_bad_values(bad, words):
    with pytest.raises(ValueError, match=words):
        training.TrainConfig(**bad)


# ------------------------------------------------------------------------------ checkpoints

def test_checkpoint_round_trip(tmp_path):
    model = IWAE(784, 3, hidden=(8,), seed=1)
    opt = Adam(model.params, lr=3e-4)
    x = (np.random.default_rng(0).random((5, 784)) < 0.5).astype(np.float32)
    for _ in range(3):
        opt.step(model.bound_and_grads(x, 2)[1])
    path = str(tmp_path / "c.npz")
    rng = np.random.default_rng(7)
    checkpoint.save(path, model, opt, {"shuffle": rng.bit_generator.state}, epoch=4,
                    train_config={"k": 2})
    ck = checkpoint.load(path)
    m2 = ck.model()
    o2 = ck.optimizer(m2)
    assert ck.epoch == 4 and ck.train_config == {"k": 2}
    assert all(np.array_equal(model.params[n], m2.params[n]) for n in model.params)
    assert o2.t == 3 and o2.lr == 3e-4
    assert all(np.array_equal(opt.m[n], o2.m[n]) and np.array_equal(opt.s[n], o2.s[n])
               for n in model.params)
    # The noise generator continues where it was: the next bounds agree exactly.
    assert np.array_equal(model.bound(x, 2), m2.bound(x, 2))
    r2 = np.random.default_rng()
    r2.bit_generator.state = ck.rng_state("shuffle")
    assert np.array_equal(rng.permutation(10), r2.permutation(10))


def test_checkpoint_sgd_without_momentum(tmp_path):
    model = IWAE(784, 2, hidden=(), seed=0)
    path = str(tmp_path / "c.npz")
    checkpoint.save(path, model, SGD(model.params, lr=0.1))
    opt = checkpoint.load(path).optimizer(model)
    assert isinstance(opt, SGD) and opt.lr == 0.1


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    """A failure (here Ctrl-C) while writing leaves the old checkpoint and no stray file."""
    model = IWAE(784, 2, hidden=(), seed=0)
    path = str(tmp_path / "c.npz")
    checkpoint.save(path, model, epoch=1)
    before = open(path, "rb").read()

    def interrupted_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.np, "savez", interrupted_savez)
    model.params["encoder.mean.b"][:] = 5
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, model, epoch=2)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["c.npz"]
    assert checkpoint.load(path).epoch == 1


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing", "not_ours"])
def test_bad_checkpoint_is_one_line_error(tmp_path, damage):
    path = str(tmp_path / "c.npz")
    checkpoint.save(path, IWAE(784, 2, hidden=(4,), seed=0), epoch=1)
    raw = open(path, "rb").read()
    if damage == "truncate":
        open(path, "wb").write(raw[: len(raw) // 2])
    elif damage == "garbage":
        open(path, "wb").write(raw[:200] + bytes(len(raw) - 200))
    elif damage == "missing":
        os.remove(path)
    else:
        np.savez(path, a=np.zeros(3))
    with pytest.raises(checkpoint.CheckpointError) as e:
        checkpoint.load(path).model()
    assert "\n" not in str(e.value) and "c.npz" in str(e.value)


def test_checkpoint_with_wrong_shapes(tmp_path):
    path = str(tmp_path / "c.npz")
    model = IWAE(784, 2, hidden=(4,), seed=0)
    checkpoint.save(path, model)
    arrays, meta = checkpoint.load_arrays(path)
    arrays["params/encoder.0.W"] = np.zeros((3, 3))
    checkpoint.save_arrays(path, arrays, meta)
    with pytest.raises(checkpoint.CheckpointError, match="encoder.0.W"):
        checkpoint.load(path).model()


# ------------------------------------------------------------------------------ training runs

def test_training_writes_run_and_improves(tmp_path, mnist_dir):
    run_dir = str(tmp_path / "run")
    cfg = tiny_config(mnist_dir, epochs=4, lr=3e-3)
    summary = runs.train(cfg, run_dir, quiet=True, plots=True)
    assert summary["epoch"] == 4
    assert sorted(os.listdir(run_dir)) == ["checkpoint.npz", "config.json", "curves.png",
                                           "metrics.jsonl"]
    rows = runs.read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert np.isfinite(r["train_bound"]) and np.isfinite(r["test_bound"])
        assert r["test_n"] == 20 and r["test_k"] == 3 and r["lr"] == 3e-3 and r["time"] > 0
    assert rows[-1]["train_bound"] > rows[0]["train_bound"] + 5
    assert rows[-1]["test_bound"] > rows[0]["test_bound"] + 5
    saved = json.load(open(os.path.join(run_dir, "config.json")))
    assert saved["k"] == 3 and saved["hidden"] == [16]
    assert saved["data_dir"] == os.path.abspath(mnist_dir)
    _, epoch = read_params(run_dir)
    assert epoch == 4


def _assert_same_state(dir_a, dir_b):
    a, ea = read_params(dir_a)
    b, eb = read_params(dir_b)
    assert ea == eb and a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key     # bit for bit, Adam's moments included


def test_resume_is_bit_identical(tmp_path, mnist_dir):
    straight = str(tmp_path / "straight")
    runs.train(tiny_config(mnist_dir, epochs=3), straight, quiet=True, plots=False)
    pieces = str(tmp_path / "pieces")
    runs.train(tiny_config(mnist_dir, epochs=1), pieces, quiet=True, plots=False)
    cfg = runs.config_for_resume(pieces, {"epochs": 3})
    runs.train(cfg, pieces, resume=True, quiet=True, plots=False)
    _assert_same_state(straight, pieces)
    # The RNG states were restored as well: the metrics agree too (times aside).
    strip = lambda rows: [(r["epoch"], r["train_bound"], r["test_bound"]) for r in rows]  # noqa
    assert strip(runs.read_metrics(os.path.join(straight, "metrics.jsonl"))) == \
        strip(runs.read_metrics(os.path.join(pieces, "metrics.jsonl")))


def test_resume_after_interrupt_mid_epoch(tmp_path, mnist_dir, monkeypatch):
    """Ctrl-C in the middle of epoch 2: resuming redoes epoch 2 from the epoch-1 checkpoint
    and ends exactly where an uninterrupted run does (fixed binarization, burda schedule)."""
    overrides = dict(epochs=3, binarize="fixed", schedule="burda", analytic_kl=True, k=2)
    straight = str(tmp_path / "straight")
    runs.train(tiny_config(mnist_dir, **overrides), straight, quiet=True, plots=False)

    run_dir = str(tmp_path / "interrupted")
    real_step = Adam.step
    calls = {"n": 0}

    def step_then_interrupt(self, grads):
        calls["n"] += 1
        if calls["n"] == 5:                  # 3 steps per epoch: the middle of epoch 2
            raise KeyboardInterrupt
        real_step(self, grads)

    monkeypatch.setattr(Adam, "step", step_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        runs.train(tiny_config(mnist_dir, **overrides), run_dir, quiet=True, plots=False)
    monkeypatch.setattr(Adam, "step", real_step)
    assert read_params(run_dir)[1] == 1
    assert [r["epoch"] for r in runs.read_metrics(os.path.join(run_dir, "metrics.jsonl"))] \
        == [1]
    runs.train(runs.config_for_resume(run_dir, {}), run_dir, resume=True, quiet=True,
                   plots=False)
    _assert_same_state(straight, run_dir)


def test_metrics_the_checkpoint_never_saw_are_dropped(tmp_path, mnist_dir):
    run_dir = str(tmp_path / "run")
    runs.train(tiny_config(mnist_dir, epochs=1), run_dir, quiet=True, plots=False)
    path = os.path.join(run_dir, "metrics.jsonl")
    with open(path, "a") as f:                # a crash after the metrics line, before the save
        f.write(json.dumps(dict(json.loads(open(path).readline()), epoch=2)) + "\n")
        f.write('{"epoch": 3, "tra')          # and a torn line
    runs.train(runs.config_for_resume(run_dir, {"epochs": 2}), run_dir, resume=True,
                   quiet=True, plots=False)
    assert [r["epoch"] for r in runs.read_metrics(path)] == [1, 2]


def test_nan_stops_training_and_keeps_last_good_checkpoint(tmp_path, mnist_dir, monkeypatch):
    run_dir = str(tmp_path / "run")
    reference = str(tmp_path / "reference")
    runs.train(tiny_config(mnist_dir, epochs=1), reference, quiet=True, plots=False)

    real = IWAE.bound_and_grads
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        value, grads = real(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] > 4:                    # from the 2nd step of epoch 2 on
            value = value * np.nan
            grads = {n: g * np.nan for n, g in grads.items()}
        return value, grads

    monkeypatch.setattr(IWAE, "bound_and_grads", poisoned)
    with pytest.raises(training.Diverged) as e:
        runs.train(tiny_config(mnist_dir, epochs=3), run_dir, quiet=True, plots=False)
    msg = str(e.value)
    assert "nan" in msg and "epoch 2" in msg and "last good state (epoch 1)" in msg
    assert "\n" not in msg
    _assert_same_state(reference, run_dir)
    assert [r["epoch"] for r in runs.read_metrics(os.path.join(run_dir, "metrics.jsonl"))] \
        == [1]


# ------------------------------------------------------------------------------ run directories

def test_existing_run_is_not_overwritten(tmp_path, mnist_dir):
    run_dir = str(tmp_path / "run")
    runs.train(tiny_config(mnist_dir, epochs=1), run_dir, quiet=True, plots=False)
    before = open(os.path.join(run_dir, "checkpoint.npz"), "rb").read()
    with pytest.raises(ValueError, match="already holds a run.*--resume.*--force"):
        runs.train(tiny_config(mnist_dir, epochs=1, seed=1), run_dir, quiet=True)
    assert open(os.path.join(run_dir, "checkpoint.npz"), "rb").read() == before
    runs.train(tiny_config(mnist_dir, epochs=1, seed=1), run_dir, force=True, quiet=True,
                   plots=False)
    assert open(os.path.join(run_dir, "checkpoint.npz"), "rb").read() != before
    assert len(runs.read_metrics(os.path.join(run_dir, "metrics.jsonl"))) == 1


def test_resume_keeps_the_configuration(tmp_path, mnist_dir):
    run_dir = str(tmp_path / "run")
    with pytest.raises(ValueError, match="cannot resume"):
        runs.config_for_resume(run_dir, {})
    runs.train(tiny_config(mnist_dir, epochs=1), run_dir, quiet=True, plots=False)
    with pytest.raises(ValueError, match="--k 5 differs from the run's 3"):
        runs.config_for_resume(run_dir, {"k": 5})
    cfg = runs.config_for_resume(run_dir, {"k": 3, "hidden": (16,), "epochs": 7})
    assert cfg.epochs == 7 and cfg.k == 3


def test_bad_data_leaves_nothing_behind(tmp_path):
    run_dir = str(tmp_path / "run")
    with pytest.raises(ValueError, match="does not exist"):
        runs.train(tiny_config(str(tmp_path / "nowhere")), run_dir, quiet=True)
    assert not os.path.exists(run_dir)
