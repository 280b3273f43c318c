"""The speed tooling: ``minivae bench`` (harness, floor, before/after) and the thread policy.

Speed itself is never asserted here (figures are printed by the benchmark); these tests check
that the harness times the right things and that the thread policy is applied and validated.
PyTorch and JAX (the benchmark's peers) are never imported by the tests.
"""
import os
import types

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from helpers import run_cli
from minivae import benchmarks, threads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--x-dim", "12", "--z-dim", "3", "--hidden", "5,4", "--batch-size", "4", "--k", "3",
        "--repeats", "1", "--rounds", "1"]


def test_bench_prints_every_contender_and_the_bound_it_computed(capsys):
    code, out, err = run_cli(["bench", *TINY, "--threads", "1"], capsys)
    assert code == 0, err
    assert "threads: 1 (given)" in out and "minivae's step: one block of examples" in out
    problem = benchmarks.make_problem(12, 3, (5, 4), 4, 3)
    from minivae.model import IWAE
    model = IWAE(12, 3, hidden=(5, 4), seed=0)
    want = float(model.bound_and_grads(problem.x, 3, eps=problem.eps)[0])
    line = next(l for l in out.splitlines() if l.startswith("  minivae "))
    assert float(line.split()[-1]) == pytest.approx(want, abs=5e-5)   # printed to 4 decimals
    assert "floor (matrix products alone)" in out and "floor / minivae" in out


def test_floor_counts_the_products_of_one_gradient():
    # Two hidden layers: 7 affine maps forward; backward xᵀ dout for each of the 7 weights and
    # dout Wᵀ for every layer input but the encoder's data x: 6. 7 + 7 + 6 = 20.
    problem = benchmarks.make_problem(12, 3, (5, 4), 4, 3)
    benchmarks.floor_contender(problem)
    assert problem.n_products == 20
    problem = benchmarks.make_problem(12, 3, (), 4, 3)    # affine: 3 maps, 3 dW, 1 dz
    benchmarks.floor_contender(problem)
    assert problem.n_products == 7


def test_against_times_the_minivae_of_another_checkout():
    problem = benchmarks.make_problem(12, 3, (5,), 4, 3, dtype="float64")
    ours, value = benchmarks.minivae_contender(problem)
    other = benchmarks.load_checkout(ROOT, "minivae_test_copy")
    assert other.__name__ == "minivae_test_copy.model"
    _, other_value = benchmarks.minivae_contender(problem, other)
    assert other_value == value
    with pytest.raises(ValueError, match="no minivae package"):
        benchmarks.load_checkout(os.path.join(ROOT, "tests"))


def test_thread_count_comes_from_argument_then_environment_then_policy(monkeypatch):
    monkeypatch.delenv(threads.ENV_VAR, raising=False)
    assert threads.choose() == threads.POLICY_THREADS
    assert "policy" in threads.source()
    monkeypatch.setenv(threads.ENV_VAR, "3")
    assert threads.choose() == 3 and threads.source() == f"${threads.ENV_VAR}"
    assert threads.choose("2") == 2 and threads.source("2") == "given"
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv(threads.ENV_VAR, bad)
        with pytest.raises(ValueError, match=threads.ENV_VAR):
            threads.choose()
    for bad in (0, True, 1.5, "x"):
        with pytest.raises(ValueError, match="threads"):
            threads.choose(bad)


def test_limit_sets_every_blas_pool_and_restores_it(monkeypatch):
    monkeypatch.setenv(threads.ENV_VAR, "1")
    before = [p["num_threads"] for p in threadpool_info()]
    with threads.limit():
        assert all(p["num_threads"] == 1 for p in threadpool_info())
        np.ones((64, 64)) @ np.ones((64, 64))
    assert [p["num_threads"] for p in threadpool_info()] == before


