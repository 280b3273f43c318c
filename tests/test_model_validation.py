"""IWAE/VAE refuse bad arguments with a one-line ValueError naming the argument (issue 12:
items 5, 6 and 10), instead of a NaN, a silently dropped imaginary part or a TypeError."""
import numpy as np
import pytest

from minivae.model import IWAE, VAE


def one_line_value_error(fn, *match):
    with pytest.raises(ValueError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg
    for m in match:
        assert m in msg, msg


@pytest.mark.parametrize("kwargs,name", [
    ({"hidden": 200}, "hidden"), ({"hidden": None}, "hidden"), ({"hidden": "200"}, "hidden"),
    ({"hidden": (200, 0)}, "hidden"), ({"seed": 1.5}, "seed"), ({"seed": None}, "seed"),
    ({"seed": -1}, "seed"), ({"seed": True}, "seed"), ({"dtype": None}, "dtype"),
    ({"dtype": "float16"}, "dtype")])
@pytest.mark.parametrize("cls", [IWAE, VAE])
def test_bad_constructor_arguments(cls, kwargs, name):
    one_line_value_error(lambda: cls(4, 2, **kwargs), name)


def test_analytic_kl_must_be_a_bool():
    one_line_value_error(lambda: VAE(4, 2, analytic_kl="no"), "analytic_kl")


def test_good_constructor_arguments_still_work():
    model = IWAE(4, 2, hidden=[3], dtype=np.float64, seed=np.int64(3))
    assert model.hidden == (3,) and model.dtype == "float64" and model.seed == 3
    assert IWAE(**model.get_config()).get_config() == model.get_config()


@pytest.mark.parametrize("analytic_kl", [False, True])
def test_empty_batch_is_refused(analytic_kl):
    model = VAE(4, 2, hidden=(3,), likelihood="gaussian", analytic_kl=analytic_kl)
    x = np.zeros((0, 4))
    for fn in (lambda: model.bound_and_grads(x, 2), lambda: model.bound(x, 2),
               lambda: model.log_weights(x, 2), lambda: model.encode(x)):
        one_line_value_error(fn, "x is empty")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_eps_is_refused(bad):
    model = IWAE(4, 2, hidden=(3,), likelihood="gaussian", dtype="float64")
    eps = np.zeros((2, 3, 2))
    eps[1, 2, 0] = bad
    one_line_value_error(lambda: model.bound_and_grads(np.zeros((3, 4)), 2, eps=eps), "eps")
    one_line_value_error(lambda: model.bound(np.zeros((3, 4)), 2, eps=eps), "eps")


def test_eps_overflowing_float32_is_refused():
    model = IWAE(4, 2, hidden=(3,), likelihood="gaussian")
    eps = np.full((2, 3, 2), 1e39)
    one_line_value_error(lambda: model.bound(np.zeros((3, 4)), 2, eps=eps), "eps")


def test_complex_eps_is_refused():
    model = IWAE(4, 2, hidden=(3,), likelihood="gaussian", dtype="float64")
    eps = np.zeros((2, 3, 2), dtype=complex)
    one_line_value_error(lambda: model.bound_and_grads(np.zeros((3, 4)), 2, eps=eps), "eps")


@pytest.mark.parametrize("z,what", [(np.zeros((3, 2), dtype=complex), "real"),
                                    (np.full((3, 2), np.nan), "NaN"),
                                    (np.zeros((3, 5)), "shape")])
def test_decode_and_observation_mean_refuse_bad_z(z, what):
    model = IWAE(4, 2, hidden=(3,), likelihood="gaussian", dtype="float64")
    one_line_value_error(lambda: model.observation_mean(z), "z", what)
    one_line_value_error(lambda: model.decode(z), "z", what)
