"""The machinery shared by the labs: find and load an exercise file, run its checks, report.

A lab (one module ``minivae.labs.labNN``) declares

- ``NUMBER``, ``FOLDER`` (e.g. ``"03_backprop"``), ``TITLE``, ``MINUTES`` (a string), ``TEACHES``;
- ``CHECKS``: a list of ``(function name, check)`` pairs, one per exercise function, in the
  order of the exercise file; ``check(mod)`` receives the student's module (or the solution
  namespace) and returns a list of :class:`Comparison` (or raises :class:`CheckFailed`);
- ``solution()``: a namespace with the same names, built from minivae's own implementation;
- ``add_arguments(parser)`` and ``run(args)``: the "now on real data" part.

Every call into the student's code goes through :func:`call`, which turns a
``NotImplementedError`` into NOT IMPLEMENTED and any other exception into a one-line ERROR
that names the line of the exercise file where it happened: a student never sees a traceback.

Two kinds of comparison, both with the relative error of :mod:`minivae.gradcheck`,
|a - b| / max(|a| + |b|, 1e-4), worst entry reported:

- gradients against five-point finite differences (``gradcheck.check_function``), PASS below
  ``GRAD_TOL`` = 1e-6;
- values (for functions without a gradient: an estimator, a closed form, an EM step) against
  minivae's reference implementation on the same random inputs, PASS below ``VALUE_TOL``.
"""
import importlib.resources
import importlib.util
import os
import sys
import traceback
import types
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import gradcheck

GRAD_TOL = 1e-6
VALUE_TOL = 1e-7
EXERCISE_FILE = "exercise.py"


class LabError(Exception):
    """A problem with the command's input (no such lab, no exercise file): one line, exit 2."""


class CheckFailed(Exception):
    """The student's function returned something unusable (wrong shape, wrong type, NaN)."""


class _NotImplemented(Exception):
    def __init__(self, where):
        super().__init__(where)
        self.where = where


class _StudentError(Exception):
    pass


# ------------------------------------------------------------------ finding the exercise file
def template_text(lab):
    """The pristine exercise file of a lab, shipped in ``minivae/labs/templates``."""
    return importlib.resources.files("minivae.labs.templates").joinpath(
        f"lab{lab.NUMBER:02d}.py").read_text("utf-8")


def _candidates(lab, start):
    """Where an exercise file may sit relative to ``start``: the lab folder itself, a ``labs``
    folder, or a repository root (and the same for each parent directory)."""
    for d in [start, *start.parents]:
        if d.name == lab.FOLDER:
            yield d / EXERCISE_FILE
        yield d / lab.FOLDER / EXERCISE_FILE
        yield d / "labs" / lab.FOLDER / EXERCISE_FILE


def find_exercise(lab, path=None, must_exist=True):
    """The exercise file to check (or reset).

    ``path`` (the ``--path`` option) is the file itself, or a folder: the lab's folder, the
    ``labs`` folder, or the repository root. Without it, the current directory and its parents
    are searched, then the repository this copy of minivae was installed from (editable
    installs). With ``must_exist=False`` (reset), a folder ``path`` names where to create it.
    """
    rel = f"labs/{lab.FOLDER}/{EXERCISE_FILE}"
    if path is not None:
        p = Path(path).expanduser()
        if p.is_dir():
            for c in (p / EXERCISE_FILE, p / lab.FOLDER / EXERCISE_FILE,
                      p / "labs" / lab.FOLDER / EXERCISE_FILE):
                if c.is_file():
                    return c
            if not must_exist:                 # where reset creates it
                if (p / "labs").is_dir():
                    return p / "labs" / lab.FOLDER / EXERCISE_FILE
                if p.name == "labs":
                    return p / lab.FOLDER / EXERCISE_FILE
                return p / EXERCISE_FILE
            raise LabError(f"no {EXERCISE_FILE} for lab {lab.NUMBER} in {p} (looked for "
                           f"{EXERCISE_FILE}, {lab.FOLDER}/{EXERCISE_FILE} and {rel}); create "
                           f"it with `python -m minivae.labs reset {lab.NUMBER} --path {p}`")
        if p.is_file() or not must_exist:
            return p
        raise LabError(f"{p} does not exist")
    starts = [Path.cwd()]
    repo = Path(__file__).resolve().parents[2]           # .../minivae/labs/core.py -> repo
    if (repo / "labs").is_dir():
        starts.append(repo)
    for start in starts:
        for c in _candidates(lab, start):
            if c.is_file():
                return c
    raise LabError(f"cannot find {rel} from {Path.cwd()}: run the command inside the "
                   f"repository, pass --path, or create the file with "
                   f"`python -m minivae.labs reset {lab.NUMBER} --path DIR`")


