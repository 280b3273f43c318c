"""The ``minivae`` command line: ``minivae COMMAND [options]`` or ``python -m minivae COMMAND``.

The only code in minivae that knows about flags, run directories, terminals and exit codes:

- each command is one module of :mod:`minivae.cli.commands`, holding a docstring (its first
  line is the help text), ``add_arguments(parser)`` and ``run(args)``. Only the module of the
  command being run is imported (the list in ``minivae --help`` is read from the files'
  docstrings), and command modules import the library inside ``run``, so ``--help`` is quick;
- :mod:`minivae.cli.options` holds the argparse types (backed by :mod:`minivae.validate`) and
  the options of a training run, generated from :class:`minivae.train.TrainConfig`;
- :mod:`minivae.cli.runs` holds the run directory, its resume rules, metrics and progress bars;
- :mod:`minivae.cli.csvio` reads and writes the CSV tables of ``minivae impute``;
- :func:`main` holds the one map from errors to exit codes (:func:`exit_code`):

  ====  ===============================================================================
  0     done
  1     training diverged (a NaN or inf: the checkpoint keeps the last good state)
  2     bad input: a bad option, file, checkpoint or data, an OS error (disk full, no
        permission), not enough memory, an unusable ``MINIVAE_BACKEND``
  130   interrupted (Ctrl-C), at any moment, start-up included
  ====  ===============================================================================

  Each ends with one line on stderr, ``minivae COMMAND: error: ...``, never a traceback.
  Anything else is a bug in minivae and keeps its traceback.
"""
import sys

EXIT_OK, EXIT_DIVERGED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class CommandError(Exception):
    """Bad input found by a command: printed as one line, exit code 2."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with a line saying what was kept (e.g. how to resume): exit code 130."""


def exit_code(error):
    """The exit code of an exception (None: not an expected error, i.e. a bug).

    Divergence is :class:`minivae.model.Diverged` (re-exported as ``minivae.train.Diverged``),
    an unusable backend
    :class:`minivae.backend.BackendError`. They are recognised by class name and module, so
    the map imports nothing (and works when the error came from the failed import of the
    module itself, which Python then drops from ``sys.modules``).
    """
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if _is(error, "minivae.model", "Diverged"):
        return EXIT_DIVERGED
    if _is(error, "minivae.backend", "BackendError"):
        return EXIT_BAD_INPUT
    if isinstance(error, (CommandError, ValueError, OSError, MemoryError)):
        return EXIT_BAD_INPUT
    return None


def _is(error, module, name):
    return any(c.__module__ == module and c.__name__ == name for c in type(error).__mro__)


def one_line(error):
    """An exception's message on one line."""
    if isinstance(error, MemoryError):
        return "not enough memory" + (f" ({error})" if str(error) else "") + \
            "; try smaller sizes"
    if isinstance(error, KeyboardInterrupt):
        text = " ".join(str(error).split())
        return "interrupted" + (f"; {text}" if text else "")
    return " ".join(str(error).split()) or type(error).__name__


def _command_names():
    """Command module names, found without importing them."""
    import pkgutil
    from . import commands
    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__)
                  if not m.name.startswith("_"))


def _summary(module_name):
    """The first line of a command module's docstring, read without importing the module."""
    import ast
    import importlib.util
    spec = importlib.util.find_spec(f"{__name__}.commands.{module_name}")
    with open(spec.origin, encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _parser_class():
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            # argparse would print the whole usage block; one line, and where to look, is
            # clearer.
            self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    return Parser


def build_parser(command=None):
    """The argument parser; only ``command``'s module is imported and given its options (all
    of them when ``command`` is None, e.g. for a test that checks every command's options)."""
    import argparse
    import importlib
    parser_class = _parser_class()
    parser = parser_class(prog="minivae", description="Deep latent variable models with "
                          "hand-written gradients: train, evaluate, sample, impute, benchmark.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_class)
    sub.required = True
    for name in _command_names():
        cli_name = name.replace("_", "-")
        if command is not None and cli_name != command:
            sub.add_parser(cli_name, help=_summary(name), add_help=False)
            continue
        module = importlib.import_module(f"{__name__}.commands.{name}")
        p = sub.add_parser(cli_name, help=module.__doc__.strip().splitlines()[0],
                           description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _prog=p.prog)
    return parser


def _command_in(argv):
    """The command named in argv (the first argument that is not an option), or None."""
    for a in argv:
        if not a.startswith("-"):
            return a
    return None


def main(argv=None):
    """Run ``minivae`` with ``argv`` (default: sys.argv[1:]); returns the exit code."""
    prog = "minivae"
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        command = _command_in(argv)
        if command is not None:
            prog = f"minivae {command}"
        args = build_parser(command or "").parse_args(argv)
        prog = args._prog
        import numpy
        # NumPy's RuntimeWarnings (overflow in exp, invalid value, ...) are not for a user of
        # the command line: a NaN or inf that matters stops the command with one line (a
        # divergence, exit 1), which must be the only thing on stderr.
        with numpy.errstate(all="ignore"):
            return args._run(args) or EXIT_OK
    except BaseException as e:       # KeyboardInterrupt too: Ctrl-C is one line at any moment
        code = exit_code(e)
        if code is None:
            raise
        what = {EXIT_INTERRUPTED: "", EXIT_DIVERGED: "training stopped: "}.get(code, "error: ")
        print(f"{prog}: {what}{one_line(e)}", file=sys.stderr)
        return code
