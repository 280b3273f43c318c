"""The lecture-named functions of minivae.bound, ops, likelihoods, layers and impute: values
against independent formulas, gradients against finite differences (float64, rel. err < 1e-6),
the edge cases the labs promise, and the labs' signatures."""
import importlib.util
import inspect
import math

import numpy as np
import pytest
from scipy.special import logsumexp, softmax
from scipy.stats import norm

from minivae import backend, bound, impute, layers, likelihoods, ops
from minivae.gradcheck import check_function, format_report, max_error
from minivae.labs.core import labs_root
from minivae.lecture.linear import kl_gaussians
from minivae.model import IWAE

TOL = 1e-6
K, B, D, d = 4, 3, 5, 2
LABS = labs_root()                              # minivae/labs/files (labs/ links to it)


dev, host = backend.asarray, backend.to_numpy        # the tests run on either backend


def assert_passes(report):
    assert max_error(report) < TOL, "\n" + format_report(report)


def encoder_outputs(seed):
    rng = np.random.default_rng(seed)
    return (rng, dev(rng.standard_normal((B, d))), dev(0.7 * rng.standard_normal((B, d))),
            dev(rng.standard_normal((K, B, d))))


class LinearGaussianDecoder:
    """log p(x|z) = Σ_j log N(x_j; (z A + c)_j, e^{s_j}) and its ∂/∂z in closed form."""

    def __init__(self, rng):
        self.A, self.c = rng.standard_normal((d, D)), rng.standard_normal(D)
        self.s = 0.3 * rng.standard_normal(D)

    def log_px(self, x, z):
        return dev(norm.logpdf(x, host(z) @ self.A + self.c, np.exp(0.5 * self.s)).sum(-1))

    def grad_z(self, x, z):
        return dev(((x - host(z) @ self.A - self.c) * np.exp(-self.s)) @ self.A.T)


# ---------------------------------------------------------------- lab 5: q(z|x), log q, the KL
def test_reparametrize_and_its_backward():
    rng, mean, logvar, eps = encoder_outputs(0)
    z = bound.reparametrize(mean, logvar, eps)
    np.testing.assert_allclose(host(z), host(mean) + np.sqrt(np.exp(host(logvar))) * host(eps),
                               rtol=1e-14)
    dz = dev(rng.standard_normal((K, B, d)))
    dmean, dlogvar = bound.reparametrize_backward(dz, eps, logvar)
    assert dmean.shape == dlogvar.shape == (B, d)

    def f():
        return float((dz * bound.reparametrize(mean, logvar, eps)).sum())
    assert_passes(check_function(f, {"mean": mean, "logvar": logvar},
                                 {"mean": dmean, "logvar": dlogvar}))


def test_log_prior_and_log_q_are_the_gaussian_densities():
    _, mean, logvar, eps = encoder_outputs(1)
    z = host(bound.reparametrize(mean, logvar, eps))
    np.testing.assert_allclose(host(bound.log_prior(dev(z))), norm.logpdf(z).sum(-1), rtol=1e-13)
    direct = norm.logpdf(z, host(mean), np.exp(0.5 * host(logvar))).sum(-1)   # log N(z; μ, e^v)
    got = bound.log_q(eps, logvar)
    assert got.shape == (K, B)
    np.testing.assert_allclose(host(got), direct, rtol=1e-12)


def test_kl_divergence_and_its_gradient():
    _, mean, logvar, _ = encoder_outputs(2)
    cov = np.stack([np.diag(np.exp(v)) for v in host(logvar)])
    want = kl_gaussians(host(mean), cov, np.zeros((B, d)), np.eye(d))
    np.testing.assert_allclose(host(bound.kl_divergence(mean, logvar)), want, rtol=1e-12)
    dmean, dlogvar = bound.kl_grads(mean, logvar)

    def f():
        return float(bound.kl_divergence(mean, logvar).sum())
    assert_passes(check_function(f, {"mean": mean, "logvar": logvar},
                                 {"mean": dmean, "logvar": dlogvar}))


def test_vae_encoder_grads_is_the_gradient_of_the_sum_of_the_vae_bound():
    rng, mean, logvar, eps = encoder_outputs(3)
    dec, x = LinearGaussianDecoder(rng), rng.standard_normal((B, D))
    z = bound.reparametrize(mean, logvar, eps)
    dmean, dlogvar = bound.vae_encoder_grads(dec.grad_z(x, z), eps, mean, logvar)

    def f():
        z = bound.reparametrize(mean, logvar, eps)
        return float((dec.log_px(x, z).mean(0) - bound.kl_divergence(mean, logvar)).sum())
    assert_passes(check_function(f, {"mean": mean, "logvar": logvar},
                                 {"mean": dmean, "logvar": dlogvar}))