def load_exercise(path):
    """Import the student's file as a fresh module; a failure is a one-line LabError."""
    path = Path(path)
    name = f"minivae_lab_exercise_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod               # as an import would (dataclasses, pickling need it)
    try:
        with _quiet():
            spec.loader.exec_module(mod)
    except SyntaxError as e:
        sys.modules.pop(name, None)
        raise _LoadError(f"{path.name} line {e.lineno}: SyntaxError: {e.msg}") from None
    except BaseException as e:  # noqa: B902 - a student's file may raise anything at import
        sys.modules.pop(name, None)
        if isinstance(e, KeyboardInterrupt):
            raise
        raise _LoadError(f"importing {path.name} failed: {_one_line(e, path)}") from None
    return mod


class _LoadError(LabError):
    pass


# ------------------------------------------------------------------ calling the student's code
def _one_line(e, path=None):
    """``Type: message (exercise.py line N, in func)``: where it happened in the student's file
    when it did, else the innermost frame."""
    msg = " ".join(str(e).split()) or "(no message)"
    if len(msg) > 160:
        msg = msg[:157] + "..."
    frames = traceback.extract_tb(e.__traceback__)
    where = ""
    mine = [f for f in frames if path is not None and Path(f.filename) == Path(path)] or \
        [f for f in frames if os.path.basename(f.filename) == EXERCISE_FILE]
    if mine:
        f = mine[-1]
        where = f" ({os.path.basename(f.filename)} line {f.lineno}, in {f.name})"
    elif frames:
        f = frames[-1]
        where = f" ({os.path.basename(f.filename)} line {f.lineno})"
    return f"{type(e).__name__}: {msg}{where}"


def call(mod, name, *args, **kwargs):
    """Call the student's ``mod.name(*args, **kwargs)``, translating its exceptions."""
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise CheckFailed(f"the exercise file has no function {name}()")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as e:
        frames = traceback.extract_tb(e.__traceback__)
        raise _NotImplemented(frames[-1].name if frames else name) from None
    except (_NotImplemented, _StudentError, CheckFailed):
        raise
    except Exception as e:
        raise _StudentError(_one_line(e, getattr(mod, "__file__", None))) from None


def as_array(value, shape, what):
    """The student's return value as a float64 array of the given shape, or CheckFailed."""
    if value is None:
        raise CheckFailed(f"{what} is None (a missing return?)")
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise CheckFailed(f"{what} should be an array of shape {tuple(shape)}, got "
                          f"{type(value).__name__}") from None
    if shape is not None and a.shape != tuple(shape):
        raise CheckFailed(f"{what} has shape {a.shape}, expected {tuple(shape)}")
    return a


def unpack(value, n, what):
    """The student's tuple return value of length n, or CheckFailed."""
    if not isinstance(value, (tuple, list)) or len(value) != n:
        got = f"a {type(value).__name__}" + (f" of length {len(value)}"
                                             if isinstance(value, (tuple, list)) else "")
        raise CheckFailed(f"{what} should return a tuple of {n}, got {got}")
    return value


def as_dict(value, keys, what):
    if not isinstance(value, dict):
        raise CheckFailed(f"{what} should return a dict with keys {sorted(keys)}, got "
                          f"{type(value).__name__}")
    missing = [k for k in keys if k not in value]
    if missing:
        raise CheckFailed(f"{what} returned a dict without the key(s) {missing}")
    return value


# ------------------------------------------------------------------ comparisons
@dataclass
class Comparison:
    """The worst entry of one comparison: ``what`` (e.g. "dW") against ``against``."""
    what: str
    error: float
    index: tuple = None
    yours: float = None
    ref: float = None
    against: str = "finite differences"
    tol: float = GRAD_TOL

    @property
    def ok(self):
        return self.error < self.tol

    def describe(self):
        where = "" if self.index is None else (
            f"[{', '.join(str(i) for i in self.index)}]" if self.index else "")
        s = f"{self.what}{where}"
        if self.yours is not None:
            s += f": yours {self.yours:.6g}, {_ref_name(self.against)} {self.ref:.6g}"
        return s


def _ref_name(against):
    return "numerical" if against == "finite differences" else "reference"


