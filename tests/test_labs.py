"""The labs (labs/, minivae.labs): checks, solutions, planted mistakes, reset, the real-data runs.

For every lab: the checks pass on minivae's own functions (--solution) and through an exercise
*file* built from them; a bug planted in the library fails the lab's --solution; the untouched
exercise file reports every function NOT IMPLEMENTED and exits non-zero without a traceback; a
planted wrong gradient or function is reported FAIL while the correct ones still pass; the "now
on real data" part runs on its small --quick budget, with the student's functions in the
library when asked (a wrong one changes the printed figures).
"""
import inspect
import math
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from helpers import ON_DEVICE
from minivae.labs import NUMBERS, __main__ as labs_cli, get_lab
from minivae.labs.core import labs_root, pristine_text, resolve, shipped_file, solution



@pytest.fixture(autouse=True)
def _host_only(request):
    """The labs run on the CPU with NumPy (the student's functions get NumPy arrays): under
    MINIVAE_BACKEND=cupy every test here is skipped but the last, which checks that `minivae
    lab` refuses that backend in one line."""
    refusal = "test_the_labs_refuse_another_backend_in_one_line"
    if ON_DEVICE and request.node.originalname != refusal:
        pytest.skip("host-only: the labs run on the CPU with NumPy")


def template_text(lab):
    return pristine_text(lab)

REPO = Path(__file__).resolve().parents[1]
STATUS = re.compile(r"^  (\S+)\s+(PASS|FAIL|NOT IMPLEMENTED|ERROR)\b(.*)$")