def test_bench_rejects_a_bad_thread_count_in_one_line(capsys, monkeypatch):
    monkeypatch.setenv(threads.ENV_VAR, "many")
    code, out, err = run_cli(["bench", *TINY], capsys)
    assert code == 2 and err.count("\n") == 1 and threads.ENV_VAR in err, err
    assert out == ""


# ---------------------------------------------------------------- Adam without new arrays
def _adam_formulas(param, grad, m, s, t, lr, beta1, beta2, eps):
    """Kingma & Ba's step as written (a new array per operation), for comparison."""
    c2 = (1 - beta2 ** t) ** 0.5
    m_new = beta1 * m + (1 - beta1) * grad
    s_new = beta2 * s + (1 - beta2) * (grad * grad)
    return param + (lr * c2 / (1 - beta1 ** t)) * m_new / (np.sqrt(s_new) + eps * c2), m_new, s_new


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adam_step_in_place_gives_the_formulas_numbers_bit_for_bit(dtype):
    from minivae.backend import asarray, to_numpy
    from minivae.optim import adam_step
    rng = np.random.default_rng(3)
    host = [rng.standard_normal((7, 5)).astype(dtype) for _ in range(3)] + \
        [rng.random((7, 5)).astype(dtype)]
    hyper = (4, 1e-3, 0.9, 0.999, 1e-4)
    want = _adam_formulas(*host, *hyper)
    param, grad, m, s = (asarray(a) for a in host)
    got = adam_step(param, grad, m, s, *hyper)               # new arrays, arguments untouched
    for a, b in zip(host, (param, grad, m, s)):
        assert np.array_equal(a, to_numpy(b))
    out = (param.copy(), m.copy(), s.copy())
    in_place = adam_step(out[0], grad, out[1], out[2], *hyper, out=out)
    assert all(r is o for r, o in zip(in_place, out))
    for w, g, i in zip(want, got, in_place):
        g, i = to_numpy(g), to_numpy(i)
        assert w.dtype == g.dtype == i.dtype == np.dtype(dtype)
        assert np.array_equal(w, g) and np.array_equal(w, i)


def test_adam_takes_a_returned_step_when_adam_step_ignores_out(monkeypatch):
    # A student's adam_step (labs' run --mine, which drops the out= it does not take) returns
    # new arrays: Adam keeps them.
    from minivae import optim
    from minivae.backend import asarray, to_numpy, xp
    rng = np.random.default_rng(4)
    params = {"w": asarray(rng.standard_normal((3, 4)), dtype="float32")}
    twin = {"w": params["w"].copy()}
    grads = {"w": asarray(rng.standard_normal((3, 4)), dtype="float32")}
    ours = optim.Adam(params)
    for _ in range(3):
        ours.step(grads)

    def student(p, g, m, s, t, lr, b1, b2, eps, out=None):
        c2 = (1 - b2 ** t) ** 0.5
        m_new = b1 * m + (1 - b1) * g
        s_new = b2 * s + (1 - b2) * (g * g)
        return p + (lr * c2 / (1 - b1 ** t)) * m_new / (xp.sqrt(s_new) + eps * c2), m_new, s_new

    monkeypatch.setattr(optim, "adam_step", student)
    theirs = optim.Adam(twin)
    for _ in range(3):
        theirs.step(grads)
    w, w_twin = to_numpy(params["w"]), to_numpy(twin["w"])
    assert np.array_equal(w, w_twin) and not np.array_equal(w_twin, 0)


