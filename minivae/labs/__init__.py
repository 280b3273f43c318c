"""The labs: derive each gradient, check it against finite differences, run it on real data.

Each lab is a folder ``labs/NN_name/`` of the repository holding a sheet (``README.md``) and
an exercise file (``exercise.py``) with stubs to fill in, and a module ``minivae.labs.labNN``
here holding its checks, its solution (minivae's own implementation) and its "now on real
data" part. The command line::

    python -m minivae.labs                     # list the labs
    python -m minivae.labs check 3             # check labs/03_backprop/exercise.py
    python -m minivae.labs check 3 --solution  # the same checks on minivae's implementation
    python -m minivae.labs reset 3             # restore the pristine exercise file
    python -m minivae.labs run 3 [--quick]     # the "now on real data" part

See ``labs/README.md`` for the order, the time each lab takes and what it teaches.
"""
import importlib

NUMBERS = tuple(range(1, 9))


def get_lab(number):
    """The module of lab ``number`` (1..8)."""
    return importlib.import_module(f"{__name__}.lab{int(number):02d}")


def all_labs():
    return [get_lab(n) for n in NUMBERS]