def check(capsys, *argv):
    """Run `python -m minivae.labs check ...` in-process: (exit code, {function: (status,
    detail)}, stdout)."""
    rc = labs_cli.main(["check", *map(str, argv)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    results = {}
    for line in out.splitlines():
        m = STATUS.match(line)
        if m:
            results[m.group(1)] = (m.group(2), m.group(3).strip())
    return rc, results, out


def exercise_from_solution(n, planted=""):
    """An exercise file whose functions are minivae's own (the solution), followed by
    ``planted`` code that may redefine some of them."""
    return (f"from minivae.ops import logsumexp_weights\n"
            f"from minivae.labs import get_lab as _get_lab\n"
            f"from minivae.labs.core import solution as _solution_of\n"
            f"_solution = _solution_of(_get_lab({n}))\n"
            f"globals().update({{k: v for k, v in vars(_solution).items() "
            f"if not k.startswith('__')}})\n"
            f"import numpy as np\nimport math\n\n{planted}\n")


def write_exercise(tmp_path, text):
    path = tmp_path / "exercise.py"
    path.write_text(text, encoding="utf-8")
    return path


def check_planted(capsys, tmp_path, n, planted=""):
    """``check n`` of an exercise file holding minivae's own functions followed by ``planted``
    code (see :func:`exercise_from_solution`): (exit code, results, stdout) as :func:`check`."""
    return check(capsys, n, "--path", write_exercise(tmp_path, exercise_from_solution(n, planted)))


# ---------------------------------------------------------------- the files
@pytest.mark.parametrize("n", NUMBERS)
def test_each_lab_ships_its_sheet_answers_exercise_and_run_script(n):
    lab = get_lab(n)
    for name in ("README.md", "ANSWERS.md", "exercise.py", "run.py"):
        assert shipped_file(lab, name).is_file()
    assert "ANSWERS.md" in shipped_file(lab, "README.md").read_text(encoding="utf-8")
    assert not (REPO / "minivae" / "labs" / "templates").exists()


def test_index_lists_every_lab():
    index = (labs_root() / "README.md").read_text(encoding="utf-8")
    for n in NUMBERS:
        assert get_lab(n).FOLDER in index


@pytest.mark.parametrize("n", NUMBERS)
def test_every_check_has_a_stub_and_a_solution(n):
    lab = get_lab(n)
    names = [name for name, _ in lab.CHECKS]
    stubs = re.findall(r"^def (\w+)\(", template_text(lab), flags=re.M)
    raising = [s for s in stubs if f'NotImplementedError("{s}' in template_text(lab)
               or f"NotImplementedError('{s}" in template_text(lab)]
    assert raising == names, "one check per stub, in the order of the exercise file"
    ns = solution(lab)
    assert all(callable(getattr(ns, name, None)) for name in names)


@pytest.mark.parametrize("n", NUMBERS)
def test_every_exercise_function_is_a_library_function_with_its_signature(n, tmp_path):
    """The exercise is the library: same name, same parameters (and defaults). The library's
    function may end with optional switches the exercise leaves out (need_dx=False: a saving;
    work=None: a workspace whose buffers receive the results; not a different result), which
    run --mine drops when it calls the student's function (core._adapted)."""
    lab = get_lab(n)
    from minivae.labs.core import load_exercise
    stub = load_exercise(write_exercise(tmp_path, template_text(lab)))
    for dotted in lab.SOLUTION:
        name = dotted.rsplit(".", 1)[-1]
        mine = list(inspect.signature(getattr(stub, name)).parameters.values())
        ours = list(inspect.signature(resolve(dotted)).parameters.values())
        assert [(p.name, p.default) for p in mine] == \
            [(p.name, p.default) for p in ours[:len(mine)]], dotted
        assert all(p.default is not p.empty for p in ours[len(mine):]), dotted


# ---------------------------------------------------------------- the checks
@pytest.mark.parametrize("n", NUMBERS)
def test_solution_passes(n, capsys):
    rc, results, out = check(capsys, n, "--solution")
    assert rc == 0, out
    assert [r[0] for r in results.values()] == ["PASS"] * len(get_lab(n).CHECKS), out


@pytest.mark.parametrize("n", NUMBERS)
def test_solution_as_an_exercise_file_passes(n, capsys, tmp_path):
    rc, results, out = check_planted(capsys, tmp_path, n)
    assert rc == 0, out
    assert all(status == "PASS" for status, _ in results.values()), out


@pytest.mark.parametrize("n", NUMBERS)
def test_untouched_exercise_is_not_implemented(n, capsys, tmp_path):
    path = write_exercise(tmp_path, template_text(get_lab(n)))
    rc, results, out = check(capsys, n, "--path", path)
    assert rc == 1
    assert list(results) == [name for name, _ in get_lab(n).CHECKS], out
    assert all(r == ("NOT IMPLEMENTED", "") for r in results.values()), out


def test_untouched_exercise_in_a_subprocess_exits_nonzero_without_traceback(tmp_path):
    folder = tmp_path / "labs" / get_lab(3).FOLDER
    folder.mkdir(parents=True)
    write_exercise(folder, template_text(get_lab(3)))
    proc = subprocess.run([sys.executable, "-m", "minivae.labs", "check", "3"], cwd=folder,
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.count("NOT IMPLEMENTED") == 5


# The fused Bernoulli function with ∂/∂ℓ = (x - ½) - T instead of (x - ½) - ½T (log Φ right).
BERNOULLI_FUSED_HALF_T = (
    "def bernoulli_log_prob_and_grads(x, logits):\n"
    "    t = np.tanh(logits / 2)\n"
    "    return bernoulli_log_prob(x, logits), {'logits': (x - 0.5) - t}\n")

# One deliberate mistake per lab (and a few more): the function named is redefined wrongly.
PLANTED = [
    (1, "is_term_variance", "def is_term_variance(a, m):\n"
        "    return math.exp(m * m / 2 + (2 * a - m) ** 2 / 2)\n"),          # forgot - I²
    (1, "simple_monte_carlo", "def simple_monte_carlo(f, sample_p, k, rng):\n"
        "    t = f(sample_p(k, rng))\n    return t.mean(), t.var() / k\n"),   # ddof=0
    (2, "fa_em_step", "_ok = fa_em_step\n"
        "def fa_em_step(S, W, psi):\n    W1, _ = _ok(S, W, psi)\n"
        "    return W1, psi\n"),                                             # ψ not updated
    (3, "tanh_backward", "def tanh_backward(dout, y):\n    return dout * (1 - y)\n"),
    (3, "mlp_backward", "_ok = mlp_backward\n"
        "def mlp_backward(dh, caches, prefix, activation, grads):\n"
        "    dx = _ok(dh, caches, prefix, activation, grads)\n"
        "    grads[prefix + '.0.b'] = 2 * grads[prefix + '.0.b']\n    return dx\n"),
    (4, "gaussian_grads", "def gaussian_grads(x, mean, logvar):\n"
        "    r = (x - mean) * np.exp(-logvar)\n"
        "    return {'mean': r, 'logvar': r * (x - mean) - 1}\n"),           # lost the 1/2
    (4, "bernoulli_log_prob", "def bernoulli_log_prob(x, logits):\n"
        "    p = 1 / (1 + np.exp(-logits))\n"
        "    return x * np.log(p) + (1 - x) * np.log(1 - p)\n"),              # -inf at ±800
    (4, "bernoulli_log_prob_and_grads", BERNOULLI_FUSED_HALF_T),          # forgot the ½ of ½T
    (4, "bernoulli_log_prob_and_grads", "def bernoulli_log_prob_and_grads(x, logits):\n"
        "    p = 1 / (1 + np.exp(-logits))\n"
        "    return x * np.log(p) + (1 - x) * np.log(1 - p), {'logits': x - p}\n"),  # -inf, f32
    (5, "kl_grads", "def kl_grads(mean, logvar):\n"
        "    return mean, 0.5 * np.exp(logvar)\n"),
    (5, "vae_encoder_grads", "_ok = vae_encoder_grads\n"
        "def vae_encoder_grads(dlogpx_dz, eps, mean, logvar):\n"
        "    return _ok(dlogpx_dz * eps.shape[0], eps, mean, logvar)\n"),     # forgot the 1/K
    (6, "iwae_bound_grad", "def iwae_bound_grad(log_w):\n    return np.exp(log_w)\n"),
    (6, "logsumexp_weights", "def logsumexp_weights(log_w):\n"
        "    s = np.exp(log_w).sum(axis=0)\n    return np.log(s), np.exp(log_w) / s\n"),
    (6, "lse_push", "def lse_push(m, s, x):\n"
        "    if x > m:\n        return x, s * math.exp(m - x) + 1.0\n"
        "    return m, s + math.exp(x - m)\n"),                               # NaN at -inf
    (6, "iwae_encoder_grads", "_ok = iwae_encoder_grads\n"
        "def iwae_encoder_grads(log_w, dlogpx_dz, eps, mean, logvar):\n"
        "    dm, dv = _ok(log_w, dlogpx_dz, eps, mean, logvar)\n"
        "    return dm, dv - 0.5\n"),                                         # forgot -log q
    (6, "dreg_encoder_grads", "def dreg_encoder_grads(log_w, dlogpx_dz, eps, mean, logvar):\n"
        "    w = np.exp(log_w - log_w.max(0))\n    w = w / w.sum(0)\n"
        "    z = mean + np.exp(0.5 * logvar) * eps\n"
        "    dz = w[..., None] * (dlogpx_dz - z + eps * np.exp(-0.5 * logvar))\n"
        "    return dz.sum(0), (dz * eps).sum(0) * 0.5 * np.exp(0.5 * logvar)\n"),  # STL: w̃
    (7, "adam_step", "_ok = adam_step\n"
        "def adam_step(param, grad, m, s, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-4):\n"
        "    return _ok(param, -grad, m, s, t, lr, beta1, beta2, eps)\n"),    # descends
    (8, "miwae_head_grads", "def miwae_head_grads(log_w, dlogphi, mask):\n"
        "    w = np.exp(log_w - log_w.max(axis=0))\n"
        "    return (w / w.sum(axis=0))[..., None] * dlogphi\n"),             # ignores the mask
    # The edge cases the sheets promise (issue 10, item 6):
    (6, "logsumexp_weights", "def logsumexp_weights(log_w):\n"
        "    m = log_w.max(axis=0)\n    e = np.exp(log_w - m)\n"
        "    return m + np.log(e.sum(axis=0)), e / e.sum(axis=0)\n"),        # NaN if all -inf
    (6, "iwae_bound_grad", "def iwae_bound_grad(log_w):\n"
        "    e = np.exp(log_w - log_w.max(axis=0))\n    return e / e.sum(axis=0)\n"),
    (8, "sir_indices", "def sir_indices(log_w, u):\n"
        "    _, w = logsumexp_weights(log_w)\n    c = np.cumsum(w, axis=0)\n"
        "    return np.stack([np.searchsorted(c[:, b], u[:, b] * c[-1, b], side='left')\n"
        "                     for b in range(c.shape[1])], axis=1)\n"),   # u = 0 picks w̃ = 0
    (8, "sir_indices", "def sir_indices(log_w, u):\n"
        "    _, w = logsumexp_weights(log_w)\n    c = np.cumsum(w, axis=0)\n"
        "    return np.stack([np.searchsorted(c[:, b], u[:, b], side='right')\n"
        "                     for b in range(c.shape[1])], axis=1)\n"),   # no clip to L - 1
    (9, "q_sample", "def q_sample(x0, t, eps, schedule):\n"
        "    ab = schedule.at('alpha_bar', t, x0.dtype)\n"
        "    return np.sqrt(ab) * x0 + (1 - ab) * eps\n"),                   # variance as std
    (9, "posterior_mean_var", "_ok = posterior_mean_var\n"
        "def posterior_mean_var(x0, xt, t, schedule):\n"
        "    mean, _ = _ok(x0, xt, t, schedule)\n"
        "    return mean, schedule.at('beta', t, x0.dtype)\n"),               # β_t, not β̃_t
    (9, "time_embedding_backward", "def time_embedding_backward(dout, cache):\n"
        "    omega, s, c = cache\n    m = len(omega)\n"
        "    return (dout[:, :m] * c + dout[:, m:] * s) @ omega\n"),          # sign of cos'
    (9, "simple_loss", "def simple_loss(eps_hat, eps):\n"
        "    d = eps_hat - eps\n    return (d * d).mean(), 2 * d / len(d)\n"),  # forgot 1/D
]


@pytest.mark.parametrize("n,name,planted", PLANTED, ids=[f"{n}-{f}" for n, f, _ in PLANTED])
def test_planted_mistake_fails_and_nothing_else_does(n, name, planted, capsys, tmp_path):
    rc, results, out = check_planted(capsys, tmp_path, n, planted)
    assert rc == 1, out
    assert results[name][0] == "FAIL", out
    assert "rel. error" in results[name][1] or "NaN" in results[name][1] or \
        "lowered the log-likelihood" in results[name][1] or \
        re.search(r"is -?inf at .* where ℓ = ", results[name][1]), out
    others = [status for f, (status, _) in results.items() if f != name and
              not (n == 3 and name == "tanh_backward" and f == "mlp_backward")]
    assert set(others) == {"PASS"}, out


def test_a_function_that_calls_an_unimplemented_one_says_so(capsys, tmp_path):
    text = template_text(get_lab(3)).replace(
        '    _, act_backward = ACTIVATIONS[activation]\n    raise NotImplementedError(',
        '    _, act_backward = ACTIVATIONS[activation]\n    act_backward(dh, caches[-1][1])\n'
        '    raise NotImplementedError(')
    rc, results, _ = check(capsys, 3, "--path", write_exercise(tmp_path, text))
    assert results["mlp_backward"] == ("NOT IMPLEMENTED", "it calls tanh_backward(), not "
                                       "implemented yet")


#: Student code that misbehaves, and the one line each checked function then gets: lab, the
#: code planted after minivae's own functions, {function: (status, regular expression the
#: detail must match)}.
MISBEHAVING = {
    "fail reports the worst entry": (3, PLANTED[3][2], {
        "tanh_backward": ("FAIL", r"at da\[\d+, \d+\]: yours -?[\d.e+-]+, numerical -?[\d.e+-]+")}),
    "errors are one line": (3, (
        "def tanh_backward(dout, y):\n    return dout * (1 - y * y) / undefined_name\n"
        "def relu_backward(dout, y):\n    return dout[:2]\n"
        "def softplus_backward(dout, y):\n    return None\n"
        "def affine_backward(dout, cache):\n    raise ValueError('oops')\n"), {
        "tanh_backward": ("ERROR", r"NameError.*exercise\.py line"),
        "relu_backward": ("FAIL", "shape"),
        "softplus_backward": ("FAIL", "None"),
        "affine_backward": ("ERROR", r"^ValueError: oops \(exercise\.py line \d+, in "
                            r"affine_backward\)$")}),
    # An error raised in a helper shows where the checked function called it, too: a
    # mlp_backward that reaches the student's tanh_backward through its own ACTIVATIONS.
    "an error names the line of the function under test": (3, (
        "def tanh_backward(dout, y):\n    return dout * (1 - y * y) / undefined_name\n"
        "def mlp_backward(dh, caches, prefix, activation, grads):\n"
        "    _, act_backward = ACTIVATIONS[activation]\n"
        "    return act_backward(dh, caches[-1][1])\n"
        "ACTIVATIONS = {'tanh': (tanh_forward, tanh_backward)}\n"), {
        "mlp_backward": ("ERROR", r"NameError: .*\(exercise\.py line \d+, in mlp_backward; "
                         r"raised in exercise\.py line \d+, in tanh_backward\)")}),
    "a function that modifies its argument fails": (7, (
        "_ok = adam_step\n"
        "def adam_step(param, grad, m, s, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-4):\n"
        "    p, m2, s2 = _ok(param, grad, m, s, t, lr, beta1, beta2, eps)\n"
        "    param[...] = p\n    return param, m2, s2\n"), {
        "adam_step": ("FAIL", "modified its argument param in place")}),
}


@pytest.mark.parametrize("case", MISBEHAVING)
def test_misbehaving_student_code_gets_one_line_per_function(case, capsys, tmp_path):
    n, planted, expected = MISBEHAVING[case]
    rc, results, out = check_planted(capsys, tmp_path, n, planted)
    assert rc == 1, out
    for name, (status, pattern) in expected.items():
        assert results[name][0] == status, out
        assert re.search(pattern, results[name][1]), results[name][1]


def test_a_file_that_does_not_import_is_one_line(capsys, tmp_path):
    path = write_exercise(tmp_path, "def broken(:\n    pass\n")
    rc = labs_cli.main(["check", "4", "--path", str(path)])
    out, err = capsys.readouterr()
    assert rc == 1 and "Traceback" not in out + err
    assert "SyntaxError" in out and "line 1" in out


def test_bad_input_is_exit_2(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        labs_cli.main(["check", "99"])
    assert e.value.code == 2
    assert labs_cli.main(["check", "1", "--path", str(tmp_path / "missing")]) == 2
    assert labs_cli.main(["check", "1", "--path", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "reset 1 --path" in err and "Traceback" not in err


# ---------------------------------------------------------------- reset and locating files
def test_reset_restores_the_stubs_and_keeps_a_backup(capsys, tmp_path):
    lab = get_lab(5)
    folder = tmp_path / "labs" / lab.FOLDER
    (tmp_path / "labs").mkdir()
    assert labs_cli.main(["reset", "5", "--path", str(tmp_path)]) == 0     # creates it
    path = folder / "exercise.py"
    assert path.read_text(encoding="utf-8") == template_text(lab)
    path.write_text("my work\n", encoding="utf-8")
    assert labs_cli.main(["reset", "5", "--path", str(folder)]) == 0
    assert path.read_text(encoding="utf-8") == template_text(lab)
    assert (folder / "exercise.py.bak").read_text(encoding="utf-8") == "my work\n"
    assert "already pristine" in (capsys.readouterr().out if labs_cli.main(
        ["reset", "5", "--path", str(path)]) == 0 else "")


@pytest.mark.parametrize("new", [False, True], ids=["existing folder", "new folder"])
def test_reset_into_a_folder_of_ones_own_then_check_from_there(new, capsys, tmp_path,
                                                              monkeypatch):
    """From an installed package: `reset N --path DIR` copies the stubs to DIR/NN_name/ (DIR
    created if need be), where `check N` run from DIR finds them."""
    lab = get_lab(2)
    folder = tmp_path / "my-labs" if new else tmp_path
    assert labs_cli.main(["reset", "2", "--path", str(folder)]) == 0
    path = folder / lab.FOLDER / "exercise.py"
    assert path.read_text(encoding="utf-8") == template_text(lab)
    monkeypatch.chdir(folder)
    rc, results, out = check(capsys, 2)
    assert rc == 1 and str(path) in out
    assert set(results.values()) == {("NOT IMPLEMENTED", "")}


def test_reset_without_a_path_from_an_installed_package_writes_into_the_current_folder(
        capsys, tmp_path, monkeypatch):
    """A clone's reset restores its own labs/ file; an installed copy has none a student
    should edit, so `reset N` makes one in the current folder (where `check N` finds it)."""
    from minivae.labs import core
    lab = get_lab(4)
    monkeypatch.setattr(core, "in_clone", lambda: False)
    monkeypatch.chdir(tmp_path)
    assert labs_cli.main(["reset", "4"]) == 0
    path = tmp_path / lab.FOLDER / "exercise.py"
    assert path.read_text(encoding="utf-8") == template_text(lab)
    assert f"reset {path}" in capsys.readouterr().out
    assert labs_cli.main(["check", "4"]) == 1
    assert str(path) in capsys.readouterr().out


def test_check_finds_the_exercise_from_inside_a_lab_folder(capsys, tmp_path, monkeypatch):
    lab = get_lab(6)
    folder = tmp_path / "labs" / lab.FOLDER
    folder.mkdir(parents=True)
    (folder / "exercise.py").write_text(exercise_from_solution(6), encoding="utf-8")
    monkeypatch.chdir(folder)
    rc, results, out = check(capsys, 6)
    assert str(folder / "exercise.py") in out and rc == 0
    monkeypatch.chdir(tmp_path)
    rc, _, out = check(capsys, 6)
    assert str(folder / "exercise.py") in out and rc == 0


# ---------------------------------------------------------------- the references are minivae's
def _linear_gaussian_model(cls, B, d, seed, **kw):
    """A model whose encoder is affine in a one-hot x (so ∂/∂W_mean row b = ∂/∂μ_b) and whose
    decoder is linear-Gaussian."""
    model = cls(B, d, hidden=(), likelihood="gaussian", dtype="float64", seed=seed, **kw)
    rng = np.random.default_rng(seed)
    for p in model.params.values():
        p[...] = 0.5 * rng.standard_normal(p.shape)
    return model, np.eye(B)


def _dlogpx_dz(model, cache):
    from minivae.likelihoods import Gaussian
    g = Gaussian.log_prob_grads(cache["x"], **cache["heads"])
    p = model.params
    return g["mean"] @ p["decoder.mean.W"].T + g["logvar"] @ p["decoder.logvar.W"].T


@pytest.mark.parametrize("which", ["vae", "iwae"])
def test_the_encoder_gradients_labs_5_and_6_ask_for_are_the_models(which):
    """bound.vae_encoder_grads and bound.iwae_encoder_grads (the compositions the labs ask for)
    give the gradients the models compute step by step."""
    from minivae import bound
    from minivae.model import IWAE, VAE
    K, B, d = 4, 3, 2
    if which == "vae":
        model, x = _linear_gaussian_model(VAE, B, d, 1, analytic_kl=True)
    else:
        model, x = _linear_gaussian_model(IWAE, B, d, 2)
    eps = np.random.default_rng(3).standard_normal((K, B, d))
    _, grads = model.bound_and_grads(x, K, eps=eps)
    log_w, cache = model.log_weights(x, K, eps=eps)
    args = (_dlogpx_dz(model, cache), eps, cache["mean"], cache["logvar"])
    if which == "vae":
        dmean, dlogvar = bound.vae_encoder_grads(*args)
    else:
        dmean, dlogvar = bound.iwae_encoder_grads(log_w, *args)
    # The model returns the gradient of the batch mean; row b of W_mean/W_logvar is example b's.
    np.testing.assert_allclose(grads["encoder.mean.W"], dmean / B, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["encoder.logvar.W"], dlogvar / B, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- now on real data
@pytest.mark.slow
@pytest.mark.parametrize("n", NUMBERS)
def test_real_data_part_runs_quickly(n, capsys, tmp_path):
    rc = labs_cli.main(["run", str(n), "--quick", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "done in" in out and not re.search(r"\bnan\b", out), out


# ---------------------------------------------------------------- the exercise is the library
LIBRARY_BUGS = [
    (1, "minivae.lecture.montecarlo", "is_term_variance",
     lambda a, m: math.exp(m * m / 2 + (2 * a - m) ** 2 / 2)),                # forgot - I²
    (2, "minivae.lecture.linear", "log_marginal", None),                               # off by 1 nat
    (3, "minivae.layers", "tanh_backward", lambda dout, y: dout * (1 - y)),
    (4, "minivae.likelihoods", "gaussian_grads",
     lambda x, mean, logvar: {"mean": (x - mean) * np.exp(-logvar),
                              "logvar": (x - mean) ** 2 * np.exp(-logvar) - 1}),  # lost the ½
    (4, "minivae.likelihoods", "bernoulli_log_prob_and_grads",
     lambda x, logits, work=None: (x * logits - np.logaddexp(0, logits),
                                   {"logits": x - 0.5 - np.tanh(logits / 2)})),  # lost the ½ of ½T
    (5, "minivae.bound", "kl_grads", lambda mean, logvar: (mean, 0.5 * np.exp(logvar))),
    (6, "minivae.bound", "iwae_bound_grad", lambda log_w: np.exp(log_w)),
    (7, "minivae.optim", "adam_step", None),                                   # descends
    (8, "minivae.impute", "sir_indices",
     lambda log_w, u: np.zeros(u.shape, dtype=int)),                           # always sample 0
]


@pytest.mark.parametrize("n,module,name,bug", LIBRARY_BUGS,
                         ids=[f"{n}-{name}" for n, _, name, _ in LIBRARY_BUGS])
def test_a_bug_planted_in_the_library_fails_the_lab_solution(n, module, name, bug, capsys,
                                                             monkeypatch):
    """--solution checks the library's own function, resolved when the check runs."""
    import importlib
    mod = importlib.import_module(module)
    right = getattr(mod, name)
    if bug is None and name == "log_marginal":
        def bug(X, W, mu, psi):
            return right(X, W, mu, psi) + 1.0
    elif bug is None:
        def bug(param, grad, *args, **kwargs):
            return right(param, -grad, *args, **kwargs)
    rc, results, out = check(capsys, n, "--solution")
    assert rc == 0 and results[name][0] == "PASS", out
    monkeypatch.setattr(mod, name, bug)
    rc, results, out = check(capsys, n, "--solution")
    assert rc == 1 and results[name][0] == "FAIL", out


def _figures(out):
    """The rows of run's closing table: {figure: (yours, minivae's)}."""
    rows = {}
    table = out[out.index("yours"):]
    for line in table.splitlines()[1:]:
        m = re.match(r"^(.*?)\s{2,}(\S+)\s{2,}(\S+)$", line)
        if m:
            rows[m.group(1).strip()] = (m.group(2), m.group(3))
    return rows


def run_quick(capsys, tmp_path, n, planted="", mine=False):
    """`run N --quick` on an exercise in a lab folder (the solution, with ``planted`` functions
    pasted over it): the printed output, after checking the run exited 0."""
    folder = tmp_path / "labs" / get_lab(n).FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    write_exercise(folder, exercise_from_solution(n, planted))
    args = ["run", str(n), "--quick", "--path", str(folder), "--out", str(tmp_path)]
    assert labs_cli.main(args + ["--mine"] * mine) == 0
    return capsys.readouterr().out


@pytest.mark.slow
def test_run_mine_trains_with_the_students_functions(capsys, tmp_path):
    """run --mine puts the student's functions in the library: a right exercise reproduces the
    library's figures, a wrong tanh_backward (which the model's backward pass calls through
    mlp_backward) changes the trained model's test bound."""
    out = run_quick(capsys, tmp_path, 3)
    assert "with your functions from" in out        # all pass: used by default
    rows = _figures(out)
    assert rows["trained IWAE: test L_5"][0] == rows["trained IWAE: test L_5"][1], out
    out = run_quick(capsys, tmp_path, 3, PLANTED[3][2], mine=True)     # wrong tanh_backward
    yours, ours = _figures(out)["trained IWAE: test L_5"]
    assert yours != ours and float(yours) < float(ours), out
    from minivae import layers
    assert layers.tanh_backward.__module__ == "minivae.layers"     # restored afterwards


@pytest.mark.slow
def test_run_mine_trains_lab_4s_bernoulli_with_the_students_fused_function(capsys, tmp_path):
    """The IWAE's training step calls bernoulli_log_prob_and_grads(x, logits, work=...), and
    so does lab 4's fit (model.log_prob_and_grads): under --mine the student's fused function,
    which has no work=, is called (the option dropped) and a wrong one changes the Bernoulli
    fit, not the others."""
    rows = _figures(run_quick(capsys, tmp_path, 4, BERNOULLI_FUSED_HALF_T, mine=True))
    yours, ours = rows["Bernoulli (binarized): test log-lik."]
    assert float(yours) < float(ours), rows
    for other in ("Gaussian (grey levels): test log-lik.", "Student's t (grey): test log-lik."):
        assert rows[other][0] == rows[other][1], rows
    from minivae import likelihoods
    assert likelihoods.Bernoulli.log_prob_and_grads is likelihoods.bernoulli_log_prob_and_grads


def test_substitution_drops_the_librarys_work_option_like_need_dx():
    """The model passes work= to the fused Bernoulli function; a student's function without
    that parameter is called without it (as layers' need_dx), one with **kwargs receives it."""
    from minivae import likelihoods
    from minivae.labs.core import substituted
    from minivae.workspace import Workspace
    seen, right = [], likelihoods.bernoulli_log_prob_and_grads

    def mine(x, logits):
        seen.append("called")
        return right(x, logits)

    x, logits = np.zeros((2, 3)), np.ones((4, 2, 3))
    with substituted(get_lab(4), types.SimpleNamespace(bernoulli_log_prob_and_grads=mine)):
        log_phi, d = likelihoods.Bernoulli.log_prob_and_grads(x, logits=logits,
                                                                work=Workspace())
    assert seen == ["called"] and log_phi.shape == d["logits"].shape == (4, 2, 3)
    assert likelihoods.Bernoulli.log_prob_and_grads is likelihoods.bernoulli_log_prob_and_grads


@pytest.mark.skipif(not ON_DEVICE, reason="only under MINIVAE_BACKEND=cupy")
def test_the_labs_refuse_another_backend_in_one_line(capsys):
    assert labs_cli.main(["check", "3", "--solution"]) == 2
    err = capsys.readouterr().err
    assert "unset MINIVAE_BACKEND" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_run_mine_with_an_unfinished_exercise_stops_in_one_line(capsys, tmp_path):
    folder = tmp_path / get_lab(2).FOLDER
    folder.mkdir()
    write_exercise(folder, template_text(get_lab(2)))
    rc = labs_cli.main(["run", "2", "--quick", "--mine", "--path", str(folder),
                        "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc == 1 and "Traceback" not in out + err
    assert re.search(r"your functions stopped the run: NotImplementedError: .*"
                     r"\(exercise.py line \d+, in ppca_fit\)", err), err
