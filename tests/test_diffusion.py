"""The diffusion model's probability: schedules, q(x_t|x_0) and the posterior against
simulation and Bayes' rule, the bound's pieces against direct computation, the samplers and the
bound with the exact denoiser of Gaussian data, and the bound of a trained model against the
exact log-density of toy data (Gibbs' inequality), rising with training."""
import math

import numpy as np
import pytest
from scipy.special import ndtr

from minivae import backend, threads
from minivae.backend import xp
from minivae.diffusion import DDPM, Schedule, cosine_betas, linear_betas, toydata
from minivae.diffusion.forward import posterior_mean_var, q_mean_var, q_sample, reverse_mean_var
from minivae.diffusion.sampling import ancestral_sample, ddim_sample
from minivae.diffusion.vlb import (HALF_BIN, discretized_gaussian_log_likelihood, gaussian_kl,
                                   vlb_terms)
from minivae.optim import Adam

np_ = backend.to_numpy


def dev(a, dtype=np.float64):
    return backend.asarray(np.asarray(a, dtype=dtype))


def ts(values):
    return backend.asarray(np.asarray(values, dtype=np.int64))


# ------------------------------------------------------------------------------ schedules

def test_linear_schedule_matches_ho_et_al_at_T_1000():
    b = linear_betas(1000)
    assert b[0] == pytest.approx(1e-4) and b[-1] == pytest.approx(0.02)
    assert np.all(np.diff(b) > 0)
    # fewer steps, same total noise: ᾱ_T stays near e^{−10}
    for T in (100, 1000):
        ab = Schedule(T).alpha_bar[-1]
        assert 1e-5 < ab < 1e-4


def test_cosine_schedule_follows_its_definition():
    T, s = 50, 0.008
    sched = Schedule(T, "cosine")
    f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * np.pi / 2) ** 2
    # ᾱ_t = f(t)/f(0) wherever β_t was not clipped (the last step is)
    assert np.allclose(sched.alpha_bar[:-1], (f / f[0])[:-1], rtol=1e-12, atol=0)
    assert np.all((cosine_betas(T) > 0) & (cosine_betas(T) <= 0.999))


@pytest.mark.parametrize("bad", [dict(T=1), dict(T=2.5), dict(kind="quadratic"),
                                 dict(variance="learned")])
def test_schedule_rejects_bad_arguments(bad):
    with pytest.raises(ValueError):
        Schedule(**{"T": 10, **bad})


# ------------------------------------------------------------------------------ q(x_t | x_0)

@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_q_xt_given_x0_matches_simulating_the_chain(kind):
    """Run x_t = √α_t x_{t−1} + √β_t z step by step from a fixed x_0 and compare the
    empirical mean and variance at several t with √ᾱ_t x_0 and 1 − ᾱ_t."""
    T, n = 40, 200_000
    sched = Schedule(T, kind)
    rng = np.random.default_rng(0)
    x0 = np.array([1.5, -0.7])
    x = np.tile(x0, (n, 1))
    for t in range(1, T + 1):
        x = math.sqrt(sched.alpha[t]) * x + math.sqrt(sched.beta[t]) * rng.standard_normal(x.shape)
        if t in (1, 5, 20, 40):
            mean, var = q_mean_var(dev(x0[None]), ts([t]), sched)
            mean, var = np_(mean)[0], float(np_(var)[0, 0])
            se_mean = math.sqrt(var / n)
            assert np.all(np.abs(x.mean(0) - mean) < 5 * se_mean), (t, x.mean(0), mean)
            se_var = var * math.sqrt(2 / n)
            assert np.all(np.abs(x.var(0) - var) < 5 * se_var), (t, x.var(0), var)


def test_q_sample_is_the_closed_form():
    sched = Schedule(30)
    x0, eps = np.array([[0.3, -2.0]]), np.array([[1.1, 0.4]])
    out = np_(q_sample(dev(x0), ts([7]), dev(eps), sched))
    ab = sched.alpha_bar[7]
    assert np.allclose(out, math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps, rtol=1e-14)


# ------------------------------------------------------------------------------ the posterior