# ---------------------------------------------------------------- lab 6: L_K and its gradient
def log_weights(seed, k=K, b=6):
    return 3 * np.random.default_rng(seed).standard_normal((k, b)) - 5


def test_iwae_bound_is_the_log_mean_exp():
    log_w = log_weights(4)
    log_w[:, 1] += 1000                                              # needs the max shift
    np.testing.assert_allclose(host(bound.iwae_bound(dev(log_w))),
                               logsumexp(log_w, axis=0) - math.log(K), rtol=1e-14)


def test_iwae_bound_grad_is_the_normalized_weights():
    log_w = dev(log_weights(5))
    got = bound.iwae_bound_grad(log_w)
    np.testing.assert_allclose(host(got), softmax(host(log_w), axis=0), rtol=1e-13)

    def f():
        return float(bound.iwae_bound(log_w).sum())
    assert_passes(check_function(f, {"log_w": log_w}, {"log_w": got}))


def test_all_minus_inf_column_gives_minus_inf_bound_zero_gradient_and_no_nan():
    log_w = log_weights(6)
    log_w[:, 2] = -np.inf
    log_w[[0, 2], 3] = -np.inf
    log_w = dev(log_w)
    lse, w = (host(a) for a in ops.logsumexp_weights(log_w))
    L, g = host(bound.iwae_bound(log_w)), host(bound.iwae_bound_grad(log_w))
    assert lse[2] == -np.inf and L[2] == -np.inf
    assert np.all(w[:, 2] == 0) and np.all(g[:, 2] == 0)
    assert g[0, 3] == 0 and g[2, 3] == 0 and np.isclose(g[:, 3].sum(), 1)
    assert not np.isnan(L).any() and not np.isnan(g).any()


def test_iwae_encoder_grads_is_the_gradient_of_the_sum_of_l_k():
    rng, mean, logvar, eps = encoder_outputs(7)
    dec, x = LinearGaussianDecoder(rng), rng.standard_normal((B, D))

    def log_w():
        z = bound.reparametrize(mean, logvar, eps)
        return dec.log_px(x, z) + bound.log_prior(z) - bound.log_q(eps, logvar)
    z = bound.reparametrize(mean, logvar, eps)
    dmean, dlogvar = bound.iwae_encoder_grads(log_w(), dec.grad_z(x, z), eps, mean, logvar)

    def f():
        return float(bound.iwae_bound(log_w()).sum())
    assert_passes(check_function(f, {"mean": mean, "logvar": logvar},
                                 {"mean": dmean, "logvar": dlogvar}))


def fold(column):
    m, s = -math.inf, 0.0
    for x in column:
        m, s = ops.lse_push(m, s, x)
    return m, s


def lse_of(pair):
    m, s = pair
    return -math.inf if s == 0 else m + math.log(s)


@pytest.mark.parametrize("column", [
    [0.3, -1.2, 2.5, 0.0], list(np.linspace(-800, 800, 6)), [-1000.0, -1010.0, -990.5],
    [-math.inf, 2.0, -math.inf, 1.0], [-math.inf, -math.inf], [math.inf, 1.0, math.inf]])
def test_lse_push_and_merge_give_the_reference_logsumexp(column):
    ref, _ = ops.logsumexp_weights_reference(np.array(column)[:, None])
    pair = fold(column)
    assert lse_of(pair) == pytest.approx(float(ref[0]), rel=1e-14, abs=0)
    assert pair[0] == max(column)
    # Merge every split of the column (and with empty pairs): the same pair.
    for i in range(len(column) + 1):
        merged = ops.lse_merge(*fold(column[:i]), *fold(column[i:]))
        assert lse_of(merged) == pytest.approx(float(ref[0]), rel=1e-14, abs=0)
        assert lse_of(ops.lse_merge(*merged, -math.inf, 0.0)) == lse_of(merged)


def test_lse_push_nan_poisons_the_sum():
    assert math.isnan(fold([1.0, math.nan, 0.0])[1])


# ---------------------------------------------------------------- issue 12 item 1: dtypes
def test_integer_log_weights_are_promoted_not_truncated():
    lse, w = ops.logsumexp_weights(dev(np.array([[0], [1]])))
    assert lse.dtype == np.float64
    np.testing.assert_allclose(host(lse), [math.log(1 + math.e)], rtol=1e-14)
    np.testing.assert_allclose(host(w)[:, 0], [1 / (1 + math.e), math.e / (1 + math.e)],
                               rtol=1e-14)
    L = host(bound.iwae_bound(dev(np.array([[0], [1]], dtype=np.int32))))
    assert L[0] == pytest.approx(math.log((1 + math.e) / 2), rel=1e-14)


@pytest.mark.parametrize("bad", [np.array([[True], [False]]), np.array([[1 + 2j], [0j]]),
                                 np.array([[1.0], [2.0]], dtype=object), np.array([["a"], ["b"]])],
                         ids=["bool", "complex", "object", "str"])