def compare(what, yours, ref, against, tol=VALUE_TOL):
    """Worst relative error between the student's array and a reference (same shape)."""
    yours = np.asarray(yours, dtype=float)
    ref = np.asarray(ref, dtype=float)
    if yours.shape != ref.shape:
        raise CheckFailed(f"{what} has shape {yours.shape}, expected {ref.shape}")
    if yours.size == 0:
        return Comparison(what, 0.0, None, None, None, against, tol)
    same = (yours == ref) | (np.isnan(yours) & np.isnan(ref))   # equal infinities included
    with np.errstate(all="ignore"):
        err = np.where(same, 0.0, gradcheck.rel_error(yours, ref))
    err = np.where(np.isnan(err), np.inf, err)
    i = np.unravel_index(int(np.argmax(err)), err.shape)
    return Comparison(what, float(err[i]), tuple(int(j) for j in i) if ref.ndim else (),
                      float(yours[i]), float(ref[i]), against, tol)


def compare_scalar(what, yours, ref, against, tol=VALUE_TOL):
    return compare(what, as_array(yours, (), what), ref, against, tol)


def gradient_comparisons(report, prefix="d"):
    """One Comparison per array of a :func:`minivae.gradcheck.check_function` report."""
    out = []
    for name, r in report.items():
        err = r["max_rel_error"]
        out.append(Comparison(prefix + name, float("inf") if np.isnan(err) else float(err),
                              r["index"], r["analytic"], r["numerical"]))
    return out


def check_gradient(f, inputs, analytic, prefix="d", **kwargs):
    """Finite-difference check of the student's analytic gradients (dict name -> array) of the
    scalar f() with respect to the live arrays of ``inputs``."""
    for name, a in inputs.items():
        if name not in analytic:
            raise CheckFailed(f"no gradient returned for {name}")
        g = analytic[name]
        analytic[name] = as_array(g, a.shape, f"{prefix}{name}")
        if not np.all(np.isfinite(analytic[name])):
            raise CheckFailed(f"{prefix}{name} holds NaN or inf")
    report = gradcheck.check_function(f, inputs, analytic, **kwargs)
    return gradient_comparisons(report, prefix)


# ------------------------------------------------------------------ running a lab's checks
@dataclass
class Result:
    name: str
    status: str            # PASS, FAIL, NOT IMPLEMENTED, ERROR
    detail: str = ""
    error: float = None

    @property
    def passed(self):
        return self.status == "PASS"


class _quiet:
    """Silence NumPy's floating-point warnings: the checks report non-finite results."""

    def __enter__(self):
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)
        self._e = np.errstate(all="ignore")
        self._e.__enter__()

    def __exit__(self, *exc):
        self._e.__exit__(*exc)
        self._w.__exit__(*exc)


def run_check(name, check, mod):
    """One exercise function's verdict."""
    try:
        with _quiet():
            comparisons = check(mod)
    except _NotImplemented as e:
        if e.where == name:
            return Result(name, "NOT IMPLEMENTED")
        return Result(name, "NOT IMPLEMENTED", f"it calls {e.where}(), not implemented yet")
    except _StudentError as e:
        return Result(name, "ERROR", str(e))
    except CheckFailed as e:
        return Result(name, "FAIL", str(e))
    except Exception as e:  # a bug in the checker, or student data the checker did not expect
        if os.environ.get("MINIVAE_LABS_DEBUG"):
            raise
        return Result(name, "ERROR", "while checking: " + _one_line(e))
    bad = [c for c in comparisons if not c.ok]
    worst = max(comparisons, key=lambda c: c.error / c.tol)
    against = sorted({c.against for c in comparisons})
    if bad:
        c = max(bad, key=lambda c: c.error / c.tol)
        return Result(name, "FAIL", f"rel. error {c.error:.1e} vs {c.against} (tolerance "
                      f"{c.tol:.0e}) at {c.describe()}", c.error)
    return Result(name, "PASS", f"max rel. error {worst.error:.1e} vs {' and '.join(against)}",
                  worst.error)


def run_checks(lab, mod):
    return [run_check(name, check, mod) for name, check in lab.CHECKS]


def format_results(results):
    width = max(len(r.name) for r in results) + 2
    lines = []
    for r in results:
        line = f"  {r.name:<{width}} {r.status:<16}"
        if r.detail:
            line += f" {r.detail}"
        lines.append(line.rstrip())
    n = sum(r.passed for r in results)
    lines.append(f"{n} of {len(results)} passed" + ("" if n == len(results) else
                                                    " - keep going!" if n else ""))
    return "\n".join(lines)


def namespace(**functions):
    """A module-like namespace (the solution) holding the given functions."""
    ns = types.SimpleNamespace(**functions)
    ns.__file__ = None
    return ns


def out_dir(args, lab):
    """The folder where a lab's run writes its figures (created)."""
    d = Path(args.out) if getattr(args, "out", None) else Path("runs") / "labs" / lab.FOLDER
    d.mkdir(parents=True, exist_ok=True)
    return d


def flush():
    sys.stdout.flush()