@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("t", [2, 3, 17, 30])
def test_posterior_matches_bayes_rule(kind, t):
    """q(x_{t−1}|x_t, x_0) ∝ q(x_t|x_{t−1}) q(x_{t−1}|x_0): the product of the Gaussians
    N(√ᾱ_{t−1} x_0, 1 − ᾱ_{t−1}) and (in x_{t−1}) N(x_t/√α_t, β_t/α_t), by precision addition."""
    sched = Schedule(30, kind)
    x0, xt = np.array([[0.8, -1.3, 2.0]]), np.array([[0.1, 0.5, -0.4]])
    a, ab_prev, b = sched.alpha[t], sched.alpha_bar[t - 1], sched.beta[t]
    prec = 1 / (1 - ab_prev) + a / b
    mean_ref = (math.sqrt(ab_prev) * x0 / (1 - ab_prev) + math.sqrt(a) * xt / b) / prec
    mean, var = posterior_mean_var(dev(x0), dev(xt), ts([t]), sched)
    assert np.allclose(np_(mean), mean_ref, rtol=1e-12, atol=1e-14)
    assert float(np_(var)[0, 0]) == pytest.approx(1 / prec, rel=1e-12)


def test_posterior_matches_simulation():
    """Draw (x_{t−1}, x_t) from the forward process for one x_0 and regress x_{t−1} on x_t:
    the fitted line is the posterior mean, the residual variance β̃_t."""
    sched, t, n = Schedule(20), 6, 400_000
    rng = np.random.default_rng(1)
    x0 = 0.9
    prev = math.sqrt(sched.alpha_bar[t - 1]) * x0 + math.sqrt(1 - sched.alpha_bar[t - 1]) \
        * rng.standard_normal(n)
    xt = math.sqrt(sched.alpha[t]) * prev + math.sqrt(sched.beta[t]) * rng.standard_normal(n)
    slope, intercept = np.polyfit(xt, prev, 1)
    resid = prev - (slope * xt + intercept)
    assert slope == pytest.approx(sched.post_coef_xt[t], rel=0.01)
    assert intercept == pytest.approx(sched.post_coef_x0[t] * x0, rel=0.02)
    assert resid.var() == pytest.approx(sched.post_var[t], rel=0.01)


# ------------------------------------------------------------------------------ the bound's pieces

def test_gaussian_kl_matches_monte_carlo():
    rng = np.random.default_rng(2)
    mq, mp = rng.standard_normal((1, 3)), rng.standard_normal((1, 3))
    vq, vp = 0.3, 0.8
    kl = float(np_(gaussian_kl(dev(mq), dev([[vq]]), dev(mp), dev([[vp]])))[0])
    x = mq + math.sqrt(vq) * rng.standard_normal((400_000, 3))
    log_ratio = (-0.5 * ((x - mq) ** 2).sum(1) / vq - 1.5 * math.log(vq)
                 + 0.5 * ((x - mp) ** 2).sum(1) / vp + 1.5 * math.log(vp))
    assert abs(kl - log_ratio.mean()) < 5 * log_ratio.std() / math.sqrt(len(x))
    assert float(np_(gaussian_kl(dev(mq), dev([[vq]]), dev(mq), dev([[vq]])))[0]) == 0.0


def test_discretized_decoder_is_a_probability_over_the_256_levels():
    levels = np.arange(256) / 127.5 - 1.0
    for mean, var in ((0.0, 0.01), (0.93, 1e-4), (-1.4, 0.05), (0.2, 3e-6)):
        logp = np_(discretized_gaussian_log_likelihood(dev(levels[:, None]),
                                                       dev(np.full((256, 1), mean)),
                                                       dev(np.full((256, 1), var))))
        assert np.all(np.isfinite(logp)) and np.all(logp <= 0)
        assert np.exp(logp).sum() == pytest.approx(1.0, abs=1e-12)
        # an inner bin is Φ(upper) − Φ(lower) where that difference is representable
        i = 128
        sd = math.sqrt(var)
        ref = ndtr((levels[i] + HALF_BIN - mean) / sd) - ndtr((levels[i] - HALF_BIN - mean) / sd)
        if ref > 1e-300:
            assert np.exp(logp[i]) == pytest.approx(ref, rel=1e-9)


