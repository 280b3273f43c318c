"""``python -m minivae.labs [list | check N | reset N | run N]``: see :mod:`minivae.labs`."""
import argparse
import difflib
import shutil
import sys
import time

from .. import backend
from . import NUMBERS, all_labs, get_lab
from .core import LabError, find_exercise, format_results, load_exercise, run_checks, \
    template_text

EXIT_NOT_PASSED = 1
EXIT_BAD_INPUT = 2
PROG = "python -m minivae.labs"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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


def build_parser():
    p = _Parser(prog=PROG, description="The minivae labs: derive each gradient, check it "
                "against finite differences, run it on real data. Without a command, lists "
                "the labs.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.add_parser("list", help="list the labs, their time and where their exercise file is")
    c = sub.add_parser("check", help="check the exercise functions of lab N")
    c.add_argument("lab", type=_lab_number, help="the lab number, 1..8")
    c.add_argument("--solution", action="store_true",
                   help="run the same checks on minivae's own implementation")
    c.add_argument("--path", help="the exercise file, or a folder holding it (the lab's "
                   "folder, labs/ or the repository root); default: found from the current "
                   "directory")
    r = sub.add_parser("reset", help="restore lab N's exercise file to its pristine stubs "
                       "(the old one is kept as exercise.py.bak)")
    r.add_argument("lab", type=_lab_number, help="the lab number, 1..8")
    r.add_argument("--path", help="the exercise file or a folder (as for check)")
    r.add_argument("--diff", action="store_true",
                   help="only show how the exercise file differs from the pristine one")
    run = sub.add_parser("run", help="the lab's 'now on real data' part (options after N: "
                         f"`{PROG} run N --help`)")
    run.add_argument("lab", type=_lab_number, help="the lab number, 1..8")
    run.add_argument("options", nargs=argparse.REMAINDER, help="options of that lab's run")
    return p


def cmd_list(args):
    print(f"{'lab':<4} {'folder':<30} {'time':<18} title")
    for lab in all_labs():
        print(f"{lab.NUMBER:<4} {'labs/' + lab.FOLDER:<30} {lab.MINUTES:<18} {lab.TITLE}")
    print(f"\nWork in labs/NN_name/: read README.md, fill in exercise.py, then "
          f"`{PROG} check N`.")
    return 0


def cmd_check(args):
    if backend.name != "numpy":
        raise LabError("the checks run on the CPU with NumPy: unset MINIVAE_BACKEND (it is "
                       f"{backend.name!r})")
    lab = get_lab(args.lab)
    if args.solution:
        mod, what = lab.solution(), "minivae's implementation (--solution)"
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
    pristine = template_text(lab)
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
    return 0


def cmd_run(args):
    if backend.name != "numpy":
        raise LabError("the labs run on the CPU with NumPy (lab 6 also runs the kernel on a GPU "
                       f"when CuPy sees one): unset MINIVAE_BACKEND (it is {backend.name!r})")
    lab = get_lab(args.lab)
    p = _Parser(prog=f"{PROG} run {lab.NUMBER}", description=f"Lab {lab.NUMBER}, now on real "
                f"data: {lab.RUN_DESCRIPTION}")
    p.add_argument("--quick", action="store_true",
                   help="a small budget (a few seconds; what CI runs)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default=None, help=f"where to write figures (default "
                   f"runs/labs/{lab.FOLDER})")
    if hasattr(lab, "add_arguments"):
        lab.add_arguments(p)
    opts = p.parse_args(args.options)
    print(f"Lab {lab.NUMBER}, now on real data: {lab.TITLE}")
    t0 = time.perf_counter()
    lab.run(opts)
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    commands = {None: cmd_list, "list": cmd_list, "check": cmd_check, "reset": cmd_reset,
                "run": cmd_run}
    try:
        return commands[args.command](args)
    except (LabError, ValueError, OSError) as e:
        print(f"{PROG}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