def test_non_real_log_weights_are_refused_in_one_line(bad):
    for fn in (ops.logsumexp_weights, ops.logsumexp_weights_reference):
        with pytest.raises(ValueError, match="real log-weights") as e:
            fn(bad)
        assert "\n" not in str(e.value)


# ---------------------------------------------------------------- lab 8: MIWAE
def test_masked_log_weights_is_the_models_and_ignores_missing_entries():
    rng = np.random.default_rng(8)
    model = IWAE(D, d, hidden=(4,), likelihood="gaussian", dtype="float64", seed=8)
    for p in model.params.values():
        p[...] = 0.5 * rng.standard_normal(p.shape)
    x = rng.standard_normal((B, D))
    mask = rng.random((B, D)) < 0.6
    mask[1] = False                                    # a row with nothing observed
    eps = rng.standard_normal((K, B, d))
    want, c = model.log_weights(x, K, eps=eps, mask=mask)
    log_phi = host(likelihoods.gaussian_log_prob(c["x"], **c["heads"]))
    log_phi = np.where(mask, log_phi, 1e3 * rng.standard_normal(log_phi.shape))   # junk
    got = bound.masked_log_weights(dev(log_phi), dev(mask), c["z"], c["eps"], c["logvar"])
    np.testing.assert_allclose(host(got), host(want), rtol=1e-13)
    empty_row = bound.log_prior(c["z"][:, 1]) - bound.log_q(c["eps"], c["logvar"])[:, 1]
    np.testing.assert_allclose(host(got)[:, 1], host(empty_row), rtol=1e-13)


def test_miwae_head_grads_is_the_gradient_of_the_masked_bound():
    rng = np.random.default_rng(9)
    x = dev(rng.standard_normal((B, D)))
    mask = dev(rng.random((B, D)) < 0.6)
    mean, logvar = dev(rng.standard_normal((K, B, D))), dev(0.5 * rng.standard_normal((K, B, D)))
    rest = dev(rng.standard_normal((K, B)))            # log p(z) - log q(z|x), fixed here

    def log_w():
        return (likelihoods.gaussian_log_prob(x, mean, logvar) * mask).sum(-1) + rest
    dlogphi = likelihoods.gaussian_grads(x, mean, logvar)
    got = {h: bound.miwae_head_grads(log_w(), dlogphi[h], mask) for h in ("mean", "logvar")}

    def f():
        return float(bound.iwae_bound(log_w()).sum())
    assert_passes(check_function(f, {"mean": mean, "logvar": logvar}, got))


def test_snis_impute_keeps_observed_entries_and_weights_the_means():
    rng = np.random.default_rng(10)
    L = 50
    x = rng.standard_normal((B, D))
    mask = rng.random((B, D)) < 0.5
    x_in = np.where(mask, x, np.nan)
    log_w = 20 * rng.standard_normal((L, B)) - 500     # far from 0: needs the max shift
    means = rng.standard_normal((L, B, D))
    got = host(impute.snis_impute(dev(x_in), dev(mask), dev(log_w), dev(means)))
    w = softmax(log_w, axis=0)
    want = np.einsum("lb,lbd->bd", w, means)
    assert np.array_equal(got[mask], x[mask])
    np.testing.assert_allclose(got[~mask], want[~mask], rtol=1e-12)


def test_sir_indices_invert_the_cumulative_weights():
    with np.errstate(divide="ignore"):
        log_w = np.log([[0.0, 0.5], [0.25, 0.0], [0.75, 0.5], [0.0, 0.0]])    # (L = 4, B = 2)
    u = np.array([[0.0, 0.0], [0.1, 0.3], [0.26, 0.49], [0.3, 0.51], [1 - 1e-12, 1 - 1e-12]])
    idx = host(impute.sir_indices(dev(log_w), dev(u)))
    # Column 0: cdf = (0, .25, 1, 1); column 1: cdf = (.5, .5, 1, 1). u = 0 must skip the
    # weight-0 sample 0 of column 0 (side="right"); u -> 1 must not run past the last weight.
    assert idx.tolist() == [[1, 0], [1, 0], [2, 0], [2, 2], [2, 2]]
    assert idx.dtype.kind in "iu"


def test_sir_indices_never_return_l_and_draw_with_the_weights():
    rng = np.random.default_rng(11)
    L, M = 6, 200000
    log_w = rng.standard_normal((L, 2))
    log_w[-1] = -np.inf                                # a last sample of weight 0
    u = rng.random((M, 2))
    u[0] = np.nextafter(1.0, 0.0)                      # the largest double below 1
    idx = host(impute.sir_indices(dev(log_w), dev(u)))
    assert idx.min() >= 0 and idx.max() <= L - 2
    freq = np.stack([np.bincount(idx[:, b], minlength=L) / M for b in range(2)], axis=1)
    np.testing.assert_allclose(freq, softmax(log_w, axis=0), atol=5e-3)