def test_discretized_decoder_is_accurate_far_in_the_tails():
    """A pixel 40 σ from the mean: Φ(b) − Φ(a) underflows, its log does not."""
    x, mean, var = np.array([[1.0 - 2 / 255]]), np.array([[-0.2]]), np.array([[0.0009]])
    logp = float(np_(discretized_gaussian_log_likelihood(dev(x), dev(mean), dev(var)))[0])
    from scipy.special import log_ndtr
    a, b = (x - HALF_BIN - mean) / 0.03, (x + HALF_BIN - mean) / 0.03
    # both ends in the upper tail: log(Φ(−a) − Φ(−b)) = log Φ(−a) + log(1 − Φ(−b)/Φ(−a))
    ref = log_ndtr(-a) + np.log1p(-np.exp(log_ndtr(-b) - log_ndtr(-a)))
    assert np.isfinite(logp) and logp < -700 and logp == pytest.approx(float(ref[0, 0]), rel=1e-10)


# ------------------------------------------------------------------------------ exact denoiser

class GaussianData:
    """x_0 ~ N(m, s² I): the best ε-predictor is known, E[ε | x_t] =
    √(1 − ᾱ_t) (x_t − √ᾱ_t m) / (ᾱ_t s² + 1 − ᾱ_t), so the samplers and the bound can be
    tested without training."""

    def __init__(self, sched, m, s):
        self.sched, self.m, self.s = sched, m, s

    def predict_eps(self, xt, t):
        ab = self.sched.at("alpha_bar", t, xt.dtype)
        return xp.sqrt(1 - ab) * (xt - xp.sqrt(ab) * self.m) / (ab * self.s ** 2 + 1 - ab)

    def log_density(self, x):
        d = x.shape[1]
        return (-0.5 * ((x - self.m) ** 2).sum(1) / self.s ** 2
                - d * math.log(self.s) - 0.5 * d * math.log(2 * math.pi))


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_samplers_recover_gaussian_data_with_the_exact_denoiser(sampler):
    sched = Schedule(200, "linear")
    g = GaussianData(sched, m=1.5, s=0.5)
    rng = backend.default_rng(3)
    if sampler == "ancestral":
        x = ancestral_sample(g.predict_eps, sched, (20_000, 2), rng, "float64")
    else:
        # every step: DDIM is a first-order solver, whose error shrinks as 1/steps (the
        # spread is 6% short with 50 of 200 steps, 2% with all 200)
        x = ddim_sample(g.predict_eps, sched, (20_000, 2), rng, "float64", steps=200)
    x = np_(x)
    assert np.all(np.abs(x.mean(0) - 1.5) < 0.02)
    assert np.all(np.abs(x.std(0) - 0.5) < 0.02)


def test_ddim_is_deterministic_given_the_starting_noise():
    model = DDPM(x_dim=2, T=30, hidden=(8,), time_dim=4, dtype="float64")
    a = np_(model.sample(5, "ddim", steps=10, rng=backend.default_rng(7)))
    b = np_(model.sample(5, "ddim", steps=10, rng=backend.default_rng(7)))
    c = np_(model.sample(5, "ddim", steps=10, rng=backend.default_rng(8)))
    assert np.array_equal(a, b) and not np.allclose(a, c)


# ------------------------------------------------------------------------------ x̂_0 and clipping

def test_reverse_mean_through_x0_is_ho_et_al_eps_form():
    """μ̃_t(x_t, x̂_0(ε̂)) = (x_t − β_t/√(1 − ᾱ_t) ε̂)/√α_t, to rounding in float64."""
    sched = Schedule(1000, "linear")
    rng = np.random.default_rng(0)
    t = np.array([1, 2, 10, 500, 999, 1000])
    xt, eps = rng.standard_normal((2, 6, 5)) * 3
    mean, _ = reverse_mean_var(dev(xt), ts(t), dev(eps), sched)
    b, a, ab = sched.beta[t, None], sched.alpha[t, None], sched.alpha_bar[t, None]
    ref = (xt - b / np.sqrt(1 - ab) * eps) / np.sqrt(a)
    np.testing.assert_allclose(np_(mean), ref, rtol=1e-12, atol=1e-12)


