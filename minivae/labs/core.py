"""The machinery shared by the labs: find and load an exercise file, run its checks, report,
reset it, and substitute the student's functions for the library's.

A lab is one module ``minivae.labs.labNN`` (see :mod:`minivae.labs` for how to add one) that
declares

- ``NUMBER``, ``FOLDER`` (e.g. ``"03_backprop"``), ``TITLE``, ``MINUTES`` (a string), ``TEACHES``;
- ``SOLUTION``: the library functions the exercise asks for, as dotted names
  (``"minivae.bound.kl_grads"``). The exercise function of the same (last) name must have the
  same signature. ``check N --solution`` checks these very functions, resolved when the check
  runs (so a bug planted in the library fails the lab), and ``run N --mine`` puts the
  student's functions in their place (:func:`substituted`);
- ``CHECKS``: a list of ``(function name, check)`` pairs, one per exercise function, in the
  order of the exercise file; ``check(mod)`` receives the student's module (or the solution
  namespace) and returns a list of :class:`Comparison` (or raises :class:`CheckFailed`).
  A check compares the student's function with :func:`library` (the same name, resolved from
  ``SOLUTION``) and, so that ``--solution`` is not a comparison of the library with itself,
  with something independent: finite differences of the library's forward, a property (EM
  never lowers the likelihood), or an independent computation by SciPy.

The lab's "now on real data" part is ``labs/NN_name/run.py``: ``main(args)`` prints as it goes
and returns a dict of its key figures; the runner prints the figures of the student's run beside
the library's (same data, same seed).

Every call into the student's code goes through :func:`call`, which passes copies of the array
arguments (and reports a function that modifies its argument in place), turns a
``NotImplementedError`` into NOT IMPLEMENTED and any other exception into a one-line ERROR
that names the line of the exercise file where it happened: a student never sees a traceback.

Two kinds of comparison, both with the relative error of :mod:`minivae.gradcheck`,
|a - b| / max(|a| + |b|, 1e-4), worst entry reported:

- gradients against five-point finite differences (``gradcheck.check_function``), PASS below
  ``GRAD_TOL`` = 1e-6;
- values (for functions without a gradient, and for the special entries where a finite
  difference is meaningless) against the library's function on the same inputs, PASS below
  ``VALUE_TOL``.
"""
import contextlib
import functools
import importlib
import importlib.util
import inspect
import io
import os
import subprocess
import sys
import traceback
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import gradcheck

GRAD_TOL = 1e-6
VALUE_TOL = 1e-7
EXERCISE_FILE = "exercise.py"
RUN_FILE = "run.py"
#: The package holding the labs' files (minivae/labs/files/; the repository's labs/ is a link
#: to it), shipped as package data like minivae.kernels.
LABS_PACKAGE = "minivae.labs.files"


class LabError(ValueError):
    """A problem with the command's input (no such lab, no exercise file): one line, exit 2."""


class CheckFailed(Exception):
    """The student's function returned something unusable (wrong shape, wrong type, NaN)."""


class _NotImplemented(Exception):
    def __init__(self, where):
        super().__init__(where)
        self.where = where


class _StudentError(Exception):
    pass


# ------------------------------------------------------------------ the library's functions
def resolve(dotted):
    """The object named ``"minivae.module.name"`` (or ``"minivae.module.Class.name"``), looked
    up now: a function monkeypatched in the library is the one a check sees."""
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(f"cannot resolve {dotted}")


def library(solution, name):
    """The library function the exercise function ``name`` must equal, from a lab's
    ``SOLUTION`` list (or the lab module itself), resolved now."""
    for dotted in getattr(solution, "SOLUTION", solution):
        if dotted.rsplit(".", 1)[-1] == name:
            return resolve(dotted)
    raise KeyError(f"no library function {name} in {solution}")


def solution(lab):
    """The library's functions under the exercise's names: what ``check N --solution`` checks."""
    ns = types.SimpleNamespace(**{d.rsplit(".", 1)[-1]: resolve(d) for d in lab.SOLUTION})
    ns.__file__ = None
    return ns


