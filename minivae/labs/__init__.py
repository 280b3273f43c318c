"""The labs: derive each gradient, check it against finite differences, run it on real data.

Each lab is a folder ``labs/NN_name/`` of the repository (``labs/`` is a link to
``minivae/labs/files/``, the package ``minivae.labs.files``, so that the labs ship with minivae
as package data, as the CUDA source does in ``minivae/kernels/``) holding

- ``README.md``, the sheet: goals, the model in the lecture's notation, the questions;
- ``ANSWERS.md``, the worked answers, linked from each question (not in the sheet, so that it
  can be read in a terminal without seeing them);
- ``exercise.py``, the stubs the student fills in: the only copy (``reset`` restores it);
- ``run.py``, the "now on real data" part, read top to bottom: ``main(args)`` prints as it
  goes and returns its key figures;

and one checks module here, ``minivae.labs.labNN``, whose ``SOLUTION`` lists the library
functions the exercise asks for and whose ``CHECKS`` compare the student's functions with them
(see :mod:`minivae.labs.core`). The command line::

    minivae lab                     # list the labs (python -m minivae.labs: the same)
    minivae lab check 3             # check labs/03_backprop/exercise.py
    minivae lab check 3 --solution  # the same checks on minivae's own functions
    minivae lab reset 3             # restore the pristine exercise file
    minivae lab run 3 [--quick]     # the "now on real data" part, with your functions
                                    # in the library once they pass

Adding a lab (say lab 9, ``labs/09_diffusion``):

1. Write the library functions first, each with its explicit backward and docstring, in the
   module where the library uses them (the exercise is the library).
2. Create ``minivae/labs/files/09_diffusion/`` (``labs/09_diffusion/``) with ``README.md``,
   ``ANSWERS.md``, ``exercise.py`` (the functions' signatures and docstrings, bodies raising
   ``NotImplementedError("name: ...")``, in the order of the checks) and ``run.py``
   (``main(args)`` returning a dict of figures; optional ``DESCRIPTION`` and
   ``add_arguments(parser)``).
3. Create ``minivae/labs/lab09.py`` with ``NUMBER``, ``FOLDER``, ``TITLE``, ``MINUTES``,
   ``TEACHES``, ``SOLUTION = ["minivae.diffusion.name", ...]`` and ``CHECKS = [("name",
   check), ...]``: each check calls the student's function through ``core.call`` and compares
   it with ``core.library(lab, "name")`` and with something independent (finite differences
   of the library's forward, a property, SciPy). The lab is found by its module name.
4. tests/test_labs.py then covers it (stubs NOT IMPLEMENTED, --solution passes, run --quick);
   add a planted mistake to its PLANTED list, and the lab to labs/README.md's table.
"""
import importlib
import pkgutil
import re

#: The lab numbers: one per module ``labNN`` of this package.
NUMBERS = tuple(sorted(int(m.name[3:]) for m in pkgutil.iter_modules(__path__)
                       if re.fullmatch(r"lab\d\d", m.name)))


def get_lab(number):
    """The checks module of lab ``number``."""
    return importlib.import_module(f"{__name__}.lab{int(number):02d}")


def all_labs():
    return [get_lab(n) for n in NUMBERS]