# ---------------------------------------------------------------- the fused Bernoulli terms
def _bernoulli_reference(x, logits):
    """x ℓ - softplus(ℓ) and x - σ(ℓ), the textbook way (float64, logaddexp's softplus)."""
    from scipy.special import expit
    x, logits = np.float64(x), np.float64(logits)
    return x * logits - np.logaddexp(0, logits), x - expit(logits)


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 2e-6)])
def test_fused_bernoulli_terms_are_the_two_lab_functions(dtype, tol):
    from minivae.backend import to_numpy, asarray
    from minivae.likelihoods import (bernoulli_grads, bernoulli_log_prob,
                                     bernoulli_log_prob_and_grads)
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((6, 4, 9)) * 8
    logits[0, 0, :5] = [0.0, 95.0, -95.0, 1e4, -1e4]           # e^{-|ℓ|} subnormal or 0
    for x in ((rng.random((4, 9)) < 0.4).astype(dtype), rng.random((4, 9)).astype(dtype)):
        want_lp, want_d = _bernoulli_reference(x, logits.astype(dtype))
        xd, ld = asarray(x), asarray(logits, dtype=dtype)
        lp, d = bernoulli_log_prob_and_grads(xd, ld)
        lp, d = to_numpy(lp), to_numpy(d["logits"])
        assert lp.shape == d.shape == logits.shape and lp.dtype == d.dtype == np.dtype(dtype)
        assert np.all(np.isfinite(lp)) and np.all(lp <= 0)
        scale = np.maximum(1, np.abs(want_lp))
        assert np.max(np.abs(lp - want_lp) / scale) < tol
        assert np.max(np.abs(d - want_d)) < tol
        # The lab functions give the same numbers (bernoulli_log_prob is the same first half).
        assert np.array_equal(to_numpy(bernoulli_log_prob(xd, ld)), lp)
        assert np.max(np.abs(to_numpy(bernoulli_grads(xd, ld)["logits"]) - d)) < tol


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 2e-6)])
def test_step_terms_of_the_bernoulli_model_are_its_log_prob_and_gradient_up_to_constants(
        dtype, tol):
    from minivae.backend import asarray, to_numpy
    from minivae.likelihoods import Bernoulli, ObservationModel
    from minivae.workspace import Workspace
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((6, 4, 9)) * 8
    logits[0, 0, :5] = [0.0, 95.0, -95.0, 1e4, -1e4]
    logits[1, 0, :5] = [0.0, 95.0, -95.0, 1e4, -1e4]
    x = (rng.random((4, 9)) < 0.4).astype(dtype)
    x[0, :5] = [1, 0, 1, 0, 1]                                  # both sides of each extreme
    want_lp, want_d = _bernoulli_reference(x, logits.astype(dtype))
    xd, ld = asarray(x), asarray(logits, dtype=dtype)
    u, c, grads, a = Bernoulli.step_terms(xd, work=Workspace(), logits=ld)
    lp, d = to_numpy(u) + c, a * to_numpy(grads["logits"])
    assert lp.dtype == d.dtype == np.dtype(dtype) and c == -np.log(2) and a == 0.5
    assert np.max(np.abs(lp - want_lp) / np.maximum(1, np.abs(want_lp))) < tol
    assert np.max(np.abs(d - want_d)) < tol
    u2, c2 = Bernoulli.log_prob_terms(xd, logits=ld)            # the forward pass's half
    assert c2 == c and np.array_equal(to_numpy(u2), to_numpy(u))
    # The generic form (c = 0, a = 1) is the lab's fused function itself.
    u3, c3, grads3, a3 = ObservationModel.step_terms.__func__(Bernoulli, xd, logits=ld)
    assert (c3, a3) == (0.0, 1.0)
    assert np.max(np.abs(to_numpy(u3) - lp) / np.maximum(1, np.abs(want_lp))) < tol