# ---------------------------------------------------------------- lab 4 and lab 3: one home
def test_observation_models_are_the_lab_functions():
    assert likelihoods.Bernoulli.log_prob is likelihoods.bernoulli_log_prob
    assert likelihoods.Bernoulli.log_prob_grads is likelihoods.bernoulli_grads
    assert likelihoods.Gaussian.log_prob is likelihoods.gaussian_log_prob
    assert likelihoods.Gaussian.log_prob_grads is likelihoods.gaussian_grads
    assert likelihoods.StudentT.log_prob is likelihoods.student_t_log_prob
    assert likelihoods.StudentT.log_prob_grads is likelihoods.student_t_grads


def test_softplus_and_sigmoid_values():
    a = np.array([-800.0, -3.0, 0.0, 2.0, 800.0])
    np.testing.assert_allclose(host(likelihoods.softplus(dev(a))), np.logaddexp(0, a),
                               rtol=1e-15)
    np.testing.assert_allclose(host(likelihoods.sigmoid(dev(a))),
                               1 / (1 + np.exp(-np.clip(a, -700, 700))), rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(host(layers.softplus_forward(dev(a))[0]),
                               host(likelihoods.softplus(dev(a))))


def test_affine_backward_returns_dx_dW_db():
    rng = np.random.default_rng(12)
    x, W, b = (dev(rng.standard_normal(s)) for s in ((5, 4), (4, 3), (3,)))
    dout = dev(rng.standard_normal((5, 3)))
    _, cache = layers.affine_forward(x, W, b)
    dx, dW, db = layers.affine_backward(dout, cache)
    assert (dx.shape, dW.shape, db.shape) == (x.shape, W.shape, b.shape)

    def f():
        return float((layers.affine_forward(x, W, b)[0] * dout).sum())
    assert_passes(check_function(f, {"x": x, "W": W, "b": b}, {"x": dx, "W": dW, "b": db}))


def test_affine_backward_skips_dx_for_data():
    rng = np.random.default_rng(13)
    x, W, b = (dev(rng.standard_normal(s)) for s in ((5, 4), (4, 3), (3,)))
    dout = dev(rng.standard_normal((5, 3)))
    _, cache = layers.affine_forward(x, W, b)
    dx, dW, db = layers.affine_backward(dout, cache, need_dx=False)
    _, dW1, db1 = layers.affine_backward(dout, cache)
    assert dx is None
    np.testing.assert_array_equal(host(dW), host(dW1))
    np.testing.assert_array_equal(host(db), host(db1))


# ---------------------------------------------------------------- the exercise is the library
# Every function a lab asks for (labs 3-6 and 8: the model's derivation), defined once in the
# package, with the exercise stub's signature; the library's may end with optional switches the
# exercise leaves out (need_dx=False, a saving; work=None, a workspace whose buffers receive the
# results), which a caller of the stub never passes (run --mine drops them: core._adapted).
LIBRARY_MODULES = (layers, likelihoods, ops, bound, impute)
LECTURE_LABS = ("03_backprop", "04_observation_models", "05_vae_bound", "06_iwae_bound",
                "08_missing_data_miwae")


def exercise_functions(folder):
    spec = importlib.util.spec_from_file_location(f"exercise_{folder}",
                                                  LABS / folder / "exercise.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return [(name, fn) for name, fn in vars(mod).items()
            if inspect.isfunction(fn) and fn.__module__ == mod.__name__]


@pytest.mark.parametrize("folder", LECTURE_LABS)
def test_every_exercise_function_is_a_library_function_with_its_signature(folder):
    functions = exercise_functions(folder)
    assert functions
    for name, stub in functions:
        homes = [m for m in LIBRARY_MODULES
                 if inspect.isfunction(getattr(m, name, None))
                 and getattr(m, name).__module__ == m.__name__]
        assert len(homes) == 1, f"{name}: defined in {[m.__name__ for m in homes]}"
        lib = getattr(homes[0], name)
        ours = list(inspect.signature(lib).parameters.values())
        theirs = list(inspect.signature(stub).parameters.values())
        where = f"{homes[0].__name__}.{name}{inspect.signature(lib)} vs {inspect.signature(stub)}"
        assert ours[:len(theirs)] == theirs, where
        assert all(p.default is not p.empty for p in ours[len(theirs):]), where
        # Re-exports (bound.logsumexp_weights) are the same object, not a copy.
        for m in LIBRARY_MODULES:
            assert getattr(m, name, lib) is lib, f"{m.__name__}.{name} is a second copy"
