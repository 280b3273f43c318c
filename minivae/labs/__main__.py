"""``minivae lab [list | check N | reset N | run N]``: see :mod:`minivae.labs`.

The command ``minivae lab`` (minivae.cli.commands.lab calls ``add_arguments`` and ``run``
here); ``python -m minivae.labs ...`` is an alias that runs it through minivae's command line,
with its one map from errors to exit codes (0 all checks pass, 1 some do not, 2 bad input,
130 interrupted).
"""
import argparse
import difflib
import shutil
import sys
import time
import traceback
from pathlib import Path

from .. import backend
from . import NUMBERS, all_labs, get_lab
from .core import (LabError, _one_line, captured, find_exercise, format_results, load_exercise,
                   load_run_script, pristine_text, run_checks, shipped_file, solution,
                   substituted)

EXIT_NOT_PASSED = 1
EXIT_BAD_INPUT = 2         # LabError is a ValueError: the command line's map gives it 2
PROG = "minivae lab"


def _lab_number(s):
    try:
        n = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a lab number is one of {NUMBERS[0]}..{NUMBERS[-1]}, "
                                         f"got {s!r}") from None
    if n not in NUMBERS:
        raise argparse.ArgumentTypeError(f"there is no lab {n}; the labs are "
                                         f"{NUMBERS[0]}..{NUMBERS[-1]}")
    return n


def add_arguments(p):
    # Sub-parsers of the command line's own parser class (one-line errors, exit code 2).
    p.set_defaults(lab_parser_class=type(p))
    sub = p.add_subparsers(dest="lab_command", metavar="COMMAND", parser_class=type(p))
    sub.add_parser("list", help="list the labs, their time and where their exercise file is")
    c = sub.add_parser("check", help="check the exercise functions of lab N")
    c.add_argument("lab", type=_lab_number, help=f"the lab number, {NUMBERS[0]}..{NUMBERS[-1]}")
    c.add_argument("--solution", action="store_true",
                   help="run the same checks on minivae's own functions")
    c.add_argument("--path", help="the exercise file, or a folder holding it (the lab's "
                   "folder, labs/ or the repository root); default: found from the current "
                   "directory")
    r = sub.add_parser("reset", help="restore lab N's exercise file to its pristine stubs "
                       "(the old one is kept as exercise.py.bak)")
    r.add_argument("lab", type=_lab_number, help=f"the lab number, {NUMBERS[0]}..{NUMBERS[-1]}")
    r.add_argument("--path", help="the exercise file or a folder (as for check)")
    r.add_argument("--diff", action="store_true",
                   help="only show how the exercise file differs from the pristine one")
    run = sub.add_parser("run", help="the lab's 'now on real data' part, with your functions "
                         f"once they pass (options after N: `{PROG} run N --help`)")
    run.add_argument("lab", type=_lab_number, help=f"the lab number, {NUMBERS[0]}..{NUMBERS[-1]}")
    run.add_argument("options", nargs=argparse.REMAINDER, help="options of that lab's run")


def cmd_list(args):
    print(f"{'lab':<4} {'folder':<30} {'time':<18} title")
    for lab in all_labs():
        print(f"{lab.NUMBER:<4} {'labs/' + lab.FOLDER:<30} {lab.MINUTES:<18} {lab.TITLE}")
    print(f"\nWork in labs/NN_name/: read README.md, fill in exercise.py, then "
          f"`{PROG} check N`.")
    return 0


def _require_numpy(what):
    if backend.name != "numpy":
        raise LabError(f"{what} on the CPU with NumPy: unset MINIVAE_BACKEND (it is "
                       f"{backend.name!r})")


def cmd_check(args):
    _require_numpy("the checks run")
    lab = get_lab(args.lab)
    if args.solution:
        mod, what = solution(lab), "minivae's own functions (--solution)"
    else:
        path = find_exercise(lab, args.path)
        what = str(path)
        try:
            mod = load_exercise(path)
        except LabError as e:
            print(f"Lab {lab.NUMBER}: {lab.TITLE}\nchecking {what}")
            print(f"  ERROR: {e}")
            print("0 of {} passed".format(len(lab.CHECKS)))
            return EXIT_NOT_PASSED
    print(f"Lab {lab.NUMBER}: {lab.TITLE}\nchecking {what}")
    sys.stdout.flush()
    t0 = time.perf_counter()
    results = run_checks(lab, mod)
    print(format_results(results) + f" ({time.perf_counter() - t0:.1f} s)")
    return 0 if all(r.passed for r in results) else EXIT_NOT_PASSED