def test_a_substituted_fused_bernoulli_function_is_the_one_the_training_step_runs():
    """labs run --mine puts a student's functions in the library's place: the model's faster
    Bernoulli form must then step aside, or the step would not run the student's code."""
    from minivae import likelihoods
    from minivae.backend import asarray, to_numpy
    from minivae.model import IWAE
    calls = []
    right, right_lp = likelihoods.bernoulli_log_prob_and_grads, likelihoods.bernoulli_log_prob

    def theirs(x, logits):
        calls.append("grads")
        log_phi, d = right(x, logits)
        return log_phi, {"logits": 2 * d["logits"]}             # a wrong gradient

    def theirs_lp(x, logits):
        calls.append("log_prob")
        return right_lp(x, logits)

    problem = benchmarks.make_problem(12, 3, (5,), 4, 3, dtype="float64")
    model = IWAE(12, 3, hidden=(5,), dtype="float64")
    v, g = model.bound_and_grads(problem.x, 3, eps=problem.eps)
    b = model.bound(problem.x, 3, eps=problem.eps)
    from minivae.labs import get_lab
    from minivae.labs.core import substituted
    mine = types.SimpleNamespace(bernoulli_log_prob_and_grads=theirs, bernoulli_log_prob=theirs_lp)
    with substituted(get_lab(4), mine):
        v2, g2 = model.bound_and_grads(problem.x, 3, eps=problem.eps)
        b2 = model.bound(problem.x, 3, eps=problem.eps)
    x = asarray(problem.x)
    assert likelihoods.Bernoulli.step_terms(x, logits=x)[1] != 0         # ours again after
    assert calls == ["grads", "log_prob"]
    assert float(v2) == pytest.approx(float(v), rel=1e-12)
    assert np.allclose(to_numpy(b2), to_numpy(b), rtol=1e-12, atol=0)
    assert not np.allclose(to_numpy(g2["decoder.logits.W"]), to_numpy(g["decoder.logits.W"]))


