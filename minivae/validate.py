"""The one home of argument checks: small functions that return the clean value or raise.

Every check raises a one-line ``ValueError`` that names the argument and shows what it got, so
that the API keeps its documented contract (ValueError, never a TypeError or a silent
conversion) and the CLI can print the message as it is (exit 2). Use them at the boundary, once:

    self.k = validate.positive_int("k", k)
    self.hidden = validate.hidden(hidden)
    self.dtype = validate.dtype(dtype)
    lr = validate.positive_real("lr", lr)
    x = validate.finite_real_array("x", x, self.dtype)

What each accepts is deliberately strict where a lenient reading would give a wrong number:
``True`` is not the integer 1 nor the learning rate 1.0, 2.5 is not the sample count 2, ``None``
is not float64, and a complex array is never silently made real. NumPy scalars are accepted
wherever the Python type is (``np.float32(1e-3)``, ``np.int64(5)``).
"""
import numbers
import operator

import numpy

from . import backend

FLOAT_DTYPES = ("float32", "float64")


def _show(value, limit=60):
    """repr(value) cut to one short line (a 300-digit integer or a big array stays readable)."""
    try:
        text = repr(value)
    except Exception:                                  # a hostile __repr__ must not hide the error
        text = f"<{type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --- scalars -------------------------------------------------------------------------------------

def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, numpy.bool_))


def integer(name, value, minimum=None, maximum=None):
    """``value`` as a Python int: an int or NumPy integer (not a bool, not 2.0), within bounds."""
    if not _is_int(value):
        raise ValueError(f"{name} must be an integer, got {_show(value)}")
    value = operator.index(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {_show(value)}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {_show(value)}")
    return value


def positive_int(name, value):
    """``value`` as a Python int >= 1 (sizes and counts: k, epochs, batch sizes, widths)."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {_show(value)}")
    return operator.index(value)


def nonnegative_int(name, value):
    """``value`` as a Python int >= 0 (counts that may be zero, e.g. a verbosity)."""
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {_show(value)}")
    return operator.index(value)


def seed(name, value):
    """A random seed: an integer >= 0, what ``numpy.random.default_rng`` accepts (not None:
    every run of minivae is reproducible, so an unseeded model is never built by accident)."""
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0 (a random seed), got {_show(value)}")
    return operator.index(value)


def generator(name, value):
    """A NumPy Generator from what ``numpy.random.default_rng`` accepts and nothing else:
    None (fresh entropy), an integer >= 0, a SeedSequence or a Generator (used as it is)."""
    if value is None or isinstance(value, (numpy.random.SeedSequence, numpy.random.Generator)):
        return numpy.random.default_rng(value)
    return numpy.random.default_rng(seed(name, value))


def real(name, value, above=None, at_least=None, below=None, at_most=None):
    """``value`` as a finite Python float within the given bounds.

    Accepts int, float and NumPy real scalars (``np.float32(1e-3)``) and 0-d real arrays;
    rejects bools, strings, complex numbers, None, NaN and ±inf.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, numpy.bool_))
    if not ok and getattr(value, "ndim", None) == 0:                  # 0-d NumPy/CuPy array
        ok = getattr(value, "dtype", numpy.dtype(object)).kind in "iuf"
    if not ok:
        raise ValueError(f"{name} must be a real number, got {_show(value)}")
    try:
        number = float(value)
    except OverflowError:                               # an int too large for a float
        raise ValueError(f"{name} is too large: {_show(value)}") from None
    if not numpy.isfinite(number):
        raise ValueError(f"{name} must be finite, got {_show(value)}")
    for bound, fails, word in ((above, lambda b: number <= b, ">"),
                               (at_least, lambda b: number < b, ">="),
                               (below, lambda b: number >= b, "<"),
                               (at_most, lambda b: number > b, "<=")):
        if bound is not None and fails(bound):
            raise ValueError(f"{name} must be {word} {bound:g}, got {_show(value)}")
    return number


def positive_real(name, value):
    """A finite real > 0 as a float: learning rates, tolerances, time-outs, scales."""
    return real(name, value, above=0)


def nonnegative_real(name, value):
    """A finite real >= 0 as a float: durations, rates, counts measured in floats."""
    return real(name, value, at_least=0)


def probability(name, value):
    """A finite real in [0, 1] as a float."""
    return real(name, value, at_least=0, at_most=1)


def boolean(name, value):
    """``value`` as a bool: True/False or a NumPy bool (not 0/1, not "no")."""
    if not isinstance(value, (bool, numpy.bool_)):
        raise ValueError(f"{name} must be True or False, got {_show(value)}")
    return bool(value)


def choice(name, value, allowed):
    """``value`` if it is one of ``allowed`` (any iterable, e.g. a registry dict's keys)."""
    allowed = tuple(allowed)
    for a in allowed:
        try:
            if type(value) is not bool and bool(value == a):   # True == 1 is not a choice
                return a
        except Exception:                             # e.g. an array compared with a string
            break
    raise ValueError(f"unknown {name} {_show(value)}; choose one of "
                     f"{', '.join(str(a) for a in allowed)}")


def dtype(value, name="dtype"):
    """The name "float32" or "float64" for a string, NumPy type or dtype naming one of them.

    ``None`` is rejected: ``numpy.dtype(None)`` is float64, which would silently double the
    memory of a model asked for with a missing setting.
    """
    if value is None:
        raise ValueError(f"{name} must be one of {', '.join(FLOAT_DTYPES)}, got None")
    try:
        resolved = numpy.dtype(value).name
    except (TypeError, ValueError):
        resolved = None
    if resolved not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be one of {', '.join(FLOAT_DTYPES)}, got {_show(value)}")
    return resolved


