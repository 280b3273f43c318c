"""minivae.validate: every check returns the clean value or raises a one-line ValueError naming
the argument (issue 12, item 1)."""
import numpy as np
import pytest

from minivae import backend, validate


def one_line_error(match, f, *args, **kwargs):
    with pytest.raises(ValueError, match=match) as info:
        f(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.uint8(2)])
def test_positive_int_accepts_python_and_numpy_integers(value):
    out = validate.positive_int("k", value)
    assert out == int(value) and type(out) is int


@pytest.mark.parametrize("value", [0, -1, True, 2.0, 2.7, "5", None, [3], np.float64(3), 1j])
def test_positive_int_rejects_with_the_argument_name(value):
    one_line_error(r"^k must be a positive integer", validate.positive_int, "k", value)


def test_integer_bounds_and_nonnegative_int():
    assert validate.integer("n", 5, minimum=0, maximum=5) == 5
    one_line_error(r"n must be <= 5, got 6", validate.integer, "n", 6, maximum=5)
    one_line_error(r"n must be >= 0", validate.integer, "n", -1, minimum=0)
    assert validate.nonnegative_int("verbose", 0) == 0
    one_line_error(r"verbose must be an integer >= 0", validate.nonnegative_int, "verbose", None)


@pytest.mark.parametrize("value", [None, -1, 1.5, True, "0"])
def test_seed_rejects_none_negative_float_bool_string(value):
    one_line_error(r"^seed must be an integer >= 0", validate.seed, "seed", value)


def test_seed_accepts_large_and_numpy_integers():
    assert validate.seed("seed", 2 ** 70) == 2 ** 70
    assert validate.seed("seed", np.int32(4)) == 4


def test_generator_from_seeds_sequences_and_generators():
    g = np.random.default_rng(5)
    assert validate.generator("seed", g) is g
    a = validate.generator("seed", 3).random()
    assert a == np.random.default_rng(3).random()
    assert validate.generator("seed", np.random.SeedSequence(3)).random() == a
    assert isinstance(validate.generator("seed", None), np.random.Generator)
    for bad in (1.5, -1, "3", True):
        one_line_error(r"^seed must be an integer >= 0", validate.generator, "seed", bad)


@pytest.mark.parametrize("value", [1e-3, 1, np.float32(1e-3), np.float64(0.5), np.int64(2),
                                   np.array(0.01)])
def test_positive_real_accepts_numbers_and_numpy_scalars(value):
    out = validate.positive_real("lr", value)
    assert type(out) is float and out == pytest.approx(float(value))


@pytest.mark.parametrize("value", [True, False, 0, -1e-3, float("nan"), float("inf"),
                                   np.float32("inf"), "1e-3", None, 1e-3 + 0j, [1e-3],
                                   np.array([1e-3])])
def test_positive_real_rejects(value):
    one_line_error(r"^lr must be", validate.positive_real, "lr", value)


def test_real_reports_a_too_large_integer_in_one_line():
    msg = one_line_error(r"lr is too large", validate.real, "lr", 10 ** 400)
    assert len(msg) < 120


def test_real_bounds_and_probability():
    assert validate.real("beta1", 0.0, at_least=0, below=1) == 0.0
    one_line_error(r"beta1 must be < 1", validate.real, "beta1", 1.0, at_least=0, below=1)
    assert validate.probability("p", 1) == 1.0
    one_line_error(r"p must be <= 1", validate.probability, "p", 1.5)
    one_line_error(r"p must be >= 0", validate.probability, "p", -0.1)


def test_boolean():
    assert validate.boolean("flag", np.bool_(True)) is True
    one_line_error(r"flag must be True or False", validate.boolean, "flag", 1)


def test_choice_returns_the_allowed_value_and_lists_the_choices():
    assert validate.choice("activation", "relu", {"tanh": 0, "relu": 1}.keys()) == "relu"
    msg = one_line_error(r"unknown activation 'sigmoid'; choose one of tanh, relu",
                         validate.choice, "activation", "sigmoid", ("tanh", "relu"))
    assert "sigmoid" in msg
    one_line_error(r"unknown activation", validate.choice, "activation", ["tanh"], ("tanh",))
    one_line_error(r"unknown activation", validate.choice, "activation", np.array(["tanh", "x"]),
                   ("tanh",))
    one_line_error(r"unknown level", validate.choice, "level", True, (1, 2))


@pytest.mark.parametrize("value,want", [("float32", "float32"), (np.float64, "float64"),
                                        (np.dtype("f4"), "float32"), (float, "float64")])