def test_map_rows_covers_every_row_once_with_the_thread_count_of_the_limit_block():
    from minivae import backend

    def blas_threads():
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}

    for n_threads, n_rows in ((1, 7), (2, 7), (3, 7), (3, 2), (2, 1)):
        with threads.limit(n_threads):
            seen = threads.map_rows(lambda rows, part: (rows, part, blas_threads()), n_rows)
            assert blas_threads() == {n_threads}                  # restored after the blocks
        covered = [i for rows, _, _ in seen for i in range(n_rows)[rows]]
        assert covered == list(range(n_rows))                     # in order, each row once
        assert [part for _, part, _ in seen] == list(range(len(seen)))
        parallel = min(n_threads, n_rows) if backend.name == "numpy" else 1   # GPU: one call
        assert len(seen) == parallel
        if parallel > 1:
            assert all(b == {1} for _, _, b in seen)              # one BLAS thread per block
    assert threads.map_rows(lambda rows, part: rows, 5) == [slice(0, 5)]   # outside: one
    with threads.limit(2):                     # blocks within a block: one, never a deadlock
        inner = threads.map_rows(lambda rows, part: threads.map_rows(
            lambda r, p: r, 4), 6)
    assert inner[-1] == [slice(0, 4)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_threads_for_the_blocks():
    """A child forked after the blocks' pool started has none of its threads: it must start
    its own instead of waiting forever for work that never runs."""
    import time
    with threads.limit(2):
        assert len(threads.map_rows(lambda rows, part: part, 4)) in (1, 2)   # pool started
    pid = os.fork()
    if pid == 0:                                        # the child
        with threads.limit(2):
            ok = sorted(threads.map_rows(lambda rows, part: part, 4)) in ([0], [0, 1])
        os._exit(0 if ok else 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child waited for blocks that never ran")


@pytest.mark.parametrize("likelihood, kind", [("bernoulli", "IWAE"), ("gaussian", "IWAE"),
                                              ("bernoulli", "VAE")])
def test_a_step_in_blocks_of_examples_is_the_same_gradient(likelihood, kind):
    """With two or three threads, bound_and_grads runs blocks of the batch side by side and
    adds their gradients: the same numbers as one block, to float64 rounding (the IWAE bound,
    and the VAE's with the analytic KL)."""
    from minivae import model as models
    from minivae.backend import asarray, to_numpy
    rng = np.random.default_rng(9)
    model = getattr(models, kind)(12, 3, hidden=(5,), likelihood=likelihood, dtype="float64",
                                  seed=2)
    x = (rng.random((7, 12)) < 0.5).astype(float) if likelihood == "bernoulli" \
        else rng.standard_normal((7, 12))
    eps, mask = rng.standard_normal((4, 7, 3)), asarray(rng.random((7, 12)) < 0.8)
    got = {}
    for n in (1, 2, 3):
        with threads.limit(n):
            value, grads = model.bound_and_grads(x, 4, eps=eps, mask=mask)
        got[n] = float(value), {k: to_numpy(g) for k, g in grads.items()}
    for n in (2, 3):
        assert got[n][0] == pytest.approx(got[1][0], rel=1e-12)
        for k, g in got[1][1].items():
            assert np.max(np.abs(got[n][1][k] - g)) <= 1e-12 * np.max(np.abs(g)), k


def test_evaluation_in_blocks_of_examples_gives_the_same_bounds(monkeypatch):
    """With more threads, bound_per_example scores blocks of examples side by side: each
    example's noise is its own, so the bounds are the one-thread bounds (to float64 rounding),
    and the progress count still rises to N."""
    import threading
    from minivae import backend, evaluate
    from minivae.model import IWAE
    model = IWAE(12, 3, hidden=(5,), dtype="float64", seed=4)
    x = (np.random.default_rng(10).random((9, 12)) < 0.5).astype(float)
    got = {}
    for n in (1, 2, 3):
        seen, where = [], set()

        def progress(done):
            seen.append(done)
            where.add(threading.current_thread().name.startswith("minivae-rows"))

        monkeypatch.setenv(threads.ENV_VAR, str(n))          # evaluation's own policy
        got[n] = evaluate.bound_per_example(model, x, k=40, chunk=100, seed=1,
                                            on_progress=progress)
        assert seen == sorted(seen) and seen[-1] == 9
        assert where == ({False} if n == 1 or backend.name != "numpy" else {False, True})
    for n in (2, 3):
        for a, b in zip(got[n], got[1]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)


def test_workspace_arrays_are_reused_per_shape_and_never_returned_as_gradients():
    from minivae.model import IWAE
    from minivae.workspace import Workspace
    work = Workspace()
    a = work("h", (3, 4), np.float32)
    assert work("h", (3, 4), np.float32) is a
    assert work("h", (2, 4), np.float32) is not a              # a new shape replaces it
    assert work("h", (2, 4), np.float64).dtype == np.float64
    model = IWAE(12, 3, hidden=(5,), dtype="float64")
    problem = benchmarks.make_problem(12, 3, (5,), 4, 3, dtype="float64")
    v1, g1 = model.bound_and_grads(problem.x, 3, eps=problem.eps)
    kept = {n: g.copy() for n, g in g1.items()}
    model.bound_and_grads(problem.x, 3, eps=problem.eps[::-1].copy())   # other noise
    v3, g3 = model.bound_and_grads(problem.x, 3, eps=problem.eps)
    assert all(np.array_equal(kept[n], g1[n]) for n in kept)  # the first gradients are intact
    assert float(v1) == float(v3) and all(np.array_equal(kept[n], g3[n]) for n in kept)


def test_with_more_than_one_thread_each_timed_round_starts_after_a_pause(monkeypatch):
    # Spinning pool threads of the previous contender must not steal a core from the next one.
    assert benchmarks.settle_seconds(1) == 0.0 and benchmarks.settle_seconds(2) > 0
    pauses, calls = [], []
    monkeypatch.setattr(benchmarks.time, "sleep", pauses.append)
    steps = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    benchmarks.time_interleaved(steps, repeats=2, rounds=3, warmup=1, settle=0.25)
    assert pauses == [0.25] * 6                       # one before each of the 2 × 3 rounds
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3
    pauses.clear()
    benchmarks.time_interleaved(steps, repeats=1, rounds=2, warmup=1)
    assert pauses == []
