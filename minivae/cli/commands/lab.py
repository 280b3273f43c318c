"""The labs: check your exercises against the library, reset them, run them on real data.

  minivae lab                      list the labs
  minivae lab check 3              check labs/03_backprop/exercise.py (--solution: minivae's own)
  minivae lab reset 3              restore the pristine exercise file (yours kept as .bak)
  minivae lab run 3 [--quick]      the "now on real data" part, with your functions in the
                                   library once they pass the checks

`python -m minivae.labs ...` is the same command. See labs/README.md.
"""


def add_arguments(parser):
    from ...labs.__main__ import add_arguments
    add_arguments(parser)


def run(args):
    from ...labs.__main__ import run
    return run(args)