def _eps_form_samples(sampler, predict_eps, sched, shape, rng, steps):
    """The samplers written directly in ε̂ (Ho et al.'s Alg. 2; DDIM's eq. 12 with η = 0)."""
    x = rng.standard_normal(shape, dtype="float64")
    if sampler == "ancestral":
        for step in range(sched.T, 0, -1):
            eps = predict_eps(x, ts([step] * shape[0]))
            b, a, ab = sched.beta[step], sched.alpha[step], sched.alpha_bar[step]
            x = (x - b / math.sqrt(1 - ab) * eps) / math.sqrt(a)
            if step > 1:
                x = x + math.sqrt(sched.model_var[step]) * rng.standard_normal(shape,
                                                                               dtype="float64")
        return x
    taus = np.unique(np.round(np.linspace(1, sched.T, steps)).astype(int))[::-1]
    for i, step in enumerate(taus):
        eps = predict_eps(x, ts([step] * shape[0]))
        ab = sched.alpha_bar[step]
        ab_next = sched.alpha_bar[taus[i + 1]] if i + 1 < len(taus) else 1.0
        x = (math.sqrt(ab_next / ab) * x
             + (math.sqrt(1 - ab_next) - math.sqrt(ab_next * (1 - ab) / ab)) * eps)
    return x


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_unclipped_samplers_equal_the_eps_form(sampler):
    model = DDPM(x_dim=6, T=40, hidden=(16,), time_dim=4, dtype="float64", seed=2)
    x = np_(model.sample(7, sampler, steps=13, rng=backend.default_rng(5), clip=False))
    ref = np_(_eps_form_samples(sampler, model.predict_eps, model.schedule, (7, 6),
                                backend.default_rng(5), 13))
    assert np.abs(x).max() > 1          # unclipped: outside the image range, not trivially equal
    np.testing.assert_allclose(x, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_clipping_keeps_every_steps_x0_hat_in_the_data_range(sampler):
    """An (untrained) image model: with clipping each step's x̂_0 and the samples stay in
    [−1, 1]; without, x̂_0 leaves it (so the check can fail); clipping is the images' default."""
    model = DDPM(x_dim=12, T=50, hidden=(16,), time_dim=4, decoder="discretized",
                 dtype="float64", seed=1)
    seen = {True: [], False: []}
    x = {}
    for clip in (True, False):
        x[clip] = np_(model.sample(9, sampler, steps=20, rng=backend.default_rng(4), clip=clip,
                                   on_step=lambda t, x0: seen[clip].append((t, np_(x0)))))
    assert len(seen[True]) == (50 if sampler == "ancestral" else 20)
    assert [t for t, _ in seen[True]] == sorted({t for t, _ in seen[True]}, reverse=True)
    assert all(np.abs(x0).max() <= 1 for _, x0 in seen[True])
    assert np.abs(x[True]).max() <= 1 + 1e-12
    assert max(np.abs(x0).max() for _, x0 in seen[False]) > 1.5
    default = np_(model.sample(9, sampler, steps=20, rng=backend.default_rng(4)))
    assert np.array_equal(default, x[True])


def test_clipping_is_off_for_unbounded_data():
    model = DDPM(x_dim=2, T=30, hidden=(8,), time_dim=4, dtype="float64")
    a = np_(model.sample(5, rng=backend.default_rng(7)))
    b = np_(model.sample(5, rng=backend.default_rng(7), clip=False))
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="unbounded"):
        model.sample(5, clip=True)
    with pytest.raises(ValueError, match="clip"):
        model.sample(5, clip=1.0)


def test_bound_with_the_exact_denoiser_is_tight_and_below_the_log_density():
    """Gaussian data, the exact ε-predictor, T = 400: −L_vlb is a lower bound of log p_θ, whose
    average under the data is at most the data's (Gibbs); with the exact denoiser and σ_t² =
    β_t (the reverse steps' true variance for spread-out data) the gap is small, with σ_t² = β̃_t
    (right for a point mass) it is not."""
    rng = np.random.default_rng(4)
    x0 = 0.7 + 0.8 * rng.standard_normal((2000, 2))
    gaps = {}
    for variance in ("beta", "posterior"):
        sched = Schedule(400, "linear", variance)
        g = GaussianData(sched, m=0.7, s=0.8)
        terms = vlb_terms(g.predict_eps, dev(x0), sched, "gaussian", backend.default_rng(5))
        gap = -np_(terms).sum(1) - g.log_density(x0)
        assert gap.mean() < 3 * gap.std() / math.sqrt(len(gap))    # below, within MC error
        gaps[variance] = gap.mean()
    assert gaps["beta"] > -0.1                                     # tight
    assert gaps["posterior"] < gaps["beta"] - 1.0