def hidden(value, name="hidden"):
    """Hidden-layer widths as a tuple of positive ints: (200, 200), [128], () for none.

    A bare int (``hidden=200``), a string or None is rejected with the expected form.
    """
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") \
            or getattr(value, "ndim", 1) != 1:
        raise ValueError(f"{name} must be a sequence of positive integer widths such as "
                         f"(200, 200), or () for none; got {_show(value)}")
    widths = tuple(value)
    for w in widths:
        if isinstance(w, (bool, numpy.bool_)) or not isinstance(w, numbers.Integral) or w < 1:
            raise ValueError(f"{name} must be a sequence of positive integer widths such as "
                             f"(200, 200), got {_show(value)}")
    return tuple(int(w) for w in widths)


# --- arrays --------------------------------------------------------------------------------------

def _as_array(name, a):
    """``a`` as a NumPy or CuPy array (lists become NumPy arrays); ragged input is an error."""
    if isinstance(a, (numpy.ndarray, backend.xp.ndarray)):
        return a
    try:
        return numpy.asarray(a)
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"{name} is not a rectangular array of numbers ({e})") from None


def _real_object_array(name, a):
    """An object array (e.g. from a list holding a 300-digit int) as float64, or an error."""
    flat = a.ravel()
    for v in flat:
        if isinstance(v, (bool, numpy.bool_)) or not isinstance(v, numbers.Real):
            raise ValueError(f"{name} must hold real numbers, got {_show(v)} "
                             f"({type(v).__name__})")
    try:
        return numpy.array([float(v) for v in flat], dtype=numpy.float64).reshape(a.shape)
    except OverflowError:
        raise ValueError(f"{name} holds a number too large for float64") from None


def finite_real_array(name, a, dtype=None, allow_nan=False, allow_bool=False):
    """``a`` as an array of real numbers in ``dtype``, every entry finite (NaN too if allowed).

    name : the argument's name for the message.
    a : array-like (NumPy, CuPy or nested lists); stays on its device.
    dtype : "float32"/"float64" (or a NumPy dtype) to convert to; None keeps a float dtype and
        makes integers and bools float64.
    allow_nan : NaN marks a missing value (imputation); ±inf is never allowed.
    allow_bool : accept a boolean array as 0/1 (meaningful for binary data, not for weights).

    Rejects complex, string, object and (unless allowed) bool arrays; NaN and ±inf; and a finite
    input that overflows ``dtype`` (1e39 in float32) with "overflows float32". Returns the
    converted array (no copy when nothing changes).
    """
    a = _as_array(name, a)
    kind = a.dtype.kind
    if kind == "O":
        a, kind = _real_object_array(name, a), "f"
    if kind == "b" and not allow_bool:
        raise ValueError(f"{name} must hold real numbers, got a boolean array")
    if kind not in "biuf":
        what = {"c": "complex numbers (pass the real part explicitly)", "U": "strings",
                "S": "bytes"}.get(kind, f"dtype {a.dtype}")
        raise ValueError(f"{name} must hold real numbers, got {what}")
    target = numpy.dtype(dtype) if dtype is not None else (
        a.dtype if kind == "f" else numpy.dtype(numpy.float64))
    xp = backend.get_array_module(a)
    if kind == "f":                                   # ints and bools are always finite
        nan = xp.isnan(a)
        if not allow_nan and bool(nan.any()):
            raise ValueError(f"{name} holds NaN at {_where(nan)}")
        inf = xp.isinf(a)
        if bool(inf.any()):
            raise ValueError(f"{name} holds an infinite value at {_where(inf)}")
    with numpy.errstate(over="ignore"):               # an overflow is reported just below
        out = a.astype(target, copy=False)
    if out.dtype != a.dtype and out.dtype.kind == "f":
        overflow = xp.isinf(out)
        if bool(overflow.any()):
            big = float(backend.to_numpy(xp.abs(a[overflow]).max()))
            raise ValueError(f"{name} overflows {target.name}: {big:.3g} at {_where(overflow)} "
                             f"exceeds its largest finite value {numpy.finfo(target).max:.3g}")
    return out


def _where(flags):
    """'index (r, c)' of the first True entry, for messages."""
    if flags.ndim == 0:
        return "the only entry"
    first = backend.to_numpy(backend.get_array_module(flags).argwhere(flags)[0])
    index = tuple(int(i) for i in first)
    return f"index {index[0] if len(index) == 1 else index}"


def nonempty(name, a, axis=0):
    """Raise unless ``a`` has at least one entry along ``axis`` (an empty batch has no mean)."""
    if a.ndim <= axis or a.shape[axis] < 1:
        raise ValueError(f"{name} is empty (shape {tuple(a.shape)}): need at least one "
                         f"{'row' if axis == 0 else 'entry along axis ' + str(axis)}")
    return a


def shape(name, a, want):
    """Raise unless ``a.shape`` matches ``want``, a tuple of sizes with None for "any"."""
    got = tuple(a.shape)
    if len(got) != len(want) or any(w is not None and g != w for g, w in zip(got, want)):
        form = "(" + ", ".join("any" if w is None else str(w) for w in want) + \
               ("," if len(want) == 1 else "") + ")"
        raise ValueError(f"{name} must have shape {form}, got {got}")
    return a
