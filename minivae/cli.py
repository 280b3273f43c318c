"""The ``minivae`` command line: ``minivae COMMAND [options]`` or ``python -m minivae COMMAND``.

Each subcommand is one module of :mod:`minivae.commands` holding a one-line docstring (the help
text), ``add_arguments(parser)`` and ``run(args)``; this file only finds them and turns bad input
into a one-line error with exit code 2 (never a traceback).
"""
import argparse
import importlib
import pkgutil
import sys

from . import commands
from .backend import BackendError

EXIT_BAD_INPUT = 2


class CommandError(Exception):
    """Bad input found by a command: printed as one line, exit code 2."""


def parse_hidden(text):
    """'200,200' -> (200, 200); '' or 'none' -> () (affine encoder and decoder).

    The one parser of ``--hidden`` for every command; bad widths raise ValueError.
    """
    text = text.strip().lower()
    if text in ("", "none"):
        return ()
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise ValueError(f"--hidden wants comma-separated widths like 200,200, got {text!r}")
    if any(w < 1 for w in widths):
        raise ValueError(f"--hidden widths must be positive, got {text!r}")
    return widths


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse would print the whole usage block; one line, and where to look, is clearer.
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield info.name, importlib.import_module(f"{commands.__name__}.{info.name}")


def build_parser():
    parser = _Parser(prog="minivae", description="Deep latent variable models with "
                     "hand-written gradients: train, evaluate, sample, impute, benchmark.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, module in _command_modules():
        doc = (module.__doc__ or "").strip().splitlines()[0]
        p = sub.add_parser(name.replace("_", "-"), help=doc, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _prog=p.prog)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args._run(args) or 0
    except (CommandError, ValueError, OSError, BackendError) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"{args._prog}: error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{args._prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