# ------------------------------------------------------------------------------ training

def train_ring(model, steps, rng_data, opt, batch=128):
    for _ in range(steps):
        x = toydata.sample("ring", batch, seed=int(rng_data.integers(2 ** 31)))
        _, grads = model.loss_and_grads(dev(x, model.dtype))
        opt.step({n: -g for n, g in grads.items()})


def test_bound_stays_below_the_exact_log_density_and_rises_with_training():
    """The ring of Gaussians (exact log p known): the average bound over test points is below
    the average exact log-density within Monte Carlo error (Gibbs), at every stage, and it
    rises towards it as training proceeds."""
    model = DDPM(x_dim=2, T=40, hidden=(64, 64), time_dim=16, dtype="float64", seed=0)
    opt = Adam(model.params, lr=3e-3, eps=1e-8)
    x_test = toydata.sample("ring", 1000, seed=123)
    exact = toydata.log_density("ring", x_test)
    rng_data = np.random.default_rng(0)
    gaps = []
    for steps in (0, 150, 600):
        with threads.limit():           # minivae's BLAS policy, as the training loop uses
            train_ring(model, steps, rng_data, opt)
            gap = np_(model.bound(dev(x_test), rng=backend.default_rng(9))) - exact
        se = gap.std() / math.sqrt(len(gap))
        assert gap.mean() < 3 * se, (steps, gap.mean(), se)
        gaps.append(gap.mean())
    assert gaps[0] < gaps[1] < gaps[2], gaps
    assert gaps[2] > gaps[0] + 2.0


# ------------------------------------------------------------------------------ the API

@pytest.mark.parametrize("bad", [dict(x_dim=0), dict(hidden=(0,)), dict(time_dim=3),
                                 dict(activation="gelu"), dict(decoder="bernoulli"),
                                 dict(dtype="int8"), dict(T=1), dict(schedule="sigmoid")])
def test_ddpm_rejects_bad_configuration(bad):
    with pytest.raises(ValueError):
        DDPM(**{"x_dim": 2, **bad})


def test_ddpm_rejects_bad_data():
    model = DDPM(x_dim=2, T=10, hidden=(4,), time_dim=4)
    for x in (np.zeros((3, 3)), np.zeros((0, 2)), np.array([[0.0, np.nan]])):
        with pytest.raises(ValueError):
            model.loss_and_grads(x)
    with pytest.raises(ValueError, match="sampler"):
        model.sample(2, sampler="euler")


@pytest.mark.parametrize("denoiser", ["mlp", "resmlp"])
def test_config_rebuilds_the_model(denoiser):
    model = DDPM(x_dim=3, T=12, schedule="cosine", hidden=(5,), time_dim=6, decoder="discretized",
                 denoiser=denoiser, ema_decay=0.9)
    clone = DDPM(**model.get_config())
    assert clone.get_config() == model.get_config()
    for n in model.params:
        assert np.array_equal(np_(model.params[n]), np_(clone.params[n]))


@pytest.mark.parametrize("local", [0, 3])
def test_resmlp_starts_as_a_plain_mlp_and_needs_one_width(local):
    """Zero-initialised residual branches, FiLM maps, skip and local output: a fresh resmlp
    computes act(x W_in + b_in) W_out + b_out, whatever t is."""
    model = DDPM(x_dim=9, T=12, hidden=(5, 5), time_dim=4, dtype="float64", denoiser="resmlp",
                 local=local)
    p = {n: np_(v) for n, v in model.params.items()}
    x = np.random.default_rng(0).standard_normal((4, 9))
    want = np.maximum(x @ p["in.W"] + p["in.b"], 0) @ p["out.W"] + p["out.b"]
    for t in (1, 12):
        assert np.allclose(np_(model.predict_eps(dev(x), ts([t] * 4))), want, atol=1e-12)
    for bad, match in ((dict(hidden=(5, 4)), "one width"), (dict(x_dim=8, local=2), "square")):
        with pytest.raises(ValueError, match=match) as e:
            DDPM(**dict(dict(x_dim=9, denoiser="resmlp"), **bad))
        assert "\n" not in str(e.value)


