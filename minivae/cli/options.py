"""Command-line options: argparse types backed by :mod:`minivae.validate`, and the options of a
training run generated from :class:`minivae.train.TrainConfig`.

Every option is checked by the same validator the Python API uses (``--k`` by
``validate.positive_int``, ``--lr`` by ``validate.positive_real``, ...): argparse only turns
the text into a number first, and reports the validator's message as one line naming the
option. ``--hidden`` has one syntax everywhere, comma-separated widths (``200,200``; ``500``;
``none`` or an empty string for affine maps).
"""
import argparse


def _from_text(convert, check):
    """An argparse type: ``convert`` the text (int, float, ...), then ``check`` it."""
    def parse(text):
        from .. import validate
        try:
            value = convert(text)
        except ValueError:
            kind = {int: "an integer", float: "a number"}.get(convert, "a value")
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        try:
            return getattr(validate, check)("value", value) if check else value
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).replace("value ", "", 1)) from None
    parse.__name__ = check or convert.__name__
    return parse


positive_int = _from_text(int, "positive_int")
nonnegative_int = _from_text(int, "nonnegative_int")
seed = _from_text(int, "seed")
positive_real = _from_text(float, "positive_real")
nonnegative_real = _from_text(float, "nonnegative_real")
probability = _from_text(float, "probability")


def parse_hidden(text):
    """'200,200' -> (200, 200); '500' -> (500,); '' or 'none' -> () (affine maps).

    The one parser of hidden widths written as text (then :func:`minivae.validate.hidden`).
    """
    from .. import validate
    text = text.strip().lower()
    if text in ("", "none"):
        return ()
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise ValueError(f"hidden wants comma-separated widths like 200,200, got {text!r}") \
            from None
    return validate.hidden(widths)           # the one check of the widths (API and CLI)


def hidden_widths(text):
    """argparse type of every ``--hidden`` option (see :func:`parse_hidden`)."""
    try:
        return parse_hidden(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def flag(name):
    """The option spelling of a field name: eval_k -> --eval-k."""
    return "--" + name.replace("_", "-")


#: argparse types of TrainConfig's fields (the others are text or choices).
_TYPES = {"k": positive_int, "eval_k": positive_int, "z_dim": positive_int,
          "batch_size": positive_int, "epochs": nonnegative_int, "eval_n": nonnegative_int,
          "seed": seed, "lr": positive_real, "hidden": hidden_widths, "levels": positive_int}
#: How the options are grouped in --help.
GROUPS = (("data", ("data", "data_dir", "binarize")),
          ("model and objective", ("likelihood", "levels", "k", "estimator", "analytic_kl",
                                   "z_dim", "hidden", "activation", "dtype")),
          ("optimisation", ("epochs", "batch_size", "lr", "schedule", "seed")),
          ("monitoring", ("eval_n", "eval_k")))


def add_config_arguments(parser, defaults=None, skip=(), required=(), config_class=None,
                         groups=GROUPS, types=None):
    """Add one option per field of TrainConfig (except ``skip``), in groups (``required``: the
    fields that must be given).

    Every option defaults to None, so that :func:`config_overrides` tells what was given (a
    resumed run keeps its saved settings); the help shows the value used otherwise, from
    ``defaults`` (a preset's dict) or the field's default. ``config_class``, ``groups`` and
    ``types`` (argparse types by field, beside :data:`_TYPES`) serve another configuration
    built the same way (minivae.diffusion.config.DiffusionConfig).
    """
    import dataclasses
    if config_class is None:
        from ..train import TrainConfig as config_class
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    defaults = defaults or {}
    types = dict(_TYPES, **(types or {}))
    for title, names in groups:
        group = parser.add_argument_group(title)
        for name in names:
            if name in skip:
                continue
            f = fields[name]
            default = defaults.get(name, f.default)
            shown = "" if default is None or name in required else \
                f" (default: {_show(default)})"
            help_text = f.metadata["help"] + shown
            if f.type in (bool, "bool"):
                group.add_argument(flag(name), action="store_const", const=True, default=None,
                                   help=help_text)
                continue
            kw = dict(default=None, help=help_text.replace("%", "%%"),
                      required=name in required)
            if f.metadata["choices"] is not None:
                kw["choices"] = f.metadata["choices"]
            if name == "hidden":
                kw["metavar"] = "W1,W2,..."
            elif name == "data_dir":
                kw["metavar"] = "DIR"
            group.add_argument(flag(name), type=types.get(name, str), **kw)
    assert not set(fields) - {n for _, ns in groups for n in ns}, "a field has no group"


def _show(value):
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def as_options(fields):
    """A preset's fields as the options that set them: {"k": 1, "hidden": (500,)} ->
    '--k 1 --hidden 500' (what --help shows of a preset, read from the preset itself)."""
    return " ".join(flag(name) if value is True else f"{flag(name)} {_show(value)}"
                    for name, value in fields.items())


def config_overrides(args, config_class=None):
    """The run options given on the command line, as TrainConfig (or ``config_class``) field
    -> value."""
    import dataclasses
    if config_class is None:
        from ..train import TrainConfig as config_class
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(config_class)
            if getattr(args, f.name, None) is not None}


def add_run_arguments(parser, default_out="runs/default"):
    g = parser.add_argument_group("run directory")
    g.add_argument("--out", default=default_out, metavar="RUN_DIR",
                   help=f"run directory (default: {default_out})")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in RUN_DIR from its checkpoint (its saved settings "
                   "are kept; --epochs sets the new total)")
    g.add_argument("--force", action="store_true",
                   help="start over in a RUN_DIR that holds a run (deletes its checkpoint, "
                   "metrics, config, curves and evaluation)")
    g.add_argument("--quiet", action="store_true", help="print nothing but errors")
    g.add_argument("--no-plots", action="store_true", help="do not draw curves.png at the end")


def add_run_data_arguments(parser, optional=False):
    """RUN_DIR and the data options of the commands that read a trained run (RUN_DIR may be
    left out when ``optional``: the command has another source of a model)."""
    from .. import data
    parser.add_argument("run_dir", metavar="RUN_DIR", nargs="?" if optional else None,
                        help="a directory written by minivae train")
    parser.add_argument("--data", choices=data.DATASETS, default=None,
                        help="test data (default: the data the run was trained on)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="MNIST directory for --data mnist (default: the run's, then "
                        f"${data.ENV_VAR})")