def cmd_reset(args):
    lab = get_lab(args.lab)
    path = find_exercise(lab, args.path, must_exist=False)
    pristine = pristine_text(lab)
    current = path.read_text("utf-8") if path.is_file() else None
    if args.diff:
        if current is None:
            raise LabError(f"{path} does not exist")
        diff = list(difflib.unified_diff(pristine.splitlines(True), current.splitlines(True),
                                         "pristine", str(path)))
        sys.stdout.writelines(diff or [f"{path} is pristine\n"])
        return 0
    if current == pristine:
        print(f"{path} is already pristine")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    if current is not None:
        backup = path.with_name(path.name + ".bak")
        shutil.copyfile(path, backup)
        print(f"kept your previous version as {backup}")
    path.write_text(pristine, encoding="utf-8")
    print(f"reset {path}")
    sheet = shipped_file(lab, "README.md")
    if sheet.parent != path.parent:
        print(f"the sheet is {sheet}")
    return 0


def _run_parser(lab, script, parser_class):
    p = parser_class(prog=f"{PROG} run {lab.NUMBER}", description=f"Lab {lab.NUMBER}, now on real "
                f"data: {getattr(script, 'DESCRIPTION', lab.TITLE)}. By default your exercise "
                "functions replace minivae's when they all pass the checks, and your results "
                "are printed beside minivae's (same data, same seed).")
    p.add_argument("--quick", action="store_true",
                   help="a small budget (a few seconds; what CI runs)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default=None, help=f"where to write figures (default "
                   f"runs/labs/{lab.FOLDER})")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--mine", action="store_true",
                     help="use your exercise functions even if some checks fail")
    who.add_argument("--library", action="store_true",
                     help="use minivae's functions only (the reference run)")
    p.add_argument("--path", help="your exercise file or its folder (as for check)")
    if hasattr(script, "add_arguments"):
        script.add_arguments(p)
    return p


def _figures_table(mine, ref):
    names = list(dict.fromkeys([*ref, *mine]))
    width = max([len(n) for n in names] + [10])
    lines = [f"\n{'':<{width}}  {'yours':>12}  {'minivae':>12}",
             *(f"{n:<{width}}  {_fmt(mine.get(n)):>12}  {_fmt(ref.get(n)):>12}" for n in names)]
    return "\n".join(lines)


def _fmt(v):
    if v is None:
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def cmd_run(args):
    _require_numpy("the labs run (lab 6 also runs the kernel on a GPU when CuPy sees one)")
    lab = get_lab(args.lab)
    script = load_run_script(lab)
    opts = _run_parser(lab, script, args.lab_parser_class).parse_args(args.options)
    print(f"Lab {lab.NUMBER}, now on real data: {lab.TITLE}")
    mine = None
    if not opts.library:
        try:
            path = find_exercise(lab, opts.path)
        except LabError:
            if opts.mine:
                raise
            path = None
        if path is not None:
            try:
                mod = load_exercise(path)
            except LabError as e:
                if opts.mine:
                    raise
                print(f"(with minivae's functions: your exercise does not load: {e})")
                mod = None
            if opts.mine:
                mine = mod
            elif mod is not None:
                results = run_checks(lab, mod)
                n = sum(r.passed for r in results)
                if n == len(results):
                    mine = mod
                else:
                    print(f"(with minivae's functions: {n} of {len(results)} of yours pass "
                          f"`{PROG} check {lab.NUMBER}`; `--mine` uses them anyway)")
    t0 = time.perf_counter()
    if mine is None:
        script.main(opts)
    else:
        print(f"with your functions from {mine.__file__} in the library "
              f"({', '.join(name for name, _ in lab.CHECKS)})\n")
        with captured():
            ref = script.main(opts) or {}
        try:
            with substituted(lab, mine):
                figures = script.main(opts) or {}
        except Exception as e:  # noqa: B902 - the student's code may raise anything
            if not any(Path(f.filename) == Path(mine.__file__)
                       for f in traceback.extract_tb(e.__traceback__)):
                raise
            print(f"{PROG}: your functions stopped the run: "
                  f"{_one_line(e, mine.__file__)}", file=sys.stderr)
            return EXIT_NOT_PASSED
        print(_figures_table(figures, ref))
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


COMMANDS = {None: cmd_list, "list": cmd_list, "check": cmd_check, "reset": cmd_reset,
            "run": cmd_run}


def run(args):
    return COMMANDS[args.lab_command](args)


def main(argv=None):
    """``python -m minivae.labs ARGS`` is ``minivae lab ARGS``."""
    from ..cli import main as cli_main
    return cli_main(["lab", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