def test_ema_averages_the_steps_and_is_what_sampling_and_the_bound_use():
    rng = np.random.default_rng(1)
    model = DDPM(x_dim=2, T=10, hidden=(4,), time_dim=4, dtype="float64", ema_decay=0.9)
    start = {n: np_(p).copy() for n, p in model.params.items()}
    x = dev(rng.standard_normal((50, 2)))
    opt = Adam(model.params, lr=0.05)
    history = []
    for _ in range(3):
        opt.step(model.objective_and_grads(x)[1])
        model.update_ema()
        history.append({n: np_(p).copy() for n, p in model.params.items()})
    for n in model.params:             # θ̄_3 = 0.9³ θ_0 + 0.1 (0.9² θ_1 + 0.9 θ_2 + θ_3)
        want = 0.729 * start[n] + 0.1 * (0.81 * history[0][n] + 0.9 * history[1][n]
                                         + history[2][n])
        assert np.allclose(np_(model.ema[n]), want, rtol=1e-12, atol=1e-15)
        assert not np.allclose(np_(model.ema[n]), history[2][n])
    xt, t = dev(rng.standard_normal((5, 2))), ts([1, 3, 5, 7, 9])
    live = DDPM(**dict(model.get_config(), ema_decay=0.0))
    averaged = DDPM(**dict(model.get_config(), ema_decay=0.0))
    for n in model.params:
        live.params[n][...] = model.params[n]
        averaged.params[n][...] = model.ema[n]
    assert np.array_equal(np_(model.predict_eps(xt, t)), np_(averaged.predict_eps(xt, t)))
    assert not np.allclose(np_(model.predict_eps(xt, t)), np_(live.predict_eps(xt, t)))
    assert np.array_equal(np_(model.bound(x[:5])), np_(averaged.bound(x[:5])))
    assert DDPM(x_dim=2, T=10, hidden=(4,), time_dim=4).ema is None    # ema_decay 0: none


def test_sampled_bound_always_scores_t_1_and_draws_one_t_per_stratum():
    model = DDPM(x_dim=2, T=11, hidden=(4,), time_dim=4, dtype="float64")
    seen, real = [], model.predict_eps
    model.predict_eps = lambda xt, t: (seen.append(np_(t)), real(xt, t))[1]
    model.bound(dev(np.zeros((200, 2))), n_t=3)
    assert len(seen) == 4 and np.all(seen[0] == 1)
    for drawn, (lo, hi) in zip(seen[1:], [(2, 5), (5, 9), (9, 12)]):    # 2..11 in three
        assert drawn.min() == lo and drawn.max() == hi - 1                # every step drawn
    seen.clear()
    model.bound(dev(np.zeros((3, 2))), n_t=50)      # more strata than steps: each step once
    assert sorted(int(t[0]) for t in seen) == list(range(1, 12))


def test_sampled_bound_is_unbiased():
    """The stratified estimate's mean matches the full sum over all T terms (an untrained
    denoiser, so the terms differ a lot across t and a wrong stratum weight would show)."""
    model = DDPM(x_dim=2, T=20, hidden=(8,), time_dim=4, dtype="float64", seed=3)
    x = dev(toydata.sample("ring", 4000, seed=4))
    full = np_(model.bound(x, rng=backend.default_rng(1)))
    sampled = np_(model.bound(x, rng=backend.default_rng(2), n_t=3))
    diff = sampled - full
    assert abs(diff.mean()) < 4 * diff.std() / math.sqrt(len(diff))
    assert diff.std() > 0.01                         # an estimate, not the full sum again


# ------------------------------------------------------------------------------ toy data

def test_ring_density_integrates_to_one():
    g = np.linspace(-4, 4, 801)
    xx = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    mass = np.exp(toydata.log_density("ring", xx)).sum() * (g[1] - g[0]) ** 2
    assert mass == pytest.approx(1.0, abs=1e-6)


def test_lecture_toy_is_standardised():
    """The fixed shift and scale make the lecture's toy data roughly zero-mean, unit-scale."""
    y = toydata.sample("lecture", 200_000, seed=1)
    assert np.all(np.abs(y.mean(0)) < 0.02) and np.all(np.abs(y.std(0) - 1) < 0.02)
    with pytest.raises(ValueError, match="unknown toy"):
        toydata.sample("moons", 3)