def test_dtype_accepts_the_two_float_dtypes(value, want):
    assert validate.dtype(value) == want


@pytest.mark.parametrize("value", [None, "float16", "int32", np.complex128, "nonsense", 3, True])
def test_dtype_rejects_none_and_others(value):
    one_line_error(r"^dtype must be one of float32, float64", validate.dtype, value)


@pytest.mark.parametrize("value,want", [((200, 200), (200, 200)), ([128], (128,)), ((), ()),
                                        (np.array([3, 4]), (3, 4)), ((np.int64(5),), (5,))])
def test_hidden_accepts_sequences_of_positive_ints(value, want):
    out = validate.hidden(value)
    assert out == want and all(type(w) is int for w in out)


@pytest.mark.parametrize("value", [200, None, "200,200", (200, 0), (200, -1), (2.5,), (True,),
                                   np.array(5), [[3]]])
def test_hidden_rejects_with_the_expected_form(value):
    one_line_error(r"^hidden must be a sequence of positive integer widths", validate.hidden,
                   value)


# --- arrays --------------------------------------------------------------------------------------

def test_finite_real_array_promotes_integers_and_converts_dtype():
    out = validate.finite_real_array("log_w", np.array([[0], [1]]))
    assert out.dtype == np.float64
    out = validate.finite_real_array("x", [[1.5, 2.0]], "float32")
    assert out.dtype == np.float32 and out.tolist() == [[1.5, 2.0]]


def test_finite_real_array_keeps_the_device_and_avoids_copies():
    a = backend.xp.ones((2, 3), dtype=backend.xp.float32)
    out = validate.finite_real_array("x", a, "float32")
    assert out is a


@pytest.mark.parametrize("a,what", [(np.array([1 + 2j]), "complex"),
                                    (np.array(["1.5"]), "strings"),
                                    (np.array([True, False]), "boolean"),
                                    (np.array([object()]), "object"),
                                    ([1.0, "2"], "strings"),
                                    ([[1.0], [2.0, 3.0]], "rectangular")])
def test_finite_real_array_rejects_non_real_input(a, what):
    one_line_error(rf"^x (must hold real numbers|is not a).*({what})", validate.finite_real_array,
                   "x", a)


def test_finite_real_array_bool_only_when_allowed():
    out = validate.finite_real_array("x", np.array([True, False]), "float64", allow_bool=True)
    assert out.tolist() == [1.0, 0.0]


def test_finite_real_array_names_nan_and_inf_positions():
    one_line_error(r"x holds NaN at index \(1, 0\)", validate.finite_real_array, "x",
                   np.array([[0.0], [np.nan]]))
    one_line_error(r"x holds an infinite value at index 2", validate.finite_real_array, "x",
                   np.array([0.0, 1.0, -np.inf]))
    out = validate.finite_real_array("X", np.array([1.0, np.nan]), allow_nan=True)
    assert np.isnan(out[1])
    one_line_error(r"infinite", validate.finite_real_array, "X", np.array([np.inf, np.nan]),
                   allow_nan=True)


def test_finite_real_array_says_a_finite_value_overflows_float32():
    msg = one_line_error(r"x overflows float32: 1e\+39 at index \(0, 1\)",
                         validate.finite_real_array, "x", np.array([[0.0, 1e39]]), "float32")
    assert "NaN" not in msg and "inf" not in msg.split("exceeds")[0]
    assert validate.finite_real_array("x", np.array([3.4e38]), "float32")[0] > 3e38


def test_finite_real_array_huge_python_integers():
    out = validate.finite_real_array("x", [1, 10 ** 300])
    assert out.dtype == np.float64 and out[1] == 1e300
    one_line_error(r"x holds a number too large for float64", validate.finite_real_array, "x",
                   [1, 10 ** 400])
    one_line_error(r"x overflows float32", validate.finite_real_array, "x", [10 ** 300], "float32")


def test_nonempty_and_shape():
    one_line_error(r"x is empty \(shape \(0, 4\)\): need at least one row", validate.nonempty,
                   "x", np.zeros((0, 4)))
    assert validate.nonempty("x", np.zeros((1, 4))).shape == (1, 4)
    one_line_error(r"eps must have shape \(3, any, 2\), got \(3, 5, 1\)", validate.shape, "eps",
                   np.zeros((3, 5, 1)), (3, None, 2))
    assert validate.shape("eps", np.zeros((3, 5, 2)), (3, None, 2)).shape == (3, 5, 2)