# ------------------------------------------------------------------ the labs' files
def labs_root():
    """The folder holding the labs (README.md and one NN_name/ folder per lab): the package
    LABS_PACKAGE, minivae/labs/files/, in a clone (where labs/ links to it) as in an installed
    package."""
    spec = importlib.util.find_spec(LABS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LabError(f"the labs' files are not installed with minivae ({LABS_PACKAGE})")
    return Path(list(spec.submodule_search_locations)[0])


def in_clone():
    """Whether this minivae is a clone's (setup.py beside the package: an editable install or
    PYTHONPATH) rather than an installed copy: there the shipped exercise files are the ones a
    student edits."""
    return (Path(__file__).resolve().parents[2] / "setup.py").is_file()


def shipped_file(lab, name=EXERCISE_FILE):
    """A file of the lab's folder as shipped with minivae (the exercise, the sheet, run.py)."""
    path = labs_root() / lab.FOLDER / name
    if not path.is_file():
        raise LabError(f"{path} is missing from this installation of minivae")
    return path


def pristine_text(lab):
    """The exercise file as shipped, with its stubs.

    An installed package holds its own copy. In a clone the shipped copy is the very file a
    student edits, so the pristine text is git's committed version of it (and the file itself
    when git is not available)."""
    path = shipped_file(lab)
    try:
        proc = subprocess.run(["git", "show", f"HEAD:./{path.name}"], cwd=path.parent,
                              capture_output=True, timeout=20)
        if proc.returncode == 0:
            return proc.stdout.decode("utf-8")
    except (OSError, subprocess.SubprocessError):
        pass
    return path.read_text("utf-8")


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
    are searched, then the labs shipped with minivae when it is a clone's (its own labs/). With
    ``must_exist=False`` (reset), a folder ``path`` names where to create it: in the lab's
    folder if that is ``path``, else in ``path/labs/NN_name/`` when ``path`` holds a labs/
    folder, else in ``path/NN_name/`` (where ``check`` run from ``path`` finds it), a folder
    ``path`` that does not exist yet included (a ``path`` ending in .py is the file itself);
    without ``path``, an installed package's reset creates it so in the current directory.
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
                if p.name == lab.FOLDER:
                    return p / EXERCISE_FILE
                return p / lab.FOLDER / EXERCISE_FILE    # labs/ or a folder of one's own
            raise LabError(f"no {EXERCISE_FILE} for lab {lab.NUMBER} in {p} (looked for "
                           f"{EXERCISE_FILE}, {lab.FOLDER}/{EXERCISE_FILE} and {rel}); create "
                           f"it with `minivae lab reset {lab.NUMBER} --path {p}`")
        if p.is_file():
            return p
        if not must_exist:                     # reset: a new .py file, or a new folder
            return p if p.suffix == ".py" else p / lab.FOLDER / EXERCISE_FILE
        raise LabError(f"{p} does not exist")
    for c in _candidates(lab, Path.cwd()):
        if c.is_file():
            return c
    if in_clone() and (labs_root() / lab.FOLDER / EXERCISE_FILE).is_file():
        return labs_root() / lab.FOLDER / EXERCISE_FILE        # a clone: its own labs/
    if not must_exist:                         # reset, installed package: a copy of one's own
        return find_exercise(lab, Path.cwd(), must_exist=False)
    raise LabError(f"cannot find {rel} from {Path.cwd()}: run the command inside the "
                   f"repository, pass --path, or create the file with "
                   f"`minivae lab reset {lab.NUMBER} --path DIR`")


def _load(path, prefix):
    path = Path(path)
    name = f"{prefix}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod               # as an import would (dataclasses, pickling need it)
    try:
        with _quiet():
            spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return mod


def load_exercise(path):
    """Import the student's file as a fresh module; a failure is a one-line LabError."""
    try:
        return _load(path, "minivae_lab_exercise")
    except SyntaxError as e:
        raise _LoadError(f"{Path(path).name} line {e.lineno}: SyntaxError: {e.msg}") from None
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: B902 - a student's file may raise anything at import
        raise _LoadError(f"importing {Path(path).name} failed: {_one_line(e, path)}") from None


def load_run_script(lab):
    """The lab's ``run.py`` (its "now on real data" part) as a module."""
    return _load(shipped_file(lab, RUN_FILE), f"minivae_lab_run_{lab.NUMBER:02d}")


class _LoadError(LabError):
    pass


# ------------------------------------------------------------------ calling the student's code
def _frame(f):
    return f"{os.path.basename(f.filename)} line {f.lineno}, in {f.name}"


def _one_line(e, path=None, function=None):
    """``Type: message (exercise.py line N, in func)``: the line of the function under test
    where it happened and, when the error was raised deeper (a helper, another exercise
    function, NumPy), the innermost frame too."""
    msg = " ".join(str(e).split()) or "(no message)"
    if len(msg) > 160:
        msg = msg[:157] + "..."
    frames = traceback.extract_tb(e.__traceback__)
    mine = [f for f in frames if path is not None and Path(f.filename) == Path(path)] or \
        [f for f in frames if os.path.basename(f.filename) == EXERCISE_FILE]
    entry = next((f for f in mine if f.name == function), mine[0] if mine else None)
    inner = frames[-1] if frames else None
    if entry is None:
        where = f" ({os.path.basename(inner.filename)} line {inner.lineno})" if inner else ""
    elif inner is None or inner is entry or \
            (inner.filename, inner.lineno) == (entry.filename, entry.lineno):
        where = f" ({_frame(entry)})"
    else:
        where = f" ({_frame(entry)}; raised in {_frame(inner)})"
    return f"{type(e).__name__}: {msg}{where}"


def _copy(value):
    return value.copy() if isinstance(value, np.ndarray) else value


def call(mod, name, *args, **kwargs):
    """Call the student's ``mod.name(*args, **kwargs)`` on copies of the array arguments,
    translating its exceptions; a function that modified an argument in place fails."""
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise CheckFailed(f"the exercise file has no function {name}()")
    a = [_copy(v) for v in args]
    kw = {k: _copy(v) for k, v in kwargs.items()}
    try:
        out = fn(*a, **kw)
    except NotImplementedError as e:
        frames = traceback.extract_tb(e.__traceback__)
        raise _NotImplemented(frames[-1].name if frames else name) from None
    except (_NotImplemented, _StudentError, CheckFailed):
        raise
    except Exception as e:
        raise _StudentError(_one_line(e, getattr(mod, "__file__", None), name)) from None
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        names = []
    for i, (before, after) in enumerate(zip(args, a)):
        _same_or_fail(name, names[i] if i < len(names) else f"argument {i + 1}", before, after)
    for k in kwargs:
        _same_or_fail(name, k, kwargs[k], kw[k])
    return out


def _same_or_fail(function, arg, before, after):
    if isinstance(before, np.ndarray) and not (
            before.shape == after.shape and np.array_equal(before, after, equal_nan=True)):
        raise CheckFailed(f"{function}() modified its argument {arg} in place (the library "
                          f"reuses its inputs: compute into a new array, e.g. "
                          f"x = x - m rather than x -= m)")


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
    """The worst entry of one comparison: ``what`` (e.g. "dW") against ``against``.
    ``columns`` names special test columns (index along the last axis -> description), so a
    FAIL at such an entry says which case it is."""
    what: str
    error: float
    index: tuple = None
    yours: float = None
    ref: float = None
    against: str = "finite differences"
    tol: float = GRAD_TOL
    columns: dict = field(default_factory=dict)

    @property
    def ok(self):
        return self.error < self.tol

    def describe(self):
        where = "" if self.index is None else (
            f"[{', '.join(str(i) for i in self.index)}]" if self.index else "")
        s = f"{self.what}{where}"
        if self.index and self.index[-1] in self.columns:
            s += f" (column {self.index[-1]}: {self.columns[self.index[-1]]})"
        if self.yours is not None:
            s += f": yours {self.yours:.6g}, {_expected_name(self.against)} {self.ref:.6g}"
        return s


def _expected_name(against):
    return "numerical" if against == "finite differences" else "expected"


def compare(what, yours, ref, against, tol=VALUE_TOL, columns=None):
    """Worst relative error between the student's array and a reference (same shape)."""
    yours = np.asarray(yours, dtype=float)
    ref = np.asarray(ref, dtype=float)
    if yours.shape != ref.shape:
        raise CheckFailed(f"{what} has shape {yours.shape}, expected {ref.shape}")
    if yours.size == 0:
        return Comparison(what, 0.0, None, None, None, against, tol, columns or {})
    same = (yours == ref) | (np.isnan(yours) & np.isnan(ref))   # equal infinities included
    with np.errstate(all="ignore"):
        err = np.where(same, 0.0, gradcheck.rel_error(yours, ref))
    err = np.where(np.isnan(err), np.inf, err)
    i = np.unravel_index(int(np.argmax(err)), err.shape)
    return Comparison(what, float(err[i]), tuple(int(j) for j in i) if ref.ndim else (),
                      float(yours[i]), float(ref[i]), against, tol, columns or {})


def compare_scalar(what, yours, ref, against, tol=VALUE_TOL):
    return compare(what, as_array(yours, (), what), ref, against, tol)


def gradient_comparisons(report, prefix="d", columns=None):
    """One Comparison per array of a :func:`minivae.gradcheck.check_function` report."""
    out = []
    for name, r in report.items():
        err = r["max_rel_error"]
        out.append(Comparison(prefix + name, float("inf") if np.isnan(err) else float(err),
                              r["index"], r["analytic"], r["numerical"], columns=columns or {}))
    return out


def check_gradient(f, inputs, analytic, prefix="d", columns=None, **kwargs):
    """Finite-difference check of the student's analytic gradients (dict name -> array) of the
    scalar f() (the library's forward) with respect to the live arrays of ``inputs``."""
    for name, a in inputs.items():
        if name not in analytic:
            raise CheckFailed(f"no gradient returned for {name}")
        g = analytic[name]
        analytic[name] = as_array(g, a.shape, f"{prefix}{name}")
        if not np.all(np.isfinite(analytic[name])):
            raise CheckFailed(f"{prefix}{name} holds NaN or inf")
    report = gradcheck.check_function(f, inputs, analytic, **kwargs)
    return gradient_comparisons(report, prefix, columns)


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
    if bad:      # the first failing comparison: the checks list the most telling first
        c = bad[0]
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


# ------------------------------------------------------------------ the student's code in the library
def _references(fn):
    """Every place a minivae module refers to the function object ``fn``: module globals
    (``from .bound import kl_grads`` copies the reference), values of module-level dicts
    (``ACTIVATIONS = {"tanh": (tanh_forward, tanh_backward)}``) and attributes of the module's
    classes (plain or static methods). Yields (get, set) pairs."""
    for modname, module in list(sys.modules.items()):
        if module is None or not (modname == "minivae" or modname.startswith("minivae.")) \
                or modname.startswith("minivae.labs"):
            continue
        for key, value in list(vars(module).items()):
            if value is fn:
                yield module, key, "attr"
            elif isinstance(value, dict):
                for k, v in list(value.items()):
                    if v is fn or (isinstance(v, tuple) and any(x is fn for x in v)):
                        yield value, k, "item"
            elif isinstance(value, type) and value.__module__ == modname:
                for k, v in list(vars(value).items()):
                    if v is fn or (isinstance(v, staticmethod) and v.__func__ is fn):
                        yield value, k, "attr"


def _replace(old, new, value):
    if value is old:
        return new
    if isinstance(value, staticmethod):
        return staticmethod(new)
    if isinstance(value, tuple):
        return tuple(new if x is old else x for x in value)
    return value


def _adapted(new, old):
    """``new`` called as the library calls ``old``: keyword arguments that only the library's
    function has (optional switches, e.g. one that skips work whose result the caller does not
    need: a saving the exercise leaves out) are dropped."""
    try:
        params = inspect.signature(new).parameters
        extra = [n for n, p in inspect.signature(old).parameters.items()
                 if p.default is not inspect.Parameter.empty and n not in params]
    except (TypeError, ValueError):
        return new
    if not extra or any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return new

    @functools.wraps(new)
    def call_as_library(*args, **kwargs):
        for name in extra:
            kwargs.pop(name, None)
        return new(*args, **kwargs)
    return call_as_library


@contextlib.contextmanager
def substituted(lab, mod):
    """Run the library with the student's functions (``mod``) in place of the library's
    (``lab.SOLUTION``): every reference a minivae module holds to one of those function
    objects points to the student's function until the block ends. One mechanism for every
    lab: the model, the optimizer and the imputer call the student's code without knowing."""
    undo = []
    try:
        for dotted in lab.SOLUTION:
            name = dotted.rsplit(".", 1)[-1]
            old, new = resolve(dotted), getattr(mod, name, None)
            if not callable(new) or new is old:
                continue
            new = _adapted(new, old)
            for owner, key, kind in list(_references(old)):
                if kind == "item":
                    before = owner[key]
                    owner[key] = _replace(old, new, before)
                    undo.append((owner.__setitem__, key, before))
                else:
                    before = vars(owner)[key]
                    setattr(owner, key, _replace(old, new, before))
                    undo.append((lambda k, v, o=owner: setattr(o, k, v), key, before))
        yield
    finally:
        for restore, key, before in reversed(undo):
            restore(key, before)


@contextlib.contextmanager
def captured():
    """Collect what the block prints (the library's run, printed only as figures)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield buf


def out_dir(args, lab):
    """The folder where a lab's run writes its figures (created)."""
    d = Path(args.out) if getattr(args, "out", None) else Path("runs") / "labs" / lab.FOLDER
    d.mkdir(parents=True, exist_ok=True)
    return d


def flush():
    sys.stdout.flush()
