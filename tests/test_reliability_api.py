"""Issue 12 (reliability), the Python API: bad arguments give a one-line ValueError that names
the argument; finite input never gives an inf or NaN; nothing is silently truncated."""
import numpy as np
import pytest

from minivae import MIWAEImputer


def one_line_error(match, f, *args, **kwargs):
    with pytest.raises(ValueError, match=match) as info:
        f(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


# ---------------------------------------------------------------- items 6 and 10: MIWAEImputer
@pytest.mark.parametrize("kwargs,name", [(dict(lr=True), "lr"), (dict(lr=float("inf")), "lr"),
                                         (dict(lr="1e-3"), "lr"), (dict(hidden=5), "hidden"),
                                         (dict(hidden=None), "hidden"),
                                         (dict(verbose=None), "verbose"),
                                         (dict(seed=None), "seed"), (dict(seed=-1), "seed"),
                                         (dict(dtype=None), "dtype"),
                                         (dict(activation="sigmoid"), "activation")])
def test_imputer_constructor_rejects_bad_arguments_naming_them(kwargs, name):
    one_line_error(name, MIWAEImputer, **kwargs)


def test_imputer_accepts_numpy_scalars():
    imp = MIWAEImputer(lr=np.float32(1e-3), k=np.int64(5), seed=np.int32(3), verbose=True)
    assert imp.lr == pytest.approx(1e-3) and imp.k == 5 and imp.seed == 3 and imp.verbose == 1
    assert type(imp.lr) is float and type(imp.k) is int
